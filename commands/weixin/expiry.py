"""``weixin <conf> order -close ORDER`` and ``order -sweep``: an unpaid order's end.

Close (closeorder, wechatpay-v2.md §8.1) every recent attempt of an unpaid order at
WeChat, so no late payment can arrive, and record it on the order:

* ``pay_closed``  ``{time, by: "close"|"sweep", out_trade_nos: [...]}``; a new
  ``-submit`` clears it (a new attempt is payable again).

A paid order is refused with WeChat's ORDERPAID (``e.weixin.err.ORDERPAID``, conflict);
when WeChat answers ORDERPAID for an order the store thought unpaid, the payment is
applied first (orderquery), never lost.

The sweeper finds the account's orders whose ``pay_expire_at`` (the ``time_expire``
sent, epoch ms) has passed unpaid and not yet closed, asks orderquery first (a late
payment is applied, exactly as ``-result`` would), then closes them; and it looks up
(refundquery) refunds still PROCESSING after two minutes, whose notification may have
been lost, and refunds whose call ended in doubt (applied if WeChat has them, released
if it does not).  ``wnshell serve``
runs it on a timer (``commands.weixin.sweeper``).
"""
from __future__ import annotations

from objstore.errors import CONFLICT, NOT_FOUND, WnError
from wxpay.errors import ResultFail

from .common import log, now_ms, usage, write_json
from .order import (CAS_TRIES, PAID, check_is_order, order_status, query_and_apply)

SWEEP_LIMIT = 200
# a refund still PROCESSING this long after it was asked is looked up (refundquery):
# its notification may have been lost
REFUND_CHECK_AFTER_MS = 2 * 60 * 1000


def _attempts(order) -> list[str]:
    """The out_trade_nos WeChat may know for this order, oldest first."""
    seen = []
    fees = order.get("pay_fees")
    if isinstance(fees, dict):
        seen.extend(str(k) for k in fees)
    latest = order.get("pay_out_trade_no")
    if isinstance(latest, str) and latest not in seen:
        seen.append(latest)

    def seq(otn):
        tail = otn.rpartition("_")[2]
        return int(tail) if tail.isdigit() else 0
    return sorted(seen, key=seq)


def _paid(order) -> bool:
    return order_status(order) == PAID or isinstance(order.get("pay_result"), dict)


def _orderpaid(order_id: str, note: str = "") -> WnError:
    return WnError("e.weixin.err.ORDERPAID",
                   f"order {order_id} is paid (WeChat: ORDERPAID 订单已支付，不能发起关单)"
                   + note, CONFLICT)


def close_order(store, loaded, order, by: str) -> dict:
    """Close every attempt of an unpaid order at WeChat and record ``pay_closed``."""
    if _paid(order):
        raise _orderpaid(order.id)
    closed = []
    for otn in _attempts(order):
        try:
            loaded.client.closeorder(otn)
        except ResultFail as e:
            if e.err_code == "ORDERCLOSED":
                pass
            elif e.err_code == "ORDERNOTEXIST":       # never reached WeChat
                continue
            elif e.err_code == "ORDERPAID":
                # paid after all: apply it (the notification may still be on its way)
                query_and_apply(store, loaded, store.get(order.id) or order)
                raise _orderpaid(order.id, f"; payment of {otn} applied") from None
            else:
                raise
        closed.append(otn)
    record = {"time": now_ms(), "by": by, "out_trade_nos": closed}
    current = order
    for _ in range(CAS_TRIES):
        if store.cas(order.id, {"or_status": current.get("or_status"), "pay_result": None},
                     {"pay_closed": record}) is not None:
            log.info("weixin %s: order %s closed at WeChat (%s): %s", loaded.name,
                     order.id, by, ", ".join(closed) or "no attempt reached WeChat")
            return {"id": order.id, "closed": closed, "or_status": order_status(current)}
        current = store.get(order.id)
        if current is None:
            raise WnError("e.cmd.weixin.order.noexists", f"order {order.id}", NOT_FOUND)
        if _paid(current):
            raise _orderpaid(order.id)
    raise WnError("e.cmd.weixin.order.busy", f"order {order.id} is being changed", CONFLICT)


def close(session, loaded, ref, stdout) -> int:
    from .common import fetch_obj
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    check_is_order(order)
    write_json(stdout, close_order(session.store, loaded, order, "close"))
    return 0


