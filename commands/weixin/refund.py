"""``weixin <conf> refund ORDER -fee FEN [-reason TEXT] | -result id:REQ | -query ORDER``.

State kept on the order (see ``man weixin``):

* ``pay_refunds``      one entry per refund, in order: ``{out_refund_no: <id>_r<n>,
                       refund_fee, status, time, reason?, refund_id?, success_time?,
                       error?}``; status PENDING (stored before WeChat is called; a
                       retry after a network error reuses the number), PROCESSING
                       (accepted), SUCCESS, CHANGE (退款异常, manual), REFUNDCLOSE or
                       FAILED (refused: released).
* ``pay_refunded``     fen refunded (SUCCESS entries).
* ``pay_refund_from``  the or_status before the first refund (2 or 4), restored when no
                       refund is in flight and the order is not wholly refunded.
* ``or_status``        3 while a refund is PENDING or PROCESSING; 5 once the whole paid
                       amount is refunded.

Every change is one compare-and-set of ``pay_refunds`` (and or_status), so concurrent
refund requests never reserve more than was paid, and duplicate notifications change
an entry once.
"""
from __future__ import annotations

from objstore.errors import BAD_INPUT, CONFLICT, NOT_FOUND, WnError
from wxpay.api import reply_xml
from wxpay.errors import ResultFail, ReturnFail, TransportError
from wxpay.refund import build_refund, parse_refund_notification, refunds_of_query

from .common import fetch_obj, log, now_ms, parse_opts, request_body, usage, write_json
from .order import CAS_TRIES, PAID, FULFILLED, Reject, check_is_order, order_status

REFUNDING = 3
REFUNDED = 5
IN_FLIGHT = ("PENDING", "PROCESSING")
RELEASED = ("REFUNDCLOSE", "FAILED")
FINAL = ("SUCCESS", "REFUNDCLOSE", "FAILED")
# WeChat answers these for a refund it did not do: call again with the same number
RETRY_SAME = ("SYSTEMERROR", "BIZERR_NEED_RETRY", "NOTENOUGH", "FREQUENCY_LIMITED")
MAX_REFUNDS = 50
# a refund in doubt that WeChat still does not know after this long was never made
DOUBT_RELEASE_MS = 2 * 60 * 1000
# refunds of one order race on one list: more tries than elsewhere, with a little
# random backoff, so 30 concurrent requests all get an answer (done or exceeds)
REFUND_CAS_TRIES = 200


def _backoff(n: int) -> None:
    import random
    import time
    time.sleep(random.uniform(0, min(0.002 * (n + 1), 0.05)))


def _paid_amount(order) -> tuple[int, dict]:
    pr = order.get("pay_result")
    if not isinstance(pr, dict) or not pr.get("transaction_id"):
        raise WnError("e.cmd.weixin.refund.unpaid", f"order {order.id} is not paid",
                      CONFLICT)
    fee = pr.get("total_fee")
    if not isinstance(fee, str) or not fee.isdigit():
        raise WnError("e.cmd.weixin.refund.unpaid",
                      f"order {order.id} has no paid amount", CONFLICT)
    return int(fee), pr


