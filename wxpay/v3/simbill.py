"""The simulator's trade bill file (wechatpay-v3.md §9): a header line, one row per
payment and refund of the day with every field prefixed by `` ` ``, amounts in yuan,
then a summary header and row.  No I/O."""
from __future__ import annotations

import csv
import io
from datetime import datetime

from ..money import fen_to_yuan
from .api import BEIJING

__all__ = ["trade_bill"]


def trade_bill(orders, mchid: str, day, bill_type: str) -> str:
    """The bill text of ``mchid``'s ``orders`` paid on ``day`` (Beijing date)."""
    head = ["交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号",
            "商户订单号", "用户标识", "交易类型", "交易状态", "付款银行", "货币种类",
            "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
            "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费",
            "费率", "订单金额", "申请退款金额", "费率备注"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(head)
    n = total = refunds = 0
    orders = [o for o in orders if o.mchid == mchid and o.paid_at
              and datetime.fromtimestamp(o.paid_at, BEIJING).date() == day]
    for o in sorted(orders, key=lambda x: x.paid_at):
        when = datetime.fromtimestamp(o.paid_at, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        base = [when, o.appid, o.mchid, "0", "", o.transaction_id, o.out_trade_no,
                o.params["payer"]["openid"], "JSAPI"]
        if bill_type in ("ALL", "SUCCESS"):
            w.writerow(["`" + str(x) for x in base + [
                "SUCCESS", o.bank_type, "CNY", fen_to_yuan(o.total), "0.00", "0", "0",
                "0.00", "0.00", "", "", o.params["description"],
                o.params.get("attach") or "", "0.00", "0.60%", fen_to_yuan(o.total),
                "0.00", ""]])
            n += 1
            total += o.total
        if bill_type in ("ALL", "REFUND"):
            for r in o.refunds:
                w.writerow(["`" + str(x) for x in base + [
                    "REFUND", o.bank_type, "CNY", "0.00", "0.00", r.refund_id,
                    r.out_refund_no, fen_to_yuan(r.refund), "0.00", "ORIGINAL", r.status,
                    o.params["description"], o.params.get("attach") or "", "0.00",
                    "0.60%", "0.00", fen_to_yuan(r.refund), ""]])
                n += 1
                refunds += r.refund
    w.writerow(["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额",
                "手续费总金额", "订单总金额", "申请退款总金额"])
    w.writerow(["`" + str(x) for x in (n, fen_to_yuan(total), fen_to_yuan(refunds),
                                         "0.00", "0.00", fen_to_yuan(total),
                                         fen_to_yuan(refunds))])
    return out.getvalue()
