"""The WeChat Pay v3 backend of the ``weixin`` commands (an account with
``pay_api_version: 3``; docs/wechatpay-v3.md).

The seam is small: ``order.run`` picks this module for ``-submit`` and ``-result``
(``order._backend``), ``refund.run`` for a refund, its notification and its query;
everything else of the lifecycle -- ``order -query``, ``-close``, ``-sweep``, the
sweeper, ``bill`` -- is shared with v2, because :class:`V3PayClient` (what
``loaded.client`` is on a v3 account) answers ``orderquery``, ``closeorder`` and
``downloadbill`` in v2's shape.  The same order fields are written with JSON inside:

* ``pay_send``   the JSON sent to ``POST /v3/pay/transactions/jsapi`` (or ``/native``)
* ``pay_rexml``  the answer's text; ``pay_remap`` its verified JSON (``prepay_id``)
* ``pay_jsobj``  ``getBrandWCPayRequest`` arguments, ``signType: "RSA"``
* ``pay_native`` a Native attempt's ``{trade_type, code_url, out_trade_no, prepay_id
  (null: v3 Native answers only the code_url), time_expire, total_fee}`` (v2's shape)
* ``pay_result`` the verified transaction (notification resource or query answer) as
  WeChat sent it, plus v2's spelling of three of its facts -- ``mch_id``, ``total_fee``
  (fen, as text) and ``time_end`` (``yyyyMMddHHmmss`` Beijing) -- so the shared code
  (refunds, bills, the sweeper) reads one shape.

Every answer's signature is verified by the client before use; every notification's
(``Wechatpay-Signature`` over ``timestamp\\nnonce\\nbody\\n``, 5 minutes, a known
serial) before it is decrypted and matched.  A notification is answered the v3 way
(``session.set_response``): 204 when it was applied or is a duplicate; 400/401 with
``{"code":"FAIL","message":…}`` when it is refused (nothing changed); 500 when the
store failed (WeChat sends it again).
"""
from __future__ import annotations

import json
import time
from datetime import datetime

from objstore.errors import BAD_INPUT, UPSTREAM, WnError
from wxpay.errors import ResultFail, ReturnFail, TransportError
from wxpay.v3 import api as v3api
from wxpay.v3 import notify as v3notify
from wxpay.v3.client import V3Client
from wxpay.v3.crypto import rsa_verify
from wxpay.v3.errors import UnknownSerial
from wxpay.v3.keys import PUB_KEY_PREFIX

from .common import (BEIJING, EXPIRE_MARGIN_MS, beijing, fetch_obj, log, now_ms,
                     order_time_expire, write_json)

# a notification under a serial the account does not know refreshes the platform
# certificates at most this often (a forger cannot make us fetch on every request)
SERIAL_REFRESH_EVERY_S = 60.0
# v3 refund states -> the states pay_refunds keeps (v2's)
REFUND_STATES = {"SUCCESS": "SUCCESS", "PROCESSING": "PROCESSING",
                 "CLOSED": "REFUNDCLOSE", "ABNORMAL": "CHANGE"}


# ---- v2-shaped facts of v3 answers -------------------------------------------------------
def _beijing_stamp(rfc3339: str) -> str | None:
    try:
        when = datetime.fromisoformat(str(rfc3339))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def as_v2_transaction(t: dict) -> dict:
    """A verified v3 transaction with ``mch_id``, ``total_fee`` and ``time_end`` added
    in v2's spelling (what ``order.match_order``/``mark_paid``, refunds and bills read)."""
    out = dict(t)
    out["mch_id"] = t.get("mchid")
    total = (t.get("amount") or {}).get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        out["total_fee"] = str(total)
    end = _beijing_stamp(t.get("success_time")) if t.get("success_time") else None
    if end:
        out["time_end"] = end
    return out


def as_v2_refund(r: dict) -> dict:
    """A verified v3 refund (answer or notification resource) in the fields
    ``refund.apply_notification``/``update_refund`` read."""
    amount = r.get("amount") or {}
    status = r.get("refund_status", r.get("status"))
    return {"out_refund_no": r.get("out_refund_no"), "refund_id": r.get("refund_id"),
            "transaction_id": r.get("transaction_id"),
            "out_trade_no": r.get("out_trade_no"),
            "refund_fee": str(amount.get("refund")), "total_fee": str(amount.get("total")),
            "refund_status": REFUND_STATES.get(status, status),
            "success_time": r.get("success_time"),
            "refund_recv_accout": r.get("user_received_account")}


