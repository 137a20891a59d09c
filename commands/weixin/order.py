"""``weixin <conf> order -submit | -result | -query`` (and ``-close``, ``-sweep``, in
``expiry``): the seed's order flows.

State kept on the order object (see the man page of ``weixin``):

* ``pay_seq``            the highest attempt number recorded; an attempt is numbered
                         ``pay_seq`` + 1 (out_trade_no = ``<id>_<n>``) and recorded with
                         its fields, in their one compare-and-set
* ``pay_send``, ``pay_out_trade_no``, ``pay_rexml``, ``pay_remap``, ``pay_jsobj``,
  ``pay_jsobj_choose``, ``pay_prepay_time``, ``pay_type``
                         written together, in one compare-and-set, only after a
                         verified SUCCESS reply of unifiedorder
* ``pay_fees``           {out_trade_no: fen} of the latest attempts that got a prepay_id:
                         a payment of an older attempt made for another amount is
                         then recognised (recorded aside, never applied)
* ``pay_error``          the last failed attempt (never a FAIL in pay_remap)
* ``or_status`` 2, ``pay_result``, ``pay_time``
                         written once, by one compare-and-set, when WeChat says paid
* ``pay_result_extra``   payments that arrived for an order already paid by another
                         transaction, cancelled or fulfilled (to refund by hand)
* ``pay_native``         a NATIVE attempt's {trade_type, code_url, ...} (QR code)
* ``pay_expire_at``      the time_expire sent (epoch ms), the sweeper's index;
                         ``pay_closed`` when it closed the order (``expiry``)
* ``expi``               pushed past time_expire before the call; null once paid
Refunds: ``refund.py``; close and sweep: ``expiry.py``; bills: ``bill.py``.
"""
from __future__ import annotations

import re
import sys

from objstore.errors import BAD_INPUT, CONFLICT, FORBIDDEN, NOT_FOUND, UPSTREAM, WnError
from wxpay.sign import sign as sign_params
from wxpay.api import (build_unifiedorder, check_notification_amount, cut_utf8,
                       jsapi_params, parse_notification, parse_reply, reply_xml)
from wxpay.errors import ResultFail
from wxpay.money import to_fen
from wxpay.xmlcodec import to_xml

from .common import (EXPI_AFTER_PAY_WINDOW_MS, EXPIRE_MARGIN_MS, beijing, fetch_obj,
                     from_beijing, log, now_ms, order_time_expire, parse_opts,
                     request_body, usage, write_json)

PAID = 2
CANCELLED = (3, 5)
FULFILLED = 4
PAYABLE = (0, 1)
# WeChat keeps a prepay_id for 2 hours; reuse a built pay_jsobj for a bit less
REUSE_MS = (2 * 60 - 10) * 60 * 1000
QUERY_ATTEMPTS = 5
CAS_TRIES = 20
# out_trade_no numbers tried when WeChat holds the next ones with other parameters
NUMBER_TRIES = 5
# how many attempts' amounts pay_fees remembers
FEES_KEPT = 20
_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# ---- order fields ------------------------------------------------------------------
def order_status(order) -> int:
    value = order.get("or_status")
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise WnError("e.cmd.weixin.order.status.invalid",
                      "or_status must be an integer 0..5", BAD_INPUT)
    return value


def order_amount(order) -> int:
    """The order's amount in fen (total_fee fen, or pay_val yuan)."""
    try:
        return to_fen(order.get("total_fee"), order.get("pay_val"))
    except WnError as e:
        raise WnError("e.cmd.weixin.order.amount.invalid", e.reason, BAD_INPUT) from None


def order_body(order) -> str:
    """The order's pay_body, title or body, cut to WeChat's 127 UTF-8 bytes on a
    character boundary (a CJK character is 3 bytes)."""
    for key in ("pay_body", "title", "body"):
        value = order.get(key)
        if isinstance(value, str) and value.strip():
            return cut_utf8(" ".join(value.split()), 127)
    return cut_utf8(f"order {order.id}", 127)


