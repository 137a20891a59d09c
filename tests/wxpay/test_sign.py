import hashlib
import hmac

import pytest

from wxpay.errors import SignError
from wxpay.sign import normalize_sign_type, sign, string_to_sign, verify

from .conftest import KEY

V1 = {"test1": "test1", "test2": "test2"}
V2 = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
      "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}


def test_vector_one_string_md5_hmac():
    assert string_to_sign(V1, KEY) == \
        "test1=test1&test2=test2&key=192006250b4c09247ec02edce69f6a2d"
    assert sign(V1, KEY) == "1E3A8D73B5A4AEE787C0F68B5DAB8520"
    assert sign(V1, KEY, "MD5") == "1E3A8D73B5A4AEE787C0F68B5DAB8520"
    assert sign(V1, KEY, "HMAC-SHA256") == \
        "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659"


def test_vector_two():
    assert sign(V2, KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert verify(dict(V2, sign="9A0A8659F005D6984697E2CA0A9CF3B7"), KEY)


def test_sign_and_empty_values_dropped_sign_type_kept():
    base = sign(V1, KEY)
    assert sign(dict(V1, sign="WHATEVER", empty="", none=None), KEY) == base
    with_type = dict(V1, sign_type="MD5")
    assert string_to_sign(with_type, KEY) == \
        f"sign_type=MD5&test1=test1&test2=test2&key={KEY}"
    assert sign(with_type, KEY) != base


def test_int_zero_is_a_value():
    s = string_to_sign({"coupon_fee": 0, "a": "x"}, KEY)
    assert s == f"a=x&coupon_fee=0&key={KEY}"
    assert sign({"coupon_fee": 0, "a": "x"}, KEY) != sign({"a": "x"}, KEY)
    # an int and its text sign the same
    assert sign({"total_fee": 888}, KEY) == sign({"total_fee": "888"}, KEY)


def test_ascii_order_raw_values_utf8_unknown_fields():
    p = {"b": "a b&c=d", "B": "upper", "a_new_field": "中文 ", "_": "x"}
    s = string_to_sign(p, KEY)
    assert s == f"B=upper&_=x&a_new_field=中文 &b=a b&c=d&key={KEY}"
    expected = hashlib.md5(s.encode("utf-8")).hexdigest().upper()
    assert sign(p, KEY) == expected
    h = hmac.new(KEY.encode(), s.encode("utf-8"), hashlib.sha256).hexdigest().upper()
    assert sign(p, KEY, "HMAC-SHA256") == h


def test_verify_variants():
    signed = dict(V1, sign=sign(V1, KEY))
    assert verify(signed, KEY)
    assert not verify(dict(signed, test1="changed"), KEY)
    assert not verify(dict(signed, extra="added"), KEY)       # unknown fields covered
    assert not verify(V1, KEY)                                 # no sign
    assert not verify(dict(signed, sign=signed["sign"].lower()), KEY)
    assert not verify(dict(signed, sign="签名"), KEY)
    assert not verify(dict(signed, sign="\ud800" + signed["sign"][1:]), KEY)   # lone surrogate
    assert not verify(dict(signed, sign=signed["sign"] + "\u00e9"), KEY)
    assert not verify(dict(signed, sign=signed["sign"][:-1]), KEY)           # one short
    assert not verify(signed, "another-key")
    hm = dict(V1, sign_type="HMAC-SHA256")
    hm["sign"] = sign(hm, KEY, "HMAC-SHA256")
    assert verify(hm, KEY)                      # sign_type from the payload
    assert not verify(hm, KEY, "MD5")           # explicit type wins
    md5_claiming_hmac = dict(V1, sign_type="HMAC-SHA256")
    md5_claiming_hmac["sign"] = sign(md5_claiming_hmac, KEY, "MD5")
    assert not verify(md5_claiming_hmac, KEY)


def test_unknown_sign_type_and_no_key():
    with pytest.raises(SignError) as e:
        sign(V1, KEY, "SHA1")
    assert e.value.key == "e.weixin.sign.invalid"
    with pytest.raises(SignError):
        verify(dict(V1, sign="X", sign_type="RSA"), KEY)
    with pytest.raises(SignError):
        sign(V1, "")


@pytest.mark.parametrize("given, normal", [
    (None, "MD5"), ("", "MD5"), ("MD5", "MD5"), ("md5", "MD5"), (" HMAC-SHA256 ", "HMAC-SHA256"),
    ("hmac-sha256", "HMAC-SHA256"), ("HMAC-SHA256", "HMAC-SHA256")])
def test_sign_type_names_normalised(given, normal):
    assert normalize_sign_type(given) == normal
    assert type(normalize_sign_type(given)) is str


def test_str_subclass_values_and_sign_type_sign_as_their_text():
    class Text(str):
        pass
    plain = {"a": "x", "b": "0"}
    assert string_to_sign({"a": Text("x"), "b": Text("0")}, KEY) == string_to_sign(plain, KEY)
    assert sign(plain, KEY, Text("hmac-sha256")) == sign(plain, KEY, "HMAC-SHA256")
    assert type(normalize_sign_type(Text("MD5"))) is str
