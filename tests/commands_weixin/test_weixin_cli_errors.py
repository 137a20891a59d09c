"""``weixin`` through the ``wnshell`` command line: what a user sees on stderr."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

import objstore
from tests.commands_weixin.conftest import APPID, APPSECRET, MCH_ID, OPENID, PAY_KEY, \
    SEED_WXCONF
from tests.wnshell.conftest import REPO


@pytest.fixture()
def silent_server():
    """Accepts connections and never answers: every request times out."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    srv.close()
    for c in conns:
        c.close()


def test_submit_timeout_prints_one_line(tmp_path, silent_server):
    url = f"sqlite:///{tmp_path}/store.db"
    store = objstore.open_store(url)
    store.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True, content=SEED_WXCONF.format(
        appid=APPID, appsecret=APPSECRET, mch_id=MCH_ID, pay_key=PAY_KEY,
        notify_url="https://example.com/api/demo/payresult", api_base=silent_server,
        extra="pay_timeout : 1\n").encode())
    store.create("/home/demo/orders/o1", "FILE", parents=True,
                 meta={"openid": OPENID, "total_fee": 100, "or_status": 1})
    store.close()
    r = subprocess.run([sys.executable, "-m", "wnshell.cli", "--store", url, "-c",
                        f"weixin xxx order -submit ~/orders/o1 -client_ip 1.2.3.4 "
                        f"-openid {OPENID}"], capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, XDG_DATA_HOME=str(tmp_path)), timeout=60)
    assert r.returncode != 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr                  # the error, no log line beside it
    assert lines[0].startswith("e.weixin.") and "timeout" in lines[0].lower(), lines
    assert PAY_KEY not in r.stderr and APPSECRET not in r.stderr


def test_an_amount_out_of_float_range_is_named():
    from wnshell.session import Session
    s = Session(objstore.open_store("memory://"))
    s.store.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True,
                   content=SEED_WXCONF.format(
                       appid=APPID, appsecret=APPSECRET, mch_id=MCH_ID, pay_key=PAY_KEY,
                       notify_url="https://example.com/n", api_base="http://127.0.0.1:9",
                       extra="").encode())
    status, out, err = s.run("weixin xxx pay", '{body: "b", out_trade_no: "o1", '
                             'total_fee: 1e999, openid: "u", spbill_create_ip: "1.2.3.4"}')
    assert (status, out) == (1, "")
    assert err == ("e.cmd.weixin.input.invalid : pay: number 1e999 is out of range "
                   "(JSON numbers here must be finite)\n")