ORDER_FIELDS = ("or_status", "total_fee", "pay_val")


def check_is_order(order, openid_key: str = "openid") -> None:
    """Refuse an object that carries none of an order's fields (``or_status``,
    ``total_fee``, ``pay_val``, the buyer's openid key): a wxconf, an API file, a
    directory of orders... named by mistake (or on purpose) where an order is expected."""
    if not any(order.get(k) not in (None, "") for k in ORDER_FIELDS + (openid_key,)):
        what = "directory" if order.is_dir else "object"
        raise WnError("e.cmd.weixin.order.invalid",
                      f"{what} {order.get('ph', order.id)} is not an order (it has no "
                      f"{openid_key}, or_status, total_fee or pay_val)", BAD_INPUT)


def check_payable(order) -> int:
    status = order_status(order)
    if status == PAID:
        raise WnError("e.cmd.weixin.order.paid", f"order {order.id} is already paid",
                      CONFLICT)
    if status == 5:
        raise WnError("e.cmd.weixin.order.refunded", f"order {order.id} is refunded",
                      CONFLICT)
    if status in CANCELLED:
        raise WnError("e.cmd.weixin.order.cancelled",
                      f"order {order.id} is cancelled (or being refunded)", CONFLICT)
    if status == FULFILLED:
        raise WnError("e.cmd.weixin.order.fulfilled", f"order {order.id} is fulfilled",
                      CONFLICT)
    if status not in PAYABLE:
        raise WnError("e.cmd.weixin.order.status.invalid",
                      f"order {order.id} has or_status {status}", CONFLICT)
    return status


# ---- -submit -------------------------------------------------------------------------
def _reusable(order, account, amount: int, openid: str, body: str, now: int) -> bool:
    """True when the stored pay_jsobj belongs to the current order and is still valid."""
    js, send, remap = order.get("pay_jsobj"), order.get("pay_send"), order.get("pay_remap")
    made = order.get("pay_prepay_time")
    if order.get("pay_closed"):           # closed at WeChat: that prepay is dead
        return False
    if not (isinstance(js, dict) and isinstance(send, dict) and isinstance(remap, dict)):
        return False
    if isinstance(made, bool) or not isinstance(made, int) or not 0 <= now - made < REUSE_MS:
        return False
    same = (send.get("appid") == account.appid and send.get("mch_id") == account.mch_id
            and send.get("total_fee") == str(amount) and send.get("openid") == openid
            and send.get("body") == body and send.get("notify_url") == account.notify_url
            and send.get("out_trade_no") == order.get("pay_out_trade_no"))
    if not same:
        return False
    expire = from_beijing(send.get("time_expire", ""))
    if expire is None or expire <= now + EXPIRE_MARGIN_MS:
        return False
    expi = order.get("order_expi")
    if isinstance(expi, (int, float)) and not isinstance(expi, bool) \
            and beijing(int(expi)) != send.get("time_expire"):
        return False
    prepay = remap.get("prepay_id")
    if not prepay or js.get("package") != f"prepay_id={prepay}" \
            or js.get("appId") != account.appid or js.get("signType") != account.sign_type:
        return False
    # signed with the current key (a rotated pay_key invalidates it)
    fields = {k: v for k, v in js.items() if k != "paySign"}
    try:
        return sign_params(fields, account.key, account.sign_type) == js.get("paySign")
    except WnError:
        return False


def _record_error(store, order, out_trade_no: str, err: WnError) -> None:
    """Keep a failed attempt apart (``pay_error``) and spend its number: WeChat may
    hold it (a timeout, a refusal), so the next attempt takes the next one."""
    error = {"out_trade_no": out_trade_no, "key": err.key, "reason": err.reason,
             "time": now_ms()}
    number = int(out_trade_no.rpartition("_")[2])
    current = order
    try:
        for _ in range(CAS_TRIES):
            seq = current.get("pay_seq")
            changes = {"pay_error": error, "pay_seq": max(number, attempt_seq(current))}
            if store.cas_applied(order.id, {"pay_seq": seq}, changes):
                return
            current = store.get(order.id)
            if current is None:
                raise WnError("e.cmd.weixin.order.noexists", f"order {order.id}", NOT_FOUND)
        log.warning("weixin: cannot record pay_error on order %s: it is being changed",
                    order.id)
    except WnError as e:  # the order vanished meanwhile: the caller's error says enough
        log.warning("weixin: cannot record pay_error on order %s: %s", order.id, e.key)