class V3PayClient(V3Client):
    """:class:`wxpay.v3.client.V3Client` plus the v2-shaped calls the shared lifecycle
    code makes (``orderquery``, ``closeorder``, ``downloadbill``)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # shared by the copies Loaded.bounded makes for each request's deadline
        self._serial_refresh = {"at": -SERIAL_REFRESH_EVERY_S}

    def orderquery(self, out_trade_no: str) -> dict:
        return as_v2_transaction(self.query(out_trade_no))

    def closeorder(self, out_trade_no: str) -> dict:
        self.close_order(out_trade_no)
        return {}

    def downloadbill(self, bill_date: str, bill_type: str = "ALL",
                     gzip_body: bool = True) -> str:
        day = f"{bill_date[:4]}-{bill_date[4:6]}-{bill_date[6:8]}"
        try:
            return self.tradebill(day, bill_type)
        except ResultFail as e:
            if e.err_code == "NO_STATEMENT_EXIST":
                err = ReturnFail("No Bill Exist (v3 NO_STATEMENT_EXIST)")
                err.key = "e.weixin.bill.none"
                raise err from None
            raise

    def notification(self, headers, body: bytes):
        """A verified, decrypted notification; certificates fetched when none are
        held, and once more (rate-limited) when it names an unknown serial."""
        self.ensure_certificates()
        try:
            return v3notify.parse_notification(self.account, headers, body)
        except UnknownSerial as e:
            now = time.monotonic()
            if e.serial.startswith(PUB_KEY_PREFIX) or \
                    now - self._serial_refresh["at"] < SERIAL_REFRESH_EVERY_S:
                raise
            self._serial_refresh["at"] = now
            self.refresh_certificates()
            return v3notify.parse_notification(self.account, headers, body)


def _answer(session, stdout, error) -> int:
    status, headers, body = v3notify.answer(error)
    session.set_response(status, headers.get("Content-Type"))
    stdout.write(body.decode("utf-8"))
    return 0


# ---- order -submit ---------------------------------------------------------------------
def _reusable(order, account, amount: int, openid: str, body: str, now: int) -> bool:
    """The stored pay_jsobj is this attempt's, unexpired, and signed with the current
    merchant key."""
    from .order import REUSE_MS
    js, send, remap = order.get("pay_jsobj"), order.get("pay_send"), order.get("pay_remap")
    made, until = order.get("pay_prepay_time"), order.get("pay_expire_at")
    if order.get("pay_closed"):
        return False
    if not (isinstance(js, dict) and isinstance(send, dict) and isinstance(remap, dict)):
        return False
    for v in (made, until):
        if isinstance(v, bool) or not isinstance(v, int):
            return False
    if not 0 <= now - made < REUSE_MS or until <= now + EXPIRE_MARGIN_MS:
        return False
    same = (send.get("appid") == account.appid and send.get("mchid") == account.mchid
            and (send.get("amount") or {}).get("total") == amount
            and (send.get("payer") or {}).get("openid") == openid
            and send.get("description") == body
            and send.get("notify_url") == account.notify_url
            and send.get("out_trade_no") == order.get("pay_out_trade_no"))
    if not same:
        return False
    expi = order.get("order_expi")
    if isinstance(expi, (int, float)) and not isinstance(expi, bool) \
            and int(expi) // 1000 * 1000 != until:
        return False
    prepay = remap.get("prepay_id")
    if not prepay or js.get("package") != f"prepay_id={prepay}" \
            or js.get("appId") != account.appid or js.get("signType") != "RSA":
        return False
    message = f"{js.get('appId')}\n{js.get('timeStamp')}\n{js.get('nonceStr')}\n" \
              f"{js.get('package')}\n"
    try:
        return rsa_verify(account.private_key.public_key(), message, js.get("paySign"))
    except WnError:
        return False


def _reusable_native(order, account, amount: int, body: str, now: int) -> bool:
    """The stored pay_native is this attempt's (a v3 Native prepay for the current
    amount, body and account) and unexpired."""
    from .order import REUSE_MS
    native, send, made = order.get("pay_native"), order.get("pay_send"), \
        order.get("pay_prepay_time")
    if not (isinstance(native, dict) and isinstance(send, dict)) or order.get("pay_closed"):
        return False
    if isinstance(made, bool) or not isinstance(made, int) or not 0 <= now - made < REUSE_MS:
        return False
    until = order.get("pay_expire_at")
    if isinstance(until, bool) or not isinstance(until, int) \
            or until <= now + EXPIRE_MARGIN_MS:
        return False
    return (native.get("trade_type") == "NATIVE" and "payer" not in send
            and send.get("appid") == account.appid and send.get("mchid") == account.mchid
            and (send.get("amount") or {}).get("total") == amount
            and send.get("description") == body
            and send.get("notify_url") == account.notify_url
            and send.get("out_trade_no") == order.get("pay_out_trade_no")
            and native.get("out_trade_no") == send.get("out_trade_no"))


def submit(session, loaded, opts, stdout) -> int:
    """``order -submit``: JSAPI (``pay_jsobj``, signed RSA) or, with ``-trade_type
    NATIVE``, a Native prepay (``pay_native`` with the ``code_url``, v2's shape; v3
    gives no prepay_id for it, so that field is null). The checks before and the
    record after are v2's (``order.begin_submit`` / ``order.finish_submit``)."""
    from .order import begin_submit, keep_past_time_expire, run_attempts
    sub = begin_submit(session, loaded, opts, stdout, _reusable, _reusable_native)
    if sub is None:
        return 0
    store, account, order, native = session.store, loaded.account, sub.order, sub.native
    request = {"body": sub.body, "total_fee": sub.amount,
               "spbill_create_ip": sub.client_ip}
    if not native:
        request["openid"] = sub.openid
    expire = order_time_expire(order, sub.now)
    if expire:
        request["time_expire"] = expire
    else:       # the account's pay_time_expire, in whole seconds (as v2 sends it)
        request["time_expire"] = beijing(sub.now + account.time_expire_minutes * 60000)
    make = v3api.build_native_prepay if native else v3api.build_jsapi_prepay

    def build(out_trade_no):
        req = make(account, dict(request, out_trade_no=out_trade_no))
        keep_past_time_expire(store, order, request["time_expire"])
        return out_trade_no, req

    def send(built):
        out_trade_no, req = built
        remap, text = loaded.client.exchange(req)
        if native:
            jsobj = {"trade_type": "NATIVE", "code_url": v3api.parse_code_url(remap),
                     "out_trade_no": out_trade_no, "prepay_id": None,
                     "time_expire": request["time_expire"], "total_fee": sub.amount}
        else:
            jsobj = v3api.jsapi_params(account, v3api.parse_prepay(remap))
        return (out_trade_no, json.loads(req.body), text, remap, jsobj,
                request["time_expire"])
    return run_attempts(store, loaded, sub, build, send,
                        f"v3 {sub.trade_type.lower()} prepay", stdout)


