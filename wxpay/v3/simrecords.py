"""The simulator's records of merchants, orders and refunds, and what they answer
(the §6 transaction, the §8 refund).  No I/O, no locking: :mod:`.simulator` holds its
lock around every use."""
from __future__ import annotations

from dataclasses import dataclass, field

from .api import rfc3339

__all__ = ["Merchant", "Order", "Refund", "notify_snapshot"]


@dataclass
class Merchant:
    mchid: str
    appids: set
    public_key: object               # the merchant's API public key
    serial_no: str                   # its certificate serial (upper-case hex)
    apiv3_key: str = field(repr=False)
    sign_with: str = "certificate"   # or "pubkey"


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    order: "Order"
    refund: int
    reason: str | None
    notify_url: str | None
    created: float
    status: str = "PROCESSING"
    success_time: str | None = None
    notify: dict = field(default_factory=lambda: {"status": "none", "attempts": [],
                                                  "active": 0})

    def answer(self) -> dict:
        o = self.order
        a = {"refund_id": self.refund_id, "out_refund_no": self.out_refund_no,
             "transaction_id": o.transaction_id, "out_trade_no": o.out_trade_no,
             "channel": "ORIGINAL", "user_received_account": "支付用户零钱",
             "create_time": rfc3339(self.created), "status": self.status,
             "funds_account": "AVAILABLE",
             "amount": {"total": o.total, "refund": self.refund, "payer_total": o.total,
                        "payer_refund": self.refund, "settlement_refund": self.refund,
                        "settlement_total": o.total, "discount_refund": 0,
                        "currency": "CNY", "refund_fee": 0}}
        if self.success_time:
            a["success_time"] = self.success_time
        return a


@dataclass
class Order:
    mchid: str
    appid: str
    out_trade_no: str
    params: dict
    total: int
    prepay_id: str
    prepay_at: float
    time_expire: float
    created: float
    state: str = "NOTPAY"            # NOTPAY, SUCCESS, REFUND, CLOSED
    transaction_id: str | None = None
    success_time: str | None = None
    paid_at: float | None = None
    bank_type: str | None = None
    refunds: list = field(default_factory=list)
    notify: dict = field(default_factory=lambda: {"status": "none", "attempts": [],
                                                  "active": 0})
    trade_type: str = "JSAPI"        # or NATIVE
    code_url: str | None = None      # NATIVE: what the QR code holds
    scanner: str | None = None       # NATIVE: the openid of whoever paid

    @property
    def openid(self) -> str | None:
        """The payer: JSAPI's is in the request, Native's is known once paid."""
        payer = self.params.get("payer")
        return payer["openid"] if isinstance(payer, dict) else self.scanner

    def transaction(self) -> dict:
        t = {"appid": self.appid, "mchid": self.mchid, "out_trade_no": self.out_trade_no,
             "trade_type": self.trade_type, "trade_state": self.state,
             "trade_state_desc": {"NOTPAY": "未支付", "SUCCESS": "支付成功",
                                  "REFUND": "转入退款", "CLOSED": "已关闭"}[self.state],
             "amount": {"total": self.total, "currency": "CNY"}}
        if self.openid:
            t["payer"] = {"openid": self.openid}
        if self.params.get("attach"):
            t["attach"] = self.params["attach"]
        if self.transaction_id:
            t.update(transaction_id=self.transaction_id, bank_type=self.bank_type,
                     success_time=self.success_time)
            t["amount"].update(payer_total=self.total, payer_currency="CNY")
        return t

    def snapshot(self) -> dict:
        n = self.notify
        return {"out_trade_no": self.out_trade_no, "mchid": self.mchid,
                "appid": self.appid, "trade_state": self.state, "state": self.state,
                "prepay_id": self.prepay_id, "total": self.total,
                "trade_type": self.trade_type, "code_url": self.code_url,
                "transaction_id": self.transaction_id, "success_time": self.success_time,
                "notify_url": self.params.get("notify_url"),
                "time_expire": rfc3339(self.time_expire),
                "refunds": [r.answer() for r in self.refunds],
                "notify": notify_snapshot(n)}


def notify_snapshot(n: dict) -> dict:
    return {"status": n["status"], "attempts": len(n["attempts"]), "active": n["active"],
            "successes": sum(1 for a in n["attempts"] if a["ok"]),
            "last_reply": n["attempts"][-1]["reply"] if n["attempts"] else None,
            "log": list(n["attempts"][-200:])}
