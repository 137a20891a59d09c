"""Request builders and answer parsers of WeChat Pay v3 (wechatpay-v3.md §4–§10).

No I/O.  A builder returns a :class:`Request` (method, request-target as it goes on
the wire -- path parts percent-encoded by us, not by ``requests`` -- and the exact body
bytes); :meth:`Request.headers` signs it.  :func:`check_answer` verifies a 2xx answer's
signature (every one but the bill file) and turns 4xx/5xx into the v2 error classes;
the ``parse_*`` functions then check what the answer says.

Order input takes the v3 names (``description``, ``amount``, ``payer``) or the seed's
v2 names (``body``, ``total_fee``/``pay_val``, ``openid``, ``spbill_create_ip``,
``time_expire`` as ``yyyyMMddHHmmss``), so the seed's templates stay unchanged.
"""
from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping
from urllib.parse import quote, urlencode, urlsplit

from wnerrors import BAD_INPUT, WnError

from ..api import check_text
from ..errors import MismatchError, SignError, WxPayError
from ..money import to_fen
from .account import V3Account
from .auth import authorization, new_nonce
from .crypto import rsa_sign
from .errors import error_from_answer
from .keys import PUB_KEY_PREFIX

__all__ = ["Request", "BEIJING", "USER_AGENT", "dumps", "rfc3339",
           "build_jsapi_prepay", "build_native_prepay", "build_query", "build_close", "build_refund",
           "build_refund_query", "build_tradebill", "build_download",
           "build_certificates", "check_answer", "parse_prepay", "parse_code_url", "parse_transaction",
           "parse_refund", "parse_bill", "check_bill_file", "jsapi_params",
           "choose_wx_pay_params"]

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
USER_AGENT = "wnshell-wxpay/0.1 (+v3)"
OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
TRANSACTION_ID = re.compile(r"^[0-9A-Za-z]{1,32}$")
_PRINTABLE = re.compile(r"^[!-~]+$")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_STAMP = re.compile(r"^[0-9]{14}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MAX_DAYS = 90

# v3 order fields given as is, with their limits
_V3_OPTIONAL = {"attach": 128, "goods_tag": 32}
_V3_OBJECTS = ("detail", "scene_info", "settle_info")
_SEED_ONLY = ("body", "total_fee", "pay_val", "openid", "spbill_create_ip", "trade_type",
              "device_info", "fee_type", "nonce_str", "sign", "sign_type", "mch_id",
              "time_start", "limit_pay", "product_id")
_KNOWN = {"appid", "mchid", "description", "out_trade_no", "time_expire", "notify_url",
          "amount", "payer", "support_fapiao", *_V3_OPTIONAL, *_V3_OBJECTS, *_SEED_ONLY}


def _bad(key: str, reason: str) -> WnError:
    return WnError(key, reason, BAD_INPUT)


def dumps(obj) -> bytes:
    """The one serialization of a request body: compact UTF-8 JSON (sent as signed)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _as_dt(now) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    if isinstance(now, (int, float)) and not isinstance(now, bool) and 0 <= now < 1e11:
        return datetime.fromtimestamp(now, timezone.utc)
    raise _bad("e.weixin.param.invalid", "now must be a datetime or Unix seconds")


def rfc3339(when) -> str:
    """``2024-01-01T12:00:00+08:00`` (Beijing time, whole seconds)."""
    return _as_dt(when).astimezone(BEIJING).replace(microsecond=0).isoformat()


def _segment(value: str) -> str:
    """A path part percent-encoded the way the official samples do (``|`` → %7C)."""
    return quote(value, safe="-_.~*")


@dataclass(frozen=True)
class Request:
    method: str
    target: str                  # path + ?query, exactly as sent and signed
    body: bytes = b""

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.target

    def headers(self, account: V3Account, now=None, nonce: str | None = None) -> dict:
        ts = int(_as_dt(now).timestamp())
        h = {"Accept": "application/json", "User-Agent": USER_AGENT,
             "Authorization": authorization(account.mchid, account.serial_no,
                                            account.private_key, self.method,
                                            self.target, self.body, ts, nonce)}
        if self.body:
            h["Content-Type"] = "application/json"
        serial = account.keys.newest_serial(ts)
        if serial and serial.startswith(PUB_KEY_PREFIX):
            h["Wechatpay-Serial"] = serial
        return h


def _text(name, value, max_len, required=False) -> str | None:
    """v2's text rule (:func:`wxpay.api.check_text`) counted in characters, as v3
    does, and without 4-byte UTF-8 characters, which v3 refuses."""
    return check_text(name, value, max_len, required, bmp_only=True)


def check_out_trade_no(value) -> str:
    value = _text("out_trade_no", value, 32, required=True)
    if not OUT_TRADE_NO.match(value):
        raise _bad("e.weixin.param.invalid",
                   "out_trade_no must be 6-32 characters of 0-9 A-Z a-z _ - | *")
    return value


def _notify_url(value, name="notify_url") -> str:
    value = _text(name, value, 255)
    if value is None:
        raise _bad("e.weixin.param.missing", f"{name} is required (wxconf pay_notify_url)")
    p = urlsplit(value)
    if p.scheme not in ("http", "https") or not p.hostname or p.query or p.fragment \
            or " " in value:
        raise _bad("e.weixin.param.invalid",
                   f"{name} must be an http(s) URL without query parameters")
    return value


def _time_expire(value, now: datetime, minutes: int) -> str:
    if value in (None, ""):
        return rfc3339(now + timedelta(minutes=minutes))
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _bad("e.weixin.param.invalid", "time_expire must be a time")
    if _STAMP.match(value):
        try:
            when = datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
        except ValueError:
            raise _bad("e.weixin.param.invalid", "time_expire is not a real date") from None
    else:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise _bad("e.weixin.param.invalid",
                       "time_expire must be RFC 3339 or yyyyMMddHHmmss") from None
        if when.tzinfo is None:
            raise _bad("e.weixin.param.invalid", "time_expire needs a time zone offset")
    if when <= now:
        raise _bad("e.weixin.param.invalid", "time_expire is already past")
    return rfc3339(when)


def _fen(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) or isinstance(value, str):
            return to_fen(total_fee=value)
        raise _bad("e.weixin.param.invalid", f"{name} must be an integer number of fen")
    return to_fen(total_fee=value)


def build_jsapi_prepay(account: V3Account, order: Mapping, now=None) -> Request:
    """``POST /v3/pay/transactions/jsapi`` for ``order`` (v3 or seed field names)."""
    return _build_prepay(account, order, now, "JSAPI")


def build_native_prepay(account: V3Account, order: Mapping, now=None) -> Request:
    """``POST /v3/pay/transactions/native`` for ``order``: the JSAPI body without
    ``payer`` (whoever scans the QR code pays); the answer is ``{code_url}``.  An
    ``openid``/``payer`` given is refused rather than silently dropped; the seed's
    ``product_id`` (v2 only) is not sent."""
    return _build_prepay(account, order, now, "NATIVE")


def _build_prepay(account: V3Account, order: Mapping, now, trade_type: str) -> Request:
    if not isinstance(order, Mapping):
        raise _bad("e.weixin.param.invalid", "the order must be a JSON object")
    unknown = sorted(str(k)[:40] for k in order if k not in _KNOWN)
    if unknown:
        raise _bad("e.weixin.param.unknown", "unknown order fields: " + ", ".join(unknown[:5]))
    for name, mine in (("appid", account.appid), ("mchid", account.mchid),
                       ("mch_id", account.mchid)):
        given = order.get(name)
        if given not in (None, "") and str(given) != mine:
            raise _bad("e.weixin.param.invalid", f"{name} differs from the account's")
    if order.get("trade_type") not in (None, "", trade_type):
        raise _bad("e.weixin.param.invalid", f"trade_type must be {trade_type} here")
    if order.get("fee_type") not in (None, "", "CNY"):
        raise _bad("e.weixin.param.invalid", "the currency must be CNY")
    nowdt = _as_dt(now)
    out: dict = {"appid": account.appid, "mchid": account.mchid}
    desc = order.get("description")
    if desc in (None, ""):
        desc = order.get("body")
    out["description"] = _text("description", desc, 127, required=True)
    out["out_trade_no"] = check_out_trade_no(order.get("out_trade_no"))
    out["time_expire"] = _time_expire(order.get("time_expire"), nowdt,
                                      account.time_expire_minutes)
    for name, limit in _V3_OPTIONAL.items():
        v = _text(name, order.get(name), limit)
        if v is not None:
            out[name] = v
    out["notify_url"] = _notify_url(order.get("notify_url") or account.notify_url)
    amount = order.get("amount")
    if amount is not None:
        if not isinstance(amount, Mapping):
            raise _bad("e.weixin.param.invalid", "amount must be an object {total, currency}")
        if amount.get("currency") not in (None, "CNY"):
            raise _bad("e.weixin.param.invalid", "the currency must be CNY")
        total = _fen(amount.get("total"), "amount.total")
        if order.get("total_fee") is not None or order.get("pay_val") is not None:
            if to_fen(order.get("total_fee"), order.get("pay_val")) != total:
                raise _bad("e.weixin.money.invalid", "amount.total and total_fee disagree")
    else:
        total = to_fen(order.get("total_fee"), order.get("pay_val"))
    out["amount"] = {"total": total, "currency": "CNY"}
    payer = order.get("payer")
    if trade_type == "NATIVE":
        if payer is not None or order.get("openid") not in (None, ""):
            raise _bad("e.weixin.param.invalid", "a Native order has no payer (openid)")
    else:
        openid = payer.get("openid") if isinstance(payer, Mapping) else order.get("openid")
        if payer is not None and not isinstance(payer, Mapping):
            raise _bad("e.weixin.param.invalid", "payer must be an object {openid}")
        openid = _text("openid", openid, 128, required=True)
        if not _PRINTABLE.match(openid):
            raise _bad("e.weixin.param.invalid", "openid must be printable ASCII")
        out["payer"] = {"openid": openid}
    for name in _V3_OBJECTS:
        v = order.get(name)
        if v is not None:
            if not isinstance(v, Mapping):
                raise _bad("e.weixin.param.invalid", f"{name} must be an object")
            out[name] = dict(v)
    ip = order.get("spbill_create_ip")
    if ip and "scene_info" not in out:
        out["scene_info"] = {"payer_client_ip": _text("spbill_create_ip", ip, 45)}
    if order.get("support_fapiao") is True:
        out["support_fapiao"] = True
    return Request("POST", f"/v3/pay/transactions/{trade_type.lower()}", dumps(out))


def build_query(account: V3Account, out_trade_no: str | None = None,
                transaction_id: str | None = None) -> Request:
    q = "?" + urlencode({"mchid": account.mchid})
    if transaction_id:
        tid = _text("transaction_id", transaction_id, 32)
        if not TRANSACTION_ID.match(tid):
            raise _bad("e.weixin.param.invalid", "transaction_id must be letters and digits")
        return Request("GET", f"/v3/pay/transactions/id/{_segment(tid)}{q}")
    no = check_out_trade_no(out_trade_no)
    return Request("GET", f"/v3/pay/transactions/out-trade-no/{_segment(no)}{q}")


def build_close(account: V3Account, out_trade_no: str) -> Request:
    no = check_out_trade_no(out_trade_no)
    return Request("POST", f"/v3/pay/transactions/out-trade-no/{_segment(no)}/close",
                   dumps({"mchid": account.mchid}))


def build_refund(account: V3Account, refund: Mapping) -> Request:
    """``POST /v3/refund/domestic/refunds``: ``out_trade_no`` or ``transaction_id``,
    ``out_refund_no``, ``amount{refund, total}`` (or the seed's ``refund_fee``,
    ``total_fee``), ``reason`` (or ``refund_desc``), ``notify_url``."""
    if not isinstance(refund, Mapping):
        raise _bad("e.weixin.param.invalid", "the refund must be a JSON object")
    out: dict = {}
    if refund.get("transaction_id"):
        tid = _text("transaction_id", refund["transaction_id"], 32)
        if not TRANSACTION_ID.match(tid):
            raise _bad("e.weixin.param.invalid", "transaction_id must be letters and digits")
        out["transaction_id"] = tid
    else:
        out["out_trade_no"] = check_out_trade_no(refund.get("out_trade_no"))
    no = _text("out_refund_no", refund.get("out_refund_no"), 64, required=True)
    if not OUT_REFUND_NO.match(no):
        raise _bad("e.weixin.param.invalid",
                   "out_refund_no must be 1-64 characters of 0-9 A-Z a-z _ - | * @")
    out["out_refund_no"] = no
    reason = _text("reason", refund.get("reason") or refund.get("refund_desc"), 80)
    if reason:
        out["reason"] = reason
    url = refund.get("notify_url") or account.refund_notify_url
    if url:
        out["notify_url"] = _notify_url(url)
    if refund.get("funds_account"):
        out["funds_account"] = _text("funds_account", refund["funds_account"], 32)
    amount = refund.get("amount") if isinstance(refund.get("amount"), Mapping) else {}
    r = amount.get("refund", refund.get("refund_fee"))
    t = amount.get("total", refund.get("total_fee"))
    if r is None or t is None:
        raise _bad("e.weixin.param.missing", "a refund needs amount.refund and amount.total")
    r, t = _fen(r, "amount.refund"), _fen(t, "amount.total")
    if r > t:
        raise _bad("e.weixin.money.invalid", "the refund is larger than the order")
    out["amount"] = {"refund": r, "total": t, "currency": "CNY"}
    if isinstance(refund.get("goods_detail"), list):
        out["goods_detail"] = list(refund["goods_detail"])
    return Request("POST", "/v3/refund/domestic/refunds", dumps(out))


def build_refund_query(account: V3Account, out_refund_no: str) -> Request:
    no = _text("out_refund_no", out_refund_no, 64, required=True)
    if not OUT_REFUND_NO.match(no):
        raise _bad("e.weixin.param.invalid", "out_refund_no is malformed")
    return Request("GET", f"/v3/refund/domestic/refunds/{_segment(no)}")


def build_tradebill(account: V3Account, bill_date: str, bill_type: str = "ALL",
                    tar_type: str | None = "GZIP") -> Request:
    if not isinstance(bill_date, str) or not _DATE.match(bill_date):
        raise _bad("e.weixin.param.invalid", "bill_date must be YYYY-MM-DD")
    try:
        datetime.strptime(bill_date, "%Y-%m-%d")
    except ValueError:
        raise _bad("e.weixin.param.invalid", "bill_date is not a real date") from None
    if bill_type not in ("ALL", "SUCCESS", "REFUND"):
        raise _bad("e.weixin.param.invalid", "bill_type must be ALL, SUCCESS or REFUND")
    q = {"bill_date": bill_date, "bill_type": bill_type}
    if tar_type:
        if tar_type != "GZIP":
            raise _bad("e.weixin.param.invalid", "tar_type must be GZIP")
        q["tar_type"] = tar_type
    return Request("GET", "/v3/bill/tradebill?" + urlencode(q))


def build_download(account: V3Account, download_url: str) -> Request:
    """The signed GET of a bill's ``download_url``; only on the account's API host
    (a URL from an answer never sends a signed request elsewhere)."""
    if not isinstance(download_url, str):
        raise WxPayError("e.weixin.v3.bill.invalid", "download_url is missing")
    p, base = urlsplit(download_url), urlsplit(account.api_base)
    if (p.scheme, p.netloc) != (base.scheme, base.netloc) or not p.path.startswith("/v3/") \
            or _CONTROL.search(download_url) or " " in download_url:
        raise WxPayError("e.weixin.v3.bill.invalid",
                         "download_url is not on the account's WeChat Pay host")
    return Request("GET", p.path + ("?" + p.query if p.query else ""))


def build_certificates(account: V3Account) -> Request:
    return Request("GET", "/v3/certificates")


# ----- answers ---------------------------------------------------------------------
def check_answer(account: V3Account, status: int, headers: Mapping, body: bytes,
                 now=None, verify: bool = True, what: str = "WeChat Pay"):
    """The JSON of a verified 2xx answer (None for an empty 204).

    non-2xx → the mapped error (:func:`wxpay.v3.errors.error_from_answer`); a 2xx
    without a valid signature → SignError / UnknownSerial; a signed 2xx body that is
    not a JSON object → WxPayError ``e.weixin.reply.invalid``."""
    if not 200 <= status < 300:
        raise error_from_answer(status, body, what)
    if verify:
        account.keys.verify(headers, body, None if now is None else _as_dt(now).timestamp())
    if not body:
        return None
    try:
        doc = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WxPayError("e.weixin.reply.invalid", f"{what} answered a body that is not JSON") \
            from None
    if not isinstance(doc, dict):
        raise WxPayError("e.weixin.reply.invalid", f"{what} answered JSON that is not an object")
    return doc


def parse_prepay(doc) -> str:
    pid = doc.get("prepay_id") if isinstance(doc, dict) else None
    if not isinstance(pid, str) or not pid or len(pid) > 64 or not _PRINTABLE.match(pid):
        raise WxPayError("e.weixin.reply.invalid", "the prepay answer has no prepay_id")
    return pid


def parse_code_url(doc) -> str:
    """The ``code_url`` of a Native prepay answer (``weixin://…``, printable)."""
    url = doc.get("code_url") if isinstance(doc, dict) else None
    if not isinstance(url, str) or not url.startswith("weixin://") or len(url) > 256 \
            or not _PRINTABLE.match(url):
        raise WxPayError("e.weixin.reply.nocodeurl",
                         "the Native prepay answer has no weixin:// code_url")
    return url


def _check_owner(account: V3Account, doc: Mapping, where: str, appid=True) -> None:
    if doc.get("mchid") != account.mchid:
        raise MismatchError(where, "mch_id")
    if appid and doc.get("appid") != account.appid:
        raise MismatchError(where, "appid")


def _int_amount(doc: Mapping, where: str, *names) -> dict:
    amount = doc.get("amount")
    if not isinstance(amount, dict):
        raise WxPayError(f"e.weixin.{where}.amount_invalid", f"the {where} has no amount")
    for n in names:
        v = amount.get(n)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise WxPayError(f"e.weixin.{where}.amount_invalid",
                             f"amount.{n} of the {where} is not an integer of fen")
    return amount


_TRADE_STATES = {"SUCCESS", "REFUND", "NOTPAY", "CLOSED", "REVOKED", "USERPAYING",
                 "PAYERROR"}


def parse_transaction(account: V3Account, doc, out_trade_no: str | None = None,
                      where: str = "reply") -> dict:
    """A §6 transaction (query answer or decrypted payment notification), checked:
    mchid/appid the account's, out_trade_no the one asked, trade_state known,
    amount.total an integer."""
    if not isinstance(doc, dict):
        raise WxPayError(f"e.weixin.{where}.invalid", f"the {where} is not a transaction")
    _check_owner(account, doc, where)
    if out_trade_no is not None and doc.get("out_trade_no") != out_trade_no:
        raise MismatchError(where, "out_trade_no")
    if doc.get("trade_state") not in _TRADE_STATES:
        raise WxPayError(f"e.weixin.{where}.invalid", f"the {where} has no known trade_state")
    _int_amount(doc, where, "total")
    return doc


_REFUND_STATES = {"SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"}


def parse_refund(account: V3Account, doc, out_refund_no: str | None = None,
                 where: str = "reply") -> dict:
    """A refund answer (§8): out_refund_no the one asked, status known, amounts
    integers.  (Refund answers carry no mchid; refund notifications do --
    :func:`wxpay.v3.notify.parse_notification` checks it.)"""
    if not isinstance(doc, dict):
        raise WxPayError(f"e.weixin.{where}.invalid", f"the {where} is not a refund")
    if out_refund_no is not None and doc.get("out_refund_no") != out_refund_no:
        raise MismatchError(where, "out_refund_no")
    status = doc.get("status", doc.get("refund_status"))
    if status not in _REFUND_STATES:
        raise WxPayError(f"e.weixin.{where}.invalid", f"the {where} has no known refund status")
    _int_amount(doc, where, "refund", "total")
    return doc


def parse_bill(account: V3Account, doc) -> dict:
    if not isinstance(doc, dict) or doc.get("hash_type") != "SHA1" \
            or not isinstance(doc.get("hash_value"), str) \
            or not re.fullmatch(r"[0-9a-fA-F]{40}", doc["hash_value"]) \
            or not isinstance(doc.get("download_url"), str):
        raise WxPayError("e.weixin.reply.invalid",
                         "the bill answer lacks hash_type SHA1, hash_value or download_url")
    build_download(account, doc["download_url"])       # refuses another host
    return doc


def check_bill_file(info: Mapping, content: bytes, max_bytes: int = 64 << 20) -> str:
    """The bill text: gunzipped when gzip, its SHA-1 compared with ``hash_value``."""
    data = bytes(content)
    if data[:2] == b"\x1f\x8b":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = d.decompress(data, max_bytes + 1)
        except zlib.error:
            raise WxPayError("e.weixin.v3.bill.invalid", "the bill file is not valid gzip") \
                from None
        if len(data) > max_bytes:
            raise WxPayError("e.weixin.v3.bill.invalid", "the bill file is too large")
    if hashlib.sha1(data).hexdigest().lower() != str(info.get("hash_value", "")).lower():
        raise SignError("the bill file does not match its SHA-1 hash_value")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WxPayError("e.weixin.v3.bill.invalid", "the bill file is not UTF-8") from None


# ----- JSAPI page parameters -----------------------------------------------------------
def jsapi_params(account: V3Account, prepay_id: str, now=None, nonce=None) -> dict:
    """``getBrandWCPayRequest`` arguments with ``signType: "RSA"``; paySign over
    ``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` with the merchant key."""
    if isinstance(prepay_id, str) and prepay_id.startswith("prepay_id="):
        prepay_id = prepay_id[len("prepay_id="):]
    pid = parse_prepay({"prepay_id": prepay_id})
    nonce = nonce or new_nonce()
    if not isinstance(nonce, str) or not re.fullmatch(r"[0-9A-Za-z]{1,32}", nonce):
        raise _bad("e.weixin.param.invalid", "nonceStr must be 1-32 letters and digits")
    p = {"appId": account.appid, "timeStamp": str(int(_as_dt(now).timestamp())),
         "nonceStr": nonce, "package": "prepay_id=" + pid, "signType": "RSA"}
    p["paySign"] = rsa_sign(account.private_key,
                            f"{p['appId']}\n{p['timeStamp']}\n{p['nonceStr']}\n{p['package']}\n")
    return p


def choose_wx_pay_params(account: V3Account, prepay_id: str, now=None, nonce=None) -> dict:
    """``wx.chooseWXPay`` arguments: lowercase ``timestamp``, same paySign."""
    full = jsapi_params(account, prepay_id, now, nonce)
    return {"timestamp": full["timeStamp"], "nonceStr": full["nonceStr"],
            "package": full["package"], "signType": "RSA", "paySign": full["paySign"]}
