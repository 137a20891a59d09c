from datetime import datetime, timezone

import pytest

from objstore.errors import WnError
from wxpay.account import Account
from wxpay.api import (SUCCESS_XML, build_closeorder, build_orderquery,
                       build_unifiedorder, check_notification_amount,
                       choose_wx_pay_params, jsapi_params, parse_notification,
                       parse_reply, reply_xml)
from wxpay.errors import (MismatchError, NotifyFail, ResultFail, ReturnFail, SignError,
                          WxPayError, XmlError)
from wxpay.sign import sign, verify
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import APPID, KEY, MCH_ID, OTHER_KEY, order

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)     # 11:04:05 in Beijing


def test_unifiedorder_fills_and_signs(account):
    p = build_unifiedorder(account, order(), now=NOW, nonce="n0nce")
    assert p["appid"] == APPID and p["mch_id"] == MCH_ID
    assert p["nonce_str"] == "n0nce"
    assert p["trade_type"] == "JSAPI" and p["device_info"] == "WEB"
    assert p["notify_url"] == "http://127.0.0.1:9/notify"
    assert p["total_fee"] == "888"
    assert p["time_expire"] == "20260102111405"           # Beijing + 10 minutes
    assert "sign_type" not in p
    assert verify(p, KEY)
    assert set(p) == {"appid", "mch_id", "device_info", "nonce_str", "body",
                      "out_trade_no", "total_fee", "spbill_create_ip", "time_expire",
                      "notify_url", "trade_type", "openid", "sign"}
    assert all(isinstance(v, str) for v in p.values())


def test_unifiedorder_options(account):
    acc = account.replace(sign_type="HMAC-SHA256", time_expire_minutes=30)
    p = build_unifiedorder(acc, order(pay_val="8.88", attach="a]]>b", detail="d",
                                      time_expire="20260102120000"), now=NOW)
    assert p["sign_type"] == "HMAC-SHA256"
    assert len(p["sign"]) == 64 and verify(p, KEY)
    assert p["total_fee"] == "888" and p["attach"] == "a]]>b"
    assert p["time_expire"] == "20260102120000"
    assert verify(from_xml(to_xml(p)), KEY)
    p = build_unifiedorder(acc, order(), now=NOW.timestamp())
    assert p["time_expire"] == "20260102113405"
    p = build_unifiedorder(account, order(notify_url="https://example.com/n", appid=APPID),
                           now=NOW)
    assert p["notify_url"] == "https://example.com/n"


@pytest.mark.parametrize("kw", [
    {"body": ""}, {"body": "x" * 128}, {"out_trade_no": ""}, {"out_trade_no": "a" * 33},
    {"out_trade_no": "has space"}, {"out_trade_no": "订单"}, {"out_trade_no": "a/b"},
    {"total_fee": 0}, {"total_fee": "1.5"}, {"total_fee": None}, {"openid": ""},
    {"spbill_create_ip": "300.1.1.1"}, {"spbill_create_ip": "host"},
    {"spbill_create_ip": None}, {"time_expire": "2026-01-02"},
    {"time_expire": "20261302000000"}, {"time_expire": "20260102110000"},
    {"trade_type": "APP"}, {"appid": "wxother"}, {"mch_id": "999"},
    {"sign_type": "HMAC-SHA256"}, {"unknown_field": "x"}, {"nonce_str": "n" * 33},
    {"notify_url": "ftp://x/y"}, {"notify_url": "http://x/y?a=1"}, {"attach": "a" * 128},
    {"fee_type": "yuan"}, {"body": "bad\x01char"},
])
def test_unifiedorder_refuses(account, kw):
    with pytest.raises(WnError) as e:
        build_unifiedorder(account, order(**kw), now=NOW)
    assert e.value.kind == "bad_input"
    assert KEY not in e.value.line()


def test_unifiedorder_needs_notify_url():
    acc = Account(APPID, MCH_ID, KEY)
    with pytest.raises(WnError, match="notify_url"):
        build_unifiedorder(acc, order(), now=NOW)
    seedlike = Account(APPID, MCH_ID, KEY, notify_url="http:xx")
    with pytest.raises(WnError, match="notify_url"):
        build_unifiedorder(seedlike, order(), now=NOW)


def test_unifiedorder_not_a_mapping(account):
    with pytest.raises(WnError):
        build_unifiedorder(account, ["body"])


def test_query_and_close(account):
    q = build_orderquery(account, "o_1")
    assert q["out_trade_no"] == "o_1" and verify(q, KEY) and len(q["nonce_str"]) == 32
    c = build_closeorder(account, "o_1")
    assert c["out_trade_no"] == "o_1" and verify(c, KEY)
    assert build_orderquery(account, transaction_id="4200")["transaction_id"] == "4200"
    with pytest.raises(WnError):
        build_closeorder(account, "bad no")


