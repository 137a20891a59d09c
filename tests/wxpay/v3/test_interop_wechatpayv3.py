"""Interop with an implementation nobody here wrote: ``wechatpayv3`` (minibear2021) as
the merchant's client against the v3 simulator.  The simulator must accept its signed
requests, it must accept the simulator's signatures (it raises on a 2xx it cannot
verify), and its callback parser must accept the simulator's notifications.

wechatpayv3 talks to a fixed gateway; the tests point its core at the simulator and,
in certificate mode, seed ``cert_dir`` with the platform certificate (it would fetch
``/v3/certificates`` from the real gateway while constructing otherwise).
"""
import json
import logging

import pytest

wechatpayv3 = pytest.importorskip("wechatpayv3")
from wechatpayv3 import WeChatPay, WeChatPayType  # noqa: E402

from wxpay.v3 import api, notify  # noqa: E402
from wxpay.v3.client import V3Client  # noqa: E402

from .conftest import (APIV3_KEY, APPID, MCHID, PUB_APIV3_KEY, PUB_APPID, PUB_MCHID,  # noqa: E402
                       Receiver, make_account)

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def _sdk(srv, merchant, tmp_path, key_pem=None, cert_pem=None):
    d = tmp_path / "certs"
    d.mkdir(exist_ok=True)
    (d / "platform.pem").write_text(cert_pem or srv.sim.platform_certificate_pem())
    pay = WeChatPay(wechatpay_type=WeChatPayType.JSAPI, mchid=MCHID,
                    private_key=key_pem or merchant.pem, cert_serial_no=merchant.serial,
                    appid=APPID, apiv3_key=APIV3_KEY, notify_url="http://127.0.0.1:9/n",
                    cert_dir=str(d), timeout=(2, 5), logger=logging.getLogger("sdk-test"))
    pay._core._gate_way = srv.url
    return pay


def _pub_sdk(srv, m):
    pem = srv.sim.public_key_pem()
    pay = WeChatPay(wechatpay_type=WeChatPayType.JSAPI, mchid=PUB_MCHID, private_key=m.pem,
                    cert_serial_no=m.serial, appid=PUB_APPID, apiv3_key=PUB_APIV3_KEY,
                    notify_url="http://127.0.0.1:9/n", timeout=(2, 5), public_key=pem,
                    public_key_id=srv.sim.public_key_id)
    pay._core._gate_way = srv.url
    return pay


def test_sdk_prepay_query_close_refund_in_certificate_mode(srv, sim, merchant, tmp_path):
    pay = _sdk(srv, merchant, tmp_path)
    with Receiver() as rec:
        code, text = pay.pay(description="互通测试", out_trade_no="SDK_0001",
                             amount={"total": 100}, payer={"openid": OPENID},
                             notify_url=rec.url)
        assert code == 200, text
        prepay_id = json.loads(text)["prepay_id"]
        # the SDK's JSAPI paySign equals ours for the same inputs
        ours = api.jsapi_params(make_account(srv, merchant), prepay_id, now=1700000000,
                                nonce="A1B2C3D4E5F60718293A4B5C6D7E8F90")
        assert pay.sign([APPID, "1700000000", "A1B2C3D4E5F60718293A4B5C6D7E8F90",
                         "prepay_id=" + prepay_id]) == ours["paySign"]
        code, text = pay.query(out_trade_no="SDK_0001")
        assert code == 200 and json.loads(text)["trade_state"] == "NOTPAY"
        sim.pay(prepay_id=prepay_id)
        sim.wait_notified("SDK_0001")
        headers, body = rec.pairs[0]
        got = pay.callback(headers, body)                      # verified and decrypted
        assert got["event_type"] == "TRANSACTION.SUCCESS"
        assert got["resource"]["out_trade_no"] == "SDK_0001"
        assert got["resource"]["amount"]["total"] == 100
        tid = got["resource"]["transaction_id"]
        code, text = pay.query(transaction_id=tid)
        assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
        code, text = pay.refund(out_refund_no="SDK_R1", amount={"refund": 30, "total": 100,
                                                                  "currency": "CNY"},
                                out_trade_no="SDK_0001", reason="互通", notify_url=rec.url)
        assert code == 200, text
        assert json.loads(text)["status"] == "PROCESSING"
        sim.wait_refund("SDK_R1")
        sim.wait_notified(out_refund_no="SDK_R1")
        code, text = pay.query_refund(out_refund_no="SDK_R1")
        assert code == 200 and json.loads(text)["status"] == "SUCCESS"
        refund_note = pay.callback(*rec.pairs[-1])
        assert refund_note["event_type"] == "REFUND.SUCCESS"
        assert refund_note["resource"]["refund_status"] == "SUCCESS"
        # close: an unpaid order, 204 (a signed empty answer) twice
        code, _ = pay.pay(description="x", out_trade_no="SDK_0002", amount={"total": 1},
                          payer={"openid": OPENID})
        assert code == 200
        assert pay.close(out_trade_no="SDK_0002")[0] == 204
        assert pay.close(out_trade_no="SDK_0002")[0] == 204
        assert json.loads(pay.query(out_trade_no="SDK_0002")[1])["trade_state"] == "CLOSED"


