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


def demo_keep(until: str):
    """``wnshell demo --keep`` started, and its output up to the line starting with
    ``until`` (the process is still running: stop it with ``stop_demo``)."""
    import time
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [
        sys.executable, "-c", "import sys; from wnshell.cli import main; sys.exit(main())"]
    p = subprocess.Popen(cmd + ["demo", "--keep"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines, deadline = [], time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(until):
            break
    return p, "".join(lines)


def stop_demo(p):
    if p.poll() is None:          # SIGTERM, so the demo stops what it started
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_demo_keep_leaves_it_running_until_sigterm():
    import re
    import signal
    import urllib.request

    p, out = demo_keep("  pay ")
    try:
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
        stop_demo(p)


def test_demo_refund_api_is_staff_only():
    """The demo's refund API gives money back: what a merchant copies from it must
    carry an api-access-token (man weixin: staff only), shown masked, never in full;
    a request without it, or with a wrong one, is refused before anything runs."""
    import json
    import re

    import requests
    p, out = demo_keep("  shell ")
    try:
        assert "OK: every step checked out." in out
        assert '"api-access-token": "********"' in out
        url = re.search(r"  refund\s+(\S+)", out).group(1).replace("FEN", "1")
        http = requests.Session()
        http.trust_env = False
        for headers in ({}, {"Authorization": "Bearer " + "x" * 32}):
            r = http.get(url, headers=headers, timeout=10)
            assert r.status_code == 403, (r.status_code, r.text)
            assert json.loads(r.text)["errCode"] == "e.regapi.token.invalid"
        http.close()
    finally:
        stop_demo(p)


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


def test_demo_on_a_port_another_server_holds_fails_fast_and_says_why():
    """The readiness probe must be answered by the demo's own server: another server
    already on the port (here one that answers 404 to everything, as a wnshell server
    does at /) must not pass for it, and the failure names the taken port at once."""
    import http.server
    import threading
    import time

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        r = wnshell("demo", "--port", str(other.server_address[1]))
        took = time.monotonic() - t0
    finally:
        other.shutdown()
        other.server_close()
    assert r.returncode == 1, r.stdout + r.stderr
    fail = [ln for ln in r.stdout.splitlines() if "[FAIL]" in ln]
    assert len(fail) == 1 and "cannot listen on 127.0.0.1:" in fail[0], r.stdout
    assert "Address already in use" in fail[0] and "Traceback" not in r.stdout + r.stderr
    assert took < 15        # not the readiness timeout (20 s)
