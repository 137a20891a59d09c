"""A loopback simulator of the WeChat Pay v3 merchant API (wechatpay-v3.md §1–§10, §13).

The protocol logic lives in :class:`V3Simulator`: ``handle(method, target, headers,
body) -> (status, headers, body)`` answers one request given its *raw* request-target
(path + query still percent-encoded, as the merchant signed it).  It owns no socket, so
the combined simulator can mount it next to the v2 one (every v3 path starts with
``/v3/``, every control path with ``/sim/v3/``).  :mod:`wxpay.v3.simserver` serves it
alone over HTTP (``python -m wxpay.v3.simulator``), or as a WSGI app.

In-process::

    with V3Server(V3Simulator()) as srv:
        sim = srv.sim
        sim.add_merchant(mchid, [appid], merchant_public_key_pem, serial_no, apiv3_key)
        ... sign requests with the merchant key, trust sim.platform_certificate_pem()
            or sim.public_key_pem() / sim.public_key_id ...
        sim.pay(prepay_id=...)              # or POST /sim/v3/pay
        sim.wait_notified(out_trade_no)

What it checks: every ``/v3/`` request's ``Authorization`` (schema, mchid known, the
merchant's certificate serial, timestamp within 5 minutes, SHA256withRSA over
``METHOD\\nTARGET\\nTS\\nNONCE\\nBODY\\n`` with the *registered* merchant public key),
``Accept``/``User-Agent``, then the endpoint's fields; failures are §10 error bodies.
Every 2xx answer is signed (``Wechatpay-*`` headers, with ``Wechatpay-Signature-Type``)
by the platform certificate's key or by the WeChat Pay public key, per merchant
(``sign_with``); bill files are not.  Notifications are encrypted with the merchant's
APIv3 key, signed the same way, and retried on ``retry_schedule`` until a 2xx.

Native prepay (``POST /v3/pay/transactions/native``) is JSAPI's without ``payer``; it
answers ``{code_url}`` (``weixin://wxpay/bizpayurl?pr=…``), renewed with the prepay
after 2 h; ``pay(code_url=…, openid=…)`` is the user scanning and paying it.

Re-entry (same ``out_trade_no`` of an unpaid order): the same trade type, appid, description,
amount, payer, notify_url, attach, goods_tag, detail, scene_info, settle_info and
support_fapiao → the order's prepay_id (a fresh one after 2 h); anything else →
403 OUT_TRADE_NO_USED; paid → 400 ORDER_PAID; closed → 400 ORDER_CLOSED.  Close is
idempotent (204 again).  The same ``out_refund_no`` with the same amounts → the same
refund; other amounts → 400 INVALID_REQUEST.

Faults (``POST /sim/v3/faults``, ``{}`` clears), for ``/v3/`` answers: ``latency`` s,
``timeout`` (hold the answer ``hold`` s, the request is processed), ``http_status`` N
(an unsigned plain-text answer), ``html``, ``garbage`` (an unsigned 200 of random
bytes), ``systemerror`` (500 SYSTEM_ERROR),
``ratelimit`` (429 FREQUENCY_LIMITED), ``err_code`` CODE (its §10 status), ``bad_sign``,
``unsigned``, ``signtest`` (a ``WECHATPAY/SIGNTEST/`` signature), ``unknown_serial``;
for notifications: ``duplicate_notify`` N, ``concurrent_notify`` N, ``notify_latency``
s, ``notify_signtest`` (a probe before the real one), ``notify_bad_sign``; ``count``
k applies them to the next k uses only.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import SignError, WxPayError
from .api import BEIJING, OUT_REFUND_NO, OUT_TRADE_NO, rfc3339
from .auth import (WINDOW, header, new_nonce, parse_authorization, request_message,
                   signature_headers)
from .crypto import aes_gcm_encrypt, load_public_key, public_pem, rsa_verify, serial_hex
from ..bill import format_bill
from ..billbook import BillBook
from ..simfaults import FaultSwitches
from ..simledger import LedgerMixin
from ..simrun import deliver_with_retries, is_loopback_host
from .simbill import ledger_trades
from .simkeys import new_certificate, new_key
from .simrecords import Merchant, Order, Refund, notify_snapshot

__all__ = ["V3Simulator", "STATUS_OF", "is_loopback_host"]

PREPAY_TTL = 2 * 3600
DEFAULT_EXPIRE = 7 * 86400
MAX_EXPIRE = 90 * 86400
MAX_BODY = 64 * 1024
BILL_URL_TTL = 30
KEY_FIELDS = ("trade_type", "appid", "description", "amount", "payer", "notify_url", "attach",
              "goods_tag", "detail", "scene_info", "settle_info", "support_fapiao")
# §10: the HTTP status of each error code
STATUS_OF = {"PARAM_ERROR": 400, "INVALID_REQUEST": 400, "APPID_MCHID_NOT_MATCH": 400,
             "MCH_NOT_EXISTS": 400, "ORDER_CLOSED": 400, "ORDER_PAID": 400,
             "NO_STATEMENT_EXIST": 400, "SIGN_ERROR": 401, "ORDER_NOT_EXIST": 404,
             "RESOURCE_NOT_EXISTS": 404, "NO_AUTH": 403, "NOT_ENOUGH": 403,
             "OUT_TRADE_NO_USED": 403, "RULE_LIMIT": 403, "TRADE_ERROR": 403,
             "ACCOUNT_ERROR": 403, "RATELIMIT_EXCEEDED": 429, "FREQUENCY_LIMITED": 429,
             "SYSTEM_ERROR": 500, "SERVICE_UNAVAILABLE": 503, "USER_PAYING": 202}
_FAULT_FLAGS = ("timeout", "html", "garbage", "systemerror", "ratelimit", "bad_sign", "unsigned",
                "signtest", "unknown_serial", "notify_signtest", "notify_bad_sign")
_FAULT_NUMBERS = ("latency", "hold", "notify_latency")
_FAULT_COUNTS = ("duplicate_notify", "concurrent_notify", "count")
_NOTIFY_FAULTS = ("duplicate_notify", "concurrent_notify", "notify_latency",
                  "notify_signtest", "notify_bad_sign")
HTML_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>502 Bad Gateway</h1><p>stgw</p></body></html>")


class _Fail(Exception):
    """Answer this request with the §10 error body of ``code``."""

    def __init__(self, code: str, message: str, field_: str | None = None,
                 status: int | None = None):
        self.code, self.message, self.field = code, message, field_
        self.status = status or STATUS_OF.get(code, 400)


def _parse_time(value) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None or not re.fullmatch(
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)", value):
        return None
    return dt.timestamp()


def _is_fen(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**31 - 1


class V3Simulator(LedgerMixin):
    """The v3 endpoints and their state (no socket; see :mod:`.simserver`)."""

    def __init__(self, retry_schedule=(0.2, 0.2, 0.5, 1, 2), allow_remote: bool = False,
                 hold: float = 15.0, notify_timeout: float = 5.0, refund_delay: float = 0.05,
                 base_url: str = "http://127.0.0.1", same_day_bills: bool = False):
        self.retry_schedule = tuple(float(x) for x in retry_schedule)
        self.allow_remote = allow_remote
        self.hold = float(hold)
        self.notify_timeout = float(notify_timeout)
        self.refund_delay = float(refund_delay)
        self.base_url = base_url          # where download_url points (set by the server)
        # WeChat bills a day once it is over; True: today's bill so far is served too
        self.same_day_bills = bool(same_day_bills)
        self._bill_book = BillBook()      # the trades a test set for a day's bill
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._merchants: dict[str, Merchant] = {}
        self._orders: dict[tuple[str, str], Order] = {}
        self._by_prepay: dict[str, Order] = {}
        self._by_code: dict[str, Order] = {}          # Native code_url -> order
        self._refunds: dict[tuple[str, str], Refund] = {}
        self._bills: dict[str, tuple[str, bytes, float, bool]] = {}
        # v3 fakes only error statuses (a 2xx without a signature is "unsigned")
        self._fault_switches = FaultSwitches(
            _FAULT_FLAGS, _FAULT_NUMBERS, _FAULT_COUNTS, _NOTIFY_FAULTS,
            lambda v: 300 <= v <= 599, "an HTTP error status")
        self._offset = 0.0
        self.requests_seen = 0
        # WeChat's keys: platform certificates (newest last) and the WeChat Pay public key
        self._platform: list[tuple[object, object]] = []      # (private key, certificate)
        self.rotate_platform()
        self._pubkey = new_key()
        self.public_key_id = "PUB_KEY_ID_" + "".join(secrets.choice("0123456789")
                                                     for _ in range(32))

    # ----- setup ----------------------------------------------------------------------
    def add_merchant(self, mchid: str, appids, public_key, serial_no: str, apiv3_key: str,
                     sign_with: str = "certificate") -> None:
        """Register a v3 merchant: its appids, its API public key (PEM key or
        certificate) and certificate serial, its APIv3 key, and which WeChat key signs
        its answers and notifications (``"certificate"`` or ``"pubkey"``)."""
        if sign_with not in ("certificate", "pubkey"):
            raise WxPayError("e.weixin.sim.merchant", "sign_with is certificate or pubkey")
        if isinstance(appids, str):
            appids = [appids]
        if not mchid or not appids or not serial_no or not isinstance(apiv3_key, str) \
                or len(apiv3_key.encode()) != 32:
            raise WxPayError("e.weixin.sim.merchant",
                             "a v3 merchant needs mchid, appids, serial_no and a 32-byte APIv3 key")
        with self._lock:
            self._merchants[str(mchid)] = Merchant(
                str(mchid), set(map(str, appids)), load_public_key(public_key),
                str(serial_no).upper(), apiv3_key, sign_with)

    def has_merchant(self, mchid: str) -> bool:
        return mchid in self._merchants

    def rotate_platform(self, days: int = 365 * 5) -> str:
        """Issue a new platform certificate; answers are signed with it from now on,
        the old ones stay listed in ``/v3/certificates``.  Returns its serial."""
        key = new_key()
        cert = new_certificate(key, not_before=datetime.now(BEIJING) - timedelta(days=1),
                               days=days)
        with self._lock:
            self._platform.append((key, cert))
        return serial_hex(cert)

    def platform_serial(self) -> str:
        return serial_hex(self._platform[-1][1])

    def platform_certificate_pem(self, which: int = -1) -> str:
        return self._platform[which][1].public_bytes(Encoding.PEM).decode("ascii")

    def public_key_pem(self) -> str:
        return public_pem(self._pubkey)

    def stop(self) -> None:
        self._stop.set()

    # ----- faults -----------------------------------------------------------------------
    def set_faults(self, faults: dict) -> dict:
        """Check and install fault switches (``{}`` clears); ValueError names a bad one."""
        return self._fault_switches.set(faults)

    def faults(self) -> dict:
        return self._fault_switches.current()

    def _take_faults(self, notify: bool) -> dict:
        return self._fault_switches.take(notify)

    # ----- one request ---------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping, body: bytes
               ) -> tuple[int, dict, bytes]:
        """Answer one ``/v3/`` request (``target`` = the raw request-target)."""
        with self._lock:
            self.requests_seen += 1
        body = body or b""
        faults = self._take_faults(notify=False)
        if faults.get("latency"):
            self._stop.wait(faults["latency"])
        if faults.get("html"):
            return faults.get("http_status", 502), {"Content-Type": "text/html"}, HTML_PAGE
        if "http_status" in faults:
            return faults["http_status"], {"Content-Type": "text/plain"}, b"Service Unavailable"
        if faults.get("garbage"):
            return 200, {"Content-Type": "application/octet-stream"}, \
                secrets.token_bytes(48) + b"\x00\xff{"
        merchant = None
        try:
            merchant = self._authenticate(method, target, headers, body)
            if faults.get("systemerror"):
                raise _Fail("SYSTEM_ERROR", "系统错误")
            if faults.get("ratelimit"):
                raise _Fail("FREQUENCY_LIMITED", "频率超限")
            if faults.get("err_code"):
                raise _Fail(faults["err_code"], faults["err_code"])
            status, out, ctype, signed = self._dispatch(merchant, method, target, body)
        except _Fail as f:
            err = {"code": f.code, "message": f.message}
            if f.field:
                err["detail"] = {"field": f.field, "location": "body"}
            status, out, ctype, signed = f.status, _dumps(err), "application/json", False
        hdrs = {"Request-ID": "08" + secrets.token_hex(16).upper()}
        if ctype:
            hdrs["Content-Type"] = ctype
        if signed and 200 <= status < 300:
            hdrs.update(self._sign(merchant, out, faults))
        if faults.get("timeout"):
            self._stop.wait(faults.get("hold", self.hold))
        return status, hdrs, out

    def _sign(self, merchant: Merchant, body: bytes, faults: dict | None = None) -> dict:
        faults = faults or {}
        if faults.get("unsigned"):
            return {}
        if merchant.sign_with == "pubkey":
            key, serial = self._pubkey, self.public_key_id
        else:
            key, cert = self._platform[-1]
            serial = serial_hex(cert)
        if faults.get("unknown_serial"):
            key = new_key()
            serial = "PUB_KEY_ID_" + "9" * 32 if merchant.sign_with == "pubkey" \
                else format(secrets.randbits(159) | (1 << 158), "X")
        h = signature_headers(key, serial, body, timestamp=int(self.now()))
        if faults.get("signtest") or faults.get("notify_signtest"):
            h["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + h["Wechatpay-Signature"]
        elif faults.get("bad_sign") or faults.get("notify_bad_sign"):
            raw = bytearray(base64.b64decode(h["Wechatpay-Signature"]))
            raw[0] ^= 0x01
            h["Wechatpay-Signature"] = base64.b64encode(bytes(raw)).decode()
        return h

    def _authenticate(self, method, target, headers, body) -> Merchant:
        if not header(headers, "Accept") or not header(headers, "User-Agent"):
            raise _Fail("INVALID_REQUEST", "Http头缺少Accept或User-Agent")
        try:
            a = parse_authorization(header(headers, "Authorization"))
        except SignError:
            raise _Fail("SIGN_ERROR", "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
        m = self._merchants.get(a["mchid"])
        if m is None:
            raise _Fail("SIGN_ERROR", "商户号不存在或未开通APIv3", status=401)
        if a["serial_no"].upper() != m.serial_no:
            raise _Fail("SIGN_ERROR", "商户证书序列号有误。请使用签名私钥匹配的证书序列号")
        if abs(self.now() - int(a["timestamp"])) >= WINDOW:
            raise _Fail("SIGN_ERROR", "错误的签名，验签失败（时间戳过期）")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Fail("SIGN_ERROR", "错误的签名，验签失败") from None
        msg = request_message(method, target, a["timestamp"], a["nonce_str"], text)
        if not rsa_verify(m.public_key, msg, a["signature"]):
            raise _Fail("SIGN_ERROR", "错误的签名，验签失败")
        if len(body) > MAX_BODY:
            raise _Fail("PARAM_ERROR", "请求体过大")
        return m

    def _dispatch(self, m: Merchant, method: str, target: str, body: bytes):
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        q = {k: v[0] for k, v in query.items()}
        if path == "/v3/pay/transactions/jsapi" and method == "POST":
            return self._ok(self._prepay(m, _json(body), "JSAPI"))
        if path == "/v3/pay/transactions/native" and method == "POST":
            return self._ok(self._prepay(m, _json(body), "NATIVE"))
        mt = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)", path)
        if mt and method == "GET":
            return self._ok(self._query(m, q, out_trade_no=unquote(mt.group(1))))
        mt = re.fullmatch(r"/v3/pay/transactions/id/([^/]+)", path)
        if mt and method == "GET":
            return self._ok(self._query(m, q, transaction_id=unquote(mt.group(1))))
        mt = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)/close", path)
        if mt and method == "POST":
            self._close(m, unquote(mt.group(1)), _json(body))
            return 204, b"", None, True
        if path == "/v3/refund/domestic/refunds" and method == "POST":
            return self._ok(self._refund(m, _json(body)))
        mt = re.fullmatch(r"/v3/refund/domestic/refunds/([^/]+)", path)
        if mt and method == "GET":
            return self._ok(self._refund_query(m, unquote(mt.group(1))))
        if path == "/v3/bill/tradebill" and method == "GET":
            return self._ok(self._tradebill(m, q))
        if path == "/v3/billdownload/file" and method == "GET":
            return self._download(m, q)
        if path == "/v3/certificates" and method == "GET":
            return self._ok(self._certificates(m))
        raise _Fail("INVALID_REQUEST", "无效的请求路径", status=404)

    @staticmethod
    def _ok(doc):
        return 200, _dumps(doc), "application/json", True

    # ----- endpoints -------------------------------------------------------------------------
    def _prepay(self, m: Merchant, p: dict, trade_type: str) -> dict:
        required = ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount")
        for name in required + (("payer",) if trade_type == "JSAPI" else ()):
            if p.get(name) in (None, ""):
                raise _Fail("PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败，此字段为必填项", f"/{name}")
        for name in ("appid", "mchid", "out_trade_no", "notify_url"):
            if not isinstance(p[name], str):
                raise _Fail("PARAM_ERROR", f"{name}字段类型错误", f"/{name}")
        if p["mchid"] != m.mchid:
            raise _Fail("PARAM_ERROR", "请求中的mchid与Authorization中的mchid不一致", "/mchid")
        if p["appid"] not in m.appids:
            raise _Fail("APPID_MCHID_NOT_MATCH", "AppID和mch_id不匹配")
        if not isinstance(p["description"], str) or len(p["description"]) > 127:
            raise _Fail("PARAM_ERROR", "description字段长度超过限制", "/description")
        if not isinstance(p["out_trade_no"], str) or not OUT_TRADE_NO.match(p["out_trade_no"]):
            raise _Fail("PARAM_ERROR", "out_trade_no字段格式错误", "/out_trade_no")
        nu = urlsplit(p["notify_url"]) if isinstance(p["notify_url"], str) else None
        if nu is None or len(p["notify_url"]) > 255 or nu.query or not nu.hostname or not (
                nu.scheme == "https" or (nu.scheme == "http" and is_loopback_host(nu.hostname))):
            raise _Fail("PARAM_ERROR", "notify_url字段格式错误，需为https地址且不能携带参数",
                        "/notify_url")
        amount = p["amount"]
        if not isinstance(amount, dict) or not _is_fen(amount.get("total")):
            raise _Fail("PARAM_ERROR", "amount.total必须为大于0的整数", "/amount/total")
        if amount.get("currency", "CNY") != "CNY":
            raise _Fail("PARAM_ERROR", "currency字段值错误", "/amount/currency")
        payer = p.get("payer")
        if trade_type == "NATIVE" and payer is not None:
            raise _Fail("PARAM_ERROR", "Native下单不需要payer", "/payer")
        if trade_type == "JSAPI" and (not isinstance(payer, dict) or not isinstance(
                payer.get("openid"), str) or not payer["openid"]):
            raise _Fail("PARAM_ERROR", "payer.openid必填", "/payer/openid")
        if p.get("attach") is not None and (not isinstance(p["attach"], str)
                                            or len(p["attach"]) > 128):
            raise _Fail("PARAM_ERROR", "attach字段长度超过限制", "/attach")
        now = self.now()
        expire = now + DEFAULT_EXPIRE
        if p.get("time_expire") is not None:
            expire = _parse_time(p["time_expire"])
            if expire is None:
                raise _Fail("PARAM_ERROR", "time_expire字段格式错误", "/time_expire")
            expire = min(max(expire, now + 60), now + MAX_EXPIRE)
        key = {k: p.get(k) for k in KEY_FIELDS}
        key["trade_type"] = trade_type
        key["amount"] = {"total": amount["total"], "currency": amount.get("currency", "CNY")}
        with self._lock:
            o = self._orders.get((m.mchid, p["out_trade_no"]))
            if o is not None:
                self._expire(o)
                if o.state in ("SUCCESS", "REFUND"):
                    raise _Fail("ORDER_PAID", "该订单已支付")
                if o.state == "CLOSED":
                    raise _Fail("ORDER_CLOSED", "该订单已关闭")
                if o.params != key:
                    raise _Fail("OUT_TRADE_NO_USED", "商户订单号重复")
                if now - o.prepay_at > PREPAY_TTL:
                    self._by_prepay.pop(o.prepay_id, None)
                    self._by_code.pop(o.code_url, None)
                    o.prepay_id, o.prepay_at = self._new_prepay(), now
                    o.code_url = self._new_code_url() if trade_type == "NATIVE" else None
                    self._by_prepay[o.prepay_id] = o
            else:
                o = Order(m.mchid, p["appid"], p["out_trade_no"], key, amount["total"],
                           self._new_prepay(), now, expire, now, trade_type=trade_type,
                           code_url=self._new_code_url() if trade_type == "NATIVE" else None)
                self._orders[(m.mchid, o.out_trade_no)] = o
                self._by_prepay[o.prepay_id] = o
            if o.code_url:
                self._by_code[o.code_url] = o
                return {"code_url": o.code_url}
            return {"prepay_id": o.prepay_id}

    @staticmethod
    def _new_code_url() -> str:
        return "weixin://wxpay/bizpayurl?pr=" + secrets.token_urlsafe(8).replace("-", "x") \
            .replace("_", "y")

    def _new_prepay(self) -> str:
        return "wx" + datetime.fromtimestamp(self.now(), BEIJING).strftime("%d%H%M%S") \
            + secrets.token_hex(14)

    def _query(self, m, q, out_trade_no=None, transaction_id=None) -> dict:
        if q.get("mchid") != m.mchid:
            raise _Fail("PARAM_ERROR", "mchid与Authorization中的mchid不一致", "/mchid")
        with self._lock:
            if transaction_id is not None:
                o = next((x for x in self._orders.values()
                          if x.mchid == m.mchid and x.transaction_id == transaction_id), None)
            else:
                o = self._orders.get((m.mchid, out_trade_no))
            if o is None:
                raise _Fail("ORDER_NOT_EXIST", "订单不存在")
            self._expire(o)
            return o.transaction()

    def _close(self, m, out_trade_no, p) -> None:
        if p.get("mchid") != m.mchid:
            raise _Fail("PARAM_ERROR", "mchid与Authorization中的mchid不一致", "/mchid")
        with self._lock:
            o = self._orders.get((m.mchid, out_trade_no))
            if o is None:
                raise _Fail("ORDER_NOT_EXIST", "订单不存在")
            self._expire(o)
            if o.state in ("SUCCESS", "REFUND"):
                raise _Fail("ORDER_PAID", "订单已支付，不能关闭")
            o.state = "CLOSED"

    def _refund(self, m, p) -> dict:
        no = p.get("out_refund_no")
        if not isinstance(no, str) or not OUT_REFUND_NO.match(no):
            raise _Fail("PARAM_ERROR", "out_refund_no字段格式错误", "/out_refund_no")
        amount = p.get("amount")
        if not isinstance(amount, dict) or not _is_fen(amount.get("refund")) \
                or not _is_fen(amount.get("total")):
            raise _Fail("PARAM_ERROR", "amount.refund和amount.total必须为大于0的整数", "/amount")
        if amount.get("currency", "CNY") != "CNY":
            raise _Fail("PARAM_ERROR", "currency字段值错误", "/amount/currency")
        url = p.get("notify_url")
        if url is not None:
            nu = urlsplit(url) if isinstance(url, str) else None
            if nu is None or nu.query or not nu.hostname or not (
                    nu.scheme == "https" or (nu.scheme == "http" and is_loopback_host(nu.hostname))):
                raise _Fail("PARAM_ERROR", "notify_url字段格式错误", "/notify_url")
        for name in ("transaction_id", "out_trade_no", "reason"):
            if p.get(name) is not None and not isinstance(p[name], str):
                raise _Fail("PARAM_ERROR", f"{name}字段类型错误", f"/{name}")
        with self._lock:
            if p.get("transaction_id"):
                o = next((x for x in self._orders.values() if x.mchid == m.mchid
                          and x.transaction_id == p["transaction_id"]), None)
            elif p.get("out_trade_no"):
                o = self._orders.get((m.mchid, p["out_trade_no"]))
            else:
                raise _Fail("PARAM_ERROR", "transaction_id和out_trade_no必须二选一", "/out_trade_no")
            if o is None:
                raise _Fail("RESOURCE_NOT_EXISTS", "订单不存在")
            old = self._refunds.get((m.mchid, no))
            if old is not None:
                if old.order is not o or old.refund != amount["refund"]:
                    raise _Fail("INVALID_REQUEST", "退款单号重复，且参数与原退款单不一致")
                return old.answer()
            if o.state not in ("SUCCESS", "REFUND"):
                raise _Fail("TRADE_ERROR", "订单未支付，不能退款")
            if amount["total"] != o.total:
                raise _Fail("PARAM_ERROR", "订单金额与原订单金额不一致", "/amount/total")
            if len(o.refunds) >= 50:
                raise _Fail("RULE_LIMIT", "退款次数超过限制")
            done = sum(r.refund for r in o.refunds if r.status != "CLOSED")
            if done + amount["refund"] > o.total:
                raise _Fail("INVALID_REQUEST", "申请退款金额超过订单可退金额")
            r = Refund(no, "5030" + "".join(secrets.choice("0123456789") for _ in range(25)),
                        o, amount["refund"], p.get("reason"), url, self.now())
            o.refunds.append(r)
            o.state = "REFUND"
            self._refunds[(m.mchid, no)] = r
            ans = r.answer()
        t = threading.Timer(self.refund_delay, self._finish_refund, args=(m, r))
        t.daemon = True
        t.start()
        return ans

    def _finish_refund(self, m: Merchant, r: Refund) -> None:
        with self._cond:
            if r.status != "PROCESSING":
                return
            r.status = "SUCCESS"
            r.success_time = rfc3339(self.now())
            self._cond.notify_all()
        if r.notify_url:
            o = r.order
            plain = {"mchid": m.mchid, "transaction_id": o.transaction_id,
                     "out_trade_no": o.out_trade_no, "refund_id": r.refund_id,
                     "out_refund_no": r.out_refund_no, "refund_status": r.status,
                     "success_time": r.success_time,
                     "user_received_account": "支付用户零钱",
                     "amount": {"total": o.total, "refund": r.refund, "payer_total": o.total,
                                "payer_refund": r.refund}}
            self._notify(m, r.notify, r.notify_url, "REFUND.SUCCESS", "refund", "退款成功",
                         plain)

    def _refund_query(self, m, no) -> dict:
        with self._lock:
            r = self._refunds.get((m.mchid, no))
            if r is None:
                raise _Fail("RESOURCE_NOT_EXISTS", "退款单不存在")
            return r.answer()

    def _tradebill(self, m, q) -> dict:
        date = q.get("bill_date", "")
        try:
            day = datetime.strptime(date, "%Y-%m-%d").date()
        except ValueError:
            raise _Fail("PARAM_ERROR", "bill_date字段格式错误", "/bill_date") from None
        bill_type = q.get("bill_type", "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            raise _Fail("PARAM_ERROR", "bill_type字段值错误", "/bill_type")
        if q.get("tar_type") not in (None, "GZIP"):
            raise _Fail("PARAM_ERROR", "tar_type字段值错误", "/tar_type")
        today = datetime.fromtimestamp(self.now(), BEIJING).date()
        chosen = self._bill_book.get(m.mchid, day.strftime("%Y%m%d"))
        if day > today or (day == today and not self.same_day_bills and chosen is None):
            raise _Fail("NO_STATEMENT_EXIST", "账单文件不存在")
        if (today - day).days > 92:
            raise _Fail("INVALID_REQUEST", "只能下载三个月以内的账单")
        trades = chosen if chosen is not None else self.ledger_trades(m.mchid, day)
        content = format_bill(trades, bill_type).encode("utf-8")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._bills[token] = (m.mchid, content, self.now() + BILL_URL_TTL,
                                  q.get("tar_type") == "GZIP")
        return {"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                "download_url": f"{self.base_url}/v3/billdownload/file?token={token}"}

    def _download(self, m, q):
        with self._lock:
            item = self._bills.get(q.get("token", ""))
        if item is None or item[0] != m.mchid or self.now() > item[2]:
            raise _Fail("RESOURCE_NOT_EXISTS", "下载链接已过期或不存在")
        content = gzip.compress(item[1]) if item[3] else item[1]
        return 200, content, "application/octet-stream", False      # bill files are unsigned

    def _certificates(self, m) -> dict:
        data = []
        for _, cert in self._platform:
            pem = cert.public_bytes(Encoding.PEM).decode("ascii")
            nonce = new_nonce(12)
            data.append({"serial_no": serial_hex(cert),
                         "effective_time": rfc3339(cert.not_valid_before_utc),
                         "expire_time": rfc3339(cert.not_valid_after_utc),
                         "encrypt_certificate": {
                             "algorithm": "AEAD_AES_256_GCM", "nonce": nonce,
                             "associated_data": "certificate",
                             "ciphertext": aes_gcm_encrypt(m.apiv3_key, nonce, pem,
                                                           "certificate")}})
        return {"data": data}

    # ----- bills --------------------------------------------------------------------------
    def ledger_trades(self, mchid: str, day) -> list[dict]:
        """The trades of ``day`` (a date, or yyyyMMdd / YYYY-MM-DD) as the ledger has
        them."""
        day = _bill_day(day)
        with self._lock:
            return ledger_trades(list(self._orders.values()), mchid, day)

    def bill_trades(self, mchid: str, day) -> list[dict]:
        """The trades the bill of ``day`` lists: those set, else the ledger's."""
        day = _bill_day(day)
        return self._bill_book.trades(mchid, day.strftime("%Y%m%d"),
                                      lambda _m, _d: self.ledger_trades(mchid, day))

    def set_bill(self, mchid: str, day, trades) -> None:
        """Make ``trades`` (see :mod:`wxpay.billbook`) the bill of ``day``, served
        even today (None: back to the ledger's).  ValueError when malformed."""
        self._bill_book.set(mchid, _bill_day(day).strftime("%Y%m%d"), trades)

    # ----- payment and notification ----------------------------------------------------------
    def refund(self, out_refund_no: str) -> dict | None:
        with self._lock:
            r = next((x for (mc, no), x in self._refunds.items() if no == out_refund_no), None)
            if r is None:
                return None
            return dict(r.answer(), notify=notify_snapshot(r.notify))

    def backdate(self, out_trade_no: str, seconds: float) -> None:
        """Move an order's creation, payment and refunds ``seconds`` into the past (a
        bill of an earlier day, without moving the clock the request signatures use)."""
        with self._lock:
            o = self._find(out_trade_no)
            if o is None:
                raise LookupError("no such order")
            o.created -= seconds
            o.prepay_at -= seconds
            if o.paid_at is not None:
                o.paid_at -= seconds
                o.success_time = rfc3339(o.paid_at)
            for r in o.refunds:       # its refunds too: the bill lists each by its day
                r.created -= seconds
                if r.success_time:
                    r.success_time = rfc3339(
                        datetime.fromisoformat(r.success_time).timestamp() - seconds)

    def pay(self, prepay_id: str | None = None, out_trade_no: str | None = None,
            bank_type: str = "OTHERS", code_url: str | None = None,
            openid: str | None = None) -> dict:
        """The user pays (a Native order: scans ``code_url`` as ``openid``): the order
        turns SUCCESS and the notification starts.  LookupError (unknown) or ValueError
        (not payable)."""
        with self._lock:
            o = self._payable(prepay_id, out_trade_no, PREPAY_TTL,
                              (lambda: self._by_code.get(code_url)) if code_url else None)
            now = self.now()
            o.state, o.paid_at, o.bank_type = "SUCCESS", now, bank_type
            if o.trade_type == "NATIVE":
                o.scanner = openid or "oSimNativeScanner" + secrets.token_hex(6)
            o.transaction_id = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
            o.success_time = rfc3339(now)
            m = self._merchants[o.mchid]
            plain = o.transaction()
            result = {"out_trade_no": o.out_trade_no, "transaction_id": o.transaction_id,
                      "prepay_id": o.prepay_id, "total": o.total,
                      "success_time": o.success_time, "notify_url": o.params["notify_url"]}
        result["notify_copies"] = self._notify(m, o.notify, o.params["notify_url"],
                                               "TRANSACTION.SUCCESS", "transaction",
                                               "支付成功", plain)
        return result

    def _envelope(self, m: Merchant, event: str, original: str, summary: str,
                  plain: dict) -> bytes:
        nonce = new_nonce(12)
        return _dumps({
            "id": "EV-" + secrets.token_hex(10), "create_time": rfc3339(self.now()),
            "resource_type": "encrypt-resource", "event_type": event, "summary": summary,
            "resource": {"original_type": original, "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": aes_gcm_encrypt(m.apiv3_key, nonce, _dumps(plain),
                                                       original),
                         "associated_data": original, "nonce": nonce}})

    def _notify(self, m, state: dict, url: str, event: str, original: str, summary: str,
                plain: dict) -> int:
        faults = self._take_faults(notify=True)
        copies = faults.get("concurrent_notify") or faults.get("duplicate_notify") or 1
        with self._cond:
            state["status"], state["active"] = "pending", copies
        body = self._envelope(m, event, original, summary, plain)
        threading.Thread(target=self._deliver, args=(m, state, url, body, copies, faults),
                         name="wxpay-v3-sim-notify", daemon=True).start()
        return copies

    def _deliver(self, m, state, url, body, copies, faults):
        if not self.allow_remote and not is_loopback_host(urlsplit(url).hostname):
            with self._cond:
                state["attempts"].append({"copy": 0, "n": 0, "at": int(self.now() * 1000),
                                          "status": None, "ok": False,
                                          "reply": "refused: notify_url is not loopback"})
                state["status"], state["active"] = "refused", 0
                self._cond.notify_all()
            return
        if faults.get("notify_latency") and self._stop.wait(faults["notify_latency"]):
            return
        if faults.get("notify_signtest") or faults.get("notify_bad_sign"):
            self._post(m, state, url, body, -1, 0, faults)       # a probe WeChat sends
        if "concurrent_notify" in faults and copies > 1:
            barrier = threading.Barrier(copies)
            for i in range(copies):
                threading.Thread(target=self._deliver_copy,
                                 args=(m, state, url, body, i, barrier), daemon=True).start()
        else:
            for i in range(copies):
                self._deliver_copy(m, state, url, body, i, None)

    def _post(self, m, state, url, body, copy, n, faults=None) -> bool:
        status, reply, ok = None, "", False
        try:
            with requests.Session() as http:
                http.trust_env = False
                r = http.post(url, data=body, timeout=self.notify_timeout,
                              allow_redirects=False,
                              headers={"Content-Type": "application/json",
                                       "User-Agent": "Mozilla/4.0",
                                       **self._sign(m, body, faults)})
                status = r.status_code
                reply = r.content[:500].decode("utf-8", "replace")
                ok = 200 <= status < 300
        except requests.RequestException as e:
            reply = f"error: {type(e).__name__}"
        with self._cond:
            state["attempts"].append({"copy": copy, "n": n, "at": int(self.now() * 1000),
                                      "status": status, "ok": ok, "reply": reply,
                                      "probe": copy < 0})
        return ok

    def _deliver_copy(self, m, state, url, body, copy, barrier):
        delivered = False
        try:        # v3: any 2xx is received
            delivered = deliver_with_retries(
                self._stop, self.retry_schedule,
                lambda n: self._post(m, state, url, body, copy, n), barrier)
        finally:
            with self._cond:
                state["active"] -= 1
                if delivered:
                    state["status"] = "delivered"
                elif state["active"] <= 0 and state["status"] != "delivered":
                    state["status"] = "failed"
                self._cond.notify_all()

    def wait_notified(self, out_trade_no: str | None = None, timeout: float = 10.0,
                      out_refund_no: str | None = None) -> dict:
        """Wait until no delivery of the order's (or refund's) notification runs."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if out_refund_no is not None:
                    r = next((x for (mc, no), x in self._refunds.items()
                              if no == out_refund_no), None)
                    st = r.notify if r is not None else None
                else:
                    o = self._find(out_trade_no)
                    st = o.notify if o is not None else None
                if st is not None and st["status"] not in ("none", "pending") \
                        and st["active"] == 0:
                    return notify_snapshot(st)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("notification still running")
                self._cond.wait(left)

    def wait_refund(self, out_refund_no: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                r = next((x for (mc, no), x in self._refunds.items()
                          if no == out_refund_no), None)
                if r is not None and r.status != "PROCESSING":
                    return r.answer()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("refund still processing")
                self._cond.wait(left)

    # ----- control endpoints (/sim/v3/...) ----------------------------------------------------
    def control(self, method: str, path: str, query: Mapping, body: bytes
                ) -> tuple[int, dict]:
        """Answer a ``/sim/v3/`` control request with ``(status, JSON)``."""
        try:
            data = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            return 400, {"error": "the body is not JSON"}
        if not isinstance(data, dict):
            return 400, {"error": "the body must be a JSON object"}
        if path == "/sim/v3/pay" and method == "POST":
            try:
                return 200, self.pay(prepay_id=data.get("prepay_id"),
                                     out_trade_no=data.get("out_trade_no"),
                                     bank_type=str(data.get("bank_type") or "OTHERS"),
                                     code_url=_str_or_none(data.get("code_url")),
                                     openid=_str_or_none(data.get("openid")))
            except LookupError as e:
                return 404, {"error": str(e)}
            except ValueError as e:
                return 409, {"error": str(e)}
        if path == "/sim/v3/faults":
            if method == "POST":
                try:
                    return 200, {"faults": self.set_faults(data)}
                except ValueError as e:
                    return 400, {"error": str(e)}
            return 200, {"faults": self.faults()}
        if path == "/sim/v3/rotate" and method == "POST":
            return 200, {"serial_no": self.rotate_platform()}
        if path == "/sim/v3/platform" and method == "GET":
            return 200, {"serial_no": self.platform_serial(),
                         "certificate": self.platform_certificate_pem(),
                         "public_key_id": self.public_key_id,
                         "public_key": self.public_key_pem()}
        if path.startswith("/sim/v3/orders/") and method == "GET":
            snap = self.order(unquote(path[len("/sim/v3/orders/"):]),
                              (query.get("mchid") or [None])[0])
            return (200, snap) if snap else (404, {"error": "no such order"})
        if path.startswith("/sim/v3/refunds/") and method == "GET":
            snap = self.refund(unquote(path[len("/sim/v3/refunds/"):]))
            return (200, snap) if snap else (404, {"error": "no such refund"})
        if path == "/sim/v3/bills":
            mchid = str(data.get("mchid") or (query.get("mchid") or [""])[0])
            date = str(data.get("date") or (query.get("date") or [""])[0])
            try:
                if method == "POST":
                    self.set_bill(mchid, date, data.get("trades"))
                return 200, {"mchid": mchid, "date": date,
                             "trades": self.bill_trades(mchid, date)}
            except ValueError as e:
                return 400, {"error": str(e)}
        if path == "/sim/v3/health":
            return 200, {"ok": True}
        return 404, {"error": "not found"}


def _bill_day(day):
    """A date from a date, ``yyyyMMdd`` or ``YYYY-MM-DD``; ValueError otherwise."""
    if hasattr(day, "year") and not isinstance(day, datetime):
        return day
    if isinstance(day, str):
        for fmt in ("%Y%m%d", "%Y-%m-%d"):
            try:
                return datetime.strptime(day, fmt).date()
            except ValueError:
                pass
    raise ValueError("date must be yyyyMMdd or YYYY-MM-DD")


def _str_or_none(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(body: bytes) -> dict:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Fail("PARAM_ERROR", "请求体不是合法的JSON") from None
    if not isinstance(doc, dict):
        raise _Fail("PARAM_ERROR", "请求体必须是JSON对象")
    return doc


if __name__ == "__main__":
    import sys
    from .simserver import main
    sys.exit(main())
