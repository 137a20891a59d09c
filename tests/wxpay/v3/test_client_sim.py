"""wnshell's v3 client against the v3 simulator over loopback: every call signed and
checked by the simulator, every answer verified by the client, notifications
verified and decrypted by wxpay.v3.notify."""
import json
import os
import subprocess
import sys
import time
from datetime import datetime

import pytest
import requests

from objstore.errors import TIMEOUT
from wxpay.errors import ResultFail, ReturnFail, SignError, TransportError
from wxpay.v3 import api, notify
from wxpay.v3.auth import authorization
from wxpay.v3.client import V3Client
from wxpay.v3.crypto import rsa_verify
from wxpay.v3.errors import UnknownSerial, V3ResultFail
from wxpay.v3.simserver import wsgi_app

from .conftest import (APIV3_KEY, APPID, MCHID, PUB_MCHID, Receiver, fail_body,
                       make_account, make_pub_account, order)

BEIJING = api.BEIJING


def _checking_receiver(account, seen, fail_first=0):
    """A notify_url that verifies each notification with wxpay.v3.notify."""
    calls = {"n": 0}

    def handle(headers, body):
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return 500, fail_body()
        try:
            n = notify.parse_notification(account, headers, body)
        except Exception as e:            # noqa: BLE001 -- answer as a merchant must
            st, _, out = notify.answer(e)
            seen.append(("refused", getattr(e, "key", type(e).__name__)))
            return st, out
        seen.append(("ok", n))
        return 204, b""
    return handle


def test_prepay_pay_notify_query_in_certificate_mode(srv, sim, merchant):
    seen = []
    acc = make_account(srv, merchant)
    with Receiver(_checking_receiver(acc, seen)) as rec:
        acc.notify_url = rec.url
        with V3Client(acc, timeout=(2, 2)) as c:
            pid, js = c.jsapi(order(attach="a&b"))
            assert not acc.keys.needs_refresh()              # fetched /v3/certificates
            assert [x.serial for x in acc.keys.certificates()] == [sim.platform_serial()]
            msg = f"{APPID}\n{js['timeStamp']}\n{js['nonceStr']}\nprepay_id={pid}\n"
            assert js["signType"] == "RSA" and rsa_verify(merchant.public, msg, js["paySign"])
            t = c.query("ORDER_0001")
            assert t["trade_state"] == "NOTPAY" and "transaction_id" not in t
            doc, text = c.exchange(api.build_query(acc, "ORDER_0001"))
            assert json.loads(text) == doc == t
            sim.pay(prepay_id=pid)
            state = sim.wait_notified("ORDER_0001")
            assert state["status"] == "delivered" and state["attempts"] == 1
            kind, n = seen[0]
            assert kind == "ok" and n.event_type == "TRANSACTION.SUCCESS"
            tx = notify.check_payment(n, "ORDER_0001", 100)
            assert tx["attach"] == "a&b"
            paid = c.query("ORDER_0001")
            assert paid["trade_state"] == "SUCCESS"
            assert paid["transaction_id"] == tx["transaction_id"]
            assert c.query(transaction_id=tx["transaction_id"])["out_trade_no"] == "ORDER_0001"


def test_every_answer_is_signed_with_its_type_and_has_a_request_id(srv, merchant):
    target = f"/v3/pay/transactions/out-trade-no/ORDER_0001?mchid={MCHID}"
    r = _raw(srv, merchant, "POST", "/v3/pay/transactions/jsapi", json.dumps(
        {"appid": APPID, "mchid": MCHID, "description": "d", "out_trade_no": "ORDER_0001",
         "notify_url": "https://example.com/n", "amount": {"total": 1},
         "payer": {"openid": "o"}}).encode())
    assert r.status_code == 200
    for resp in (r, _raw(srv, merchant, "GET", target)):
        assert resp.headers["Request-ID"]
    assert r.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert {"Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature",
            "Wechatpay-Serial"} <= set(r.headers)