def _entries(order) -> list[dict]:
    value = order.get("pay_refunds")
    return [dict(x) for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _status_after(order, refunds: list[dict], paid: int) -> dict:
    """or_status, pay_refunded (and pay_refund_from) for these entries."""
    done = sum(int(r["refund_fee"]) for r in refunds if r.get("status") == "SUCCESS")
    before = order.get("pay_refund_from")
    if not isinstance(before, int) or isinstance(before, bool):
        before = PAID
    if any(r.get("status") in IN_FLIGHT for r in refunds):
        status = REFUNDING
    elif done >= paid:
        status = REFUNDED
    else:
        status = before
    return {"or_status": status, "pay_refunded": done}


def _attempts(store, oid: str):
    """The order, read afresh for each compare-and-set attempt (backing off after the
    first); ``e.cmd.weixin.order.busy`` once REFUND_CAS_TRIES attempts all lost."""
    for attempt in range(REFUND_CAS_TRIES):
        if attempt:
            _backoff(attempt)
        order = store.get(oid)
        if order is None:
            raise WnError("e.cmd.weixin.order.noexists", f"order {oid}", NOT_FOUND)
        yield order
    raise WnError("e.cmd.weixin.order.busy", f"order {oid} is being changed", CONFLICT)


def _reserve(store, oid: str, fee: int, reason: str | None) -> tuple[dict, int, dict]:
    """Store the new refund (PENDING) before calling WeChat, atomically against every
    other refund of the order: (entry, paid amount, pay_result)."""
    for order in _attempts(store, oid):
        paid, pr = _paid_amount(order)
        status = order_status(order)
        if status not in (PAID, REFUNDING, FULFILLED, REFUNDED):
            raise WnError("e.cmd.weixin.refund.status",
                          f"order {oid} has or_status {status}", CONFLICT)
        refunds = _entries(order)
        # a refund whose call ended in doubt (network error, SYSTEMERROR...): the same
        # amount again is a retry of it, with the same out_refund_no (claimed here, so
        # a refund being asked right now by another request is never taken)
        doubt = next((i for i, r in enumerate(refunds) if r.get("status") == "PENDING"
                      and r.get("doubt") and r.get("refund_fee") == fee), None)
        if doubt is not None:
            refunds[doubt] = dict(refunds[doubt], doubt=False, retried=now_ms())
            if store.cas(oid, {"pay_refunds": order.get("pay_refunds")},
                         {"pay_refunds": refunds}) is not None:
                return refunds[doubt], paid, pr
            continue
        reserved = sum(int(r["refund_fee"]) for r in refunds
                       if r.get("status") not in RELEASED)
        if reserved + fee > paid:
            raise WnError("e.cmd.weixin.refund.exceeds",
                          f"refund of {fee} fen exceeds what is left of order {oid} "
                          f"({paid - reserved} of {paid} fen)", CONFLICT)
        if len(refunds) >= MAX_REFUNDS:
            raise WnError("e.cmd.weixin.refund.toomany",
                          f"order {oid} has {MAX_REFUNDS} refunds (WeChat's limit)",
                          CONFLICT)
        entry = {"out_refund_no": f"{oid}_r{len(refunds) + 1}", "refund_fee": fee,
                 "status": "PENDING", "time": now_ms()}
        if reason:
            entry["reason"] = reason
        new = refunds + [entry]
        changes = {"pay_refunds": new, "or_status": REFUNDING}
        if status != REFUNDING and order.get("pay_refund_from") is None:
            changes["pay_refund_from"] = status if status in (PAID, FULFILLED) else PAID
        if store.cas(oid, {"pay_refunds": order.get("pay_refunds"),
                           "or_status": order.get("or_status")}, changes) is not None:
            return entry, paid, pr


def mark_doubt(store, oid: str, out_refund_no: str, why: str) -> None:
    """The call of this PENDING refund ended without an answer: a later refund of the
    same amount retries it under the same number."""
    for _ in range(CAS_TRIES):
        order = store.get(oid)
        if order is None:
            return
        refunds = _entries(order)
        for i, r in enumerate(refunds):
            if r.get("out_refund_no") == out_refund_no and r.get("status") == "PENDING":
                refunds[i] = dict(r, doubt=True, error=why[:300])
                break
        else:
            return
        if store.cas(oid, {"pay_refunds": order.get("pay_refunds")},
                     {"pay_refunds": refunds}) is not None:
            return


def update_refund(store, oid: str, out_refund_no: str, status: str, **fields) -> str:
    """Move one refund entry to ``status`` exactly once: "applied", "duplicate" (it is
    already there) or "ignored" (a final entry is never moved back)."""
    for order in _attempts(store, oid):
        refunds = _entries(order)
        idx = next((i for i, r in enumerate(refunds)
                    if r.get("out_refund_no") == out_refund_no), None)
        if idx is None:
            raise WnError("e.cmd.weixin.refund.noexists",
                          f"order {oid} has no refund {out_refund_no}", NOT_FOUND)
        cur = refunds[idx].get("status")
        if cur == status:
            return "duplicate"
        if cur in FINAL or (status == "PROCESSING" and cur != "PENDING") \
                or (cur == "CHANGE" and status != "SUCCESS"):
            return "ignored"
        refunds[idx] = dict(refunds[idx], status=status, doubt=False,
                            **{k: v for k, v in fields.items() if v not in (None, "")})
        paid, _pr = _paid_amount(order)
        changes = dict(_status_after(order, refunds, paid), pay_refunds=refunds)
        if store.cas(oid, {"pay_refunds": order.get("pay_refunds")}, changes) is not None:
            log.info("weixin: refund %s of order %s %s (or_status %s)", out_refund_no, oid,
                     status, changes["or_status"])
            return "applied"


# ---- refund ORDER -fee FEN -----------------------------------------------------------
def _fee(value) -> int:
    if not isinstance(value, str) or not value.isdigit() or not value.isascii() \
            or int(value) <= 0 or int(value) > 2**31 - 1:
        raise WnError("e.cmd.weixin.refund.fee", "-fee must be a whole number of fen > 0",
                      BAD_INPUT)
    return int(value)


def ask(session, loaded, ref: str, opts: dict, stdout) -> int:
    from .certstore import secure_client
    fee = _fee(opts.get("fee"))
    reason = opts.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 80):
        raise usage("e.cmd.weixin.refund.usage", "-reason must be text of at most 80 chars")
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    check_is_order(order)
    if getattr(loaded, "api_version", 2) == 3:
        from . import v3pay
        return v3pay.refund_ask(session, loaded, order, fee, reason, stdout)
    paid, pr = _paid_amount(order)
    notify_url = loaded.conf.get("pay_refund_notify_url")
    # every input checked before anything is reserved (a refused request leaves nothing)
    build_refund(loaded.account, out_refund_no=f"{order.id}_r1", total_fee=paid,
                 refund_fee=min(fee, paid), transaction_id=pr["transaction_id"],
                 refund_desc=reason, notify_url=notify_url)
    client = secure_client(session, loaded)        # no certificate: refused before anything
    store = session.store
    entry, paid, pr = _reserve(store, order.id, fee, reason)
    otn = entry["out_refund_no"]
    params = build_refund(loaded.account, out_refund_no=otn, total_fee=paid, refund_fee=fee,
                          transaction_id=pr["transaction_id"],
                          refund_desc=entry.get("reason"), notify_url=notify_url)
    try:
        reply = client.refund(params)
    except TransportError as e:
        mark_doubt(store, order.id, otn, e.line())
        log.warning("weixin %s: refund %s of order %s in doubt (%s); the next refund of "
                    "%s fen retries it", loaded.name, otn, order.id, e.line(), fee)
        raise
    except (ResultFail, ReturnFail) as e:
        if isinstance(e, ResultFail) and e.err_code in RETRY_SAME:
            mark_doubt(store, order.id, otn, e.line())
            log.warning("weixin %s: refund %s of order %s: %s (retry with the same "
                        "number)", loaded.name, otn, order.id, e.err_code)
            raise
        update_refund(store, order.id, otn, "FAILED", error=e.line()[:300])
        log.warning("weixin %s: refund %s of order %s refused: %s", loaded.name, otn,
                    order.id, e.line())
        raise
    if reply.get("out_refund_no") != otn or reply.get("refund_fee") != str(fee):
        raise WnError("e.weixin.reply.mismatch",
                      "the refund reply names another refund or amount")
    update_refund(store, order.id, otn, "PROCESSING", refund_id=reply.get("refund_id"))
    fresh = store.get(order.id) or order
    cur = next((r for r in _entries(fresh) if r["out_refund_no"] == otn), entry)
    write_json(stdout, {"id": order.id, "out_refund_no": otn,
                        "refund_id": reply.get("refund_id"), "refund_fee": fee,
                        "status": cur.get("status"), "or_status": order_status(fresh),
                        "pay_refunded": fresh.get("pay_refunded", 0)})
    return 0


