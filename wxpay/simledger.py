"""The order book both simulators keep the same way (v2's ``wxpay.simulator`` and
v3's ``wxpay.v3.simulator``): orders by (merchant, out_trade_no) and by prepay_id, a
clock tests can move, expiry, and finding the order a user is about to pay.  The
orders themselves differ (v2's hold XML fields, v3's JSON ones); what is read here
both have: ``state``, ``time_expire``, ``prepay_at``, ``out_trade_no``, ``snapshot()``.
No I/O; the class using it owns ``_lock``, ``_orders``, ``_by_prepay``, ``_offset``."""
from __future__ import annotations

import time

__all__ = ["LedgerMixin"]


class LedgerMixin:
    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (expiry tests)."""
        with self._lock:
            self._offset += seconds

    def _expire(self, o) -> None:
        if o.state == "NOTPAY" and o.time_expire is not None and self.now() >= o.time_expire:
            o.state = "CLOSED"

    def _find(self, out_trade_no: str, mch: str | None = None):
        if mch is not None:
            return self._orders.get((mch, out_trade_no))
        return next((o for (_m, no), o in self._orders.items() if no == out_trade_no), None)

    def order(self, out_trade_no: str, mch: str | None = None) -> dict | None:
        """A JSON-able snapshot of an order, or None."""
        with self._lock:
            o = self._find(out_trade_no, mch)
            if o is None:
                return None
            self._expire(o)
            return o.snapshot()

    def _payable(self, prepay_id: str | None, out_trade_no: str | None, ttl: float,
                 by_other=None):
        """The order a user pays now (caller holds the lock): by prepay_id, else by
        ``by_other`` (what else identifies it, e.g. v3's Native code_url), else by
        out_trade_no.  LookupError (unknown) or ValueError (paid, closed, expired)."""
        if prepay_id:
            o = self._by_prepay.get(prepay_id)
        elif by_other is not None:
            o = by_other()
        elif out_trade_no:
            o = self._find(out_trade_no)
        else:
            raise ValueError("give prepay_id or out_trade_no")
        if o is None:
            raise LookupError("no order has this prepay_id")
        self._expire(o)
        if o.state != "NOTPAY":
            raise ValueError(f"order {o.out_trade_no} is {o.state}, not payable")
        if self.now() - o.prepay_at > ttl:
            raise ValueError("prepay_id expired")
        return o