def test_public_key_merchant_needs_no_certificates(srv, sim, pub_merchant):
    seen = []
    acc = make_pub_account(srv, pub_merchant)
    with Receiver(_checking_receiver(acc, seen)) as rec:
        acc.notify_url = rec.url
        with V3Client(acc, timeout=(2, 2)) as c:
            before = sim.requests_seen
            pid = c.prepay(order(out_trade_no="PUB_0001"))
            assert sim.requests_seen == before + 1          # no /v3/certificates call
            sim.pay(prepay_id=pid)
            sim.wait_notified("PUB_0001")
            assert seen[0][0] == "ok" and seen[0][1].serial == sim.public_key_id
            assert c.query("PUB_0001")["mchid"] == PUB_MCHID


def test_reentry_rules(client, sim):
    pid = client.prepay(order())
    assert client.prepay(order()) == pid                    # identical: same order
    with pytest.raises(ResultFail) as e:
        client.prepay(order(amount={"total": 101}))
    assert e.value.key == "e.weixin.err.OUT_TRADE_NO_USED"
    sim.pay(prepay_id=pid)
    with pytest.raises(ResultFail) as e:
        client.prepay(order())
    assert e.value.key == "e.weixin.err.ORDERPAID"
    with pytest.raises(ResultFail) as e:
        client.close_order("ORDER_0001")
    assert e.value.key == "e.weixin.err.ORDERPAID"


def _native(**kw):
    o = order(**kw)
    o.pop("payer")
    return o


def test_native_prepay_is_verified_signed_and_paid_by_scanning(srv, sim, merchant):
    acc = make_account(srv, merchant)
    seen = []
    with Receiver(_checking_receiver(acc, seen)) as rec, V3Client(acc, timeout=(2, 2)) as c:
        url = c.native(_native(notify_url=rec.url))
        assert url.startswith("weixin://wxpay/bizpayurl?pr=")
        q = c.query("ORDER_0001")
        assert q["trade_type"] == "NATIVE" and q["trade_state"] == "NOTPAY"
        assert "payer" not in q                            # nobody has scanned it yet
        sim.pay(code_url=url, openid="oScanner1")
        sim.wait_notified("ORDER_0001")
        assert seen[0][0] == "ok"
        t = seen[0][1].resource
        assert t["trade_type"] == "NATIVE" and t["payer"] == {"openid": "oScanner1"}
        assert c.query("ORDER_0001")["trade_state"] == "SUCCESS"


def test_native_reentry_rules(client, sim):
    url = client.native(_native())
    assert client.native(_native()) == url                  # identical: same code_url
    for other in (_native(amount={"total": 101}), order()):  # other amount; JSAPI
        with pytest.raises(ResultFail) as e:
            (client.native if "payer" not in other else client.prepay)(other)
        assert e.value.key == "e.weixin.err.OUT_TRADE_NO_USED"
    sim.backdate("ORDER_0001", 2 * 3600 + 1)               # the code_url is renewed
    renewed = client.native(_native())
    assert renewed != url and renewed.startswith("weixin://")
    with pytest.raises(LookupError):                        # the old one pays nothing
        sim.pay(code_url=url)
    sim.pay(code_url=renewed)
    with pytest.raises(ResultFail) as e:
        client.native(_native())
    assert e.value.key == "e.weixin.err.ORDERPAID"


def test_native_prepay_with_a_payer_is_a_param_error(srv, merchant):
    body = json.dumps(dict(order(), appid=APPID, mchid=MCHID,
                           notify_url="http://127.0.0.1:9/n")).encode()
    r = _raw(srv, merchant, "POST", "/v3/pay/transactions/native", body)
    assert r.status_code == 400 and r.json()["code"] == "PARAM_ERROR"


def test_close_is_idempotent_and_unpayable(client, sim):
    pid = client.prepay(order())
    client.close_order("ORDER_0001")
    client.close_order("ORDER_0001")                        # 204 again
    assert client.query("ORDER_0001")["trade_state"] == "CLOSED"
    with pytest.raises(ValueError):
        sim.pay(prepay_id=pid)
    with pytest.raises(ResultFail) as e:
        client.prepay(order())
    assert e.value.key == "e.weixin.err.ORDERCLOSED"
    with pytest.raises(V3ResultFail) as e:
        client.query("ORDER_9999")
    assert e.value.key == "e.weixin.err.ORDERNOTEXIST" and e.value.v3_status == 404


