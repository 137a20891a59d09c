"""One ``wxpay-sim`` serves a v2 merchant and a v3 merchant at once: the v3 simulator
mounted on the v2 simulator's listener (``/v3/*``, ``/sim/v3/*``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wxpay.account import Account
from wxpay.client import Client
from wxpay.errors import SignError
from wxpay.simulator import Simulator
from wxpay.v3 import notify as v3notify
from wxpay.v3.client import V3Client

from .conftest import APIV3_KEY, APPID, MCHID, make_account

V2_APPID, V2_MCH, V2_KEY = "wx2222222222222222", "1900000109", "V2keyV2keyV2keyV2keyV2keyV2key01"


class _Inbox:
    """A notify_url that answers v2 notifications with SUCCESS XML and v3 ones with
    204, keeping (headers, body) of each."""

    def __init__(self):
        self.got = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.got.append((self.path, dict(self.headers.items()), body))
                if self.path == "/v3":
                    self.send_response(204)
                    self.end_headers()
                    return
                data = b"<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def combined(merchant):
    sim = Simulator(merchants=[(V2_APPID, V2_MCH, V2_KEY)], retry_schedule=(0.05, 0.1),
                    tls=False)
    sim.add_v3_merchant(MCHID, [APPID], merchant.public, merchant.serial, APIV3_KEY)
    with sim:
        yield sim


@pytest.fixture()
def inbox():
    i = _Inbox()
    yield i
    i.close()


def test_one_simulator_serves_a_v2_and_a_v3_merchant(combined, merchant, inbox):
    class _Srv:
        url = combined.url
    v3acc = make_account(_Srv, merchant, notify_url=inbox.url + "/v3")
    v2acc = Account(V2_APPID, V2_MCH, V2_KEY, notify_url=inbox.url + "/v2",
                    api_base=combined.url)
    order2 = {"body": "v2", "out_trade_no": "v2order_1", "total_fee": 100,
              "spbill_create_ip": "10.0.0.1", "trade_type": "JSAPI", "openid": "o2"}
    order3 = {"description": "v3", "out_trade_no": "v3order_1",
              "amount": {"total": 300}, "payer": {"openid": "o3"}}
    with Client(v2acc) as c2, V3Client(v3acc, timeout=(2, 5)) as c3:
        prepay2 = c2.unifiedorder(order2)["prepay_id"]
        prepay3 = c3.prepay(order3)
        combined.pay(prepay2)
        combined.v3.pay(prepay_id=prepay3)
        combined.wait_notified("v2order_1")
        combined.v3.wait_notified("v3order_1")
        assert c2.orderquery("v2order_1")["trade_state"] == "SUCCESS"
        assert c3.query("v3order_1")["trade_state"] == "SUCCESS"
        # the merchants stay apart: the v3 order is unknown to v2 and the other way
        assert combined.order("v3order_1") is None
        assert combined.v3.order("v2order_1") is None
        # a v3 request signed with the v2 merchant's nothing: refused by the v3 side
        status, _h, body = c3.send(type(
            "R", (), {"method": "GET", "target": "/v3/pay/transactions/out-trade-no/"
                      "v3order_1?mchid=" + MCHID, "body": b"",
                      "url": lambda self, base: base + self.target,
                      "headers": lambda self, account, now=None: {
                          "Authorization": "WECHATPAY2-SHA256-RSA2048 mchid=\"x\""}})())
        assert status == 401 and json.loads(body)["code"] == "SIGN_ERROR"
    v3note = next((h, b) for p, h, b in inbox.got if p == "/v3")
    n = v3notify.parse_notification(v3acc, v3note[0], v3note[1])
    assert n.resource["out_trade_no"] == "v3order_1" and n.resource["amount"]["total"] == 300
    assert any(p == "/v2" and b"v2order_1" in b for p, _h, b in inbox.got)


def test_mounted_v3_answers_are_signed_by_the_platform(combined, merchant):
    class _Srv:
        url = combined.url
    acc = make_account(_Srv, merchant)
    with V3Client(acc, timeout=(2, 5)) as c:
        c.refresh_certificates()
        assert [x.serial for x in acc.keys.certificates()] == [combined.v3.platform_serial()]
        c.prepay({"description": "d", "out_trade_no": "signed_01", "amount": {"total": 1},
                  "payer": {"openid": "o"}})
        combined.v3.set_faults({"bad_sign": True, "count": 1})
        with pytest.raises(SignError):
            c.query("signed_01")
        assert c.query("signed_01")["trade_state"] == "NOTPAY"


def test_wxpay_sim_process_with_v2_and_v3_merchants(tmp_path, merchant):
    (tmp_path / "pub.pem").write_text(merchant.public)
    (tmp_path / "v3.json").write_text(json.dumps([{
        "mchid": MCHID, "appids": [APPID], "serial_no": merchant.serial,
        "public_key_file": "pub.pem"}]))
    env = dict(os.environ, WXPAY_V3_SIM_APIV3_KEYS=f"{MCHID}:{APIV3_KEY}",
               WXPAY_SIM_MERCHANTS=f"{V2_APPID}:{V2_MCH}:{V2_KEY}")
    p = subprocess.Popen([sys.executable, "-m", "wxpay.simulator", "--no-tls",
                          "--v3-merchants", str(tmp_path / "v3.json"),
                          "--v3-export", str(tmp_path / "wx")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert "wxpay-sim listening on http://127.0.0.1:" in line and MCHID in line
        url = line.split()[3]
        from wxpay.v3.keys import WechatKeys

        class _Srv:
            pass
        _Srv.url = url
        cert = (tmp_path / "wx" / "platform_cert.pem").read_text()
        acc = make_account(_Srv, merchant, notify_url="https://example.com/n",
                           keys=WechatKeys(certificates=[cert]))
        with V3Client(acc, timeout=(2, 5)) as c3:
            assert c3.prepay({"description": "d", "out_trade_no": "proc_0001",
                              "amount": {"total": 1}, "payer": {"openid": "o"}})
        v2 = Account(V2_APPID, V2_MCH, V2_KEY, notify_url="https://example.com/n",
                     api_base=url)
        from wxpay.errors import ResultFail
        with Client(v2) as c2:          # the v2 side answers, signed with the v2 key
            with pytest.raises(ResultFail) as e:
                c2.orderquery("nosuch_1x")
            assert e.value.err_code == "ORDERNOTEXIST"
        assert APIV3_KEY not in line and V2_KEY not in line
    finally:
        p.terminate()
        p.wait(timeout=5)
    err = p.stderr.read()
    assert APIV3_KEY not in err and V2_KEY not in err
