"""``wnshell demo`` as a user runs it: a subprocess that must exit 0 and tell the story."""
import os
import subprocess
import sys


def wnshell(*args):
    """The installed ``wnshell`` console script (as a user types it), else the same
    entry point through this interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [
        sys.executable, "-c", "import sys; from wnshell.cli import main; sys.exit(main())"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_demo_exits_zero_and_shows_each_step():
    r = wnshell("demo")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for step in ("1. client -> W   GET /api/demo/pay?id=", "2. user pays",
                 "3. WeChat -> W   POST /api/demo/payresult", "4. order",
                 "5. client -> W   GET /api/demo/refund?id=",
                 "6. WeChat -> W   POST /api/demo/refundresult", "7. client -> W",
                 "8. the day's bill  weixin xxx bill -date", "OK: every step checked out."):
        assert step in out
    assert out.count("[ok]") == 8 and "[FAIL]" not in out
    assert '"or_status": 2' in out and '"or_status": 5' in out
    assert '"differences": 0' in out
    # the seed's templates are shown as written; the secrets never are
    assert "weixin xxx order -result id:${id}" in out
    assert "pay_key    : \"********\"" in out


def test_demo_keys_never_printed():
    r = wnshell("demo")
    assert r.returncode == 0
    # every 32-hex-char token printed must not be a key: the demo prints none at all
    import re
    assert not re.search(r"\b[0-9a-f]{32}\b", r.stdout + r.stderr)


def test_demo_keep_leaves_it_running_until_sigterm():
    import re
    import signal
    import time
    import urllib.request

    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [
        sys.executable, "-c", "import sys; from wnshell.cli import main; sys.exit(main())"]
    p = subprocess.Popen(cmd + ["demo", "--keep"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        lines, deadline = [], time.time() + 60
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("  pay "):
                break
        out = "".join(lines)
        assert "OK: every step checked out." in out and "Still running (--keep)" in out
        url = re.search(r"  pay\s+(\S+)", out).group(1)
        import json
        import urllib.error
        try:   # the order is paid (and refunded) now: paying it again is a conflict
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=10)
            raise AssertionError("a paid order was accepted for payment again")
        except urllib.error.HTTPError as e:
            assert e.code == 409
            assert json.loads(e.read())["errCode"] == "e.cmd.weixin.order.refunded"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        # everything it started is gone
        import urllib.error
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2)
            raise AssertionError("server still answering after the demo stopped")
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
    finally:
        if p.poll() is None:          # SIGTERM, so the demo stops what it started
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_demo_api_v3_runs_the_seed_flow_and_prints_no_key():
    import re
    r = wnshell("demo", "--api", "v3")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for step in ("1. client -> W   GET /api/demo/pay?id=", "2. user pays",
                 "3. WeChat -> W   POST /api/demo/payresult", "   <- HTTP 204 (no body)",
                 "4. order", "5. client -> W   GET /api/demo/refund?id=",
                 "6. WeChat -> W   POST /api/demo/refundresult", "7. client -> W",
                 "9. a past day's bill  weixin xxx bill -date", "OK: every step checked out."):
        assert step in out
    assert out.count("[ok]") == 9 and "[FAIL]" not in out
    assert '"signType": "RSA"' in out and '"or_status": 2' in out
    # the seed's templates unchanged; the APIv3 key and the private key never shown
    assert "weixin xxx order -result id:${id}" in out and "pay_api_version: 3" in out
    assert 'pay_apiv3_key  : "********"' in out
    assert "PRIVATE KEY" not in out + r.stderr
    assert not re.search(r"\b[0-9a-f]{32}\b", out + r.stderr)