def _limit(value) -> int:
    if value is None:
        return SWEEP_LIMIT
    if isinstance(value, str) and value.isdigit() and 0 < int(value) <= 10000:
        return int(value)
    raise usage("e.cmd.weixin.order.usage", "-limit must be a number 1..10000")


def due(store, loaded, user: str, now: int, limit: int) -> list:
    """Orders of this account whose time_expire has passed, unpaid and not closed."""
    match = {"d0": "home", "d1": user, "pay_type": "weixin",
             "pay_expire_at": f"[0,{now})", "pay_closed": None, "pay_result": None}
    found = store.query(match, sort={"pay_expire_at": 1}, limit=limit)
    acc = loaded.account
    out = []
    for o in found:
        send = o.get("pay_send")
        if isinstance(send, dict) and send.get("appid") == acc.appid \
                and send.get("mch_id", send.get("mchid")) == acc.mch_id:    # v2, v3
            out.append(o)
    return out


def refunds_due(store, loaded, user: str, now: int, limit: int) -> list:
    """Orders of this account with a refund PROCESSING, or PENDING in doubt (its call
    ended without an answer), for a while (or_status 3)."""
    acc = loaded.account
    out = []
    for o in store.query({"d0": "home", "d1": user, "pay_type": "weixin", "or_status": 3},
                         limit=limit):
        pr = o.get("pay_result")
        refunds = o.get("pay_refunds")
        if not (isinstance(pr, dict) and pr.get("appid") == acc.appid
                and pr.get("mch_id") == acc.mch_id and isinstance(refunds, list)):
            continue
        if any(isinstance(r, dict) and isinstance(r.get("time"), int)
               and (r.get("status") == "PROCESSING"
                    or (r.get("status") == "PENDING" and r.get("doubt")))
               and now - r["time"] >= REFUND_CHECK_AFTER_MS for r in refunds):
            out.append(o)
    return out


def sweep(session, loaded, limit, stdout, stderr) -> int:
    """One line of JSON per order handled, then a summary line; exit 1 when any order
    could not be handled (it is tried again on the next sweep)."""
    store = session.store
    counts = {"swept": 0, "paid": 0, "closed": 0, "refunds": 0, "errors": 0}
    for order in due(store, loaded, session.user, now_ms(), _limit(limit)):
        counts["swept"] += 1
        line = {"id": order.id}
        try:
            state = query_and_apply(store, loaded, order)
            if state.get("trade_state") == "SUCCESS":
                line.update(outcome="paid", out_trade_no=state.get("out_trade_no"),
                            transaction_id=state.get("transaction_id"),
                            or_status=state.get("or_status"))
                counts["paid"] += 1
                log.warning("weixin %s: sweep found order %s paid late (%s): applied",
                            loaded.name, order.id, state.get("transaction_id"))
            else:
                res = close_order(store, loaded, store.get(order.id) or order, "sweep")
                line.update(outcome="closed", closed=res["closed"])
                counts["closed"] += 1
        except WnError as e:
            if e.key == "e.weixin.err.ORDERPAID":
                line.update(outcome="paid", note=e.reason)
                counts["paid"] += 1
            else:
                line.update(outcome="error", error=e.line())
                counts["errors"] += 1
                stderr.write(f"weixin: sweep: order {order.id}: {e.line()}\n")
                log.warning("weixin %s: sweep of order %s failed: %s", loaded.name,
                            order.id, e.line())
        stdout.write(_json_line(line))
    from . import refund
    for order in refunds_due(store, loaded, session.user, now_ms(), _limit(limit)):
        counts["refunds"] += 1
        try:
            state = refund.query_and_apply(session, loaded, order)
            line = {"id": order.id, "outcome": "refunds", "or_status": state["or_status"]}
        except WnError as e:
            counts["errors"] += 1
            line = {"id": order.id, "outcome": "error", "error": e.line()}
            stderr.write(f"weixin: sweep: refunds of order {order.id}: {e.line()}\n")
        stdout.write(_json_line(line))
    stdout.write(_json_line({"summary": counts}))
    return 1 if counts["errors"] else 0


def _json_line(value) -> str:
    import json
    return json.dumps(value, ensure_ascii=False) + "\n"


__all__ = ["close", "close_order", "sweep", "due"]
