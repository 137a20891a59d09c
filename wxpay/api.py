"""Request builders and reply/notification checks of WeChat Pay v2 (no I/O here).

* :func:`build_unifiedorder`, :func:`build_orderquery`, :func:`build_closeorder`
  return the signed request as a dict of strings (``to_xml`` makes the body).
* :func:`parse_reply` checks a reply: return_code, signature, appid/mch_id,
  result_code.  :func:`parse_notification` does every check of wechatpay-v2.md §4 that
  needs no store.  :func:`reply_xml` is the answer to a notification.
* :func:`jsapi_params` / :func:`choose_wx_pay_params`: what the page passes to
  ``getBrandWCPayRequest`` / ``wx.chooseWXPay`` (timeStamp in seconds, own paySign).
"""
from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta, timezone
from typing import Mapping
from urllib.parse import urlsplit

from wnerrors import BAD_INPUT, WnError

from .account import Account
from .errors import (MismatchError, NotifyFail, ResultFail, ReturnFail, SignError,
                     SignMissing, WxPayError)
from .money import to_fen
from .sign import MD5, new_nonce, normalize_sign_type, sign, verify
from .xmlcodec import MAX_BYTES, cdata, from_xml

__all__ = ["BEIJING", "new_nonce", "beijing_stamp", "parse_beijing", "build_unifiedorder",
           "build_orderquery", "build_closeorder", "parse_reply", "parse_notification",
           "check_notification_amount", "jsapi_params", "choose_wx_pay_params",
           "reply_xml", "SUCCESS_XML", "cut_utf8", "TRADE_TYPES", "MIN_EXPIRE",
           "TIME_EXPIRE_SHORT"]

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{1,32}$")
_PRINTABLE = re.compile(r"^[!-~]+$")

SUCCESS_XML = ("<xml><return_code><![CDATA[SUCCESS]]></return_code>"
               "<return_msg><![CDATA[OK]]></return_msg></xml>")

# the fields of a unifiedorder request: (name, max chars) for the optional ones;
# body, attach and detail are limited in UTF-8 bytes (_BYTE_LIMITED), as WeChat counts
_OPTIONAL = {"device_info": 32, "detail": 6000, "attach": 127, "fee_type": 16,
             "time_start": 14, "time_expire": 14, "goods_tag": 32, "limit_pay": 32,
             "product_id": 32, "receipt": 8, "scene_info": 256, "profit_sharing": 16}
# fields the builder fills itself; accepted in the input only when consistent
_FILLED = {"appid", "mch_id", "nonce_str", "notify_url", "trade_type", "sign_type", "sign"}
_REQUIRED = ("body", "out_trade_no", "spbill_create_ip")
_BYTE_LIMITED = {"body": 127, "attach": 127, "detail": 6000}
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
TRADE_TYPES = ("JSAPI", "NATIVE", "MWEB")
# WeChat refuses a time_expire closer than this (micropay: 1 min; not supported here)
MIN_EXPIRE = timedelta(minutes=5)
TIME_EXPIRE_SHORT = "time_expire时间过短，刷卡至少1分钟，其他5分钟"
_AMOUNT = ("total_fee", "pay_val")


def _bad(key: str, reason: str) -> WnError:
    return WnError(key, reason, BAD_INPUT)


def _as_datetime(now) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        if not 0 <= now < 1e11:
            raise _bad("e.weixin.param.invalid",
                       "a time must be Unix seconds (not milliseconds)")
        return datetime.fromtimestamp(now, timezone.utc)
    raise _bad("e.weixin.param.invalid", "now must be a datetime or Unix seconds")