def keep_past_time_expire(store, order, time_expire: str) -> None:
    """An order with its own ``expi`` (a temporary order) must not vanish while WeChat
    can still take money for it: push expi past ``time_expire`` plus a window, before
    the call (compare-and-set; never shortened)."""
    until = from_beijing(time_expire)
    if until is None:
        return
    want = until + EXPI_AFTER_PAY_WINDOW_MS
    current = order
    for _ in range(CAS_TRIES):
        expi = current.get("expi")
        if expi is None or (isinstance(expi, int) and expi >= want):
            return
        if store.cas(order.id, {"expi": expi}, {"expi": want}) is not None:
            return
        current = store.get(order.id)
        if current is None:
            raise WnError("e.cmd.weixin.order.noexists", f"order {order.id}", NOT_FOUND)
    raise WnError("e.cmd.weixin.order.busy", f"order {order.id} is being changed",
                  CONFLICT)


class Submit:
    """What ``-submit`` knows once its input is checked, for either API version.
    ``stored(order)``: the answer stored on ``order`` when it can be reused as it is
    (the version's own test), else None."""

    __slots__ = ("order", "openid", "openid_key", "trade_type", "native", "client_ip",
                 "amount", "body", "now", "stored")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def begin_submit(session, loaded, opts, stdout, reusable=None,
                 reusable_native=None) -> "Submit | None":
    """The checks of ``-submit`` both API versions make, in order: the options, the
    client IP (even when a stored answer is reused: WeChat would refuse it), the order,
    its owner, that it can be paid. Prints the order's stored answer and returns None
    when ``reusable``/``reusable_native`` (the version's own test of its stored fields;
    v2's by default) says it can be reused."""
    reusable = reusable or _reusable
    reusable_native = reusable_native or _reusable_native
    ref = opts.get("submit")
    client_ip, openid = opts.get("client_ip"), opts.get("openid")
    openid_key = opts.get("openid_key", "openid")
    trade_type = opts.get("trade_type", "JSAPI")
    if trade_type not in ("JSAPI", "NATIVE"):
        raise usage("e.cmd.weixin.order.usage", "-trade_type must be JSAPI or NATIVE")
    native = trade_type == "NATIVE"
    if native and openid is None:
        openid = ""          # a QR code is scanned by whoever has it: no owner check
    for name, value in (("-submit", ref), ("-client_ip", client_ip),
                        ("-openid", openid), ("-openid_key", openid_key)):
        if not isinstance(value, str) or (not value and not (native and name == "-openid")):
            raise usage("e.cmd.weixin.order.usage", f"{name} needs a value")
    import ipaddress
    try:
        ipaddress.ip_address(client_ip)
    except ValueError:
        raise WnError("e.weixin.param.invalid",     # the key wxpay gives spbill_create_ip
                      f"-client_ip is not an IP address: {client_ip[:64]!r}",
                      BAD_INPUT) from None
    account = loaded.account

    def stored(current):
        if native:
            ok = reusable_native(current, account, amount, body, now)
            return current["pay_native"] if ok else None
        ok = reusable(current, account, amount, openid, body, now)
        return current["pay_jsobj"] if ok else None
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    check_is_order(order, openid_key)
    owner = order.get(openid_key)
    if (openid or not native) and (not isinstance(owner, str) or owner != openid):
        raise WnError("e.cmd.weixin.order.user.nosame",
                      f"order {order.id} is not this user's", FORBIDDEN)
    check_payable(order)
    amount = order_amount(order)
    body = order_body(order)
    now = now_ms()
    answer = stored(order)
    if answer is not None:
        write_json(stdout, answer)
        return None
    return Submit(order=order, openid=openid, openid_key=openid_key,
                  trade_type=trade_type, native=native, client_ip=client_ip,
                  amount=amount, body=body, now=now, stored=stored)


