"""wxpay.refund and wxpay.bill against the vectors of wechatpay-v2.md §8.4 and §8.5."""
from __future__ import annotations

import pytest

from objstore.errors import WnError
from wxpay.account import Account
from wxpay.bill import bill_text, format_bill, parse_bill
from wxpay.errors import MismatchError, WxPayError
from wxpay.refund import (build_refund, decrypt_req_info, encrypt_req_info,
                          parse_refund_notification, refund_key)
from wxpay.sign import verify
from wxpay.xmlcodec import to_xml

KEY = "192006250b4c09247ec02edce69f6a2d"
PLAIN = ("<root><out_refund_no>R1</out_refund_no><out_trade_no>o1_1</out_trade_no>"
         "<refund_fee>50</refund_fee><refund_id>5001</refund_id><refund_recv_accout>"
         "支付用户零钱</refund_recv_accout><refund_status>SUCCESS</refund_status>"
         "<success_time>2024-01-01 12:00:05</success_time><total_fee>100</total_fee>"
         "<transaction_id>4201</transaction_id></root>")
REQ_INFO = (
    "WBzGpzQuNpcFxIlFjUUD9CdH4BF3YHmtiHaWV8j0mqCNbSzW5nfLV3s3E+6agRcwadHdIihcNarJk9HciLr8"
    "g7CbUhvsnjY9mtgm51F8k17Nv2ubC096aTyQMAkn6t5hxFFep12H/UDaMnh0rUT7GisWBfLp2E5O7fxazJVF"
    "Qbu4g/0FU2ppbw/jN3faXAOVs602sIrnmPQyX9mCXl1+dT/qR1Jtq4uYlcUhcBQbMPkvBArppRc+wujc8Dzg"
    "F9TVYIqVMPkev4u5S9U6yW0CLznCq/3u0Vi9bOYklLhFPAJFndOfyO8rO1NAirIFg3L4IyJOCbqJOJrGIhzG"
    "hXq/W4fX8dFfJ4F6alrbu4hyN54BuLLjBiNa58TH7UUNGHB5Y7Uf9dG/VUbxAabnwnIsIyXadhPNfc1ZHoto"
    "7tJWVFSEIPrWS2US0aK9gXhzkeu31DTi88FkMD/Dnz/PfrevDA==")
ACC = Account("wxd930ea5d5a258f4f", "10000100", KEY)


def test_req_info_vector():
    assert refund_key(KEY) == b"d96eb16afdd491fa1e705096edbc2205"
    assert len(PLAIN.encode()) == 341
    assert decrypt_req_info(REQ_INFO, KEY).decode() == PLAIN
    assert encrypt_req_info(PLAIN.encode(), KEY) == REQ_INFO


def test_refund_notification_parsed_and_forgeries_refused():
    outer = {"return_code": "SUCCESS", "appid": ACC.appid, "mch_id": ACC.mch_id,
             "nonce_str": "n", "req_info": REQ_INFO}
    n = parse_refund_notification(ACC, to_xml(outer))
    assert n["out_refund_no"] == "R1" and n["refund_fee"] == "50" and "req_info" not in n
    with pytest.raises(WxPayError) as e:
        parse_refund_notification(ACC.replace(key="0" * 32), to_xml(outer))
    assert e.value.key == "e.weixin.notify.req_info_invalid"
    with pytest.raises(MismatchError):
        parse_refund_notification(ACC, to_xml(dict(outer, mch_id="10000200")))
    for junk in ("", "AAAA", "%%%", REQ_INFO[:-8]):
        with pytest.raises(WxPayError):
            parse_refund_notification(ACC, to_xml(dict(outer, req_info=junk)))


def test_build_refund_is_signed_and_checked():
    p = build_refund(ACC, out_refund_no="o1_r1", total_fee=100, refund_fee=50,
                     transaction_id="4201", out_trade_no="o1_1", refund_desc="退款")
    assert p["transaction_id"] == "4201" and "out_trade_no" not in p and verify(p, KEY)
    for bad in ({"refund_fee": 101}, {"refund_fee": 0}, {"out_refund_no": "a b"},
                {"refund_desc": "x" * 81}):
        kw = dict(out_refund_no="o1_r1", total_fee=100, refund_fee=50, out_trade_no="o1_1")
        kw.update(bad)
        with pytest.raises(WnError):
            build_refund(ACC, **kw)


SAMPLE = """交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
`2024-01-01 12:00:00,`wxd930ea5d5a258f4f,`10000100,`0,`WEB,`4201,`o1_1,`oUser1,`JSAPI,`SUCCESS,`OTHERS,`CNY,`1.00,`0.00,`0,`0,`0.00,`0.00,`,`,`test,`,`0.00600,`0.60%,`1.00,`0.00,`
`2024-01-01 12:05:00,`wxd930ea5d5a258f4f,`10000100,`0,`WEB,`4201,`o1_1,`oUser1,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`5001,`R1,`0.50,`0.00,`ORIGINAL,`SUCCESS,`test,`,`-0.00300,`0.60%,`0.00,`0.50,`
总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
`2,`1.00,`0.50,`0.00,`0.00300,`1.00,`0.50
"""


def test_parse_the_composed_sample():
    rows, summary = parse_bill(SAMPLE)
    assert [r["trade_state"] for r in rows] == ["SUCCESS", "REFUND"]
    assert rows[0]["total_fee"] == 100 and rows[0]["settlement_total_fee"] == 100
    assert rows[1]["refund_fee"] == 50 and rows[1]["out_refund_no"] == "R1"
    assert rows[0]["fee"] == "0.00600"
    assert summary == {"count": 2, "settlement_total_fee": 100, "settlement_refund_fee": 50,
                       "recharge_coupon_refund_fee": 0, "fee": "0.00300",
                       "total_fee": 100, "refund_fee": 50}


def test_format_then_parse_round_trip_and_gzip():
    import gzip
    trades = [{"kind": "SUCCESS", "time": "2024-01-01 12:00:00", "appid": "wx1",
               "mch_id": "1", "transaction_id": "42", "out_trade_no": "o_1",
               "openid": "u", "total_fee": 888, "body": "a,`b"}]
    text = format_bill(trades)
    assert bill_text(gzip.compress(text.encode())) == text
    rows, summary = parse_bill(text)
    assert rows[0]["total_fee"] == 888 and summary["count"] == 1
    with pytest.raises(WxPayError) as e:
        bill_text(b"<xml><return_code>FAIL</return_code><return_msg>No Bill Exist"
                  b"</return_msg><error_code>20002</error_code></xml>")
    assert e.value.key == "e.weixin.bill.none"
