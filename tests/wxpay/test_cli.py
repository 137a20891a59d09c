import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from wxpay.account import Account
from wxpay.client import Client
from wxpay.errors import ResultFail

from .conftest import APPID, KEY, MCH_ID, order

ROOT = Path(__file__).resolve().parents[2]


def _script():
    found = Path(sys.executable).parent / "wxpay-sim"
    return str(found) if found.exists() else shutil.which("wxpay-sim")


def _start(cmd, **env):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1", **env))
    ready = select.select([proc.stdout], [], [], 15)[0]
    if not ready:
        proc.kill()
        pytest.fail("wxpay-sim printed nothing within 15 s")
    line = proc.stdout.readline()
    assert line.startswith("wxpay-sim listening on http://127.0.0.1:"), line
    return proc, line.split()[3]


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


def test_module_console_starts_and_answers():
    proc, url = _start([sys.executable, "-m", "wxpay.simulator", "--host", "127.0.0.1",
                        "--port", "0", "--merchant", f"{APPID}:{MCH_ID}:{KEY}",
                        "--merchant", "wxsecond:20000:" + "a" * 32,
                        "--retry-schedule", "0.05,0.05"])
    try:
        acc = Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n", api_base=url)
        with Client(acc) as c:
            prepay = c.unifiedorder(order())["prepay_id"]
            with pytest.raises(ResultFail):
                c.orderquery("unknown")
        paid = requests.post(url + "/sim/pay", json={"prepay_id": prepay}, timeout=5)
        assert paid.status_code == 200 and paid.json()["out_trade_no"] == "o_1"
        assert requests.get(url + "/sim/orders/o_1", timeout=5).json()["state"] == "SUCCESS"
    finally:
        code, out, err = _stop(proc)
    assert code == 0
    assert KEY not in out + err                  # the key never printed


@pytest.mark.skipif(_script() is None, reason="wxpay-sim console script not installed")
def test_installed_script():
    proc, url = _start([_script(), "--port", "0"],
                       WXPAY_SIM_MERCHANTS=f"{APPID}:{MCH_ID}:{KEY}")
    try:
        assert requests.get(url + "/sim/health", timeout=5).json() == {"ok": True}
        acc = Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n", api_base=url)
        with Client(acc) as c:
            assert c.unifiedorder(order())["result_code"] == "SUCCESS"
    finally:
        code, out, err = _stop(proc)
    assert code == 0


@pytest.mark.parametrize("args,word", [
    (["--host", "0.0.0.0", "--merchant", f"{APPID}:{MCH_ID}:{KEY}"], "non-loopback"),
    ([], "--merchant"),
    (["--merchant", "only:two"], "APPID:MCH_ID:KEY"),
    (["--merchant", f"{APPID}:{MCH_ID}:{KEY}", "--retry-schedule", "a,b"], "seconds"),
])
def test_console_refusals(args, word):
    r = subprocess.run([sys.executable, "-m", "wxpay.simulator", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert word in r.stderr
    assert "Traceback" not in r.stderr
    assert KEY not in r.stderr


def test_console_writes_merchant_certificates_that_refund(tmp_path):
    """--certs-dir: the merchant's apiclient_cert.p12 (password mch_id) and the CA
    work against the printed secapi URL (an unknown order: ORDERNOTEXIST, so TLS,
    the client certificate and the signature were all accepted)."""
    import pytest as _pytest
    from wxpay.account import Account
    from wxpay.certs import MerchantCert
    from wxpay.client import Client
    from wxpay.errors import ResultFail
    from wxpay.refund import build_refund
    key = "0123456789abcdef0123456789abcdef"
    proc = subprocess.Popen([sys.executable, "-m", "wxpay.simulator", "--merchant",
                             f"wxapp1:1900000001:{key}", "--certs-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert select.select([proc.stdout], [], [], 15)[0]
        line = proc.stdout.readline().split()
        url, secapi = line[3], line[line.index("secapi:") + 1]
        d = tmp_path / "1900000001"
        assert {p.name for p in d.iterdir()} == {"apiclient_cert.p12", "apiclient_cert.pem",
                                                "apiclient_key.pem", "wxpay_ca.pem"}
        assert (d / "apiclient_key.pem").stat().st_mode & 0o077 == 0
        cert = MerchantCert.from_p12((d / "apiclient_cert.p12").read_bytes(), "1900000001")
        acc = Account("wxapp1", "1900000001", key, api_base=url)
        with Client(acc, cert=cert, secapi_base=secapi,
                    ca_pem=(d / "wxpay_ca.pem").read_bytes()) as c:
            with _pytest.raises(ResultFail) as e:
                c.refund(build_refund(acc, out_refund_no="x_r1", total_fee=1,
                                      refund_fee=1, out_trade_no="x_1"))
        assert e.value.err_code == "ORDERNOTEXIST"
    finally:
        code, out, err = _stop(proc)
    assert code == 0