def attempt_seq(order) -> int:
    """The highest attempt number the order has recorded (0: none yet)."""
    seq = order.get("pay_seq")
    if seq is None:
        return 0
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2 ** 62:
        raise WnError("e.cmd.weixin.order.seq.invalid",
                      f"order {order.id}: pay_seq is not a count of attempts", CONFLICT)
    return seq


def _number_in_use(e: WnError) -> bool:
    """WeChat already has this out_trade_no with other parameters (an attempt that was
    sent but never recorded: a concurrent submit, or one cut short by a crash)."""
    return isinstance(e, ResultFail) and (
        e.err_code == "OUT_TRADE_NO_USED"
        or (e.err_code == "INVALID_REQUEST" and "201" in e.err_code_des))


def run_attempts(store, loaded, sub: "Submit", build, send, what: str, stdout) -> int:
    """Send the order's next attempt and record it (either API version).

    The attempt number is the order's ``pay_seq`` + 1, and it is recorded (with
    ``pay_seq``) by the one compare-and-set that stores the accepted attempt, so an
    accepted submit is one synced write.  A number WeChat already holds with other
    parameters (an attempt that was sent but not recorded: a concurrent submit for
    the same order, or one cut short by a crash) is answered OUT_TRADE_NO_USED; then
    an answer stored meanwhile is reused, or the next number is tried.  A number that
    was sent but not recorded was never handed to the payer, so no payment can come
    for it.  ``build(out_trade_no)`` checks the input, readies the order (its errors are
    the caller's, nothing is recorded) and returns what ``send`` takes; ``send(built)``
    calls WeChat and returns
    ``(out_trade_no, pay_send, reply text, remap, jsobj, time_expire)``."""
    order = sub.order
    seq = attempt_seq(order)
    for _ in range(NUMBER_TRIES):
        out_trade_no = f"{order.id}_{seq + 1}"
        built = build(out_trade_no)
        try:
            got = send(built)
        except WnError as e:
            if _number_in_use(e):
                current = store.get(order.id)
                if current is None:
                    raise WnError("e.cmd.weixin.order.noexists", f"order {order.id}",
                                  NOT_FOUND) from None
                answer = sub.stored(current)
                if answer is not None:
                    write_json(stdout, answer)
                    return 0
                seq = max(seq + 1, attempt_seq(current))
                continue
            _record_error(store, order, out_trade_no, e)
            log.warning("weixin %s: %s for order %s (%s) failed: %s", loaded.name, what,
                        order.id, out_trade_no, e.line())
            raise
        return finish_submit(store, sub, *got, stdout)
    raise WnError("e.cmd.weixin.order.busy", f"order {order.id}: WeChat holds its next "
                  f"{NUMBER_TRIES} out_trade_no with other parameters", CONFLICT)


def finish_submit(store, sub: "Submit", out_trade_no: str, pay_send: dict, reply_text: str,
                  remap: dict, jsobj: dict, time_expire: str, stdout) -> int:
    """Record an accepted attempt (either API version) and print its answer."""
    changes = {"pay_type": "weixin", "pay_send": pay_send,
               "pay_out_trade_no": out_trade_no, "pay_rexml": reply_text,
               "pay_remap": remap, "pay_prepay_time": sub.now, "pay_error": None,
               "pay_closed": None,
               # when WeChat stops taking money for it (the sweeper's index)
               "pay_expire_at": from_beijing(time_expire)}
    if sub.native:
        changes.update(pay_native=jsobj, pay_jsobj=None, pay_jsobj_choose=None)
    else:
        choose = {"timestamp": jsobj["timeStamp"], "nonceStr": jsobj["nonceStr"],
                  "package": jsobj["package"], "signType": jsobj["signType"],
                  "paySign": jsobj["paySign"]}
        changes.update(pay_jsobj=jsobj, pay_jsobj_choose=choose, pay_native=None)
    return store_attempt(store, sub.order, changes, sub.openid_key, sub.openid,
                         sub.amount, out_trade_no, jsobj, stdout)


