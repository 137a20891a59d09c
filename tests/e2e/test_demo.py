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
                 "OK: every step checked out."):
        assert step in out
    assert out.count("[ok]") == 4 and "[FAIL]" not in out
    assert '"or_status": 2' in out
    # the seed's templates are shown as written; the secrets never are
    assert "weixin xxx order -result id:${id}" in out
    assert "pay_key    : \"********\"" in out


def test_demo_keys_never_printed():
    r = wnshell("demo")
    assert r.returncode == 0
    # every 32-hex-char token printed must not be a key: the demo prints none at all
    import re
    assert not re.search(r"\b[0-9a-f]{32}\b", r.stdout + r.stderr)
