"""The sans-IO v3 core against every vector of wechatpay-v3.md §12, and its refusals."""
import gzip
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from wxpay.errors import MismatchError, ResultFail, ReturnFail, SignError, TransportError
from wxpay.v3 import api, auth, crypto, notify
from wxpay.v3.account import V3Account
from wxpay.v3.crypto import DecryptError
from wxpay.v3.errors import UnknownSerial, V3ResultFail, error_from_answer
from wxpay.v3.keys import WechatKeys, parse_certificates
from wxpay.v3.simkeys import new_certificate, new_key

from . import vectors as v

PUB_ID = "PUB_KEY_ID_0119000000012024010100000000000001"


def account(**kw):
    keys = kw.pop("keys", None) or WechatKeys(public_key=crypto.public_pem(
        crypto.load_private_key(v.KEY_PEM)), public_key_id=PUB_ID)
    base = dict(appid=v.APPID, mchid=v.MCHID, apiv3_key=v.APIV3_KEY, serial_no=v.SERIAL,
                private_key=v.KEY_PEM, keys=keys,
                notify_url="https://example.com/wxpay/notify")
    base.update(kw)
    return V3Account(**base)


# ----- §12 vectors -------------------------------------------------------------------
def test_vector_1_post_signature_and_authorization_header():
    assert auth.request_message("POST", "/v3/pay/transactions/jsapi", v.TIMESTAMP, v.NONCE,
                                v.BODY.encode()) == v.POST_MESSAGE
    assert crypto.rsa_sign(v.KEY_PEM, v.POST_MESSAGE) == v.POST_SIGNATURE
    req = api.Request("POST", "/v3/pay/transactions/jsapi", v.BODY.encode())
    h = req.headers(account(), now=v.TIMESTAMP, nonce=v.NONCE)
    assert h["Authorization"] == (
        f'WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="{v.NONCE}",'
        f'signature="{v.POST_SIGNATURE}",timestamp="1700000000",serial_no="{v.SERIAL}"')
    assert h["Content-Type"] == "application/json" and h["Accept"] == "application/json"
    assert h["User-Agent"] and h["Wechatpay-Serial"] == PUB_ID


def test_vector_2_get_signature_from_the_query_builder():
    req = api.build_query(account(), "ORDER20240101001")
    assert (req.method, req.target, req.body) == ("GET", v.GET_TARGET, b"")
    assert auth.request_message("GET", req.target, v.TIMESTAMP, v.NONCE, b"") == v.GET_MESSAGE
    h = req.headers(account(), now=v.TIMESTAMP, nonce=v.NONCE)
    assert auth.parse_authorization(h["Authorization"])["signature"] == v.GET_SIGNATURE
    assert "Content-Type" not in h


def test_vector_3_jsapi_paysign():
    p = api.jsapi_params(account(), v.PREPAY_ID, now=v.TIMESTAMP, nonce=v.NONCE)
    assert p == {"appId": v.APPID, "timeStamp": "1700000000", "nonceStr": v.NONCE,
                 "package": "prepay_id=" + v.PREPAY_ID, "signType": "RSA",
                 "paySign": v.PAYSIGN}
    c = api.choose_wx_pay_params(account(), v.PREPAY_ID, now=v.TIMESTAMP, nonce=v.NONCE)
    assert c["timestamp"] == "1700000000" and c["paySign"] == v.PAYSIGN