def submit(session, loaded, opts, stdout) -> int:
    sub = begin_submit(session, loaded, opts, stdout)
    if sub is None:
        return 0
    store, account, order, native = session.store, loaded.account, sub.order, sub.native
    request = {"body": sub.body, "total_fee": sub.amount,
               "spbill_create_ip": sub.client_ip, "trade_type": sub.trade_type}
    if native:
        request["product_id"] = _product_id(order)
    else:
        request["openid"] = sub.openid
    expire = order_time_expire(order, sub.now)
    if expire:
        request["time_expire"] = expire

    def build(out_trade_no):
        params = build_unifiedorder(account, dict(request, out_trade_no=out_trade_no))
        keep_past_time_expire(store, order, params["time_expire"])
        return params

    def send(params):
        out_trade_no = params["out_trade_no"]
        rexml, fields = loaded.client.post_xml_fields("/pay/unifiedorder", to_xml(params))
        remap = parse_reply(account, fields)
        prepay_id = remap.get("prepay_id")
        if not prepay_id:
            raise WnError("e.weixin.reply.noprepay", "unifiedorder answered no prepay_id",
                          UPSTREAM)
        if native:
            code_url = remap.get("code_url")
            if not code_url or not code_url.startswith("weixin://"):
                raise WnError("e.weixin.reply.nocodeurl",
                              "unifiedorder NATIVE answered no code_url", UPSTREAM)
            jsobj = {"trade_type": "NATIVE", "code_url": code_url,
                     "out_trade_no": out_trade_no, "prepay_id": prepay_id,
                     "time_expire": params["time_expire"], "total_fee": sub.amount}
        else:
            jsobj = jsapi_params(account, prepay_id)
        pay_send = {k: v for k, v in params.items() if k != "sign"}
        return out_trade_no, pay_send, rexml, remap, jsobj, params["time_expire"]
    return run_attempts(store, loaded, sub, build, send, "unifiedorder", stdout)


def store_attempt(store, order, changes: dict, openid_key: str, openid: str, amount: int,
                  out_trade_no: str, jsobj: dict, stdout) -> int:
    """Write an attempt's fields and its number (``pay_seq``) in one compare-and-set
    (the order must still be payable, this user's, for this amount), then print
    ``jsobj``."""
    watched = ("or_status", openid_key, "total_fee", "pay_val", "pay_fees", "pay_seq")
    number = int(out_trade_no.rpartition("_")[2])
    current = order
    for _ in range(CAS_TRIES):
        expect = {k: current.get(k) for k in watched}
        changes["pay_fees"] = _with_fee(current.get("pay_fees"), out_trade_no, amount)
        # never lower: a concurrent submit may have recorded a higher number
        changes["pay_seq"] = max(number, attempt_seq(current))
        if store.cas_applied(order.id, expect, changes):
            write_json(stdout, jsobj)
            return 0
        current = store.get(order.id)
        if current is None:
            raise WnError("e.cmd.weixin.order.noexists", f"order {order.id}", NOT_FOUND)
        check_payable(current)
        if current.get(openid_key) != openid or order_amount(current) != amount:
            raise WnError("e.cmd.weixin.order.changed",
                          f"order {order.id} changed during the payment request; "
                          "submit again", CONFLICT)
    raise WnError("e.cmd.weixin.order.busy", f"order {order.id} is being changed",
                  CONFLICT)


def _product_id(order) -> str:
    value = order.get("product_id")
    if isinstance(value, str) and value and len(value) <= 32:
        return value
    return order.id[:32]


