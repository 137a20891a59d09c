"""An independent implementation against ours: wechatpy 1.8.18 (the test extra) calls
the simulator (over its TLS listener, with the merchant certificate for refunds) and
checks what the simulator and the ``weixin`` command produce with its own signer and
parsers."""
from __future__ import annotations

import json

import pytest

wechatpy_pay = pytest.importorskip("wechatpy.pay")
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException  # noqa: E402
from wechatpy.pay.utils import _check_signature, calculate_signature  # noqa: E402

import objstore  # noqa: E402
from wnshell.session import Session  # noqa: E402
from wxpay.api import SUCCESS_XML, beijing_stamp  # noqa: E402
from wxpay.bill import parse_bill  # noqa: E402
from wxpay.xmlcodec import from_xml  # noqa: E402

from .conftest import APPID, KEY, MCH_ID  # noqa: E402
from .sink import NotifySink  # noqa: E402


@pytest.fixture
def sink():
    """A notify_url that keeps every body and answers SUCCESS."""
    with NotifySink(lambda *_: (200, "text/xml", SUCCESS_XML.encode()), "/n") as s:
        yield s


@pytest.fixture
def wp(sim, tmp_path):
    """wechatpy's WeChatPay on the simulator's TLS listener, with the merchant's PEM
    pair (the simulator's throwaway test certificate) as wechatpy wants it: files."""
    cert, key = sim.merchant_pem(MCH_ID)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "ca.pem").write_bytes(sim.ca_pem)
    pay = wechatpy_pay.WeChatPay(appid=APPID, api_key=KEY, mch_id=MCH_ID,
                                 mch_cert=str(tmp_path / "cert.pem"),
                                 mch_key=str(tmp_path / "key.pem"), timeout=10)
    pay.API_BASE_URL = sim.secure_url + "/"
    pay._http.verify = str(tmp_path / "ca.pem")
    pay._http.trust_env = False
    return pay


def _order(wp, sink, out_trade_no, fee=888):
    return wp.order.create(trade_type="JSAPI", body="测试", total_fee=fee,
                           notify_url=sink.url, client_ip="127.0.0.1",
                           user_id="oUser", out_trade_no=out_trade_no)


def test_wechatpy_orders_queries_and_closes_on_the_simulator(wp, sink, sim):
    r = _order(wp, sink, "wp_1")
    assert r["result_code"] == "SUCCESS" and r["prepay_id"]
    assert _check_signature(dict(r), KEY)                 # our reply, its verifier
    assert wp.order.query(out_trade_no="wp_1")["trade_state"] == "NOTPAY"
    assert wp.order.close("wp_1")["result_code"] == "SUCCESS"
    with pytest.raises(WeChatPayException) as e:
        wp.order.close("wp_1")
    assert e.value.errcode == "ORDERCLOSED"
    native = wp.order.create(trade_type="NATIVE", body="qr", total_fee=1,
                             notify_url=sink.url, client_ip="127.0.0.1",
                             product_id="p1", out_trade_no="wp_n1")
    assert native["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")


def test_wechatpy_verifies_the_simulators_notification(wp, sink, sim):
    r = _order(wp, sink, "wp_2")
    sim.pay(r["prepay_id"])
    sim.wait_notified("wp_2")
    data = wp.parse_payment_result(sink.bodies[0])
    assert data["total_fee"] == 888 and data["out_trade_no"] == "wp_2"
    # a forged one is refused by wechatpy too
    forged = sink.bodies[0].replace(b"888", b"1")
    with pytest.raises(InvalidSignatureException):
        wp.parse_payment_result(forged)