# ---- order -result id:${id} ------------------------------------------------------------
def _request(session, ref):
    req = fetch_obj(session, ref, "request object", "e.cmd.weixin.req.noexists")
    if req.is_dir:
        raise WnError("e.cmd.weixin.req.invalid", "the request object is a directory",
                      BAD_INPUT)
    return req, session.store.read(req.id)


def _refused(loaded, req, stderr, what: str, reason: str) -> None:
    log.warning("weixin %s: v3 %s notification (request %s) refused: %s", loaded.name,
                what, req.id, reason)
    stderr.write(f"weixin: {what} notification rejected: {reason}\n")


def _verified(session, loaded, ref, what: str, stdout, stderr, check):
    """``(check(notification), None)`` for the request object ``ref`` holding a
    verified, decrypted notification of ``what`` (payment or refund); else ``(None,
    exit status)`` once it is answered the v3 way (4xx refused, 5xx the store failed:
    WeChat sends it again) and logged, nothing changed."""
    from .order import Reject
    req, raw = _request(session, ref)
    try:
        n = loaded.client.notification(v3notify.headers_from_meta(req), raw)
        if n.kind != {"payment": "transaction", "refund": "refund"}[what]:
            raise WnError("e.weixin.notify.invalid", f"not a {what} notification", BAD_INPUT)
        return check(n), None
    except Reject as r:
        _refused(loaded, req, stderr, what, r.reason)
        return None, _answer(session, stdout, WnError("e.weixin.notify.mismatch", r.msg,
                                                      BAD_INPUT))
    except WnError as e:
        _refused(loaded, req, stderr, what, e.line())
        return None, _answer(session, stdout, e)


def result(session, loaded, ref, stdout, stderr) -> int:
    from .order import _record_extra, mark_paid, match_order
    store = session.store

    def check(n):
        params = as_v2_transaction(n.resource)
        order, _amount, superseded = match_order(store, params)
        v3notify.check_payment(n, params["out_trade_no"], int(params["total_fee"]))
        return params, order, superseded
    got, status = _verified(session, loaded, ref, "payment", stdout, stderr, check)
    if got is None:
        return status
    params, order, superseded = got
    try:
        if superseded:
            _record_extra(store, order.id, params, superseded)
        else:
            mark_paid(store, order.id, params)
    except WnError as e:        # the store, not the notification: WeChat sends it again
        log.warning("weixin %s: v3 payment of order %s not applied yet: %s", loaded.name,
                    order.id, e.line())
        stderr.write(f"weixin: payment not applied: {e.line()}\n")
        return _answer(session, stdout, WnError(e.key, e.reason, "internal")
                       if e.kind == BAD_INPUT else e)
    return _answer(session, stdout, None)