# ---- refund -result id:REQ -----------------------------------------------------------
def apply_notification(store, params: dict) -> str:
    """Match a decrypted refund notification to its refund and apply it."""
    orn = params.get("out_refund_no") or ""
    oid, sep, seq = orn.rpartition("_r")
    if not sep or not seq.isdigit():
        raise Reject("unknown refund", f"out_refund_no {orn[:64]!r} is not <id>_r<n>")
    order = store.get(oid)
    if order is None:
        raise Reject("unknown refund", f"no order {oid}")
    entry = next((r for r in _entries(order) if r.get("out_refund_no") == orn), None)
    if entry is None:
        raise Reject("unknown refund", f"order {oid} has no refund {orn}")
    try:
        paid, pr = _paid_amount(order)
    except WnError as e:
        raise Reject("unknown refund", e.reason) from None
    for name, mine in (("transaction_id", pr.get("transaction_id")),
                       ("out_trade_no", pr.get("out_trade_no")),
                       ("refund_fee", str(entry.get("refund_fee"))),
                       ("total_fee", str(paid))):
        if params.get(name) != mine:
            raise Reject("refund mismatch", f"refund {orn}: {name} differs")
    status = params.get("refund_status")
    return update_refund(store, oid, orn, status, refund_id=params.get("refund_id"),
                         success_time=params.get("success_time"),
                         recv_account=params.get("refund_recv_accout"))