def _answer_headers(**kw):
    h = {"Wechatpay-Timestamp": v.ANSWER_TIMESTAMP, "Wechatpay-Nonce": v.ANSWER_NONCE,
         "Wechatpay-Signature": v.ANSWER_SIGNATURE, "Wechatpay-Serial": PUB_ID,
         "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}
    h.update(kw)
    return {k: x for k, x in h.items() if x is not None}


def test_vector_4_answer_signature_verifies_and_parses():
    a = account()
    doc = api.check_answer(a, 200, _answer_headers(), v.ANSWER_BODY.encode(),
                           now=1700000001)
    assert api.parse_prepay(doc) == v.PREPAY_ID
    # header names in any case (WSGI / lower-case frameworks)
    low = {k.lower(): x for k, x in _answer_headers().items()}
    a.keys.verify(low, v.ANSWER_BODY.encode(), now=1700000001)


@pytest.mark.parametrize("body,headers,now", [
    (v.ANSWER_BODY.replace(":", ": "), {}, 1700000001),                  # one added space
    (v.ANSWER_BODY, {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + v.ANSWER_SIGNATURE},
     1700000001),                                                        # probe
    (v.ANSWER_BODY, {"Wechatpay-Signature": "WECHATPAY/SIGNTEST/%%%"}, 1700000001),
    (v.ANSWER_BODY, {}, 1700000001 + 300),                               # window edge
    (v.ANSWER_BODY, {}, 1700000001 - 300),
    (v.ANSWER_BODY, {"Wechatpay-Signature": None}, 1700000001),
    (v.ANSWER_BODY, {"Wechatpay-Timestamp": "1700000001000"}, 1700000001),  # ms
    (v.ANSWER_BODY, {"Wechatpay-Signature-Type": "HMAC-SHA256"}, 1700000001),
])
def test_answer_signature_refusals(body, headers, now):
    with pytest.raises(SignError):
        api.check_answer(account(), 200, _answer_headers(**headers), body.encode(), now=now)


def test_window_just_inside_is_accepted():
    account().keys.verify(_answer_headers(), v.ANSWER_BODY.encode(), now=1700000001 + 299)


def test_unknown_serial_is_its_own_sign_error():
    with pytest.raises(UnknownSerial) as e:
        api.check_answer(account(), 200, _answer_headers(**{"Wechatpay-Serial": "PUB_KEY_ID_X"}),
                         v.ANSWER_BODY.encode(), now=1700000001)
    assert e.value.key == "e.weixin.sign.invalid"
    with pytest.raises(UnknownSerial):
        account().keys.verify(_answer_headers(**{"Wechatpay-Serial": "5157F09EFDC096DE"}),
                              v.ANSWER_BODY.encode(), now=1700000001)


def test_vector_5_resource_decryption():
    plain = crypto.aes_gcm_decrypt(v.APIV3_KEY, v.RESOURCE_NONCE, v.RESOURCE_CIPHERTEXT,
                                   v.RESOURCE_AAD)
    assert plain.decode() == v.RESOURCE_PLAIN and len(plain) == 186
    import base64
    assert base64.b64decode(v.RESOURCE_CIPHERTEXT)[-16:].hex() == v.RESOURCE_TAG
    assert crypto.aes_gcm_encrypt(v.APIV3_KEY, v.RESOURCE_NONCE, plain,
                                  v.RESOURCE_AAD) == v.RESOURCE_CIPHERTEXT


@pytest.mark.parametrize("change", [
    {"associated_data": "certificate"}, {"nonce": "fJ3Qk9ZtB2xX"},
    {"key": "TESTONLYapiv3key0123456789abcdeX"},
    {"ciphertext": "A" + v.RESOURCE_CIPHERTEXT[1:]}, {"ciphertext": "not base64!"},
    {"ciphertext": ""},
])
def test_resource_decryption_refusals(change):
    args = dict(key=v.APIV3_KEY, nonce=v.RESOURCE_NONCE, ciphertext=v.RESOURCE_CIPHERTEXT,
                associated_data=v.RESOURCE_AAD)
    args.update(change)
    with pytest.raises(DecryptError) as e:
        crypto.aes_gcm_decrypt(args["key"], args["nonce"], args["ciphertext"],
                               args["associated_data"])
    assert v.APIV3_KEY not in e.value.line()


# ----- notifications ----------------------------------------------------------------
def _envelope(plain=v.RESOURCE_PLAIN, aad=v.RESOURCE_AAD, nonce=v.RESOURCE_NONCE,
              event="TRANSACTION.SUCCESS", original="transaction", key=v.APIV3_KEY):
    return json.dumps({
        "id": "EV-2018022511223320873", "create_time": "2024-01-01T12:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": event, "summary": "支付成功",
        "resource": {"original_type": original, "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": crypto.aes_gcm_encrypt(key, nonce, plain, aad),
                     "associated_data": aad, "nonce": nonce}},
        ensure_ascii=False, separators=(",", ":")).encode()


def _signed(body, ts=1700000010, serial=PUB_ID, key=v.KEY_PEM):
    return auth.signature_headers(key, serial, body, timestamp=ts, nonce="n0nce12345")


def test_notification_with_vector_5_is_verified_decrypted_and_matched():
    plain = json.loads(v.RESOURCE_PLAIN)
    plain["appid"] = v.APPID
    body = _envelope(plain=json.dumps(plain))
    n = notify.parse_notification(account(), _signed(body), body, now=1700000011)
    assert n.kind == "transaction" and n.event_type == "TRANSACTION.SUCCESS"
    t = notify.check_payment(n, "ORDER20240101001", 100)
    assert t["transaction_id"] == "4200000000202401010000000001"
    assert notify.answer(None) == (204, {}, b"")


def _forged_cases():
    good = json.loads(v.RESOURCE_PLAIN)
    good["appid"] = v.APPID
    other_key = crypto.private_pem(new_key())
    body = _envelope(plain=json.dumps(good))
    tampered = json.loads(body)
    ct = tampered["resource"]["ciphertext"]
    tampered["resource"]["ciphertext"] = ("B" if ct[0] != "B" else "C") + ct[1:]
    tampered = json.dumps(tampered, separators=(",", ":")).encode()
    yield "bad signature", body, _signed(body, key=other_key), SignError, 401
    yield "unknown serial", body, _signed(body, serial="PUB_KEY_ID_OTHER"), UnknownSerial, 401
    yield "stale", body, _signed(body, ts=1700000011 - 301), SignError, 401
    yield "re-dumped body", body.replace(b",", b", "), _signed(body), SignError, 401
    yield "tampered ciphertext", tampered, _signed(tampered), DecryptError, 400
    for field, value, err in (("mchid", "1900000002", MismatchError),
                              ("appid", "wx0000000000other", MismatchError)):
        bad = dict(good, **{field: value})
        b = _envelope(plain=json.dumps(bad))
        yield f"wrong {field}", b, _signed(b), err, 400
    b = _envelope(key="TESTONLYapiv3key0123456789abcdeX", plain=json.dumps(good))
    yield "other APIv3 key", b, _signed(b), DecryptError, 400
    b = _envelope(plain=json.dumps(good), event="TRANSACTION.SUCCESS", original="refund")
    yield "original_type", b, _signed(b), Exception, 400


@pytest.mark.parametrize("case", list(_forged_cases()), ids=lambda c: c[0])
def test_forged_notifications_are_refused_with_4xx(case):
    _, body, headers, err, status = case
    with pytest.raises(err) as e:
        notify.parse_notification(account(), headers, body, now=1700000011)
    st, h, out = notify.answer(e.value)
    assert st == status
    assert json.loads(out)["code"] == "FAIL"
    assert v.APIV3_KEY.encode() not in out


def test_payment_notification_amount_and_order_must_match():
    plain = dict(json.loads(v.RESOURCE_PLAIN), appid=v.APPID)
    body = _envelope(plain=json.dumps(plain))
    n = notify.parse_notification(account(), _signed(body), body, now=1700000011)
    with pytest.raises(Exception) as e:
        notify.check_payment(n, "ORDER20240101001", 101)
    assert e.value.key == "e.weixin.notify.amount_mismatch"
    assert notify.answer(e.value)[0] == 400
    with pytest.raises(MismatchError):
        notify.check_payment(n, "ORDER20240101002", 100)


def test_refund_notification():
    plain = {"mchid": v.MCHID, "transaction_id": "4200000000202401010000000001",
             "out_trade_no": "ORDER20240101001", "refund_id": "50000000382019052709732678859",
             "out_refund_no": "R1", "refund_status": "SUCCESS",
             "success_time": "2024-01-01T13:00:00+08:00",
             "user_received_account": "招商银行信用卡0403",
             "amount": {"total": 100, "refund": 40, "payer_total": 100, "payer_refund": 40}}
    body = _envelope(plain=json.dumps(plain, ensure_ascii=False), aad="refund",
                     event="REFUND.SUCCESS", original="refund")
    n = notify.parse_notification(account(), _signed(body), body, now=1700000011)
    assert notify.check_refund(n, "R1", 40)["refund_status"] == "SUCCESS"


# ----- certificates ------------------------------------------------------------------
def _cert_answer(certs, apiv3=v.APIV3_KEY):
    data = []
    for c in certs:
        pem = c.public_bytes(Encoding.PEM).decode()
        nonce = "a1b2c3d4e5f6"
        data.append({"serial_no": format(c.serial_number, "X"),
                     "effective_time": c.not_valid_before_utc.isoformat(),
                     "expire_time": c.not_valid_after_utc.isoformat(),
                     "encrypt_certificate": {
                         "algorithm": "AEAD_AES_256_GCM", "nonce": nonce,
                         "associated_data": "certificate",
                         "ciphertext": crypto.aes_gcm_encrypt(apiv3, nonce, pem, "certificate")}})
    return json.dumps({"data": data}).encode()


def test_certificates_decrypt_pick_by_serial_and_expiry():
    from datetime import datetime, timedelta, timezone
    k1, k2 = new_key(), new_key()
    now = datetime.now(timezone.utc)
    old = new_certificate(k1, not_before=now - timedelta(days=400), days=365)   # expired
    cur = new_certificate(k2, not_before=now - timedelta(days=1), days=30)
    certs = parse_certificates(v.APIV3_KEY, _cert_answer([old, cur]))
    assert [c.serial for c in certs] == [format(cur.serial_number, "X")]
    keys = WechatKeys(certificates=certs)
    assert not keys.needs_refresh()
    assert keys.newest_serial() == certs[0].serial
    body = b'{"ok":1}'
    h = auth.signature_headers(k2, certs[0].serial, body)
    keys.verify(h, body)
    with pytest.raises(UnknownSerial):        # the expired one is not trusted any more
        keys.verify(auth.signature_headers(k1, format(old.serial_number, "X"), body), body)
    with pytest.raises(DecryptError):
        parse_certificates("TESTONLYapiv3key0123456789abcdeX", _cert_answer([cur]))
    # a certificate expiring within a day asks for a refresh
    soon = new_certificate(k2, not_before=now - timedelta(hours=1), days=1)
    assert WechatKeys(certificates=parse_certificates(
        v.APIV3_KEY, _cert_answer([soon]))).needs_refresh()


# ----- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("status,code,key,cls", [
    (400, "ORDER_CLOSED", "e.weixin.err.ORDERCLOSED", V3ResultFail),
    (404, "ORDER_NOT_EXIST", "e.weixin.err.ORDERNOTEXIST", V3ResultFail),
    (403, "OUT_TRADE_NO_USED", "e.weixin.err.OUT_TRADE_NO_USED", V3ResultFail),
    (403, "NOT_ENOUGH", "e.weixin.err.NOTENOUGH", V3ResultFail),
    (400, "PARAM_ERROR", "e.weixin.err.PARAM_ERROR", V3ResultFail),
    (500, "SYSTEM_ERROR", "e.weixin.err.SYSTEMERROR", V3ResultFail),
    (401, "SIGN_ERROR", "e.weixin.return.fail", ReturnFail),
])
def test_v3_error_bodies_map_to_the_v2_error_kinds(status, code, key, cls):
    body = json.dumps({"code": code, "message": "msg",
                       "detail": {"field": "/amount/total", "issue": "x"}}).encode()
    err = error_from_answer(status, body)
    assert isinstance(err, cls) and err.key == key
    if cls is V3ResultFail:
        assert isinstance(err, ResultFail) and err.v3_code == code
        assert err.retryable == (code == "SYSTEM_ERROR")


