"""``/pay/downloadbill`` (wechatpay-v2.md §8.5): the day's bill built from the
simulator's own ledger (payments by ``time_end``, refunds by their success time, Beijing
dates), or the trades a test set for that date (``POST /sim/bills``)."""
from __future__ import annotations

import gzip
import re

from ..bill import BILL_TYPES, format_bill
from .state import _Reject


def _dashed(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"


class BillsMixin:
    def ledger_trades(self, mch_id: str, date: str) -> list[dict]:
        """The trades of ``date`` (yyyyMMdd, Beijing) as the ledger has them."""
        out = []
        with self._lock:
            for (m, _), o in sorted(self._orders.items(), key=lambda kv: kv[1].created):
                if m != mch_id or o.state != "SUCCESS":
                    continue
                base = {"appid": o.appid, "mch_id": o.mch_id,
                        "transaction_id": o.transaction_id, "out_trade_no": o.out_trade_no,
                        "openid": o.params.get("openid", ""),
                        "trade_type": o.params.get("trade_type", "JSAPI"),
                        "total_fee": int(o.params["total_fee"]),
                        "body": o.params.get("body", ""),
                        "attach": o.params.get("attach", ""),
                        "device_info": o.params.get("device_info", "")}
                if o.time_end and o.time_end[:8] == date:
                    out.append(dict(base, kind="SUCCESS", time=_dashed(o.time_end)))
                for r in o.refunds:
                    if r.state == "SUCCESS" and r.success_time and r.success_time[:8] == date:
                        out.append(dict(base, kind="REFUND", time=_dashed(r.success_time),
                                        refund_id=r.refund_id, out_refund_no=r.out_refund_no,
                                        refund_fee=r.refund_fee, refund_status="SUCCESS",
                                        refund_time=_dashed(r.success_time)))
        return out

    def bill_trades(self, mch_id: str, date: str) -> list[dict]:
        return self._bills.trades(mch_id, date, self.ledger_trades)

    def set_bill(self, mch_id: str, date: str, trades) -> None:
        """Make ``trades`` the bill of ``date`` (None: back to the ledger's)."""
        self._bills.set(mch_id, date, trades)

    def _bill_fail(self, msg: str, code: str = "20001"):
        return _Reject({"return_code": "FAIL", "return_msg": msg, "error_code": code})

    def _do_downloadbill(self, p: dict):
        date = p.get("bill_date", "")
        if not re.fullmatch(r"[0-9]{8}", date):
            raise self._bill_fail("invalid bill_date", "20003")
        bill_type = p.get("bill_type") or "ALL"
        if bill_type not in BILL_TYPES:
            raise self._bill_fail("invalid bill_type", "20003")
        if p.get("tar_type") not in (None, "", "GZIP"):
            raise self._bill_fail("invalid tar_type", "20003")
        trades = self.bill_trades(p["mch_id"], date)
        kinds = {"SUCCESS": ("SUCCESS",), "REFUND": ("REFUND",),
                 "RECHARGE_REFUND": ("REFUND",)}.get(bill_type, ("SUCCESS", "REFUND"))
        if not any(t["kind"] in kinds for t in trades):
            raise self._bill_fail("No Bill Exist", "20002")
        text = format_bill(trades, bill_type).encode("utf-8")
        if p.get("tar_type") == "GZIP":
            return gzip.compress(text), "application/x-gzip"
        return text, "text/plain; charset=utf-8"