def test_refund_and_refund_notification(srv, sim, merchant):
    seen = []
    acc = make_account(srv, merchant)
    with Receiver(_checking_receiver(acc, seen)) as rec:
        acc.notify_url = acc.refund_notify_url = rec.url
        with V3Client(acc, timeout=(2, 2)) as c:
            pid = c.prepay(order())
            with pytest.raises(ResultFail) as e:               # not paid yet
                c.refund({"out_trade_no": "ORDER_0001", "out_refund_no": "R1",
                          "refund_fee": 40, "total_fee": 100})
            assert e.value.key == "e.weixin.err.TRADE_ERROR"
            sim.pay(prepay_id=pid)
            sim.wait_notified("ORDER_0001")
            r = c.refund({"out_trade_no": "ORDER_0001", "out_refund_no": "R1",
                          "refund_fee": 40, "total_fee": 100, "refund_desc": "退货"})
            assert r["status"] == "PROCESSING" and r["amount"]["refund"] == 40
            again = c.refund({"out_trade_no": "ORDER_0001", "out_refund_no": "R1",
                              "refund_fee": 40, "total_fee": 100})
            assert again["refund_id"] == r["refund_id"]          # same number = same refund
            with pytest.raises(ResultFail):
                c.refund({"out_trade_no": "ORDER_0001", "out_refund_no": "R2",
                          "refund_fee": 61, "total_fee": 100})    # more than is left
            sim.wait_refund("R1")
            sim.wait_notified(out_refund_no="R1")
            assert c.refund_query("R1")["status"] == "SUCCESS"
            assert c.query("ORDER_0001")["trade_state"] == "REFUND"
            kinds = [n.event_type for k, n in seen if k == "ok"]
            assert kinds == ["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]
            assert notify.check_refund(seen[-1][1], "R1", 40)["refund_status"] == "SUCCESS"
            with pytest.raises(ResultFail) as e:
                c.refund_query("R404")
            assert e.value.key == "e.weixin.err.REFUNDNOTEXIST"


def test_trade_bill_download(srv, sim, merchant):
    offset = {"s": 0}
    acc = make_account(srv, merchant)
    with V3Client(acc, timeout=(2, 2), clock=lambda: time.time() + offset["s"]) as c:
        pid = c.prepay(order(description="账单测试"))
        sim.pay(prepay_id=pid)
        day = datetime.fromtimestamp(sim.now(), BEIJING).strftime("%Y-%m-%d")
        with pytest.raises(ResultFail) as e:
            c.tradebill(day)                                   # not ready today
        assert e.value.key == "e.weixin.err.NO_STATEMENT_EXIST"
        sim.advance(86400)
        offset["s"] = 86400
        text = c.tradebill(day)
    lines = text.splitlines()
    assert lines[0].startswith("交易时间,公众账号ID")
    assert "`ORDER_0001" in lines[1] and "`1.00" in lines[1] and "`账单测试" in lines[1]
    assert lines[-2].startswith("总交易单数") and lines[-1].startswith("`1,`1.00")


def _raw(srv, merchant, method, target, body=b"", key=None, **kw):
    auth = authorization(MCHID, kw.pop("serial", merchant.serial), key or merchant.pem,
                         method, kw.pop("sign_target", target), kw.pop("sign_body", body),
                         kw.pop("ts", None))
    headers = {"Authorization": auth, "Accept": "application/json",
               "User-Agent": "test", "Content-Type": "application/json"}
    headers.update(kw.pop("headers", {}))
    return requests.request(method, srv.url + target, data=body, headers=headers, timeout=5)


def test_simulator_refuses_requests_it_cannot_authenticate(srv, merchant, intruder):
    target = f"/v3/pay/transactions/out-trade-no/ORDER_0001?mchid={MCHID}"
    assert _raw(srv, merchant, "GET", target).status_code == 404   # authenticated
    cases = {"another key": dict(key=intruder.pem),
             "another serial": dict(serial=intruder.serial),
             "stale": dict(ts=int(time.time()) - 301),
             "query left out": dict(sign_target=target.split("?")[0]),
             "body changed": dict(sign_body=b"{}")}
    for name, kw in cases.items():
        r = _raw(srv, merchant, "GET", target, **kw)
        assert r.status_code == 401 and r.json()["code"] == "SIGN_ERROR", name
        assert "Wechatpay-Signature" not in r.headers
    r = _raw(srv, merchant, "GET", target, headers={"User-Agent": ""})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_REQUEST"
    # a path part signed unencoded but sent encoded (wechatpayv3's pitfall) fails
    r = _raw(srv, merchant, "GET", f"/v3/pay/transactions/out-trade-no/A%7C0001?mchid={MCHID}",
             sign_target=f"/v3/pay/transactions/out-trade-no/A|0001?mchid={MCHID}")
    assert r.status_code == 401
    # our client, signed with the intruder's key, gets the v2 "return FAIL" kind
    acc = make_account(srv, merchant)
    acc.private_key = intruder.key
    with V3Client(acc, timeout=(2, 2)) as c:
        with pytest.raises(ReturnFail) as e:
            c.query("ORDER_0001")
    assert e.value.key == "e.weixin.return.fail" and intruder.pem not in e.value.line()


def test_prepay_field_checks(srv, merchant):
    body = json.dumps({"appid": APPID, "mchid": MCHID, "description": "x",
                       "out_trade_no": "ORDER_0002", "notify_url": "https://a.example/n",
                       "amount": {"total": 2900.0}, "payer": {"openid": "o"}}).encode()
    r = _raw(srv, merchant, "POST", "/v3/pay/transactions/jsapi", body)
    assert r.status_code == 400 and r.json()["code"] == "PARAM_ERROR"
    assert r.json()["detail"]["field"] == "/amount/total"
    body = body.replace(b"2900.0", b"1").replace(APPID.encode(), b"wx_not_bound")
    r = _raw(srv, merchant, "POST", "/v3/pay/transactions/jsapi", body)
    assert r.json()["code"] == "APPID_MCHID_NOT_MATCH"


@pytest.mark.parametrize("fault,err,key", [
    ({"bad_sign": True}, SignError, "e.weixin.sign.invalid"),
    ({"unsigned": True}, SignError, "e.weixin.sign.invalid"),
    ({"signtest": True}, SignError, "e.weixin.sign.invalid"),
    ({"unknown_serial": True}, UnknownSerial, "e.weixin.sign.invalid"),
    ({"systemerror": True}, V3ResultFail, "e.weixin.err.SYSTEMERROR"),
    ({"ratelimit": True}, V3ResultFail, "e.weixin.err.FREQUENCY_LIMITED"),
    ({"err_code": "NOT_ENOUGH"}, V3ResultFail, "e.weixin.err.NOTENOUGH"),
    ({"http_status": 502}, TransportError, "e.weixin.transport"),
    ({"html": True}, TransportError, "e.weixin.transport"),
    ({"garbage": True}, SignError, "e.weixin.sign.invalid"),    # an unsigned 2xx
])
def test_answer_faults_are_refused(client, sim, fault, err, key):
    client.ensure_certificates()
    sim.set_faults(dict(fault, count=2))
    with pytest.raises(err) as e:
        client.prepay(order())
    assert e.value.key == key
    if isinstance(e.value, V3ResultFail):          # §10: NOT_ENOUGH is not retried
        assert e.value.retryable == (e.value.v3_code != "NOT_ENOUGH")
    sim.set_faults({})
    assert client.prepay(order())


def test_timeout_fault(sim, account):
    with V3Client(account, timeout=(1, 1)) as c:
        c.ensure_certificates()
        sim.set_faults({"timeout": True, "hold": 2.5, "count": 1})
        with pytest.raises(TransportError) as e:
            c.query("ORDER_0001")
    assert e.value.kind == TIMEOUT


def test_platform_rotation_is_picked_up_by_serial(client, sim, account):
    client.prepay(order())
    old = sim.platform_serial()
    new = sim.rotate_platform()
    assert new != old
    assert client.query("ORDER_0001")["trade_state"] == "NOTPAY"     # refetched, verified
    assert sorted(c.serial for c in account.keys.certificates()) == sorted([old, new])


def test_notification_retries_probes_and_duplicates(srv, sim, merchant):
    seen = []
    acc = make_account(srv, merchant)
    with Receiver(_checking_receiver(acc, seen, fail_first=2)) as rec:
        acc.notify_url = rec.url
        with V3Client(acc, timeout=(2, 2)) as c:
            sim.pay(prepay_id=c.prepay(order()))
            st = sim.wait_notified("ORDER_0001")
            assert st["status"] == "delivered" and st["attempts"] == 3
            assert [a["status"] for a in st["log"]] == [500, 500, 204]
            seen.clear()
            # an answer fault and notification faults at once: the answer is slow but
            # well signed, only the notification gets the probe
            sim.set_faults({"latency": 0.01, "notify_signtest": True, "concurrent_notify": 5})
            pid = c.prepay(order(out_trade_no="ORDER_0002"))
            sim.pay(prepay_id=pid)
            st = sim.wait_notified("ORDER_0002")
    assert seen[0] == ("refused", "e.weixin.sign.invalid")           # the probe: 401
    assert st["log"][0]["status"] == 401 and st["log"][0]["probe"]
    assert [k for k, _ in seen[1:]] == ["ok"] * 5 and st["successes"] == 5


def test_notification_refused_by_merchant_is_retried_then_failed(srv, sim, merchant):
    acc = make_account(srv, merchant)
    with Receiver(lambda h, b: (400, fail_body())) as rec:
        acc.notify_url = rec.url
        with V3Client(acc, timeout=(2, 2)) as c:
            sim.pay(prepay_id=c.prepay(order()))
            st = sim.wait_notified("ORDER_0001")
    assert st["status"] == "failed" and st["attempts"] == 4       # 1 + 3 retries


def test_one_simulator_two_modes_isolated(srv, sim, merchant, pub_merchant):
    with V3Client(make_account(srv, merchant), timeout=(2, 2)) as a, \
            V3Client(make_pub_account(srv, pub_merchant), timeout=(2, 2)) as b:
        a.prepay(order())
        with pytest.raises(ResultFail) as e:
            b.query("ORDER_0001")                  # another merchant's order
        assert e.value.key == "e.weixin.err.ORDERNOTEXIST"


def test_wsgi_app_mounts_the_same_simulator(sim, merchant):
    app = wsgi_app(sim)
    target = f"/v3/pay/transactions/out-trade-no/ORDER_0001?mchid={MCHID}"
    import io
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": target.split("?")[0],
               "QUERY_STRING": target.split("?")[1], "wsgi.input": io.BytesIO(b""),
               "HTTP_ACCEPT": "application/json", "HTTP_USER_AGENT": "t",
               "HTTP_AUTHORIZATION": authorization(MCHID, merchant.serial, merchant.pem,
                                                   "GET", target)}
    out = {}
    body = b"".join(app(environ, lambda s, h: out.update(status=s, headers=dict(h))))
    assert out["status"].startswith("404") and json.loads(body)["code"] == "ORDER_NOT_EXIST"


