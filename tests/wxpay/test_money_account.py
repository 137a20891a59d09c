from decimal import Decimal

import hjson
import pytest

from objstore.errors import WnError
from wxpay.account import Account
from wxpay.money import to_fen

from .conftest import APPSECRET, KEY


@pytest.mark.parametrize("kw,fen", [
    ({"total_fee": 888}, 888), ({"total_fee": "888"}, 888), ({"total_fee": 1}, 1),
    ({"total_fee": 888.0}, 888), ({"total_fee": Decimal("5")}, 5),
    ({"pay_val": "8.88"}, 888), ({"pay_val": 8.88}, 888), ({"pay_val": 0.1}, 10),
    ({"pay_val": "0.01"}, 1), ({"pay_val": 3}, 300), ({"pay_val": "8.880"}, 888),
    ({"pay_val": Decimal("19.9")}, 1990), ({"pay_val": 1.15}, 115),
    ({"total_fee": 888, "pay_val": "8.88"}, 888),
])
def test_amounts(kw, fen):
    assert to_fen(**kw) == fen


@pytest.mark.parametrize("kw", [
    {}, {"total_fee": 0}, {"total_fee": -5}, {"total_fee": "-5"}, {"total_fee": True},
    {"total_fee": False}, {"total_fee": 8.5}, {"total_fee": "8.5"}, {"total_fee": " 8"},
    {"total_fee": "abc"}, {"total_fee": [1]}, {"total_fee": float("nan")},
    {"total_fee": 2**31}, {"pay_val": "0"}, {"pay_val": "0.00"}, {"pay_val": "-1"},
    {"pay_val": "0.001"}, {"pay_val": 0.005}, {"pay_val": "1e2"}, {"pay_val": "NaN"},
    {"pay_val": "Infinity"}, {"pay_val": float("inf")}, {"pay_val": True},
    {"pay_val": "8,88"}, {"pay_val": "¥8"}, {"total_fee": 100, "pay_val": "2"},
])
def test_refused_amounts(kw):
    with pytest.raises(WnError) as e:
        to_fen(**kw)
    assert e.value.key == "e.weixin.money.invalid"
    assert e.value.kind == "bad_input"


SEED_WXCONF = """
appID      : 'wx45ac..',   # 公众号 API 的 ID 号
appsecret  : '39b0..',     # 公众号 API 秘钥
pay_mch_id : "xxxx"        # 商户号
pay_key    : "xxxx"        # 支付秘钥
pay_time_expire : 10       # 订单过期时间(分钟)，默认10
pay_notify_url : "http:xx" # 支付成功的回调
"""


def test_from_wxconf_seed_snippet():
    acc = Account.from_wxconf(hjson.loads(SEED_WXCONF))
    assert (acc.appid, acc.mch_id, acc.key, acc.appsecret) == \
        ("wx45ac..", "xxxx", "xxxx", "39b0..")
    assert acc.time_expire_minutes == 10
    assert acc.sign_type == "MD5"
    assert acc.api_base == "https://api.mch.weixin.qq.com"


def test_from_wxconf_all_fields_and_masking():
    conf = {"appID": "wxapp", "appsecret": APPSECRET, "pay_mch_id": 1900000109,
            "pay_key": KEY, "pay_time_expire": "15", "pay_notify_url": "http://x/n",
            "pay_api_base": "http://127.0.0.1:8080/", "pay_sign_type": "HMAC-SHA256"}
    acc = Account.from_wxconf(conf)
    assert acc.mch_id == "1900000109"
    assert acc.time_expire_minutes == 15
    assert acc.api_base == "http://127.0.0.1:8080"
    assert acc.sign_type == "HMAC-SHA256"
    for text in (repr(acc), str(acc), str(acc.public_info())):
        assert KEY not in text and APPSECRET not in text
        assert "wxapp" in text


@pytest.mark.parametrize("conf,missing", [
    ({"appsecret": APPSECRET, "pay_mch_id": "1", "pay_key": KEY}, "appID"),
    ({"appID": "wx", "pay_key": KEY}, "pay_mch_id"),
    ({"appID": "wx", "pay_mch_id": "1", "pay_key": ""}, "pay_key"),
])
def test_from_wxconf_missing(conf, missing):
    with pytest.raises(WnError) as e:
        Account.from_wxconf(conf)
    assert missing in e.value.line()
    assert KEY not in e.value.line() and APPSECRET not in e.value.line()


@pytest.mark.parametrize("conf", [
    {"pay_sign_type": "SHA1"}, {"pay_time_expire": 0}, {"pay_time_expire": "ten"},
    {"pay_api_base": "ftp://x"}, {"appID": "has space"},
])
def test_from_wxconf_invalid(conf):
    base = {"appID": "wx", "pay_mch_id": "1", "pay_key": KEY}
    with pytest.raises(WnError) as e:
        Account.from_wxconf(dict(base, **conf))
    assert KEY not in e.value.line()


def test_from_wxconf_not_a_mapping():
    with pytest.raises(WnError):
        Account.from_wxconf(["appID"])


# amounts are exact text: total_fee and pay_val refuse the same stray whitespace (a
# trailing newline slipped through the regex's "$")
@pytest.mark.parametrize("amount", [
    {"total_fee": "888\n"}, {"total_fee": " 888"}, {"total_fee": "888 "},
    {"pay_val": "8.88\n"}, {"pay_val": " 8.88"}, {"pay_val": "8.88 "},
])
def test_amount_text_with_whitespace_is_refused(amount):
    with pytest.raises(WnError) as info:
        to_fen(**amount)
    assert info.value.key == "e.weixin.money.invalid"


@pytest.mark.parametrize("amount, fen", [
    ({"total_fee": "888"}, 888), ({"total_fee": "0888"}, 888), ({"total_fee": 888}, 888),
    ({"total_fee": 8.0}, 8), ({"pay_val": "8.88"}, 888), ({"pay_val": 8.88}, 888),
    ({"pay_val": "0.01"}, 1),
])
def test_exact_amounts_still_read(amount, fen):
    assert to_fen(**amount) == fen
