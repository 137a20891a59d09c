"""The simulator's protocol state: orders as WeChat keeps them, and the rules
that decide what a repeated call may change."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


KEY_FIELDS = ("appid", "body", "detail", "attach", "total_fee", "fee_type", "trade_type",
              "openid", "product_id", "goods_tag", "limit_pay", "notify_url", "time_expire",
              "scene_info")
# limited in UTF-8 bytes, as WeChat counts (wechatpay-v2.md §8.7)
BYTE_LIMITS = {"body": 127, "attach": 127, "detail": 6000}
MIN_EXPIRE_S = 5 * 60
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{1,32}$")
_FEN = re.compile(r"^[1-9][0-9]{0,9}$")
PREPAY_TTL = 2 * 3600
# the calls that need the merchant's client certificate
SECAPI = ("refund",)
REFUND_OUTCOMES = ("SUCCESS", "CHANGE", "REFUNDCLOSE", "PROCESSING")


class _Reject(Exception):
    """Stop processing a /pay/* request with this reply."""

    def __init__(self, reply: dict, signed_with: tuple | None = None,
                 unsigned: bool = False):
        self.reply = reply
        self.signed_with = signed_with
        self.unsigned = unsigned


@dataclass
class _Order:
    appid: str
    mch_id: str
    out_trade_no: str
    params: dict
    sign_type: str
    prepay_id: str
    prepay_at: float
    time_expire: float | None
    created: float
    state: str = "NOTPAY"            # NOTPAY, SUCCESS, CLOSED
    transaction_id: str | None = None
    time_end: str | None = None
    bank_type: str | None = None
    paid_at: float | None = None
    notification: dict | None = None
    notify_attempts: list = field(default_factory=list)
    notify_status: str = "none"      # none, pending, delivered, failed, refused
    notify_active: int = 0
    last_reply: str | None = None
    refunds: list = field(default_factory=list)

    def refunded(self) -> int:
        """Fen refunded or being refunded (every refund but the closed ones)."""
        return sum(r.refund_fee for r in self.refunds if r.state != "REFUNDCLOSE")

    def snapshot(self) -> dict:
        return {"out_trade_no": self.out_trade_no, "appid": self.appid,
                "mch_id": self.mch_id, "state": self.state, "trade_state": self.state,
                "prepay_id": self.prepay_id, "total_fee": int(self.params["total_fee"]),
                "sign_type": self.sign_type,
                "notify_url": self.params.get("notify_url"),
                "transaction_id": self.transaction_id, "time_end": self.time_end,
                "time_expire": self.params.get("time_expire"),
                "notify": {"status": self.notify_status,
                           "attempts": len(self.notify_attempts),
                           "active": self.notify_active,
                           "successes": sum(1 for a in self.notify_attempts if a["ok"]),
                           "last_reply": self.last_reply,
                           "log": list(self.notify_attempts[-200:])},
                "refunds": [r.snapshot() for r in self.refunds]}


def notify_snapshot(o) -> dict:
    return {"status": o.notify_status, "attempts": len(o.notify_attempts),
            "active": o.notify_active,
            "successes": sum(1 for a in o.notify_attempts if a["ok"]),
            "last_reply": o.last_reply, "log": list(o.notify_attempts[-200:])}


@dataclass
class _Refund:
    """One refund of a paid order (wechatpay-v2.md §8.2): PROCESSING, then SUCCESS,
    CHANGE or REFUNDCLOSE; notified to ``notify_url`` with an encrypted req_info."""
    order: _Order
    out_refund_no: str
    refund_id: str
    refund_fee: int
    total_fee: int
    created: float
    notify_url: str | None = None
    refund_desc: str | None = None
    state: str = "PROCESSING"
    success_time: str | None = None
    notify_attempts: list = field(default_factory=list)
    notify_status: str = "none"
    notify_active: int = 0
    last_reply: str | None = None

    @property
    def params(self) -> dict:                 # what notification delivery reads
        return {"notify_url": self.notify_url}

    def snapshot(self) -> dict:
        return {"out_refund_no": self.out_refund_no, "refund_id": self.refund_id,
                "out_trade_no": self.order.out_trade_no,
                "transaction_id": self.order.transaction_id,
                "refund_fee": self.refund_fee, "total_fee": self.total_fee,
                "state": self.state, "refund_status": self.state,
                "success_time": self.success_time, "notify_url": self.notify_url,
                "notify": notify_snapshot(self)}