def test_non_json_error_is_transport():
    assert isinstance(error_from_answer(502, b"<html>bad gateway</html>"), TransportError)
    with pytest.raises(TransportError):
        api.check_answer(account(), 503, {}, b"")


# ----- builders -------------------------------------------------------------------------
def test_prepay_builder_maps_the_seed_fields():
    req = api.build_jsapi_prepay(account(), {
        "body": "测试", "out_trade_no": "o_0001", "total_fee": 888, "openid": "oUser",
        "spbill_create_ip": "127.0.0.1", "attach": "a1"}, now=v.TIMESTAMP)
    doc = json.loads(req.body)
    assert doc == {"appid": v.APPID, "mchid": v.MCHID, "description": "测试",
                   "out_trade_no": "o_0001", "time_expire": "2023-11-15T06:23:20+08:00",
                   "attach": "a1", "notify_url": "https://example.com/wxpay/notify",
                   "amount": {"total": 888, "currency": "CNY"},
                   "payer": {"openid": "oUser"},
                   "scene_info": {"payer_client_ip": "127.0.0.1"}}
    assert "测试".encode() in req.body            # UTF-8, not \\u escapes
    v3 = api.build_jsapi_prepay(account(), {
        "description": "x", "out_trade_no": "o_0001", "amount": {"total": 1},
        "payer": {"openid": "oUser"}, "time_expire": "20231115070000"}, now=v.TIMESTAMP)
    assert json.loads(v3.body)["time_expire"] == "2023-11-15T07:00:00+08:00"


