"""A loopback simulator of the WeChat Pay v2 merchant API (wechatpay-v2.md §2–§5, §7).

In-process::

    with Simulator(merchants=[("wx_app", "1900000001", KEY)]) as sim:
        client = Client(Account("wx_app", "1900000001", KEY, api_base=sim.url, ...))
        reply = client.unifiedorder(order)
        sim.pay(reply["prepay_id"])            # or POST {sim.url}/sim/pay
        sim.wait_notified(order["out_trade_no"])

Console: ``wxpay-sim --host 127.0.0.1 --port P --merchant APPID:MCH_ID:KEY`` (repeatable;
``python -m wxpay.simulator`` works too; the environment variable
``WXPAY_SIM_MERCHANTS="APPID:MCH_ID:KEY,..."`` adds merchants without showing keys in
``ps``).  It prints ``wxpay-sim listening on http://127.0.0.1:PORT ...`` once ready.

Endpoints:

* ``POST /pay/unifiedorder``, ``/pay/orderquery``, ``/pay/closeorder``: WeChat's checks
  and answers.  Failures before the merchant is authenticated (method, empty body,
  encoding, XML, appid, mch_id, signature) are ``return_code=FAIL`` with ``return_msg`` only
  (no sign, no err_code, as WeChat); later failures are signed
  ``result_code=FAIL`` replies with ``err_code``/``err_code_des``.  Replies are
  signed with the merchant key and the request's sign type.
* ``POST /sim/pay`` JSON ``{"prepay_id": "..."}`` (or ``{"out_trade_no": ...}``): the
  user pays; the signed notification goes to ``notify_url`` in the background,
  retried after each reply that is not SUCCESS on ``retry_schedule``.
* ``GET /sim/orders/<out_trade_no>``: the order's state and notification attempts.
* ``POST /sim/faults`` JSON (``{}`` clears): ``latency`` s; ``timeout`` (hold the reply
  ``hold`` s, default 15 > the client's 10 s read timeout; the request is processed);
  ``http_status`` N; ``html``; ``garbage``; ``fail_without_sign`` (a SUCCESS/FAIL
  SYSTEMERROR reply without sign); ``success_without_sign``; ``bad_sign``;
  ``return_fail``; ``systemerror``; ``err_code`` CODE; ``duplicate_notify`` N;
  ``concurrent_notify`` N; ``notify_latency`` s; ``count`` k (the next k uses only).

Compared on re-entry of an unpaid ``out_trade_no`` (WeChat's "same parameters"):
appid, body, detail, attach, total_fee, fee_type, trade_type, openid, product_id,
goods_tag, limit_pay, notify_url, time_expire, scene_info.  nonce_str, sign, sign_type,
time_start, spbill_create_ip and device_info may differ.  body/attach/detail are
limited in UTF-8 bytes (over: ``return_code=FAIL``, ``<name>参数长度有误``); a first
time_expire less than 5 minutes ahead is ``return_code=FAIL`` with WeChat's
``time_expire时间过短…``.  Trade types JSAPI (openid), NATIVE (product_id; reply
``code_url``), MWEB (scene_info; reply ``mweb_url``).  Notifications carry no
``sign_type`` (HMAC-SHA256 ones included, as WeChat sends them).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit, parse_qs

import requests

from .api import BEIJING, TIME_EXPIRE_SHORT, beijing_stamp, new_nonce
from .errors import SignError, WxPayError
from .sign import normalize_sign_type, sign, verify
from .xmlcodec import MAX_BYTES, from_xml, to_xml

__all__ = ["Simulator", "main"]

KEY_FIELDS = ("appid", "body", "detail", "attach", "total_fee", "fee_type", "trade_type",
              "openid", "product_id", "goods_tag", "limit_pay", "notify_url", "time_expire",
              "scene_info")
# limited in UTF-8 bytes, as WeChat counts (wechatpay-v2.md §8.7)
BYTE_LIMITS = {"body": 127, "attach": 127, "detail": 6000}
MIN_EXPIRE_S = 5 * 60
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{1,32}$")
_FEN = re.compile(r"^[1-9][0-9]{0,9}$")
_CODE = re.compile(r"^[A-Z0-9_]{1,64}$")
PREPAY_TTL = 2 * 3600

_FAULT_FLAGS = ("timeout", "html", "garbage", "fail_without_sign", "success_without_sign",
                "bad_sign", "return_fail", "systemerror")
_FAULT_NUMBERS = ("latency", "hold", "notify_latency")
_FAULT_COUNTS = ("duplicate_notify", "concurrent_notify", "count")
_NOTIFY_FAULTS = ("duplicate_notify", "concurrent_notify", "notify_latency")

HTML_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>502 Bad Gateway</h1><p>stgw</p></body></html>")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Reject(Exception):
    """Stop processing a /pay/* request with this reply."""

    def __init__(self, reply: dict, signed_with: tuple | None = None,
                 unsigned: bool = False):
        self.reply = reply
        self.signed_with = signed_with
        self.unsigned = unsigned


@dataclass
class _Order:
    appid: str
    mch_id: str
    out_trade_no: str
    params: dict
    sign_type: str
    prepay_id: str
    prepay_at: float
    time_expire: float | None
    created: float
    state: str = "NOTPAY"            # NOTPAY, SUCCESS, CLOSED
    transaction_id: str | None = None
    time_end: str | None = None
    bank_type: str | None = None
    paid_at: float | None = None
    notification: dict | None = None
    notify_attempts: list = field(default_factory=list)
    notify_status: str = "none"      # none, pending, delivered, failed, refused
    notify_active: int = 0
    last_reply: str | None = None

    def snapshot(self) -> dict:
        return {"out_trade_no": self.out_trade_no, "appid": self.appid,
                "mch_id": self.mch_id, "state": self.state, "trade_state": self.state,
                "prepay_id": self.prepay_id, "total_fee": int(self.params["total_fee"]),
                "sign_type": self.sign_type,
                "notify_url": self.params.get("notify_url"),
                "transaction_id": self.transaction_id, "time_end": self.time_end,
                "time_expire": self.params.get("time_expire"),
                "notify": {"status": self.notify_status,
                           "attempts": len(self.notify_attempts),
                           "active": self.notify_active,
                           "successes": sum(1 for a in self.notify_attempts if a["ok"]),
                           "last_reply": self.last_reply,
                           "log": list(self.notify_attempts[-200:])}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128          # concurrent notifications and clients


class Simulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, merchants=(),
                 retry_schedule=(0.2, 0.2, 0.5, 1, 2), allow_remote: bool = False,
                 hold: float = 15.0, notify_timeout: float = 5.0, verbose: bool = False):
        if not allow_remote and not is_loopback_host(host):
            raise WxPayError("e.weixin.sim.remote",
                             f"refusing to listen on non-loopback host {host} "
                             "(use allow_remote / --allow-remote)")
        self.host, self.port = host, port
        self.allow_remote = allow_remote
        self.retry_schedule = tuple(float(x) for x in retry_schedule)
        self.hold = float(hold)
        self.notify_timeout = float(notify_timeout)
        self.verbose = verbose
        self._apps: dict[str, tuple[str, str]] = {}     # appid -> (mch_id, key)
        self._mchs: set[str] = set()
        for m in merchants:
            self.add_merchant(*m)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._orders: dict[tuple[str, str], _Order] = {}
        self._by_prepay: dict[str, _Order] = {}
        self._faults: dict = {}
        self._fault_left: int | None = None
        self._offset = 0.0
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests_seen = 0

    # ----- setup ---------------------------------------------------------------
    def add_merchant(self, appid: str, mch_id: str, key: str) -> None:
        if not appid or not mch_id or not key:
            raise WxPayError("e.weixin.sim.merchant", "a merchant needs appid, mch_id and key")
        self._apps[str(appid)] = (str(mch_id), str(key))
        self._mchs.add(str(mch_id))

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (expiry tests)."""
        with self._lock:
            self._offset += seconds

    @property
    def url(self) -> str:
        if self._server is None:
            raise WxPayError("e.weixin.sim.stopped", "the simulator is not started")
        host = self._server.server_address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> "Simulator":
        if self._server is not None:
            return self
        self._stop.clear()
        handler = type("Handler", (_Handler,), {"sim": self})
        server = _Server((self.host, self.port), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.02},
                                        name="wxpay-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- faults --------------------------------------------------------------
    def set_faults(self, faults: dict) -> dict:
        """Validate and install fault switches (``{}`` clears); returns them."""
        if not isinstance(faults, dict):
            raise ValueError("faults must be a JSON object")
        clean: dict = {}
        for k, v in faults.items():
            if k in _FAULT_FLAGS:
                if not isinstance(v, bool):
                    raise ValueError(f"{k} must be true or false")
                if v:
                    clean[k] = True
            elif k in _FAULT_NUMBERS:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 600:
                    raise ValueError(f"{k} must be seconds between 0 and 600")
                clean[k] = float(v)
            elif k in _FAULT_COUNTS:
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                    raise ValueError(f"{k} must be an integer between 1 and 1000")
                clean[k] = v
            elif k == "http_status":
                if isinstance(v, bool) or not isinstance(v, int) or not 100 <= v <= 599 \
                        or v == 200:
                    raise ValueError("http_status must be an HTTP status other than 200")
                clean[k] = v
            elif k == "err_code":
                if not isinstance(v, str) or not _CODE.match(v):
                    raise ValueError("err_code must be an upper-case WeChat code")
                clean[k] = v
            else:
                raise ValueError(f"unknown fault {str(k)[:40]!r}")
        with self._lock:
            self._fault_left = clean.pop("count", None)
            self._faults = clean
            return self.faults()

    def clear_faults(self) -> None:
        self.set_faults({})

    def faults(self) -> dict:
        with self._lock:
            out = dict(self._faults)
            if self._fault_left is not None and out:
                out["count"] = self._fault_left
            return out

    def _take_faults(self, notify: bool) -> dict:
        """The faults for this use (a /pay/* request or a payment), counting down."""
        with self._lock:
            keys = [k for k in self._faults if (k in _NOTIFY_FAULTS) == notify and k != "hold"]
            if not keys:
                return {}
            taken = dict(self._faults)
            if self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._faults, self._fault_left = {}, None
            return taken

    # ----- state access ----------------------------------------------------------
    def _find(self, out_trade_no: str, mch_id: str | None = None) -> _Order | None:
        if mch_id is not None:
            return self._orders.get((mch_id, out_trade_no))
        for (m, no), order in self._orders.items():
            if no == out_trade_no:
                return order
        return None

    def order(self, out_trade_no: str, mch_id: str | None = None) -> dict | None:
        """A JSON-able snapshot of an order, or None."""
        with self._lock:
            o = self._find(out_trade_no, mch_id)
            if o is None:
                return None
            self._expire(o)
            return o.snapshot()

    def wait_notified(self, out_trade_no: str, timeout: float = 10.0,
                      mch_id: str | None = None) -> dict:
        """Wait until no notification delivery of the order is running any more."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                o = self._find(out_trade_no, mch_id)
                if o is not None and o.notify_status != "pending" and o.notify_active == 0 \
                        and o.notify_status != "none":
                    return o.snapshot()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"notification of {out_trade_no} still running")
                self._cond.wait(left)

    def _expire(self, o: _Order) -> None:
        if o.state == "NOTPAY" and o.time_expire is not None and self.now() >= o.time_expire:
            o.state = "CLOSED"

    # ----- /pay/* ------------------------------------------------------------------
    def _fail(self, err_code: str, return_msg: str) -> _Reject:
        # WeChat's FAIL replies carry return_code and return_msg only (err_code names
        # the case here, for the reader)
        return _Reject({"return_code": "FAIL", "return_msg": return_msg})

    def handle_pay(self, endpoint: str, method: str, body: bytes | None) -> tuple[int, bytes, str]:
        """Process one /pay/* request; returns (status, body, content type)."""
        with self._lock:
            self.requests_seen += 1
        faults = self._take_faults(notify=False)
        if faults.get("latency"):
            self._stop.wait(faults["latency"])
        if "http_status" in faults and not faults.get("html"):
            return faults["http_status"], b"Service Unavailable", "text/plain"
        if faults.get("html"):
            return faults.get("http_status", 200), HTML_PAGE, "text/html; charset=utf-8"
        if faults.get("garbage"):
            return 200, secrets.token_bytes(48) + b"\x00\xff<<>", "application/octet-stream"
        if faults.get("return_fail"):
            return 200, to_xml({"return_code": "FAIL",
                                "return_msg": "系统繁忙,请稍后再试"}).encode(), "text/xml"
        key = st = None
        try:
            params, mch_id, key, st = self._authenticate(method, body)
            self._fault_reply(faults, params, key, st)
            reply = getattr(self, "_do_" + endpoint)(params)
        except _Reject as r:
            reply = r.reply
            if r.signed_with:
                key, st = r.signed_with
            if r.unsigned:
                key = None
        # a FAIL return_code is never signed; every other reply is, with the
        # merchant key and the request's sign type
        if reply.get("return_code") == "SUCCESS" and key and "sign" not in reply:
            reply = self._sign_reply(reply, key, st)
        if faults.get("bad_sign") and "sign" in reply:
            reply["sign"] = ("0" if reply["sign"][0] != "0" else "1") + reply["sign"][1:]
        if faults.get("timeout"):
            self._stop.wait(faults.get("hold", self.hold))
        return 200, to_xml(reply).encode("utf-8"), "text/xml; charset=utf-8"

    def _authenticate(self, method, body):
        if method != "POST":
            raise self._fail("REQUIRE_POST_METHOD", "请使用post方法")
        if not body:
            raise self._fail("POST_DATA_EMPTY", "post数据为空")
        if len(body) > MAX_BYTES:
            raise self._fail("XML_FORMAT_ERROR", "XML格式错误")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("NOT_UTF8", "编码格式错误") from None
        try:
            params = from_xml(body)
        except WxPayError:
            raise self._fail("XML_FORMAT_ERROR", "XML格式错误") from None
        appid, mch_id = params.get("appid"), params.get("mch_id")
        if not appid:
            raise self._fail("LACK_PARAMS", "缺少参数appid")
        if not mch_id:
            raise self._fail("LACK_PARAMS", "缺少参数mch_id")
        if appid not in self._apps:
            raise self._fail("APPID_NOT_EXIST", "appid不存在")
        if mch_id not in self._mchs:
            raise self._fail("MCHID_NOT_EXIST", "商户号mch_id不存在")
        real_mch, key = self._apps[appid]
        if real_mch != mch_id:
            raise self._fail("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        try:
            st = normalize_sign_type(params.get("sign_type"))
        except SignError:
            raise self._fail("INVALID_REQUEST", "sign_type参数错误") from None
        if not params.get("sign") or not verify(params, key, st):
            raise self._fail("SIGNERROR", "签名错误")
        if not params.get("nonce_str"):
            raise _Reject(self._result_fail(params, "LACK_PARAMS", "缺少参数nonce_str"),
                          (key, st))
        if len(params["nonce_str"]) > 32:
            raise _Reject(self._result_fail(params, "INVALID_REQUEST", "nonce_str长度超过32"),
                          (key, st))
        return params, mch_id, key, st

    def _fault_reply(self, faults, params, key, st):
        base = {"return_code": "SUCCESS", "return_msg": "OK", "appid": params["appid"],
                "mch_id": params["mch_id"], "nonce_str": new_nonce()}
        if faults.get("fail_without_sign"):
            raise _Reject(dict(base, result_code="FAIL", err_code="SYSTEMERROR",
                               err_code_des="系统错误"), unsigned=True)
        if faults.get("success_without_sign"):
            raise _Reject(dict(base, result_code="SUCCESS", trade_type="JSAPI",
                               prepay_id="wx" + beijing_stamp(self.now()) + secrets.token_hex(10)),
                          unsigned=True)
        code = "SYSTEMERROR" if faults.get("systemerror") else faults.get("err_code")
        if code:
            reply = dict(base, result_code="FAIL", err_code=code,
                         err_code_des="系统超时" if code == "SYSTEMERROR" else code)
            raise _Reject(self._sign_reply(reply, key, st))

    def _result_fail(self, params, err_code, des):
        return {"return_code": "SUCCESS", "return_msg": "OK", "appid": params["appid"],
                "mch_id": params["mch_id"], "nonce_str": new_nonce(),
                "result_code": "FAIL", "err_code": err_code, "err_code_des": des}

    @staticmethod
    def _sign_reply(reply: dict, key: str, st: str) -> dict:
        reply["sign"] = sign(reply, key, st)
        return reply

    def _need(self, params, *names):
        for n in names:
            if not params.get(n):
                raise _Reject(self._result_fail(params, "LACK_PARAMS", f"缺少参数{n}"))

    def _invalid(self, params, des):
        return _Reject(self._result_fail(params, "INVALID_REQUEST", des))

    def _do_unifiedorder(self, p: dict) -> dict:
        self._need(p, "body", "out_trade_no", "total_fee", "spbill_create_ip",
                   "notify_url", "trade_type")
        for name, limit in BYTE_LIMITS.items():
            if len(p.get(name, "").encode("utf-8")) > limit:
                raise _Reject({"return_code": "FAIL", "return_msg": f"{name}参数长度有误"})
        if len(p.get("device_info", "")) > 32:
            raise self._invalid(p, "device_info参数长度有误")
        if p.get("limit_pay") not in (None, "no_credit"):
            raise self._invalid(p, "limit_pay参数错误")
        if p.get("time_start"):
            try:
                if len(p["time_start"]) != 14 or not p["time_start"].isdigit():
                    raise ValueError
                datetime.strptime(p["time_start"], "%Y%m%d%H%M%S")
            except ValueError:
                raise self._invalid(p, "time_start时间格式错误") from None
        if not _OUT_TRADE_NO.match(p["out_trade_no"]):
            raise self._invalid(p, "out_trade_no参数格式错误")
        if not _FEN.match(p["total_fee"]) or int(p["total_fee"]) > 2**31 - 1:
            raise self._invalid(p, "total_fee参数格式错误,必须为大于0的整数")
        if p.get("fee_type", "CNY") != "CNY":
            raise self._invalid(p, "fee_type参数错误")
        try:
            ipaddress.ip_address(p["spbill_create_ip"])
        except ValueError:
            raise self._invalid(p, "spbill_create_ip参数格式错误") from None
        nu = urlsplit(p["notify_url"])
        if nu.scheme not in ("http", "https") or not nu.hostname or nu.query:
            raise self._invalid(p, "notify_url参数格式错误")
        if p["trade_type"] not in ("JSAPI", "NATIVE", "MWEB"):
            raise self._invalid(p, "trade_type参数错误")
        if p["trade_type"] == "JSAPI" and not p.get("openid"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS",
                                            "trade_type=JSAPI时，openid为必填参数"))
        if p["trade_type"] == "NATIVE" and not p.get("product_id"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS", "缺少参数product_id"))
        if p["trade_type"] == "MWEB" and not p.get("scene_info"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS", "缺少参数scene_info"))
        expire = None
        if p.get("time_expire"):
            try:
                expire = datetime.strptime(p["time_expire"], "%Y%m%d%H%M%S").replace(
                    tzinfo=BEIJING).timestamp()
            except ValueError:
                raise self._invalid(p, "time_expire时间格式错误") from None
            if len(p["time_expire"]) != 14 or not p["time_expire"].isdigit():
                raise self._invalid(p, "time_expire时间格式错误")
        now = self.now()
        with self._lock:
            o = self._orders.get((p["mch_id"], p["out_trade_no"]))
            if o is not None:
                self._expire(o)
                if o.appid != p["appid"]:
                    raise _Reject(self._result_fail(p, "OUT_TRADE_NO_USED", "商户订单号重复"))
                if o.state == "SUCCESS":
                    raise _Reject(self._result_fail(p, "ORDERPAID", "该订单已支付"))
                if o.state == "CLOSED":
                    raise _Reject(self._result_fail(p, "ORDERCLOSED", "该订单已关闭"))
                if any(o.params.get(k) != p.get(k) for k in KEY_FIELDS):
                    raise self._invalid(p, "201 商户订单号重复")
                if now - o.prepay_at > PREPAY_TTL:
                    self._by_prepay.pop(o.prepay_id, None)
                    o.prepay_id, o.prepay_at = self._new_prepay(), now
                    self._by_prepay[o.prepay_id] = o
            else:
                # time_expire is checked on the first call only (a repeat must send
                # the same one, even when it is now closer than 5 minutes)
                if expire is not None and expire < now - 1 + MIN_EXPIRE_S:
                    raise _Reject({"return_code": "FAIL", "return_msg": TIME_EXPIRE_SHORT})
                keep = {k: v for k, v in p.items() if k not in ("sign", "nonce_str")}
                o = _Order(appid=p["appid"], mch_id=p["mch_id"],
                           out_trade_no=p["out_trade_no"], params=keep,
                           sign_type=normalize_sign_type(p.get("sign_type")),
                           prepay_id=self._new_prepay(), prepay_at=now,
                           time_expire=expire, created=now)
                self._orders[(o.mch_id, o.out_trade_no)] = o
                self._by_prepay[o.prepay_id] = o
            reply = {"return_code": "SUCCESS", "return_msg": "OK", "appid": p["appid"],
                     "mch_id": p["mch_id"], "nonce_str": new_nonce(),
                     "result_code": "SUCCESS", "prepay_id": o.prepay_id,
                     "trade_type": p["trade_type"]}
            if p.get("device_info"):
                reply["device_info"] = p["device_info"]
            if p["trade_type"] == "NATIVE":
                reply["code_url"] = "weixin://wxpay/bizpayurl?pr=" + o.prepay_id[-7:]
            if p["trade_type"] == "MWEB":
                reply["mweb_url"] = ("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb"
                                     f"?prepay_id={o.prepay_id}&package="
                                     + str(1000000000 + secrets.randbelow(9000000000)))
            return reply

    def _new_prepay(self) -> str:
        return "wx" + beijing_stamp(self.now()) + secrets.token_hex(10)

    def _lookup(self, p: dict) -> _Order:
        if not p.get("out_trade_no") and not p.get("transaction_id"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS",
                                            "缺少参数out_trade_no或transaction_id"))
        with self._lock:
            o = None
            if p.get("transaction_id"):
                o = next((x for x in self._orders.values()
                          if x.transaction_id == p["transaction_id"]
                          and x.mch_id == p["mch_id"]), None)
            elif p.get("out_trade_no"):
                o = self._orders.get((p["mch_id"], p["out_trade_no"]))
            if o is None or o.appid != p["appid"]:
                raise _Reject(self._result_fail(p, "ORDERNOTEXIST", "此交易订单号不存在"))
            self._expire(o)
            return o

    def _do_orderquery(self, p: dict) -> dict:
        with self._lock:
            o = self._lookup(p)
            reply = {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                     "mch_id": o.mch_id, "nonce_str": new_nonce(),
                     "result_code": "SUCCESS", "out_trade_no": o.out_trade_no,
                     "trade_state": o.state,
                     "trade_state_desc": {"NOTPAY": "订单未支付", "CLOSED": "订单已关闭",
                                          "SUCCESS": "支付成功"}[o.state],
                     "total_fee": o.params["total_fee"],
                     "fee_type": o.params.get("fee_type", "CNY"),
                     "trade_type": o.params["trade_type"]}
            for k in ("openid", "attach", "device_info"):
                if o.params.get(k):
                    reply[k] = o.params[k]
            if o.state == "SUCCESS":
                reply.update(is_subscribe="N", bank_type=o.bank_type,
                             cash_fee=o.params["total_fee"],
                             transaction_id=o.transaction_id, time_end=o.time_end)
            return reply

    def _do_closeorder(self, p: dict) -> dict:
        self._need(p, "out_trade_no")
        with self._lock:
            o = self._lookup(p)
            if o.state == "SUCCESS":
                raise _Reject(self._result_fail(p, "ORDERPAID", "订单已支付，不能发起关单"))
            if o.state == "CLOSED":
                raise _Reject(self._result_fail(p, "ORDERCLOSED", "订单已关闭，无法重复关闭"))
            o.state = "CLOSED"
            return {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                    "mch_id": o.mch_id, "nonce_str": new_nonce(),
                    "result_code": "SUCCESS", "result_msg": "OK"}

    # ----- payment and notification -------------------------------------------------
    def pay(self, prepay_id: str | None = None, out_trade_no: str | None = None,
            bank_type: str = "OTHERS") -> dict:
        """The user pays: mark the order paid and start notifying.

        Raises LookupError (unknown) or ValueError (not payable: paid, closed, expired).
        """
        with self._lock:
            if prepay_id:
                o = self._by_prepay.get(prepay_id)
            elif out_trade_no:
                o = self._find(out_trade_no)
            else:
                raise ValueError("give prepay_id or out_trade_no")
            if o is None:
                raise LookupError("no order has this prepay_id")
            self._expire(o)
            if o.state != "NOTPAY":
                raise ValueError(f"order {o.out_trade_no} is {o.state}, not payable")
            if self.now() - o.prepay_at > PREPAY_TTL:
                raise ValueError("prepay_id expired")
            now = self.now()
            o.state, o.paid_at = "SUCCESS", now
            o.transaction_id = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
            o.time_end = beijing_stamp(now)
            o.bank_type = bank_type
            mch_key = self._apps[o.appid][1]
            n = {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                 "mch_id": o.mch_id, "device_info": o.params.get("device_info"),
                 "nonce_str": new_nonce(), "result_code": "SUCCESS",
                 "openid": o.params.get("openid"), "is_subscribe": "N",
                 "trade_type": o.params["trade_type"], "bank_type": bank_type,
                 "total_fee": o.params["total_fee"],
                 "fee_type": o.params.get("fee_type", "CNY"),
                 "cash_fee": o.params["total_fee"], "transaction_id": o.transaction_id,
                 "out_trade_no": o.out_trade_no, "attach": o.params.get("attach"),
                 "time_end": o.time_end}
            n = {k: v for k, v in n.items() if v not in (None, "")}
            # signed the way the order was placed; like WeChat, no sign_type field
            # even for HMAC-SHA256 (wechatpay-v2.md §8.7)
            n["sign"] = sign(n, mch_key, o.sign_type)
            o.notification = n
            faults = self._take_faults(notify=True)
            copies = faults.get("concurrent_notify") or faults.get("duplicate_notify") or 1
            concurrent = "concurrent_notify" in faults
            o.notify_status = "pending"
            o.notify_active = copies
            result = {"out_trade_no": o.out_trade_no, "transaction_id": o.transaction_id,
                      "prepay_id": o.prepay_id, "total_fee": int(o.params["total_fee"]),
                      "time_end": o.time_end, "notify_url": o.params["notify_url"],
                      "notify_copies": copies}
        body = to_xml(n).encode("utf-8")
        threading.Thread(target=self._deliver,
                         args=(o, body, copies, concurrent, faults.get("notify_latency", 0)),
                         name="wxpay-sim-notify", daemon=True).start()
        return result

    def _deliver(self, o: _Order, body: bytes, copies: int, concurrent: bool, delay: float):
        url = o.params["notify_url"]
        if not self.allow_remote and not is_loopback_host(urlsplit(url).hostname):
            with self._cond:
                o.notify_status = "refused"
                o.notify_active = 0
                o.notify_attempts.append({"copy": 0, "n": 0, "at": int(self.now() * 1000),
                                          "status": None, "ok": False,
                                          "reply": "refused: notify_url is not loopback"})
                o.last_reply = "refused: notify_url is not loopback"
                self._cond.notify_all()
            return
        if delay and self._stop.wait(delay):
            return
        if concurrent and copies > 1:
            barrier = threading.Barrier(copies)
            threads = [threading.Thread(target=self._deliver_copy,
                                        args=(o, url, body, i, barrier), daemon=True)
                       for i in range(copies)]
            for t in threads:
                t.start()
        else:
            for i in range(copies):
                self._deliver_copy(o, url, body, i, None)

    def _deliver_copy(self, o, url, body, copy, barrier):
        delivered = False
        http = requests.Session()
        http.trust_env = False            # never through a proxy from the environment
        try:
            if barrier is not None:
                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            schedule = (0.0,) + self.retry_schedule
            for n, pause in enumerate(schedule):
                if pause and self._stop.wait(pause):
                    return
                status, reply, ok = None, "", False
                try:
                    r = http.post(url, data=body, timeout=self.notify_timeout,
                                  headers={"Content-Type": "text/xml; charset=utf-8"},
                                  allow_redirects=False)
                    status = r.status_code
                    raw = r.content[:MAX_BYTES]
                    reply = raw[:500].decode("utf-8", "replace")
                    ok = status == 200 and _is_success(raw)
                except requests.RequestException as e:
                    reply = f"error: {type(e).__name__}"
                with self._cond:
                    o.notify_attempts.append({"copy": copy, "n": n + 1,
                                              "at": int(self.now() * 1000),
                                              "status": status, "ok": ok, "reply": reply})
                    o.last_reply = reply
                if ok:
                    delivered = True
                    return
        finally:
            http.close()
            with self._cond:
                o.notify_active -= 1
                if delivered:
                    o.notify_status = "delivered"
                elif o.notify_active <= 0 and o.notify_status != "delivered":
                    o.notify_status = "failed"
                self._cond.notify_all()


def _is_success(raw: bytes) -> bool:
    try:
        return from_xml(raw).get("return_code") == "SUCCESS"
    except WxPayError:
        return False


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator = None            # set per simulator
    server_version = "wxpay-sim/1"
    sys_version = ""

    def log_message(self, fmt, *args):          # no bodies, so no secrets
        if self.sim.verbose:
            sys.stderr.write("wxpay-sim: %s\n" % (fmt % args))

    def _body(self) -> bytes | None:
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(100)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadFraming("malformed chunked body") from None
                if n == 0:
                    self.rfile.readline(100)
                    break
                size += n
                if size > MAX_BYTES + 1:
                    return b"x" * (MAX_BYTES + 1)
                chunks.append(self.rfile.read(n))
                self.rfile.readline(100)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return b""
        if n > MAX_BYTES:
            return b"x" * (MAX_BYTES + 1)     # too large: refused without reading it
        return self.rfile.read(n)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/sandboxnew/"):
            path = path[len("/sandboxnew"):]
        m = re.fullmatch(r"/pay/(unifiedorder|orderquery|closeorder)", path)
        if m:
            body = self._body() if method == "POST" else None
            status, out, ctype = self.sim.handle_pay(m.group(1), method, body)
            return self._send(status, out, ctype)
        try:
            if path == "/sim/pay" and method == "POST":
                data = self._json_body()
                try:
                    res = self.sim.pay(prepay_id=data.get("prepay_id"),
                                       out_trade_no=data.get("out_trade_no"),
                                       bank_type=str(data.get("bank_type") or "OTHERS"))
                except LookupError as e:
                    return self._json(404, {"error": str(e)})
                except ValueError as e:
                    return self._json(409, {"error": str(e)})
                return self._json(200, res)
            if path == "/sim/faults" and method == "POST":
                try:
                    return self._json(200, {"faults": self.sim.set_faults(self._json_body())})
                except ValueError as e:
                    return self._json(400, {"error": str(e)})
            if path == "/sim/faults" and method == "GET":
                return self._json(200, {"faults": self.sim.faults()})
            if path.startswith("/sim/orders/") and method == "GET":
                no = unquote(path[len("/sim/orders/"):])
                q = parse_qs(urlsplit(self.path).query)
                snap = self.sim.order(no, (q.get("mch_id") or [None])[0])
                if snap is None:
                    return self._json(404, {"error": "no such order"})
                return self._json(200, snap)
            if path == "/sim/health":
                return self._json(200, {"ok": True})
        except _BadJson as e:
            return self._json(400, {"error": str(e)})
        self._json(404, {"error": "not found"})

    def _json_body(self) -> dict:
        raw = self._body() or b"{}"
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _BadJson("the body is not JSON") from None
        if not isinstance(data, dict):
            raise _BadJson("the body must be a JSON object")
        return data

    def _safe_route(self, method: str) -> None:
        try:
            self._route(method)
        except _BadFraming as e:
            self._json(400, {"error": str(e)})
        except Exception as e:       # never a traceback on the console; one line instead
            sys.stderr.write(f"wxpay-sim: {method} {urlsplit(self.path).path}: "
                             f"{type(e).__name__}\n")
            try:
                self._json(500, {"error": "internal error"})
            except Exception:
                pass

    def do_POST(self):
        self._safe_route("POST")

    def do_GET(self):
        self._safe_route("GET")

    def do_PUT(self):
        self._safe_route("PUT")

    def do_DELETE(self):
        self._safe_route("DELETE")


class _BadJson(Exception):
    pass


class _BadFraming(Exception):
    pass


def _merchant(text: str):
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("expected APPID:MCH_ID:KEY")
    return tuple(parts)


def _schedule(text: str):
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds like 0.2,0.2,0.5") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("retry pauses cannot be negative")
    return values


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="wxpay-sim", description="Loopback simulator of the WeChat Pay v2 API.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--merchant", action="append", type=_merchant, default=[],
                    metavar="APPID:MCH_ID:KEY", help="repeatable")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback host and non-loopback notify_url")
    ap.add_argument("--retry-schedule", type=_schedule, default=(0.2, 0.2, 0.5, 1, 2),
                    metavar="S,S,...", help="pauses between notification attempts")
    ap.add_argument("--hold", type=float, default=15.0,
                    help="seconds the 'timeout' fault holds a reply")
    ap.add_argument("--verbose", action="store_true", help="log requests (no bodies)")
    args = ap.parse_args(argv)
    # keys can also come from the environment, so they stay out of `ps` listings
    for item in re.split(r"[\s,]+", os.environ.get("WXPAY_SIM_MERCHANTS", "").strip()):
        if item:
            try:
                args.merchant.append(_merchant(item))
            except argparse.ArgumentTypeError:
                ap.error("WXPAY_SIM_MERCHANTS holds an entry that is not APPID:MCH_ID:KEY")
    if not args.merchant:
        ap.error("give at least one --merchant APPID:MCH_ID:KEY "
                 "(or WXPAY_SIM_MERCHANTS)")
    if not args.allow_remote and not is_loopback_host(args.host):
        ap.error(f"refusing non-loopback host {args.host} without --allow-remote")
    try:
        sim = Simulator(host=args.host, port=args.port, merchants=args.merchant,
                        retry_schedule=args.retry_schedule, allow_remote=args.allow_remote,
                        hold=args.hold, verbose=args.verbose)
        sim.start()
    except OSError as e:
        print(f"wxpay-sim: cannot listen on {args.host}:{args.port}: {e.strerror}",
              file=sys.stderr)
        return 1
    done = threading.Event()

    def _quit(*_):
        done.set()

    signal.signal(signal.SIGTERM, _quit)
    signal.signal(signal.SIGINT, _quit)
    print(f"wxpay-sim listening on {sim.url} merchants: "
          + ", ".join(f"{a}/{m}" for a, m, _ in args.merchant), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