def _reply(**kw):
    p = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID, "mch_id": MCH_ID,
         "nonce_str": "abc", "result_code": "SUCCESS", "prepay_id": "wx1",
         "trade_type": "JSAPI"}
    p.update(kw)
    return p


def _signed(p, key=KEY, st="MD5"):
    p = dict(p)
    p["sign"] = sign(p, key, st)
    return to_xml(p)


def test_parse_reply(account):
    assert parse_reply(account, _signed(_reply()))["prepay_id"] == "wx1"
    with pytest.raises(ReturnFail) as e:
        parse_reply(account, to_xml({"return_code": "FAIL", "return_msg": "签名错误"}))
    assert e.value.return_msg == "签名错误" and e.value.key == "e.weixin.return.fail"
    with pytest.raises(SignError) as e:
        parse_reply(account, to_xml(_reply()))
    assert e.value.key == "e.weixin.sign.invalid"
    with pytest.raises(SignError):
        parse_reply(account, _signed(_reply(), OTHER_KEY))
    with pytest.raises(SignError):                         # tampered after signing
        x = from_xml(_signed(_reply()))
        x["prepay_id"] = "wx2"
        parse_reply(account, to_xml(x))
    with pytest.raises(ResultFail) as e:
        parse_reply(account, _signed(_reply(result_code="FAIL", err_code="ORDERPAID",
                                            err_code_des="该订单已支付")))
    assert e.value.key == "e.weixin.err.ORDERPAID" and e.value.err_code == "ORDERPAID"
    with pytest.raises(MismatchError) as e:
        parse_reply(account, _signed(_reply(appid="wxother")))
    assert e.value.key == "e.weixin.reply.appid_mismatch"
    with pytest.raises(MismatchError):
        parse_reply(account, _signed(_reply(mch_id="999")))
    with pytest.raises(WxPayError):
        parse_reply(account, to_xml({"return_msg": "x"}))
    with pytest.raises(XmlError):
        parse_reply(account, "<html>oops</html>")


def test_parse_reply_hmac(account):
    acc = account.replace(sign_type="HMAC-SHA256")
    assert parse_reply(acc, _signed(_reply(), st="HMAC-SHA256"))["result_code"] == "SUCCESS"
    with pytest.raises(SignError):
        parse_reply(acc, _signed(_reply(), st="MD5"))