# ---- refund ORDER -fee FEN, refund -result, refund -query ----------------------------------
def refund_ask(session, loaded, order, fee: int, reason, stdout) -> int:
    from . import refund as rf
    paid, pr = rf._paid_amount(order)
    account = loaded.account
    v3api.build_refund(account, {"out_trade_no": pr.get("out_trade_no"),
                                 "out_refund_no": f"{order.id}_r1", "refund_fee": min(fee, paid),
                                 "total_fee": paid, "refund_desc": reason})
    store = session.store
    entry, paid, pr = rf._reserve(store, order.id, fee, reason)
    orn = entry["out_refund_no"]
    try:
        reply = loaded.client.refund({"out_trade_no": pr.get("out_trade_no"),
                                      "out_refund_no": orn, "refund_fee": fee,
                                      "total_fee": paid,
                                      "refund_desc": entry.get("reason")})
    except TransportError as e:
        rf.mark_doubt(store, order.id, orn, e.line())
        log.warning("weixin %s: refund %s of order %s in doubt (%s); the next refund of "
                    "%s fen retries it", loaded.name, orn, order.id, e.line(), fee)
        raise
    except (ResultFail, ReturnFail) as e:
        if isinstance(e, ResultFail) and (e.err_code in rf.RETRY_SAME or e.retryable):
            rf.mark_doubt(store, order.id, orn, e.line())
            raise
        rf.update_refund(store, order.id, orn, "FAILED", error=e.line()[:300])
        log.warning("weixin %s: refund %s of order %s refused: %s", loaded.name, orn,
                    order.id, e.line())
        raise
    got = as_v2_refund(reply)
    if got["out_refund_no"] != orn or got["refund_fee"] != str(fee):
        raise WnError("e.weixin.reply.mismatch",
                      "the refund answer names another refund or amount", UPSTREAM)
    # PROCESSING is "accepted"; an answer that is already final is applied as it is
    rf.update_refund(store, order.id, orn, "PROCESSING", refund_id=got["refund_id"])
    if got["refund_status"] not in ("PROCESSING", None):
        rf.update_refund(store, order.id, orn, got["refund_status"],
                         refund_id=got["refund_id"], success_time=got["success_time"])
    fresh = store.get(order.id) or order
    cur = next((r for r in rf._entries(fresh) if r["out_refund_no"] == orn), entry)
    from .order import order_status
    write_json(stdout, {"id": order.id, "out_refund_no": orn,
                        "refund_id": got["refund_id"], "refund_fee": fee,
                        "status": cur.get("status"), "or_status": order_status(fresh),
                        "pay_refunded": fresh.get("pay_refunded", 0)})
    return 0


def refund_result(session, loaded, ref, stdout, stderr) -> int:
    from . import refund as rf

    def check(n):       # a store failure in apply_notification answers 500: sent again
        params = as_v2_refund(n.resource)
        return params, rf.apply_notification(session.store, params)
    got, status = _verified(session, loaded, ref, "refund", stdout, stderr, check)
    if got is None:
        return status
    params, outcome = got
    if outcome == "ignored":
        log.warning("weixin %s: refund notification for %s (%s) after a final state: "
                    "ignored", loaded.name, params.get("out_refund_no"),
                    params.get("refund_status"))
    return _answer(session, stdout, None)


def refund_query_and_apply(session, loaded, order) -> dict:
    """Each refund of the order asked by its out_refund_no; what WeChat reports is
    applied (the same transitions as v2's refundquery)."""
    from . import refund as rf
    paid, _pr = rf._paid_amount(order)
    seen = []
    for r in rf._entries(order):
        orn = r.get("out_refund_no")
        try:
            got = as_v2_refund(loaded.client.refund_query(orn))
        except ResultFail as e:
            if e.err_code in ("REFUNDNOTEXIST", "ORDERNOTEXIST"):
                continue
            raise
        seen.append({"out_refund_no": orn, "refund_status": got["refund_status"],
                     "refund_id": got["refund_id"],
                     "refund_success_time": got["success_time"],
                     "refund_fee": got["refund_fee"]})
        if got["refund_status"]:
            rf.update_refund(session.store, order.id, orn, got["refund_status"],
                             refund_id=got["refund_id"], success_time=got["success_time"])
    known = {item["out_refund_no"] for item in seen}
    now = now_ms()
    for r in rf._entries(order):
        if r.get("status") == "PENDING" and r.get("doubt") and r["out_refund_no"] not in known \
                and isinstance(r.get("time"), int) and now - r["time"] >= rf.DOUBT_RELEASE_MS:
            rf.update_refund(session.store, order.id, r["out_refund_no"], "FAILED",
                             error="WeChat has no such refund (v3 refund query)")
    from .order import order_status
    fresh = session.store.get(order.id) or order
    return {"id": order.id, "or_status": order_status(fresh),
            "pay_refunded": fresh.get("pay_refunded", 0), "paid": paid,
            "refunds": rf._entries(fresh), "wechat": seen}