def _reusable_native(order, account, amount: int, body: str, now: int) -> bool:
    """True when the stored NATIVE code_url is for the current amount, body and account
    and still has more than the margin before its time_expire."""
    native, send, made = order.get("pay_native"), order.get("pay_send"), \
        order.get("pay_prepay_time")
    if not (isinstance(native, dict) and isinstance(send, dict)) or order.get("pay_closed"):
        return False
    if isinstance(made, bool) or not isinstance(made, int) or not 0 <= now - made < REUSE_MS:
        return False
    if not (send.get("trade_type") == "NATIVE" and send.get("appid") == account.appid
            and send.get("mch_id") == account.mch_id
            and send.get("total_fee") == str(amount) and send.get("body") == body
            and send.get("notify_url") == account.notify_url
            and send.get("out_trade_no") == order.get("pay_out_trade_no")
            and native.get("out_trade_no") == send.get("out_trade_no")):
        return False
    expire = from_beijing(send.get("time_expire", ""))
    return expire is not None and expire > now + EXPIRE_MARGIN_MS


def _with_fee(fees, out_trade_no: str, amount: int) -> dict:
    """pay_fees plus this attempt, keeping the latest FEES_KEPT attempts."""
    kept = dict(fees) if isinstance(fees, dict) else {}
    kept[out_trade_no] = amount

    def seq(otn):
        tail = str(otn).rpartition("_")[2]
        return int(tail) if tail.isdigit() else 0
    return dict(sorted(kept.items(), key=lambda kv: seq(kv[0]))[-FEES_KEPT:])


# ---- the paid transition (shared by -result and -query) ----------------------------
class Reject(Exception):
    """A notification we answer with FAIL: ``msg`` goes to WeChat, ``reason`` to logs."""

    def __init__(self, msg: str, reason: str):
        super().__init__(reason)
        self.msg, self.reason = msg, reason


def match_order(store, params: dict):
    """(order, amount, superseded) that a verified payload's out_trade_no names, or
    Reject.  ``superseded`` is None for a payment of the order's current amount; it is
    a reason (str) for a payment of an older attempt that was made, and paid, for an
    amount the order no longer has: genuine money, never applied to the order."""
    otn = params.get("out_trade_no") or ""
    oid, sep, seq = otn.rpartition("_")
    if not sep or not _ORDER_ID.match(oid) or not (seq.isascii() and seq.isdigit()):
        raise Reject("unknown order", "out_trade_no is not <order id>_<seq>")
    order = store.get(oid)
    if order is None:
        raise Reject("unknown order", f"no order {oid}")
    pay_seq = order.get("pay_seq")
    if isinstance(pay_seq, bool) or not isinstance(pay_seq, int) \
            or not 1 <= int(seq) <= pay_seq:
        raise Reject("unknown order", f"order {oid} never sent out_trade_no {otn}")
    try:
        amount = order_amount(order)
    except WnError as e:
        raise Reject("amount mismatch", f"order {oid}: {e.reason}") from None
    try:
        check_notification_amount(params, amount)
    except WnError as e:
        fees = order.get("pay_fees")
        sent = fees.get(otn) if isinstance(fees, dict) else None
        if isinstance(sent, int) and not isinstance(sent, bool) and sent != amount:
            try:
                check_notification_amount(params, sent)
            except WnError:
                pass
            else:
                return order, amount, (f"attempt {otn} was paid {sent} fen; the order's "
                                       f"amount is now {amount} fen")
        raise Reject("amount mismatch", f"order {oid}: {e.reason}") from None
    return order, amount, None