def test_jsapi_params(account):
    j = jsapi_params(account, "wx201410272009395522657a690389285100", now=NOW,
                     nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS")
    assert list(j) == ["appId", "timeStamp", "nonceStr", "package", "signType", "paySign"]
    assert j["appId"] == APPID
    assert j["timeStamp"] == str(int(NOW.timestamp())) and len(j["timeStamp"]) == 10
    assert j["package"] == "prepay_id=wx201410272009395522657a690389285100"
    assert j["signType"] == "MD5"
    five = {k: j[k] for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
    assert j["paySign"] == sign(five, KEY, "MD5")
    assert verify(dict(five, sign=j["paySign"]), KEY)
    # never the unifiedorder sign
    u = build_unifiedorder(account, order(), now=NOW, nonce=j["nonceStr"])
    assert j["paySign"] != u["sign"]
    # seconds now, not milliseconds
    j2 = jsapi_params(account, "wx1")
    assert abs(int(j2["timeStamp"]) - datetime.now(timezone.utc).timestamp()) < 5


def test_jsapi_params_hmac_and_choose(account):
    acc = account.replace(sign_type="HMAC-SHA256")
    j = jsapi_params(acc, "wx1", now=NOW, nonce="abc")
    assert j["signType"] == "HMAC-SHA256" and len(j["paySign"]) == 64
    five = {k: j[k] for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
    assert verify(dict(five, sign=j["paySign"]), KEY, "HMAC-SHA256")
    assert not verify(dict(five, sign=j["paySign"]), KEY, "MD5")
    c = choose_wx_pay_params(acc, "wx1", now=NOW, nonce="abc")
    assert set(c) == {"timestamp", "nonceStr", "package", "signType", "paySign"}
    assert c["timestamp"] == j["timeStamp"]
    assert c["paySign"] == j["paySign"]          # computed over appId + timeStamp
    wrong = {"timestamp": c["timestamp"], "nonceStr": "abc", "package": "prepay_id=wx1",
             "signType": "HMAC-SHA256"}
    assert sign(wrong, KEY, "HMAC-SHA256") != c["paySign"]
    with pytest.raises(WnError):
        jsapi_params(acc, "")


def _notification(**kw):
    p = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID, "mch_id": MCH_ID,
         "device_info": "WEB", "nonce_str": "n1", "result_code": "SUCCESS",
         "openid": "oUser", "is_subscribe": "N", "trade_type": "JSAPI", "bank_type": "CMC",
         "total_fee": "888", "fee_type": "CNY", "cash_fee": "888",
         "transaction_id": "4200000000000000000000000001", "out_trade_no": "o_1",
         "time_end": "20260102110405", "coupon_fee": "0"}
    p.update(kw)
    return p


def test_parse_notification_good(account):
    n = parse_notification(account, _signed(_notification()))
    assert n["out_trade_no"] == "o_1" and n["total_fee"] == "888"
    assert check_notification_amount(n, 888) == 888
    hmac_acc = account.replace(sign_type="HMAC-SHA256")
    hm = _notification(sign_type="HMAC-SHA256")
    assert parse_notification(hmac_acc, _signed(hm, st="HMAC-SHA256"))["sign_type"] == \
        "HMAC-SHA256"


def test_hmac_account_accepts_hmac_notification_without_sign_type(account):
    """WeChat signs an HMAC merchant's notifications with HMAC-SHA256 and sends no
    sign_type field: the account's pay_sign_type decides."""
    hmac_acc = account.replace(sign_type="HMAC-SHA256")
    n = parse_notification(hmac_acc, _signed(_notification(), st="HMAC-SHA256"))
    assert "sign_type" not in n and len(n["sign"]) == 64


@pytest.mark.parametrize("payload", ["md5_no_type", "md5_typed"])
def test_hmac_account_refuses_md5_downgrade(account, payload):
    hmac_acc = account.replace(sign_type="HMAC-SHA256")
    n = _notification(sign_type="MD5") if payload == "md5_typed" else _notification()
    with pytest.raises(SignError):
        parse_notification(hmac_acc, _signed(n, st="MD5"))
    reply = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID,
             "mch_id": MCH_ID, "nonce_str": "n", "result_code": "SUCCESS",
             "prepay_id": "wx1"}
    if payload == "md5_typed":
        reply["sign_type"] = "MD5"
    with pytest.raises(SignError):
        parse_reply(hmac_acc, _signed(reply, st="MD5"))


def test_body_is_limited_in_utf8_bytes(account):
    ok = build_unifiedorder(account, order(body="测" * 42), now=NOW)   # 126 bytes
    assert ok["body"] == "测" * 42
    with pytest.raises(WnError) as e:
        build_unifiedorder(account, order(body="测" * 43), now=NOW)    # 129 bytes
    assert e.value.key == "e.weixin.param.invalid" and "body参数长度有误" in e.value.reason
    with pytest.raises(WnError) as e:
        build_unifiedorder(account, order(attach="é" * 64), now=NOW)   # 128 bytes
    assert "attach参数长度有误" in e.value.reason


def test_cut_utf8_on_a_character_boundary():
    from wxpay.api import cut_utf8
    assert cut_utf8("a" + "测" * 50, 127) == "a" + "测" * 42
    assert cut_utf8("ab" + "测" * 50, 127) == "ab" + "测" * 41
    assert cut_utf8("short", 127) == "short"


def test_time_expire_at_least_five_minutes(account):
    with pytest.raises(WnError) as e:       # 4 min 59 s after NOW (11:04:05 Beijing)
        build_unifiedorder(account, order(time_expire="20260102110904"), now=NOW)
    assert "time_expire时间过短，刷卡至少1分钟，其他5分钟" in e.value.reason
    assert build_unifiedorder(account, order(time_expire="20260102110905"),
                              now=NOW)["time_expire"] == "20260102110905"
    with pytest.raises(WnError):            # an account whose default is too short
        build_unifiedorder(account.replace(time_expire_minutes=4), order(), now=NOW)


def test_native_and_mweb_orders(account):
    with pytest.raises(WnError) as e:
        build_unifiedorder(account, order(trade_type="NATIVE", openid=None), now=NOW)
    assert "product_id" in e.value.reason
    p = build_unifiedorder(account, order(trade_type="NATIVE", openid=None,
                                          product_id="p1"), now=NOW)
    assert p["trade_type"] == "NATIVE" and "openid" not in p
    with pytest.raises(WnError) as e:
        build_unifiedorder(account, order(trade_type="MWEB", openid=None), now=NOW)
    assert "scene_info" in e.value.reason
    p = build_unifiedorder(account, order(trade_type="MWEB", openid=None,
                                          scene_info='{"h5_info":{"type":"Wap"}}'), now=NOW)
    assert p["trade_type"] == "MWEB"


def _forged():
    base = _notification()
    tampered = from_xml(_signed(base))
    tampered["total_fee"] = "1"
    return {
        "bad_sign": (to_xml(dict(base, sign="0" * 32)), SignError, "e.weixin.sign.invalid"),
        "tampered": (to_xml(tampered), SignError, "e.weixin.sign.invalid"),
        "other_key": (_signed(base, OTHER_KEY), SignError, "e.weixin.sign.invalid"),
        "missing_sign": (to_xml(base), SignError, "e.weixin.sign.invalid"),
        "empty_sign": (to_xml(dict(base, sign="")), SignError, "e.weixin.sign.invalid"),
        "wrong_appid": (_signed(_notification(appid="wxother")), MismatchError,
                        "e.weixin.notify.appid_mismatch"),
        "wrong_mch_id": (_signed(_notification(mch_id="999")), MismatchError,
                         "e.weixin.notify.mch_id_mismatch"),
        "return_fail": (_signed(_notification(return_code="FAIL")), NotifyFail,
                        "e.weixin.notify.return_fail"),
        "no_return_code": (_signed({k: v for k, v in base.items() if k != "return_code"}),
                           NotifyFail, "e.weixin.notify.return_fail"),
        "hmac_claimed_md5_signed": (_signed(_notification(sign_type="HMAC-SHA256"),
                                            st="MD5"), SignError, "e.weixin.sign.invalid"),
        "md5_payload_hmac_signed": (_signed(_notification(), st="HMAC-SHA256"),
                                    SignError, "e.weixin.sign.invalid"),
        "unknown_sign_type": (_signed(_notification(sign_type="SHA1"), st="MD5"),
                              SignError, "e.weixin.sign.invalid"),
        "doctype": ('<!DOCTYPE xml [<!ENTITY e "x">]><xml><a>&e;</a></xml>', XmlError,
                    "e.weixin.xml.invalid"),
        "oversize": ("<xml><a>" + "x" * 70000 + "</a></xml>", XmlError,
                     "e.weixin.xml.invalid"),
        "garbage": ("garbage", XmlError, "e.weixin.xml.invalid"),
    }


@pytest.mark.parametrize("name", sorted(_forged()))
def test_parse_notification_forged(account, name):
    xml, cls, key = _forged()[name]
    with pytest.raises(cls) as e:
        parse_notification(account, xml)
    assert e.value.key == key
    assert KEY not in e.value.line()


def test_notification_amount_checks():
    with pytest.raises(WxPayError) as e:
        check_notification_amount({"total_fee": "887"}, 888)
    assert e.value.key == "e.weixin.notify.amount_mismatch"
    for bad in ({"total_fee": "8.88"}, {"total_fee": ""}, {}, {"total_fee": "-888"}):
        with pytest.raises(WxPayError) as e:
            check_notification_amount(bad, 888)
        assert e.value.key == "e.weixin.notify.amount_invalid"


def test_reply_xml_exact():
    assert reply_xml(True) == ("<xml><return_code><![CDATA[SUCCESS]]></return_code>"
                               "<return_msg><![CDATA[OK]]></return_msg></xml>")
    assert reply_xml(True) == SUCCESS_XML
    fail = reply_xml(False, "sign ]]> bad")
    assert from_xml(fail) == {"return_code": "FAIL", "return_msg": "sign ]]> bad"}
    assert from_xml(reply_xml(False)) == {"return_code": "FAIL", "return_msg": "OK"}


def test_parse_reply_without_result_check(account):
    fail = _signed(_reply(result_code="FAIL", err_code="SYSTEMERROR"))
    assert parse_reply(account, fail, check_result=False)["err_code"] == "SYSTEMERROR"
    with pytest.raises(SignError):
        parse_reply(account, to_xml(_reply(result_code="FAIL")), check_result=False)


def test_times(account):
    p = build_unifiedorder(account, order(time_expire=20260102120000), now=NOW)
    assert p["time_expire"] == "20260102120000"
    with pytest.raises(WnError, match="milliseconds"):
        jsapi_params(account, "wx1", now=NOW.timestamp() * 1000)
    with pytest.raises(WnError):
        jsapi_params(account, "wx1", now="yesterday")
    naive = datetime(2026, 1, 2, 3, 4, 5)                    # naive = UTC
    assert jsapi_params(account, "wx1", now=naive)["timeStamp"] == \
        str(int(NOW.timestamp()))
