"""The bills a simulator serves (v2's ``/pay/downloadbill`` and v3's
``/v3/bill/tradebill`` alike): the day's trades its own ledger has, unless a test set
that day's trades (``POST /sim/bills``, ``POST /sim/v3/bills``) to make the bill
differ from the merchant's records.  A trade is what :func:`wxpay.bill.format_bill`
writes: ``{kind: SUCCESS|REFUND, time, appid, mch_id, transaction_id, out_trade_no,
openid, trade_type, total_fee, body, attach, [refund_id, out_refund_no, refund_fee,
refund_status, refund_time]}``, amounts in fen.  No I/O."""
from __future__ import annotations

import re
import threading

__all__ = ["BillBook", "check_trades"]

DATE = re.compile(r"^[0-9]{8}$")


def check_trades(trades) -> list[dict]:
    """``trades`` copied, or ValueError saying what is wrong."""
    if not isinstance(trades, list) or not all(
            isinstance(t, dict) and t.get("kind") in ("SUCCESS", "REFUND")
            and isinstance(t.get("total_fee"), int) and not isinstance(t["total_fee"], bool)
            for t in trades):
        raise ValueError("trades must be objects with kind SUCCESS|REFUND and "
                         "an integer total_fee")
    return [dict(t) for t in trades]


class BillBook:
    """The trades set per (merchant, yyyyMMdd); None where the ledger's stand."""

    def __init__(self):
        self._set: dict[tuple[str, str], list[dict]] = {}
        self._lock = threading.Lock()

    def set(self, mch_id: str, date: str, trades) -> None:
        """Make ``trades`` the bill of ``date`` (None: back to the ledger's)."""
        if not isinstance(date, str) or not DATE.match(date):
            raise ValueError("date must be yyyyMMdd")
        chosen = None if trades is None else check_trades(trades)
        with self._lock:
            if chosen is None:
                self._set.pop((mch_id, date), None)
            else:
                self._set[(mch_id, date)] = chosen

    def get(self, mch_id: str, date: str) -> list[dict] | None:
        with self._lock:
            chosen = self._set.get((mch_id, date))
        return None if chosen is None else [dict(t) for t in chosen]

    def trades(self, mch_id: str, date: str, ledger) -> list[dict]:
        """The set trades of that day, else ``ledger(mch_id, date)``."""
        chosen = self.get(mch_id, date)
        return chosen if chosen is not None else ledger(mch_id, date)