def test_wechatpy_md5_parser_rejects_wechats_hmac_notifications(sim, sink):
    """WeChat's HMAC notifications carry no sign_type: wechatpy 1.8.18 checks MD5 only
    and refuses them (wechatpay-v2.md §8.7), ours uses the account's type."""
    from wxpay.account import Account
    from wxpay.api import parse_notification
    from wxpay.client import Client
    acc = Account(APPID, MCH_ID, KEY, notify_url=sink.url, api_base=sim.url,
                  sign_type="HMAC-SHA256")
    with Client(acc) as c:
        r = c.unifiedorder({"body": "b", "out_trade_no": "wp_h1", "total_fee": 5,
                            "openid": "o", "spbill_create_ip": "127.0.0.1"})
    sim.pay(r["prepay_id"])
    sim.wait_notified("wp_h1")
    wp = wechatpy_pay.WeChatPay(appid=APPID, api_key=KEY, mch_id=MCH_ID)
    with pytest.raises(InvalidSignatureException):
        wp.parse_payment_result(sink.bodies[0])
    assert parse_notification(acc, sink.bodies[0])["out_trade_no"] == "wp_h1"


def test_wechatpy_refunds_with_the_certificate_and_reads_our_notification(wp, sink, sim):
    r = _order(wp, sink, "wp_3", fee=100)
    sim.pay(r["prepay_id"])
    sim.wait_notified("wp_3")
    sim.set_refund_outcome("SUCCESS", 0.02)
    res = wp.refund.apply(total_fee=100, refund_fee=40, out_refund_no="wp_3_r1",
                          out_trade_no="wp_3", notify_url=sink.url)
    assert res["result_code"] == "SUCCESS" and res["refund_fee"] == "40"
    sim.wait_refund_notified("wp_3_r1")
    notified = wp.parse_refund_notify_result(sink.bodies[-1])
    assert notified["out_refund_no"] == "wp_3_r1" and notified["refund_fee"] == 40
    assert notified["refund_status"] == "SUCCESS"
    q = wp.refund.query(out_trade_no="wp_3")
    assert q["refund_count"] == "1" and q["refund_status_0"] == "SUCCESS"
    # more than is left: refused like WeChat
    with pytest.raises(WeChatPayException) as e:
        wp.refund.apply(total_fee=100, refund_fee=61, out_refund_no="wp_3_r2",
                        out_trade_no="wp_3")
    assert e.value.errcode == "INVALID_REQUEST"
    # without the certificate: refused
    wp.mch_cert = wp.mch_key = None
    with pytest.raises(WeChatPayException):
        wp.refund.apply(total_fee=100, refund_fee=1, out_refund_no="wp_3_r3",
                        out_trade_no="wp_3")
    bill = wp.tools.download_bill(beijing_stamp()[:8])
    rows, summary = parse_bill(bill)
    assert {r["out_trade_no"] for r in rows} >= {"wp_3"} and summary["count"] >= 2


def test_wechatpy_signer_agrees_with_the_weixin_command(sim):
    """``weixin xxx pay`` output and ``order -submit``'s pay_jsobj, checked by
    wechatpy's signer."""
    from tests.commands_weixin.conftest import install_wxconf
    store = objstore.open_store("memory://")
    try:
        install_wxconf(store, sim.url, "http://127.0.0.1:9/n")
        sh = Session(store, user="demo")
        order = json.dumps({"body": "测试 a&b", "out_trade_no": "cli_1", "total_fee": 1,
                            "openid": "oUser", "spbill_create_ip": "127.0.0.1"})
        status, out, err = sh.run("weixin xxx pay", order)
        assert status == 0, err
        fields = from_xml(out.strip())
        from tests.commands_weixin.conftest import PAY_KEY
        assert _check_signature(fields, PAY_KEY)
        store.create("/home/demo/orders/o1", "FILE",
                     {"openid": "oUser", "total_fee": 1, "or_status": 0}, parents=True)
        with sim._lock:
            sim.add_merchant(fields["appid"], fields["mch_id"], PAY_KEY)
        status, out, err = sh.run("weixin xxx order -submit ~/orders/o1 "
                                  "-client_ip 127.0.0.1 -openid oUser")
        assert status == 0, err
        js = json.loads(out)
        wp = wechatpy_pay.WeChatPay(appid=js["appId"], api_key=PAY_KEY,
                                    mch_id=fields["mch_id"])
        prepay = js["package"][len("prepay_id="):]
        assert wp.jsapi.get_jsapi_signature(prepay, js["timeStamp"], js["nonceStr"]) \
            == js["paySign"]
        assert calculate_signature({k: v for k, v in js.items() if k != "paySign"},
                                   PAY_KEY) == js["paySign"]
    finally:
        store.close()