def test_native_prepay_builder_sends_no_payer_and_its_own_path():
    req = api.build_native_prepay(account(), {
        "body": "扫码", "out_trade_no": "o_0002", "total_fee": 300,
        "spbill_create_ip": "127.0.0.1", "product_id": "p1", "trade_type": "NATIVE"},
        now=v.TIMESTAMP)
    assert (req.method, req.target) == ("POST", "/v3/pay/transactions/native")
    doc = json.loads(req.body)
    assert doc == {"appid": v.APPID, "mchid": v.MCHID, "description": "扫码",
                   "out_trade_no": "o_0002", "time_expire": "2023-11-15T06:23:20+08:00",
                   "notify_url": "https://example.com/wxpay/notify",
                   "amount": {"total": 300, "currency": "CNY"},
                   "scene_info": {"payer_client_ip": "127.0.0.1"}}
    for change in ({"openid": "oUser"}, {"payer": {"openid": "oUser"}},
                   {"trade_type": "JSAPI"}):
        with pytest.raises(Exception) as e:
            api.build_native_prepay(account(), dict(
                {"body": "t", "out_trade_no": "o_0002", "total_fee": 1}, **change))
        assert e.value.key == "e.weixin.param.invalid"
    with pytest.raises(Exception) as e:          # and JSAPI still needs its payer
        api.build_jsapi_prepay(account(), {"body": "t", "out_trade_no": "o_0002",
                                           "total_fee": 1, "trade_type": "NATIVE"})
    assert e.value.key == "e.weixin.param.invalid"


