"""The simulator's trade bill (wechatpay-v3.md §9): the day's payments (by their
success time) and refunds (by theirs, Beijing dates) of one merchant, as trades in the
shape :mod:`wxpay.billbook` keeps and :func:`wxpay.bill.format_bill` writes -- the v3
trade bill file has v2's columns, so both simulators write it with the same code.
No I/O."""
from __future__ import annotations

from datetime import datetime

from .api import BEIJING

__all__ = ["ledger_trades"]


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, BEIJING)


def _refund_time(r) -> datetime | None:
    try:
        return datetime.fromisoformat(r.success_time).astimezone(BEIJING) \
            if r.success_time else None
    except ValueError:
        return None


def ledger_trades(orders, mchid: str, day) -> list[dict]:
    """The trades of ``mchid``'s ``orders`` on ``day`` (a Beijing date), oldest first."""
    out = []
    for o in orders:
        if o.mchid != mchid or not o.paid_at:
            continue
        base = {"appid": o.appid, "mch_id": o.mchid, "transaction_id": o.transaction_id,
                "out_trade_no": o.out_trade_no, "openid": o.openid or "",
                "trade_type": o.trade_type, "total_fee": o.total,
                "body": o.params.get("description") or "",
                "attach": o.params.get("attach") or "", "bank_type": o.bank_type,
                "device_info": ""}
        paid = _when(o.paid_at)
        if paid.date() == day:
            out.append((paid, dict(base, kind="SUCCESS",
                                   time=paid.strftime("%Y-%m-%d %H:%M:%S"))))
        for r in o.refunds:
            done = _refund_time(r)
            if r.status == "SUCCESS" and done is not None and done.date() == day:
                stamp = done.strftime("%Y-%m-%d %H:%M:%S")
                out.append((done, dict(base, kind="REFUND", time=stamp,
                                       refund_id=r.refund_id, out_refund_no=r.out_refund_no,
                                       refund_fee=r.refund, refund_status="SUCCESS",
                                       refund_time=stamp)))
    # by the second the bill shows, a payment before its refunds in the same second
    return [t for _, t in sorted(out, key=lambda x: (x[0].replace(microsecond=0),
                                                     x[1]["kind"] == "REFUND"))]