def mark_paid(store, oid: str, params: dict, order=None) -> str:
    """Move the order to paid exactly once.  Returns "paid" (this call did it),
    "duplicate" (already paid by this transaction) or "extra" (recorded aside).
    ``order``: the order as the caller just read it (match_order), used for the first
    try instead of reading it again; the compare-and-set checks it is still current."""
    txid = params.get("transaction_id") or ""
    for _ in range(CAS_TRIES):
        order = store.get(oid) if order is None else order
        if order is None:
            raise WnError("e.cmd.weixin.order.noexists", f"order {oid}", NOT_FOUND)
        status = order_status(order)
        done = order.get("pay_result") or {}
        if txid and isinstance(done, dict) and done.get("transaction_id") == txid:
            # the payment that paid this order, again: nothing to do, whatever the
            # order became since (refunded, fulfilled, cancelled)
            return "duplicate"
        if status == PAID:
            return _record_extra(store, oid, params, "already paid by another transaction")
        if status not in PAYABLE:
            return _record_extra(store, oid, params, f"or_status is {status}")
        # a paid order is kept forever (the seed; Walnut sets expi to null)
        changes = {"or_status": PAID, "pay_result": params, "pay_time": now_ms(),
                   "pay_type": "weixin", "expi": None}
        if store.cas_applied(oid, {"or_status": order.get("or_status")}, changes):
            log.info("weixin: order %s paid (transaction %s)", oid, txid)
            return "paid"
        order = None                    # changed meanwhile: read it again
    raise WnError("e.cmd.weixin.order.busy", f"order {oid} is being changed", CONFLICT)


def _record_extra(store, oid: str, params: dict, why: str) -> str:
    txid = params.get("transaction_id") or ""
    for _ in range(CAS_TRIES):
        order = store.get(oid)
        if order is None:
            raise WnError("e.cmd.weixin.order.noexists", f"order {oid}", NOT_FOUND)
        extra = order.get("pay_result_extra")
        extra = list(extra) if isinstance(extra, list) else []
        if any(isinstance(x, dict) and x.get("transaction_id") == txid for x in extra):
            return "extra"
        new = extra + [dict(params, pay_time=now_ms())]
        # money is on this order now: it must not expire either
        if store.cas(oid, {"pay_result_extra": order.get("pay_result_extra")},
                     {"pay_result_extra": new, "expi": None}) is not None:
            log.warning("weixin: payment %s for order %s not applied (%s); recorded in "
                        "pay_result_extra for a refund", txid, oid, why)
            return "extra"
    raise WnError("e.cmd.weixin.order.busy", f"order {oid} is being changed", CONFLICT)


# ---- -result ---------------------------------------------------------------------------
_FAIL_MSG = {
    "e.weixin.xml.invalid": "invalid XML",
    "e.weixin.notify.return_fail": "return_code is not SUCCESS",
    "e.weixin.sign.invalid": "sign error",
    "e.weixin.notify.appid_mismatch": "appid mismatch",
    "e.weixin.notify.mch_id_mismatch": "mch_id mismatch",
}


def result(session, loaded, ref, stdout, stderr) -> int:
    store = session.store
    req_id, raw = request_body(session, ref)
    try:
        try:
            params = parse_notification(loaded.account, raw)
        except WnError as e:
            raise Reject(_FAIL_MSG.get(e.key, "invalid notification"), e.line()) from None
        order, _amount, superseded = match_order(store, params)
    except Reject as r:
        line = f"weixin: notification rejected: {r.reason}"
        log.warning("weixin %s: notification (request %s) rejected: %s",
                    loaded.name, req_id, r.reason)
        stderr.write(line + "\n")
        stdout.write(reply_xml(False, r.msg))
        return 0
    if params.get("result_code") != "SUCCESS":
        # a failed payment: acknowledged, nothing to change
        log.info("weixin %s: order %s payment failed (%s)", loaded.name, order.id,
                 params.get("err_code") or "no err_code")
        stdout.write(reply_xml(True))
        return 0
    if superseded:
        # money WeChat took for an attempt the order has moved past: acknowledged (so
        # WeChat stops retrying), kept for a refund, the order left as it is
        _record_extra(store, order.id, params, superseded)
    else:
        mark_paid(store, order.id, params, order)
    stdout.write(reply_xml(True))
    return 0


# ---- -query -----------------------------------------------------------------------------
def query(session, loaded, ref, stdout) -> int:
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    check_is_order(order)
    write_json(stdout, query_and_apply(session.store, loaded, order))
    return 0