@pytest.mark.parametrize("doc", [{}, {"code_url": ""}, {"code_url": "https://x/y"},
                                 {"code_url": "weixin://a b"}, {"code_url": 1}, None])
def test_a_native_answer_without_a_weixin_code_url_is_refused(doc):
    with pytest.raises(Exception) as e:
        api.parse_code_url(doc)
    assert e.value.key == "e.weixin.reply.nocodeurl"
    assert api.parse_code_url({"code_url": "weixin://wxpay/bizpayurl?pr=abc"}) \
        == "weixin://wxpay/bizpayurl?pr=abc"


@pytest.mark.parametrize("change", [
    {"total_fee": 0}, {"total_fee": 2900.5}, {"out_trade_no": "abc"},
    {"out_trade_no": "a" * 33}, {"body": ""}, {"body": "x" * 128}, {"openid": None},
    {"notify_url": "https://x.example/n?a=1"}, {"unknown": 1}, {"mchid": "1"},
    {"time_expire": "2000-01-01T00:00:00+08:00"}, {"body": "emoji \U0001F600"},
])
def test_prepay_builder_refuses_bad_input(change):
    order = {"body": "t", "out_trade_no": "o_0001", "total_fee": 1, "openid": "oUser"}
    order.update(change)
    with pytest.raises(Exception) as e:
        api.build_jsapi_prepay(account(), order, now=v.TIMESTAMP)
    assert e.value.key.startswith("e.weixin.") and e.value.kind == "bad_input"