def test_sdk_in_public_key_mode(srv, sim, pub_merchant):
    pay = _pub_sdk(srv, pub_merchant)
    with Receiver() as rec:
        code, text = pay.pay(description="pub", out_trade_no="SDKPUB_01",
                             amount={"total": 5}, payer={"openid": OPENID}, notify_url=rec.url)
        assert code == 200, text
        sim.pay(prepay_id=json.loads(text)["prepay_id"])
        sim.wait_notified("SDKPUB_01")
        got = pay.callback(*rec.pairs[0])
        assert got["resource"]["mchid"] == PUB_MCHID


def test_sdk_refetches_certificates_after_rotation(srv, sim, merchant, tmp_path):
    pay = _sdk(srv, merchant, tmp_path)
    assert pay.pay(description="x", out_trade_no="SDK_0003", amount={"total": 1},
                   payer={"openid": OPENID})[0] == 200
    sim.rotate_platform()
    # signed by a serial it does not know: it GETs /v3/certificates from the
    # simulator, decrypts them with the APIv3 key, and verifies
    code, text = pay.query(out_trade_no="SDK_0003")
    assert code == 200
    assert len(pay._core._certificates) == 2


def test_sdk_refuses_the_simulators_forged_answers(srv, sim, merchant, tmp_path):
    pay = _sdk(srv, merchant, tmp_path)
    for fault in ({"bad_sign": True}, {"signtest": True}):
        sim.set_faults(dict(fault, count=1))
        with pytest.raises(Exception, match="failed to verify the signature"):
            pay.pay(description="x", out_trade_no="SDK_0004", amount={"total": 1},
                    payer={"openid": OPENID})
    with Receiver() as rec:
        sim.set_faults({})
        code, text = pay.pay(description="x", out_trade_no="SDK_0005", amount={"total": 1},
                             payer={"openid": OPENID}, notify_url=rec.url)
        sim.set_faults({"notify_bad_sign": True})
        sim.pay(prepay_id=json.loads(text)["prepay_id"])
        sim.wait_notified("SDK_0005")
        probe, real = rec.pairs[0], rec.pairs[1]
        assert pay.callback(*probe) is None                     # the forged one
        assert pay.callback(*real)["resource"]["out_trade_no"] == "SDK_0005"


def test_simulator_refuses_the_sdk_signing_with_another_key(srv, merchant, intruder, tmp_path):
    pay = _sdk(srv, merchant, tmp_path, key_pem=intruder.pem)
    code, text = pay.pay(description="x", out_trade_no="SDK_0006", amount={"total": 1},
                         payer={"openid": OPENID})
    assert code == 401 and json.loads(text)["code"] == "SIGN_ERROR"
    code, text = pay.query(out_trade_no="SDK_0006")
    assert code == 401


def test_sdk_native_prepay_and_its_notification(srv, sim, merchant, tmp_path):
    """The SDK's Native prepay (no payer): the simulator accepts its signature and
    answers a signed code_url it accepts; the scan's notification passes its callback
    parser; our client reads the same order and is given the same code_url again."""
    pay = _sdk(srv, merchant, tmp_path)
    with Receiver() as rec:
        code, text = pay.pay(description="扫码互通", out_trade_no="SDK_NATIVE1",
                             amount={"total": 120}, notify_url=rec.url,
                             pay_type=WeChatPayType.NATIVE)
        assert code == 200, text
        code_url = json.loads(text)["code_url"]
        assert code_url.startswith("weixin://wxpay/bizpayurl?pr=")
        with V3Client(make_account(srv, merchant), timeout=(2, 2)) as c:
            assert c.native({"description": "扫码互通", "out_trade_no": "SDK_NATIVE1",
                             "amount": {"total": 120}, "notify_url": rec.url}) == code_url
        sim.pay(code_url=code_url, openid=OPENID)
        sim.wait_notified("SDK_NATIVE1")
        got = pay.callback(*rec.pairs[0])
        assert got["event_type"] == "TRANSACTION.SUCCESS"
        assert got["resource"]["trade_type"] == "NATIVE"
        assert got["resource"]["payer"]["openid"] == OPENID
    code, text = pay.query(out_trade_no="SDK_NATIVE1")
    assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
    # paid: the same number again is ORDER_PAID, as for JSAPI
    code, text = pay.pay(description="x", out_trade_no="SDK_NATIVE1", amount={"total": 121},
                         pay_type=WeChatPayType.NATIVE)
    assert code == 400 and json.loads(text)["code"] == "ORDER_PAID"