def test_runs_alone_as_a_module(tmp_path, merchant):
    (tmp_path / "merchant_pub.pem").write_text(merchant.public)
    (tmp_path / "merchants.json").write_text(json.dumps([{
        "mchid": MCHID, "appids": [APPID], "serial_no": merchant.serial,
        "public_key_file": "merchant_pub.pem"}]))
    env = dict(os.environ, WXPAY_V3_SIM_APIV3_KEYS=f"{MCHID}:{APIV3_KEY}")
    p = subprocess.Popen([sys.executable, "-m", "wxpay.v3.simulator", "--merchants",
                          str(tmp_path / "merchants.json"), "--export", str(tmp_path / "wx")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert "wxpay-v3-sim listening on http://127.0.0.1:" in line
        url = line.split()[3]
        from wxpay.v3.account import V3Account
        from wxpay.v3.keys import WechatKeys
        cert = (tmp_path / "wx" / "platform_cert.pem").read_text()
        acc = V3Account(APPID, MCHID, APIV3_KEY, merchant.serial, merchant.pem,
                        keys=WechatKeys(certificates=[cert]),
                        notify_url="https://example.com/n", api_base=url)
        with V3Client(acc, timeout=(2, 2)) as c:
            assert c.prepay(order()).startswith("wx")
        assert APIV3_KEY not in line
    finally:
        p.terminate()
        p.wait(timeout=5)
    assert APIV3_KEY not in p.stderr.read()


def test_no_secret_reaches_a_log_an_error_or_an_answer(srv, sim, merchant, intruder, caplog,
                                                       capfd):
    import logging
    caplog.set_level(logging.DEBUG)
    seen, errors, answers = [], [], []
    acc = make_account(srv, merchant)
    wrong = make_account(srv, merchant, keys=acc.keys)   # same trust, another APIv3 key
    wrong.apiv3_key = "X" * 32                           # so it can decrypt nothing
    with Receiver(_checking_receiver(wrong, seen)) as rec:
        acc.notify_url = rec.url
        with V3Client(acc, timeout=(2, 2)) as c:
            sim.pay(prepay_id=c.prepay(order()))
            sim.wait_notified("ORDER_0001")
            for bad in ({"bad_sign": True}, {"systemerror": True}, {"http_status": 503}):
                sim.set_faults(dict(bad, count=1))
                try:
                    c.query("ORDER_0001")
                except Exception as e:               # noqa: BLE001
                    errors.append(e.line())
        answers += [a["reply"] for a in sim.order("ORDER_0001")["notify"]["log"]]
        answers.append(requests.get(srv.url + "/sim/v3/platform").text)
    with pytest.raises(Exception) as e:
        c2 = V3Client(make_account(srv, merchant), timeout=(2, 2))
        c2.account.private_key = intruder.key
        c2.query("ORDER_0001")
    errors.append(e.value.line())
    assert seen and seen[0] == ("refused", "e.weixin.v3.decrypt.invalid")
    assert len(errors) == 4
    out, err = capfd.readouterr()
    text = "\n".join([caplog.text, out, err, *errors, *answers, repr(acc), str(wrong)])
    for secret in (APIV3_KEY, "X" * 32, *merchant.pem.splitlines()[1:-1],
                   *intruder.pem.splitlines()[1:-1]):
        assert secret not in text


_GOOD = {"appid": APPID, "mchid": MCHID, "description": "d", "out_trade_no": "ORDER_0003",
         "notify_url": "https://example.com/n", "amount": {"total": 1},
         "payer": {"openid": "o"}}


@pytest.mark.parametrize("target,body", [
    ("/v3/pay/transactions/jsapi", b"not json"),
    ("/v3/pay/transactions/jsapi", b"[]"),
    ("/v3/pay/transactions/jsapi", b"\xff\xfe"),
    *[("/v3/pay/transactions/jsapi", json.dumps(dict(_GOOD, **change)).encode())
      for change in ({"amount": "100"}, {"amount": {"total": True}}, {"payer": "x"},
                     {"description": 5}, {"time_expire": "tomorrow"}, {"notify_url": 5},
                     {"attach": ["x"]}, {"out_trade_no": None}, {"mchid": "1900000002"},
                     {"notify_url": "http://example.com/n"}, {"amount": {"total": -1}},
                     {"amount": {"total": 1, "currency": "USD"}})],
    ("/v3/pay/transactions/out-trade-no/ORDER_0003/close", b"[1]"),
    ("/v3/pay/transactions/out-trade-no/ORDER_0003/close", b'{"mchid": 1}'),
    ("/v3/refund/domestic/refunds", b'{"out_refund_no": 5}'),
    ("/v3/refund/domestic/refunds", b'{"out_refund_no": "R", "amount": {"refund": "1"}}'),
    ("/v3/refund/domestic/refunds", b'{"out_refund_no": "R", "amount": {"refund": 1, '
                                    b'"total": 1}, "out_trade_no": ["x"]}'),
    ("/v3/no/such/endpoint", b"{}"),
])
def test_malformed_requests_get_a_v3_error_never_a_500(srv, merchant, target, body):
    r = _raw(srv, merchant, "POST", target, body)
    assert 400 <= r.status_code < 500, r.text
    assert _CODE_RE.match(r.json()["code"]) and r.json()["message"]
    assert "Wechatpay-Signature" not in r.headers


_CODE_RE = __import__("re").compile(r"^[A-Z_]+$")
