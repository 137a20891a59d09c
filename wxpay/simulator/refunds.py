"""Refunds (wechatpay-v2.md §8.2–§8.4): ``/secapi/pay/refund`` (client certificate
checked by the HTTP front), ``/pay/refundquery``, and the refund state machine.

A refund is accepted as PROCESSING and settles after ``refund_delay`` seconds to the
outcome set by :meth:`set_refund_outcome` (SUCCESS by default; CHANGE, REFUNDCLOSE, or
PROCESSING to hold it until :meth:`settle_refund`).  Settling sends the refund
notification (no sign; ``req_info`` = AES-256-ECB, key md5(API key) hex, 16-byte
PKCS7) to the refund's ``notify_url``, retried like payment notifications; the
``duplicate_notify``/``concurrent_notify``/``notify_latency`` faults apply.
"""
from __future__ import annotations

import re
import secrets
import threading

from ..api import beijing_stamp, new_nonce
from ..refund import OUT_REFUND_NO, encrypt_req_info
from ..xmlcodec import to_xml
from .state import _FEN, REFUND_OUTCOMES, _Refund, _Reject

MAX_REFUNDS = 50
PAGE = 10


def _refund_time(stamp: str) -> str:
    """yyyyMMddHHmmss -> yyyy-MM-dd HH:mm:ss (the refund notification's format)."""
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"