def test_path_parts_are_percent_encoded_before_signing():
    assert api.build_query(account(), "o|0001*").target == \
        "/v3/pay/transactions/out-trade-no/o%7C0001*?mchid=1900000001"
    assert api.build_close(account(), "o|0001").target == \
        "/v3/pay/transactions/out-trade-no/o%7C0001/close"
    assert api.build_close(account(), "o_0001").body == b'{"mchid":"1900000001"}'


def test_refund_builders():
    req = api.build_refund(account(), {"out_trade_no": "o_0001", "out_refund_no": "r@1",
                                       "refund_fee": 40, "total_fee": 100,
                                       "refund_desc": "退货"})
    assert json.loads(req.body) == {"out_trade_no": "o_0001", "out_refund_no": "r@1",
                                    "reason": "退货", "amount": {"refund": 40, "total": 100,
                                                               "currency": "CNY"}}
    with pytest.raises(Exception):
        api.build_refund(account(), {"out_trade_no": "o_0001", "out_refund_no": "r1",
                                     "amount": {"refund": 101, "total": 100}})
    assert api.build_refund_query(account(), "r@1").target == "/v3/refund/domestic/refunds/r%401"


def test_bill_builders_and_file_check():
    a = account(api_base="https://api.mch.weixin.qq.com")
    assert api.build_tradebill(a, "2024-01-01").target == \
        "/v3/bill/tradebill?bill_date=2024-01-01&bill_type=ALL&tar_type=GZIP"
    text = "交易时间,公众账号ID\n`2024-01-01 10:00:00,`wx1\n"
    raw = text.encode()
    info = api.parse_bill(a, {"hash_type": "SHA1", "hash_value": hashlib.sha1(raw).hexdigest(),
                              "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/"
                                              "file?token=abc"})
    assert api.build_download(a, info["download_url"]).target == \
        "/v3/billdownload/file?token=abc"
    assert api.check_bill_file(info, gzip.compress(raw)) == text
    with pytest.raises(SignError):
        api.check_bill_file(info, gzip.compress(raw + b"x"))
    with pytest.raises(Exception) as e:     # never a signed request to another host
        api.parse_bill(a, dict(info, download_url="https://evil.example/v3/billdownload/x"))
    assert e.value.key == "e.weixin.v3.bill.invalid"


def test_account_masks_every_secret():
    a = account()
    text = repr(a) + json.dumps(a.public_info())
    assert v.APIV3_KEY not in text and "PRIVATE" not in text and "MIIE" not in text
    with pytest.raises(Exception) as e:
        account(apiv3_key="short")
    assert e.value.key == "e.weixin.conf.invalid"


def test_notification_headers_from_a_regapi_request_object():
    """regapi stores headers as ``http-header-<UPPER-NAME>`` metadata; a command hands
    them over with headers_from_meta and the same checks apply."""
    plain = dict(json.loads(v.RESOURCE_PLAIN), appid=v.APPID)
    body = _envelope(plain=json.dumps(plain))
    meta = {"http-header-" + k.upper(): x for k, x in _signed(body).items()}
    meta.update({"http-method": "POST", "http-header-CONTENT-TYPE": "application/json"})
    n = notify.parse_notification(account(), notify.headers_from_meta(meta), body,
                                  now=1700000011)
    assert n.resource["out_trade_no"] == "ORDER20240101001"