def test_simulator_refuses_the_sdks_native_prepay_signed_with_another_key(
        srv, merchant, intruder, tmp_path):
    pay = _sdk(srv, merchant, tmp_path, key_pem=intruder.pem)
    code, text = pay.pay(description="x", out_trade_no="SDK_NATIVE2", amount={"total": 1},
                         pay_type=WeChatPayType.NATIVE)
    assert code == 401 and json.loads(text)["code"] == "SIGN_ERROR"


def test_our_client_and_the_sdk_share_one_order(srv, sim, merchant, tmp_path):
    """Both implementations against the same simulator and the same order."""
    pay = _sdk(srv, merchant, tmp_path)
    with V3Client(make_account(srv, merchant), timeout=(2, 2)) as c:
        pid = c.prepay({"description": "shared", "out_trade_no": "SHARED_01",
                        "amount": {"total": 7}, "payer": {"openid": OPENID},
                        "notify_url": "http://127.0.0.1:9/n",
                        "time_expire": "2099-01-01T00:00:00+08:00"})
        sim.pay(prepay_id=pid)
        code, text = pay.query(out_trade_no="SHARED_01")
        assert code == 200 and json.loads(text)["trade_state"] == "SUCCESS"
        code, text = pay.refund(out_refund_no="SHARED_R1", out_trade_no="SHARED_01",
                                amount={"refund": 7, "total": 7, "currency": "CNY"})
        assert code == 200
        sim.wait_refund("SHARED_R1")
        assert c.refund_query("SHARED_R1")["status"] == "SUCCESS"


def test_our_notification_parser_accepts_what_the_sdk_accepts(srv, sim, merchant, tmp_path):
    pay = _sdk(srv, merchant, tmp_path)
    acc = make_account(srv, merchant)
    with Receiver() as rec, V3Client(acc, timeout=(2, 2)) as c:
        acc.notify_url = rec.url
        sim.pay(prepay_id=c.prepay({"description": "n", "out_trade_no": "SHARED_02",
                                    "amount": {"total": 3}, "payer": {"openid": OPENID}}))
        sim.wait_notified("SHARED_02")
        headers, body = rec.pairs[0]
        theirs = pay.callback(headers, body)["resource"]
        ours = notify.parse_notification(acc, headers, body).resource
        assert ours == theirs


def test_sdk_pitfall_unencoded_path_is_refused_and_ours_is_accepted(srv, sim, merchant,
                                                                     tmp_path):
    """wechatpay-v3.md §11.1: wechatpayv3 signs ``A|B`` while requests sends ``A%7CB``;
    the simulator checks the raw request-target, so the SDK's request fails and ours
    (which percent-encodes before signing) passes."""
    pay = _sdk(srv, merchant, tmp_path)
    code, text = pay.query(out_trade_no="SDK|0007")
    assert code == 401 and json.loads(text)["code"] == "SIGN_ERROR"
    with V3Client(make_account(srv, merchant), timeout=(2, 2)) as c:
        c.prepay({"description": "pipe", "out_trade_no": "SDK|0007", "amount": {"total": 1},
                  "payer": {"openid": OPENID}})
        assert c.query("SDK|0007")["out_trade_no"] == "SDK|0007"


def test_sdk_trade_bill_and_download(srv, sim, merchant, tmp_path):
    """The SDK asks for yesterday's bill, verifies the signed answer, downloads the
    (unsigned, gzip) file; its SHA-1 matches hash_value and it lists the order."""
    import gzip
    import hashlib
    from datetime import datetime, timedelta
    pay = _sdk(srv, merchant, tmp_path)
    code, text = pay.pay(description="账单", out_trade_no="SDK_BILL1", amount={"total": 250},
                         payer={"openid": OPENID})
    sim.pay(prepay_id=json.loads(text)["prepay_id"])
    sim.backdate("SDK_BILL1", 86400)
    day = (datetime.fromtimestamp(sim.now(), api.BEIJING) - timedelta(days=1)).strftime(
        "%Y-%m-%d")
    code, text = pay.trade_bill(bill_date=day)
    assert code == 200, text
    info = json.loads(text)
    code, content = pay.download_bill(info["download_url"])
    assert code == 200
    raw = gzip.decompress(content)
    assert hashlib.sha1(raw).hexdigest() == info["hash_value"]
    assert "`SDK_BILL1" in raw.decode() and "`2.50" in raw.decode()
    # and our client reads the same bill
    with V3Client(make_account(srv, merchant), timeout=(2, 2)) as c:
        assert c.tradebill(day) == raw.decode()