class RefundMixin:
    # ----- test controls -------------------------------------------------------
    def set_refund_outcome(self, outcome: str = "SUCCESS", delay: float = 0.1) -> dict:
        if outcome not in REFUND_OUTCOMES:
            raise ValueError("outcome must be one of " + ", ".join(REFUND_OUTCOMES))
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                or not 0 <= delay <= 600:
            raise ValueError("delay must be seconds between 0 and 600")
        with self._lock:
            self._refund_outcome, self._refund_delay = outcome, float(delay)
            return {"outcome": outcome, "delay": float(delay)}

    def refund(self, out_refund_no: str, mch_id: str | None = None) -> dict | None:
        with self._lock:
            r = self._find_refund(out_refund_no, mch_id)
            return None if r is None else r.snapshot()

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS",
                      mch_id: str | None = None) -> dict:
        """Move a PROCESSING refund to ``status`` now and notify.  LookupError when
        unknown, ValueError when it is not PROCESSING."""
        if status not in ("SUCCESS", "CHANGE", "REFUNDCLOSE"):
            raise ValueError("status must be SUCCESS, CHANGE or REFUNDCLOSE")
        with self._lock:
            r = self._find_refund(out_refund_no, mch_id)
            if r is None:
                raise LookupError("no such refund")
            if r.state != "PROCESSING":
                raise ValueError(f"refund {out_refund_no} is {r.state}")
        self._settle(r, status)
        return self.refund(out_refund_no, mch_id)

    def wait_refund_notified(self, out_refund_no: str, timeout: float = 10.0,
                             mch_id: str | None = None) -> dict:
        import time
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                r = self._find_refund(out_refund_no, mch_id)
                if r is not None and r.notify_status not in ("none", "pending") \
                        and r.notify_active == 0:
                    return r.snapshot()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"refund {out_refund_no} not notified")
                self._cond.wait(left)

    def _find_refund(self, out_refund_no: str, mch_id: str | None = None):
        for (m, _), o in self._orders.items():
            if mch_id is not None and m != mch_id:
                continue
            for r in o.refunds:
                if r.out_refund_no == out_refund_no:
                    return r
        return None

    # ----- /secapi/pay/refund --------------------------------------------------
    def _do_refund(self, p: dict) -> dict:
        self._need(p, "out_refund_no", "total_fee", "refund_fee")
        if not p.get("out_trade_no") and not p.get("transaction_id"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS",
                                            "缺少参数out_trade_no或transaction_id"))
        if not OUT_REFUND_NO.match(p["out_refund_no"]):
            raise self._invalid(p, "out_refund_no参数格式错误")
        for name in ("total_fee", "refund_fee"):
            if not _FEN.match(p[name]):
                raise _Reject(self._result_fail(p, "PARAM_ERROR", f"{name}参数格式错误"))
        if p.get("refund_fee_type", "CNY") != "CNY":
            raise _Reject(self._result_fail(p, "PARAM_ERROR", "refund_fee_type参数错误"))
        if len(p.get("refund_desc", "")) > 80:
            raise _Reject(self._result_fail(p, "PARAM_ERROR", "refund_desc参数长度有误"))
        total, fee = int(p["total_fee"]), int(p["refund_fee"])
        with self._lock:
            o = self._lookup(p)
            if o.state != "SUCCESS":
                raise _Reject(self._result_fail(p, "ORDERNOTEXIST", "订单未支付，不能退款"))
            existing = next((r for r in o.refunds if r.out_refund_no == p["out_refund_no"]),
                            None)
            if existing is not None:
                if existing.refund_fee != fee or existing.total_fee != total:
                    raise self._invalid(p, "订单金额或退款金额与之前请求不一致，请核实后再试")
                return self._refund_reply(p, existing)
            if self._find_refund(p["out_refund_no"], o.mch_id) is not None:
                raise self._invalid(p, "out_refund_no已被其他订单使用")
            if total != int(o.params["total_fee"]):
                raise self._invalid(p, "订单金额与支付金额不一致")
            if len(o.refunds) >= MAX_REFUNDS:
                raise self._invalid(p, "退款次数超过限制(50次)")
            if o.refunded() + fee > total:
                raise self._invalid(p, "refund_fee大于可退金额")
            r = _Refund(order=o, out_refund_no=p["out_refund_no"],
                        refund_id="50" + "".join(secrets.choice("0123456789")
                                                 for _ in range(26)),
                        refund_fee=fee, total_fee=total, created=self.now(),
                        notify_url=p.get("notify_url") or None,
                        refund_desc=p.get("refund_desc"))
            o.refunds.append(r)
            outcome, delay = self._refund_outcome, self._refund_delay
        if outcome != "PROCESSING":
            t = threading.Timer(delay, self._settle, args=(r, outcome))
            t.daemon = True
            t.start()
        return self._refund_reply(p, r)

    def _refund_reply(self, p: dict, r: _Refund) -> dict:
        o = r.order
        return {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                "mch_id": o.mch_id, "nonce_str": new_nonce(), "result_code": "SUCCESS",
                "transaction_id": o.transaction_id, "out_trade_no": o.out_trade_no,
                "out_refund_no": r.out_refund_no, "refund_id": r.refund_id,
                "refund_fee": str(r.refund_fee), "total_fee": str(r.total_fee),
                "cash_fee": str(r.total_fee), "cash_refund_fee": str(r.refund_fee),
                "coupon_refund_fee": "0", "coupon_refund_count": "0",
                "refund_channel": ""}

    def _settle(self, r: _Refund, status: str) -> None:
        with self._lock:
            if r.state != "PROCESSING" or self._stop.is_set():
                return
            r.state = status
            if status == "SUCCESS":
                r.success_time = beijing_stamp(self.now())
            if not r.notify_url:
                return
            o = r.order
            key = self._apps[o.appid][1]
            inner = {"transaction_id": o.transaction_id, "out_trade_no": o.out_trade_no,
                     "refund_id": r.refund_id, "out_refund_no": r.out_refund_no,
                     "total_fee": str(r.total_fee), "settlement_total_fee": str(r.total_fee),
                     "refund_fee": str(r.refund_fee),
                     "settlement_refund_fee": str(r.refund_fee),
                     "refund_status": status,
                     "success_time": _refund_time(r.success_time) if r.success_time else None,
                     "refund_recv_accout": "支付用户零钱",
                     "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
                     "refund_request_source": "API"}
            root = "<root>" + to_xml(inner)[len("<xml>"):-len("</xml>")] + "</root>"
            outer = {"return_code": "SUCCESS", "appid": o.appid, "mch_id": o.mch_id,
                     "nonce_str": new_nonce(),
                     "req_info": encrypt_req_info(root.encode("utf-8"), key)}
            faults = self._take_faults(notify=True)
            copies = faults.get("concurrent_notify") or faults.get("duplicate_notify") or 1
            r.notify_status, r.notify_active = "pending", copies
        body = to_xml(outer).encode("utf-8")
        threading.Thread(target=self._deliver,
                         args=(r, body, copies, "concurrent_notify" in faults,
                               faults.get("notify_latency", 0)),
                         name="wxpay-sim-refund-notify", daemon=True).start()

    # ----- /pay/refundquery ----------------------------------------------------
    def _do_refundquery(self, p: dict) -> dict:
        keys = ("refund_id", "out_refund_no", "transaction_id", "out_trade_no")
        if not any(p.get(k) for k in keys):
            raise _Reject(self._result_fail(p, "LACK_PARAMS", "缺少参数"))
        offset = p.get("offset") or "0"
        if not re.fullmatch(r"[0-9]{1,4}", offset):
            raise _Reject(self._result_fail(p, "PARAM_ERROR", "offset参数错误"))
        with self._lock:
            chosen = None
            if p.get("refund_id") or p.get("out_refund_no"):
                for (m, _), o in self._orders.items():
                    if m != p["mch_id"]:
                        continue
                    for r in o.refunds:
                        if (p.get("refund_id") and r.refund_id == p["refund_id"]) or \
                                (not p.get("refund_id") and
                                 r.out_refund_no == p["out_refund_no"]):
                            chosen = [r]
                if chosen is None:
                    raise _Reject(self._result_fail(p, "REFUNDNOTEXIST", "退款订单查询失败"))
                o = chosen[0].order
            else:
                try:
                    o = self._lookup(p)
                except _Reject:
                    raise _Reject(self._result_fail(p, "REFUNDNOTEXIST",
                                                    "退款订单查询失败")) from None
                if not o.refunds:
                    raise _Reject(self._result_fail(p, "REFUNDNOTEXIST", "退款订单查询失败"))
                chosen = list(o.refunds)
            start = int(offset)
            if start and start >= len(chosen):
                raise _Reject(self._result_fail(p, "PARAM_ERROR", "offset超出范围"))
            page = chosen[start:start + PAGE]
            reply = {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                     "mch_id": o.mch_id, "nonce_str": new_nonce(), "result_code": "SUCCESS",
                     "transaction_id": o.transaction_id, "out_trade_no": o.out_trade_no,
                     "total_fee": o.params["total_fee"], "cash_fee": o.params["total_fee"],
                     "total_refund_count": str(len(o.refunds)),
                     "refund_count": str(len(page))}
            for n, r in enumerate(page):
                reply.update({f"out_refund_no_{n}": r.out_refund_no,
                              f"refund_id_{n}": r.refund_id,
                              f"refund_channel_{n}": "ORIGINAL",
                              f"refund_fee_{n}": str(r.refund_fee),
                              f"refund_status_{n}": r.state,
                              f"refund_recv_accout_{n}": "支付用户零钱"})
                if r.success_time:
                    reply[f"refund_success_time_{n}"] = _refund_time(r.success_time)
            return reply