def beijing_stamp(when=None) -> str:
    """``yyyyMMddHHmmss`` in Beijing time (UTC+8) of a datetime (naive = UTC) or
    Unix seconds; now when None."""
    return _as_datetime(when).astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def parse_beijing(stamp: str) -> datetime:
    """An aware datetime from ``yyyyMMddHHmmss`` Beijing time; BAD_INPUT if invalid."""
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        stamp = str(stamp)
    if not isinstance(stamp, str) or len(stamp) != 14 or not (stamp.isascii()
                                                              and stamp.isdigit()):
        raise _bad("e.weixin.param.invalid", "a time must be yyyyMMddHHmmss")
    # the fields at their fixed places; datetime checks the ranges (strptime costs ten
    # times as much, and would read "2026121" + "1..." as a one-digit month)
    try:
        return datetime(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]),
                        int(stamp[10:12]), int(stamp[12:]), tzinfo=BEIJING)
    except ValueError:
        raise _bad("e.weixin.param.invalid", "a time must be a real yyyyMMddHHmmss date") from None


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` of at most ``max_bytes`` UTF-8 bytes, cut on a
    character boundary (never half a character)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def check_text(name: str, value, max_len: int, required: bool = False,
               byte_limit: int | None = None, bmp_only: bool = False) -> str | None:
    """A text field of a request (v2's and v3's rules alike): None when absent (an
    error when ``required``), an int taken as its digits, at most ``max_len``
    characters (or ``byte_limit`` UTF-8 bytes, as v2 counts body/attach/detail), no
    control characters; ``bmp_only``: no 4-byte UTF-8 characters (v3 refuses them)."""
    if value is None or value == "":
        if required:
            raise _bad("e.weixin.param.missing", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad("e.weixin.param.invalid", f"{name} must be text")
    value = str(value)
    if byte_limit is not None:
        if len(value.encode("utf-8", "surrogatepass")) > byte_limit:
            raise _bad("e.weixin.param.invalid",
                       f"{name} is longer than {byte_limit} UTF-8 bytes "
                       f"(WeChat: {name}参数长度有误)")
    elif len(value) > max_len:
        raise _bad("e.weixin.param.invalid", f"{name} is longer than {max_len} characters")
    if _CONTROL.search(value):
        raise _bad("e.weixin.param.invalid", f"{name} holds control characters")
    if bmp_only and any(ord(c) > 0xFFFF for c in value):
        raise _bad("e.weixin.param.invalid", f"{name} holds 4-byte UTF-8 characters")
    return value


def _text(name: str, value, max_len: int, required: bool = False) -> str | None:
    return check_text(name, value, max_len, required, _BYTE_LIMITED.get(name))


def _check_out_trade_no(value) -> str:
    value = _text("out_trade_no", value, 32, required=True)
    if not OUT_TRADE_NO.match(value):
        raise _bad("e.weixin.param.invalid",
                   "out_trade_no must be 1-32 characters of 0-9 A-Z a-z _ - | *")
    return value


def _check_nonce(value) -> str:
    value = _text("nonce_str", value, 32, required=True)
    if not _PRINTABLE.match(value):
        raise _bad("e.weixin.param.invalid", "nonce_str must be printable ASCII without spaces")
    return value


def _check_ip(value) -> str:
    value = _text("spbill_create_ip", value, 64, required=True)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _bad("e.weixin.param.invalid", "spbill_create_ip is not an IP address") from None
    return value


def _check_notify_url(value) -> str:
    value = _text("notify_url", value, 256)
    if value is None:
        raise _bad("e.weixin.param.missing",
                   "notify_url is required (wxconf pay_notify_url)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or " " in value:
        raise _bad("e.weixin.param.invalid",
                   "notify_url must be an http(s) URL without query parameters")
    return value


def _signed(account: Account, params: dict) -> dict:
    if account.sign_type != MD5:
        params["sign_type"] = account.sign_type
    params["sign"] = sign(params, account.key, account.sign_type)
    return params


def build_unifiedorder(account: Account, order: Mapping, now=None, nonce=None) -> dict:
    """The signed unifiedorder request for a JSAPI payment.

    ``order``: ``body, out_trade_no, total_fee`` (fen) or ``pay_val`` (yuan),
    ``openid, spbill_create_ip``, optional ``time_expire`` (yyyyMMddHHmmss Beijing)
    and the optional fields of §2.  Fills appid, mch_id, nonce_str, notify_url,
    trade_type (JSAPI), device_info (WEB), time_expire (now + the account's minutes),
    sign_type (when not MD5) and sign.  Bad input raises WnError kind BAD_INPUT.
    """
    if not isinstance(order, Mapping):
        raise _bad("e.weixin.param.invalid", "the order must be a JSON object")
    unknown = sorted(k for k in order
                     if k not in _OPTIONAL and k not in _FILLED and k not in _REQUIRED
                     and k not in _AMOUNT and k != "openid")
    if unknown:
        raise _bad("e.weixin.param.unknown",
                   "unknown unifiedorder fields: " + ", ".join(str(k)[:40] for k in unknown[:5]))
    for name, mine in (("appid", account.appid), ("mch_id", account.mch_id)):
        given = order.get(name)
        if given not in (None, "") and str(given) != mine:
            raise _bad("e.weixin.param.invalid", f"{name} differs from the account's")
    given_st = order.get("sign_type")
    if given_st not in (None, "") and normalize_sign_type(given_st) != account.sign_type:
        raise _bad("e.weixin.param.invalid", "sign_type differs from the account's")
    trade_type = order.get("trade_type") or "JSAPI"
    if trade_type not in TRADE_TYPES:
        raise _bad("e.weixin.param.invalid", "trade_type must be JSAPI, NATIVE or MWEB")
    nowdt = _as_datetime(now)

    params: dict[str, str] = {"appid": account.appid, "mch_id": account.mch_id}
    params["device_info"] = _text("device_info", order.get("device_info"), 32) or "WEB"
    params["nonce_str"] = _check_nonce(nonce if nonce is not None
                                       else order.get("nonce_str") or new_nonce())
    params["body"] = _text("body", order.get("body"), 6000, required=True)
    for name in ("detail", "attach"):
        value = _text(name, order.get(name), _OPTIONAL[name])
        if value is not None:
            params[name] = value
    params["out_trade_no"] = _check_out_trade_no(order.get("out_trade_no"))
    fee_type = _text("fee_type", order.get("fee_type"), 16)
    if fee_type is not None:
        if not re.match(r"^[A-Z]{3}$", fee_type):
            raise _bad("e.weixin.param.invalid", "fee_type must be a currency code like CNY")
        params["fee_type"] = fee_type
    params["total_fee"] = str(to_fen(order.get("total_fee"), order.get("pay_val")))
    params["spbill_create_ip"] = _check_ip(order.get("spbill_create_ip"))
    time_start = order.get("time_start")
    if time_start not in (None, ""):
        parse_beijing(time_start)
        params["time_start"] = str(time_start)
    time_expire = order.get("time_expire")
    if time_expire in (None, ""):
        time_expire = beijing_stamp(nowdt + timedelta(minutes=account.time_expire_minutes))
    else:
        time_expire = str(time_expire)
    when = parse_beijing(time_expire)
    if when <= nowdt:
        raise _bad("e.weixin.param.invalid", "time_expire is already past")
    if when < nowdt.replace(microsecond=0) + MIN_EXPIRE:
        raise _bad("e.weixin.param.invalid", "time_expire is less than 5 minutes from now "
                   f"(WeChat: {TIME_EXPIRE_SHORT})")
    params["time_expire"] = time_expire
    for name in ("goods_tag", "limit_pay", "product_id", "receipt", "scene_info",
                 "profit_sharing"):
        value = _text(name, order.get(name), _OPTIONAL[name])
        if value is not None:
            params[name] = value
    params["notify_url"] = _check_notify_url(order.get("notify_url") or account.notify_url)
    params["trade_type"] = trade_type
    openid = _text("openid", order.get("openid"), 128, required=(trade_type == "JSAPI"))
    if openid is not None:
        if not _PRINTABLE.match(openid):
            raise _bad("e.weixin.param.invalid", "openid must be printable ASCII")
        params["openid"] = openid
    if trade_type == "NATIVE" and "product_id" not in params:
        raise _bad("e.weixin.param.missing", "product_id is required for trade_type NATIVE")
    if trade_type == "MWEB" and "scene_info" not in params:
        raise _bad("e.weixin.param.missing", "scene_info is required for trade_type MWEB "
                   '({"h5_info":{"type":"Wap","wap_url":...,"wap_name":...}})')
    return _signed(account, params)


def build_orderquery(account: Account, out_trade_no: str | None = None, nonce=None,
                     transaction_id: str | None = None) -> dict:
    """The signed orderquery request (by out_trade_no, or transaction_id)."""
    params = {"appid": account.appid, "mch_id": account.mch_id}
    if transaction_id:
        params["transaction_id"] = _text("transaction_id", transaction_id, 32)
    else:
        params["out_trade_no"] = _check_out_trade_no(out_trade_no)
    params["nonce_str"] = _check_nonce(nonce or new_nonce())
    return _signed(account, params)


def build_closeorder(account: Account, out_trade_no: str, nonce=None) -> dict:
    """The signed closeorder request."""
    params = {"appid": account.appid, "mch_id": account.mch_id,
              "out_trade_no": _check_out_trade_no(out_trade_no),
              "nonce_str": _check_nonce(nonce or new_nonce())}
    return _signed(account, params)


def _parse(xml, max_bytes) -> dict:
    if isinstance(xml, (bytes, str)):        # the usual case, before the slower ABC check
        return from_xml(xml, max_bytes=max_bytes)
    if isinstance(xml, Mapping):
        return {str(k): ("" if v is None else str(v)) for k, v in xml.items()}
    return from_xml(xml, max_bytes=max_bytes)


def _check_owner(account: Account, params: Mapping, where: str) -> None:
    for name, mine in (("appid", account.appid), ("mch_id", account.mch_id)):
        if params.get(name) != mine:
            raise MismatchError(where, name)


def _check_sign(account: Account, params: Mapping) -> None:
    """The account's pay_sign_type decides (wechatpay-v2.md §8.7): a payload that names
    another sign_type is refused (an HMAC account never accepts MD5: no downgrade), and
    one without sign_type (WeChat's HMAC notifications carry none) is checked with the
    account's type."""
    if not params.get("sign"):
        raise SignMissing("the WeChat payload has no sign")
    claimed = params.get("sign_type")
    if claimed not in (None, "") and normalize_sign_type(claimed) != account.sign_type:
        raise SignError(f"the WeChat payload is signed {str(claimed)[:16]}, the account "
                        f"uses {account.sign_type}")
    if not verify(params, account.key, account.sign_type):
        raise SignError("the signature of the WeChat payload does not match")


def parse_reply(account: Account, xml, max_bytes: int = MAX_BYTES,
                check_result: bool = True) -> dict:
    """Check a unifiedorder/orderquery/closeorder reply and return its fields.

    return_code FAIL → ReturnFail; SUCCESS without sign or with a bad sign →
    SignError; appid/mch_id not the account's → MismatchError; result_code FAIL →
    ResultFail(err_code) (unless ``check_result=False``: then a verified
    result_code=FAIL reply is returned as is).  The signature is checked with the
    account's pay_sign_type; a reply naming another sign_type is refused.
    """
    params = _parse(xml, max_bytes)
    rc = params.get("return_code")
    if rc != "SUCCESS":
        if rc == "FAIL":
            raise ReturnFail(params.get("return_msg", ""), params.get("err_code"))
        raise WxPayError("e.weixin.reply.invalid", "the reply has no valid return_code")
    _check_sign(account, params)
    _check_owner(account, params, "reply")
    result = params.get("result_code")
    if check_result and result != "SUCCESS":
        raise ResultFail(params.get("err_code"), params.get("err_code_des"))
    return params


def parse_notification(account: Account, xml, max_bytes: int = MAX_BYTES) -> dict:
    """The checks of §4 that need no store, in order; returns the fields.

    unsafe/invalid XML → XmlError; return_code not SUCCESS → NotifyFail
    (``e.weixin.notify.return_fail``); no sign → SignMissing; bad signature (with the
    account's pay_sign_type; a payload claiming another sign_type is refused) → SignError; appid / mch_id not the account's →
    MismatchError (``e.weixin.notify.appid_mismatch`` / ``...mch_id_mismatch``).
    The caller then checks out_trade_no, total_fee (:func:`check_notification_amount`)
    and acts on result_code.
    """
    params = _parse(xml, max_bytes)
    if params.get("return_code") != "SUCCESS":
        raise NotifyFail(params.get("return_code"), params.get("return_msg"))
    _check_sign(account, params)
    _check_owner(account, params, "notify")
    return params


def check_notification_amount(params: Mapping, expected_fen: int) -> int:
    """``total_fee`` of a verified notification must equal the order's fen amount."""
    fee = params.get("total_fee")
    if not isinstance(fee, str) or not fee.isdigit() or not fee.isascii():
        raise WxPayError("e.weixin.notify.amount_invalid",
                         "the notification's total_fee is not an integer")
    if int(fee) != int(expected_fen):
        raise WxPayError("e.weixin.notify.amount_mismatch",
                         "the notification's total_fee is not the order's amount")
    return int(fee)


def _timestamp(now) -> str:
    return str(int(_as_datetime(now).timestamp()))


def _check_prepay(prepay_id) -> str:
    if not isinstance(prepay_id, str) or not prepay_id or len(prepay_id) > 64 \
            or not _PRINTABLE.match(prepay_id):
        raise _bad("e.weixin.param.invalid", "prepay_id is missing or malformed")
    return prepay_id


def jsapi_params(account: Account, prepay_id: str, now=None, nonce=None) -> dict:
    """``getBrandWCPayRequest`` arguments: appId, timeStamp (Unix seconds as text),
    nonceStr, package (``prepay_id=…``), signType, paySign (signed over exactly the
    other five; never the unifiedorder sign)."""
    params = {"appId": account.appid, "timeStamp": _timestamp(now),
              "nonceStr": _check_nonce(nonce or new_nonce()),
              "package": "prepay_id=" + _check_prepay(prepay_id),
              "signType": account.sign_type}
    params["paySign"] = sign(params, account.key, account.sign_type)
    return params


def choose_wx_pay_params(account: Account, prepay_id: str, now=None, nonce=None) -> dict:
    """``wx.chooseWXPay`` arguments: timestamp (lowercase), nonceStr, package,
    signType, paySign -- the same signature as :func:`jsapi_params` (computed over
    appId and timeStamp with a capital S)."""
    full = jsapi_params(account, prepay_id, now=now, nonce=nonce)
    return {"timestamp": full["timeStamp"], "nonceStr": full["nonceStr"],
            "package": full["package"], "signType": full["signType"],
            "paySign": full["paySign"]}


def reply_xml(ok: bool, msg: str = "OK") -> str:
    """The answer to a notification: exactly :data:`SUCCESS_XML` for success, else
    ``return_code=FAIL`` with ``msg``."""
    if ok and msg == "OK":
        return SUCCESS_XML
    code = "SUCCESS" if ok else "FAIL"
    msg = " ".join(str(msg if msg is not None else "").split())[:128]
    return (f"<xml><return_code><![CDATA[{code}]]></return_code>"
            f"<return_msg>{cdata(msg) if msg else ''}</return_msg></xml>")