def result(session, loaded, ref: str, stdout, stderr) -> int:
    if getattr(loaded, "api_version", 2) == 3:
        from . import v3pay
        return v3pay.refund_result(session, loaded, ref, stdout, stderr)
    req_id, raw = request_body(session, ref)
    try:
        try:
            params = parse_refund_notification(loaded.account, raw)
        except WnError as e:
            raise Reject("invalid notification", e.line()) from None
        outcome = apply_notification(session.store, params)
    except Reject as r:
        log.warning("weixin %s: refund notification (request %s) rejected: %s",
                    loaded.name, req_id, r.reason)
        stderr.write(f"weixin: refund notification rejected: {r.reason}\n")
        stdout.write(reply_xml(False, r.msg))
        return 0
    if outcome == "ignored":
        log.warning("weixin %s: refund notification for %s (%s) after a final state: "
                    "ignored", loaded.name, params.get("out_refund_no"),
                    params.get("refund_status"))
    stdout.write(reply_xml(True))
    return 0


# ---- refund -query ORDER -------------------------------------------------------------
def query_and_apply(session, loaded, order) -> dict:
    """refundquery for the order; every refund WeChat reports is applied."""
    if getattr(loaded, "api_version", 2) == 3:
        from . import v3pay
        return v3pay.refund_query_and_apply(session, loaded, order)
    paid, pr = _paid_amount(order)
    seen = []
    offset = 0
    while True:
        try:
            reply = loaded.client.refundquery(out_trade_no=pr.get("out_trade_no"),
                                              offset=offset or None)
        except ResultFail as e:
            if e.err_code == "REFUNDNOTEXIST":
                break
            raise
        items = refunds_of_query(reply)
        seen.extend(items)
        total = int(reply.get("total_refund_count") or len(items) or 0)
        offset += len(items)
        if not items or offset >= total or offset >= MAX_REFUNDS:
            break
    mine = {r["out_refund_no"] for r in _entries(order)}
    for item in seen:
        if item["out_refund_no"] in mine and item.get("refund_status"):
            update_refund(session.store, order.id, item["out_refund_no"],
                          item["refund_status"], refund_id=item.get("refund_id"),
                          success_time=item.get("refund_success_time"))
    # a refund whose call ended in doubt a while ago and that WeChat does not know was
    # never made: release its amount (nothing retries a FAILED number)
    known = {item["out_refund_no"] for item in seen}
    now = now_ms()
    for r in _entries(order):
        if r.get("status") == "PENDING" and r.get("doubt") and r["out_refund_no"] not in known \
                and isinstance(r.get("time"), int) and now - r["time"] >= DOUBT_RELEASE_MS:
            update_refund(session.store, order.id, r["out_refund_no"], "FAILED",
                          error="WeChat has no such refund (refundquery)")
    fresh = session.store.get(order.id) or order
    return {"id": order.id, "or_status": order_status(fresh),
            "pay_refunded": fresh.get("pay_refunded", 0), "paid": paid,
            "refunds": _entries(fresh), "wechat": seen}


def query(session, loaded, ref: str, stdout) -> int:
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    check_is_order(order)
    write_json(stdout, query_and_apply(session, loaded, order))
    return 0


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = dict(po.opts)
    rest = list(po.args)
    if "result" in opts or "query" in opts:
        mode = "result" if "result" in opts else "query"
        extra = sorted(set(opts) - {mode})
        if extra or rest or ("result" in opts and "query" in opts):
            raise usage("e.cmd.weixin.refund.usage",
                        f"unexpected {('-' + extra[0]) if extra else rest[0][:40]} "
                        f"for -{mode}" if (extra or rest) else "-result or -query, not both")
        value = opts[mode]
        if not isinstance(value, str) or not value:
            raise usage("e.cmd.weixin.refund.usage", f"-{mode} needs a value")
        if mode == "result":
            return result(session, loaded, value, stdout, stderr)
        return query(session, loaded, value, stdout)
    unknown = sorted(set(opts) - {"fee", "reason"})
    if unknown or len(rest) != 1 or "fee" not in opts:
        raise usage("e.cmd.weixin.refund.usage",
                    "refund ORDER -fee FEN [-reason TEXT] | -result id:REQ | -query ORDER")
    return ask(session, loaded, rest[0], opts, stdout)
