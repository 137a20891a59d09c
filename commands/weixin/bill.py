"""``weixin <conf> bill -date YYYYMMDD [-type ALL|SUCCESS|REFUND] [-reconcile]``.

Without ``-reconcile``: downloadbill (gzip), one JSON object per bill line (English
field names, amounts in integer fen; ``fee`` stays exact yuan, it has fractions of a
fen), then ``{"summary": {...}}``.

With ``-reconcile``: the day's bill against the orders of this account in the store
(payments whose ``time_end``, refunds whose success time, fall on that Beijing date).
One JSON line per difference, ``{"diff": KIND, ...}``, KIND one of

* ``paid_at_wechat_not_in_store``  a payment of the bill the store does not know
* ``amount_differs``               the bill's amount is not the store's payment's
* ``paid_in_store_not_in_bill``    a payment the store has, absent from the bill
* ``refund_not_in_store``          a refund of the bill the store does not know
* ``refund_amount_differs``        the amounts of one refund disagree
* ``refund_status_differs``        the store does not hold the refund as SUCCESS
* ``refund_in_store_not_in_bill``  a successful refund the store has, absent from it

then ``{"reconcile": {date, bill_payments, bill_refunds, store_payments,
store_refunds, differences}}``; exit status 1 when there is any difference.
"""
from __future__ import annotations

import json
import re

from objstore.errors import BAD_INPUT, WnError
from wxpay.bill import parse_bill

from .common import parse_opts, usage

_DATE = re.compile(r"^20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$")


def _line(stdout, value) -> None:
    stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


def fetch(loaded, date: str, bill_type: str) -> tuple[list, dict | None]:
    """(rows, summary) of the day's bill; no bill that day → ([], None)."""
    try:
        text = loaded.client.downloadbill(date, bill_type, gzip_body=True)
    except WnError as e:
        if e.key == "e.weixin.bill.none":
            return [], None
        raise
    return parse_bill(text)


def _mine(order, account) -> bool:
    for name in ("pay_result", "pay_send"):
        v = order.get(name)
        if isinstance(v, dict) and v.get("appid") == account.appid \
                and v.get("mch_id") == account.mch_id:
            return True
    return False


def _payments(order):
    """(payment, applied) of the order: pay_result and every pay_result_extra."""
    pr = order.get("pay_result")
    if isinstance(pr, dict):
        yield pr, True
    extra = order.get("pay_result_extra")
    for x in extra if isinstance(extra, list) else ():
        if isinstance(x, dict):
            yield x, False