def query_and_apply(store, loaded, order) -> dict:
    """orderquery for the order's latest attempts; a payment found is applied (the
    same checks and exactly-once transition as -result).  Returns the state printed
    by -query."""
    state = {"id": order.id, "or_status": order_status(order), "trade_state": None,
             "out_trade_no": order.get("pay_out_trade_no"), "transaction_id": None,
             "pay_time": order.get("pay_time")}
    if state["or_status"] == PAID:
        pr = order.get("pay_result") or {}
        state.update(trade_state="SUCCESS", out_trade_no=pr.get("out_trade_no"),
                     transaction_id=pr.get("transaction_id"))
        return state
    seq = order.get("pay_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        state["trade_state"] = "NOTPAY"
        return state
    found = None
    for n in range(seq, max(0, seq - QUERY_ATTEMPTS), -1):
        otn = f"{order.id}_{n}"
        try:
            reply = loaded.client.orderquery(otn)
        except ResultFail as e:
            if e.err_code == "ORDERNOTEXIST":
                continue
            raise
        if state["trade_state"] is None:
            state.update(trade_state=reply.get("trade_state"), out_trade_no=otn)
        if reply.get("trade_state") in ("SUCCESS", "REFUND"):     # REFUND: paid, then refunded
            found = reply
            break
    if found is not None:
        try:
            _order, _amount, superseded = match_order(store, found)
        except Reject as r:
            raise WnError("e.cmd.weixin.order.query.mismatch", r.reason, UPSTREAM) from None
        if superseded:
            outcome = _record_extra(store, order.id, found, superseded)
        else:
            outcome = mark_paid(store, order.id, found)
        fresh = store.get(order.id) or order
        state.update(trade_state="SUCCESS", out_trade_no=found.get("out_trade_no"),
                     transaction_id=found.get("transaction_id"),
                     or_status=order_status(fresh), pay_time=fresh.get("pay_time"))
        if outcome == "extra":
            state["note"] = "payment recorded in pay_result_extra"
    elif state["trade_state"] is None:
        state["trade_state"] = "NOTPAY"
    return state


# ---- dispatch ---------------------------------------------------------------------------
_ALLOWED = {"submit": frozenset({"submit", "client_ip", "openid", "openid_key", "trade_type"}),
            "result": frozenset({"result"}), "query": frozenset({"query"}),
            "close": frozenset({"close"}), "sweep": frozenset({"sweep", "limit"})}


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = po.opts
    modes = opts.keys() & _ALLOWED.keys()
    if len(modes) != 1:
        raise usage("e.cmd.weixin.order.usage",
                    "give exactly one of -submit, -result, -query, -close, -sweep")
    (mode,) = modes
    extra = sorted(opts.keys() - _ALLOWED[mode])
    if extra or po.args:
        what = f"-{extra[0]}" if extra else po.args[0][:40]
        raise usage("e.cmd.weixin.order.usage", f"unexpected {what} for -{mode}")
    value = opts[mode]
    if mode == "sweep":
        from . import expiry
        if value is not True:
            raise usage("e.cmd.weixin.order.usage", "-sweep takes no value")
        return expiry.sweep(session, loaded, opts.get("limit"), stdout, stderr)
    if mode == "close":
        from . import expiry
        if not isinstance(value, str) or not value:
            raise usage("e.cmd.weixin.order.usage", "-close needs an order")
        return expiry.close(session, loaded, value, stdout)
    if mode != "submit" and (not isinstance(value, str) or not value):
        raise usage("e.cmd.weixin.order.usage", f"-{mode} needs a value")
    backend = _backend(loaded)
    if mode == "submit":
        return backend.submit(session, loaded, opts, stdout)
    if mode == "result":
        return backend.result(session, loaded, value, stdout, stderr)
    return query(session, loaded, value, stdout)


def _backend(loaded):
    """The module that speaks the account's API version for -submit and -result: this
    one (v2, XML) or ``v3pay`` (JSON, RSA).  -query, -close and -sweep are shared: the
    v3 client answers orderquery/closeorder in v2's shape (``v3pay.V3PayClient``)."""
    if getattr(loaded, "api_version", 2) == 3:
        from . import v3pay
        return v3pay
    return sys.modules[__name__]