def _fen(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def reconcile(session, loaded, date: str, rows: list, stdout) -> int:
    store, acc = session.store, loaded.account
    bill_pay = {r["out_trade_no"]: r for r in rows if r.get("trade_state") == "SUCCESS"}
    bill_ref = {r["out_refund_no"]: r for r in rows if r.get("trade_state") == "REFUND"}
    orders = [o for o in store.query({"d0": "home", "d1": session.user,
                                      "pay_type": "weixin"}) if _mine(o, acc)]
    diffs = []
    store_pay, store_ref = {}, {}
    for o in orders:
        for p, applied in _payments(o):
            if str(p.get("time_end", ""))[:8] == date:
                store_pay[p.get("out_trade_no")] = (o, p, applied)
        refunds = o.get("pay_refunds")
        for r in refunds if isinstance(refunds, list) else ():
            when = re.sub(r"[^0-9]", "", str(r.get("success_time") or ""))[:8]
            if isinstance(r, dict) and r.get("status") == "SUCCESS" and when == date:
                store_ref[r.get("out_refund_no")] = (o, r)
    for otn, row in bill_pay.items():
        oid = otn.rpartition("_")[0]
        order = store.get(oid) if oid else None
        known = None
        if order is not None:
            known = next((p for p, _ in _payments(order)
                          if p.get("transaction_id") == row.get("transaction_id")), None)
        if known is None:
            diffs.append({"diff": "paid_at_wechat_not_in_store", "out_trade_no": otn,
                          "transaction_id": row.get("transaction_id"),
                          "total_fee": row.get("total_fee"),
                          "order": oid if order is not None else None})
        elif _fen(known.get("total_fee")) != row.get("total_fee"):
            diffs.append({"diff": "amount_differs", "out_trade_no": otn, "order": oid,
                          "bill_total_fee": row.get("total_fee"),
                          "store_total_fee": _fen(known.get("total_fee"))})
    for otn, (o, p, applied) in store_pay.items():
        if otn not in bill_pay:
            diffs.append({"diff": "paid_in_store_not_in_bill", "out_trade_no": otn,
                          "order": o.id, "transaction_id": p.get("transaction_id"),
                          "total_fee": _fen(p.get("total_fee")), "applied": applied})
    for orn, row in bill_ref.items():
        oid = orn.rpartition("_r")[0]
        order = store.get(oid) if oid else None
        refunds = order.get("pay_refunds") if order is not None else None
        entry = next((r for r in refunds if isinstance(r, dict)
                      and r.get("out_refund_no") == orn), None) \
            if isinstance(refunds, list) else None
        if entry is None:
            diffs.append({"diff": "refund_not_in_store", "out_refund_no": orn,
                          "out_trade_no": row.get("out_trade_no"),
                          "refund_fee": row.get("refund_fee")})
            continue
        if entry.get("refund_fee") != row.get("refund_fee"):
            diffs.append({"diff": "refund_amount_differs", "out_refund_no": orn,
                          "order": oid, "bill_refund_fee": row.get("refund_fee"),
                          "store_refund_fee": entry.get("refund_fee")})
        if entry.get("status") != "SUCCESS" and row.get("refund_status") == "SUCCESS":
            diffs.append({"diff": "refund_status_differs", "out_refund_no": orn,
                          "order": oid, "bill_status": row.get("refund_status"),
                          "store_status": entry.get("status")})
    for orn, (o, r) in store_ref.items():
        if orn not in bill_ref:
            diffs.append({"diff": "refund_in_store_not_in_bill", "out_refund_no": orn,
                          "order": o.id, "refund_fee": r.get("refund_fee")})
    for d in diffs:
        _line(stdout, d)
    _line(stdout, {"reconcile": {"date": date, "bill_payments": len(bill_pay),
                                 "bill_refunds": len(bill_ref),
                                 "store_payments": len(store_pay),
                                 "store_refunds": len(store_ref),
                                 "differences": len(diffs)}})
    return 1 if diffs else 0


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = dict(po.opts)
    unknown = sorted(set(opts) - {"date", "type", "reconcile"})
    if unknown or po.args:
        what = f"-{unknown[0]}" if unknown else po.args[0][:40]
        raise usage("e.cmd.weixin.bill.usage", f"unexpected {what} "
                    "(bill -date YYYYMMDD [-type ALL|SUCCESS|REFUND] [-reconcile])")
    date = opts.get("date")
    if not isinstance(date, str) or not _DATE.match(date):
        raise WnError("e.cmd.weixin.bill.date", "-date must be a day like 20261201",
                      BAD_INPUT)
    bill_type = opts.get("type", "ALL")
    if bill_type not in ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND"):
        raise usage("e.cmd.weixin.bill.usage", "-type must be ALL, SUCCESS or REFUND")
    if opts.get("reconcile") not in (None, True):
        raise usage("e.cmd.weixin.bill.usage", "-reconcile takes no value")
    if opts.get("reconcile"):
        if bill_type != "ALL":
            raise usage("e.cmd.weixin.bill.usage", "-reconcile compares the ALL bill")
        rows, _summary = fetch(loaded, date, "ALL")
        return reconcile(session, loaded, date, rows, stdout)
    rows, summary = fetch(loaded, date, bill_type)
    for row in rows:
        _line(stdout, row)
    _line(stdout, {"summary": summary or {"count": 0}})
    return 0
