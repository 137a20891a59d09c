"""The trade bill of ``/pay/downloadbill`` (wechatpay-v2.md §8.5), no I/O here.

A bill is text: a header line of Chinese column names; data lines whose every field is
prefixed with a backtick; a summary header; a summary line.  Amounts are yuan (the fee
has 5 decimals).  :func:`parse_bill` gives one dict per line with English names and
amounts as integer fen (``fee``, fractions of a fen, stays an exact yuan string);
:func:`format_bill` writes one (the simulator).  :func:`build_downloadbill` is the
signed request; :func:`bill_error` reads a failure (a body starting with ``<``).
"""
from __future__ import annotations

import gzip
import re
from decimal import Decimal, InvalidOperation

from wnerrors import BAD_INPUT, WnError

from .account import Account
from .api import _check_nonce, _signed, new_nonce
from .errors import ReturnFail, WxPayError
from .xmlcodec import from_xml

__all__ = ["BILL_TYPES", "COLUMNS", "build_downloadbill", "parse_bill", "format_bill",
           "bill_error", "bill_text"]

BILL_TYPES = ("ALL", "SUCCESS", "REFUND", "RECHARGE_REFUND")

NAMES = {
    "交易时间": "time", "公众账号ID": "appid", "商户号": "mch_id", "特约商户号": "sub_mch_id",
    "设备号": "device_info", "微信订单号": "transaction_id", "商户订单号": "out_trade_no",
    "用户标识": "openid", "交易类型": "trade_type", "交易状态": "trade_state",
    "付款银行": "bank_type", "货币种类": "fee_type", "应结订单金额": "settlement_total_fee",
    "代金券金额": "coupon_fee", "退款申请时间": "refund_apply_time",
    "退款成功时间": "refund_success_time", "微信退款单号": "refund_id",
    "商户退款单号": "out_refund_no", "退款金额": "settlement_refund_fee",
    "充值券退款金额": "recharge_coupon_refund_fee", "退款类型": "refund_channel",
    "退款状态": "refund_status", "商品名称": "body", "商户数据包": "attach", "手续费": "fee",
    "费率": "rate", "订单金额": "total_fee", "申请退款金额": "refund_fee",
    "费率备注": "rate_note",
}
SUMMARY_NAMES = {
    "总交易单数": "count", "应结订单总金额": "settlement_total_fee",
    "退款总金额": "settlement_refund_fee", "充值券退款总金额": "recharge_coupon_refund_fee",
    "手续费总金额": "fee", "订单总金额": "total_fee", "申请退款总金额": "refund_fee",
}
_MONEY = {"settlement_total_fee", "coupon_fee", "settlement_refund_fee",
          "recharge_coupon_refund_fee", "total_fee", "refund_fee"}
_ALL = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
        "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
        "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
        "费率备注").split(",")
_SUCCESS = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
            "交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,"
            "订单金额,费率备注").split(",")
_REFUND = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
           "交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,"
           "商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,"
           "订单金额,申请退款金额,费率备注").split(",")
COLUMNS = {"ALL": _ALL, "SUCCESS": _SUCCESS, "REFUND": _REFUND, "RECHARGE_REFUND": _REFUND}
_SUMMARY = list(SUMMARY_NAMES)
RATE = Decimal("0.006")


def _bad(reason: str) -> WnError:
    return WnError("e.weixin.bill.invalid", reason, BAD_INPUT)


def build_downloadbill(account: Account, bill_date: str, bill_type: str = "ALL",
                       gzip_body: bool = False, nonce=None) -> dict:
    if not isinstance(bill_date, str) or not re.fullmatch(r"20[0-9]{6}", bill_date):
        raise WnError("e.weixin.param.invalid", "bill_date must be yyyyMMdd", BAD_INPUT)
    if bill_type not in BILL_TYPES:
        raise WnError("e.weixin.param.invalid",
                      "bill_type must be ALL, SUCCESS, REFUND or RECHARGE_REFUND", BAD_INPUT)
    params = {"appid": account.appid, "mch_id": account.mch_id,
              "nonce_str": _check_nonce(nonce or new_nonce()), "bill_date": bill_date,
              "bill_type": bill_type}
    if gzip_body:
        params["tar_type"] = "GZIP"
    return _signed(account, params)


def bill_text(body: bytes) -> str:
    """The bill's text (gunzipped when gzip); a failure XML → ReturnFail."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            raise WxPayError("e.weixin.bill.invalid", "the gzip bill is corrupt") from None
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WxPayError("e.weixin.bill.invalid", "the bill is not UTF-8") from None
    if text.lstrip().startswith("<"):
        raise bill_error(text)
    return text


def bill_error(text: str) -> WxPayError:
    try:
        fields = from_xml(text)
    except WxPayError:
        return WxPayError("e.weixin.bill.invalid", "the bill is neither a bill nor XML")
    msg = fields.get("return_msg") or ""
    code = fields.get("error_code")
    err = ReturnFail(msg + (f" (error_code {code})" if code else ""))
    if msg.strip().lower().startswith("no bill exist"):
        err.key = "e.weixin.bill.none"
    return err


def _fen(value: str, what: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _bad(f"{what} is not an amount: {value[:20]!r}") from None
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise _bad(f"{what} has fractions of a fen: {value[:20]!r}")
    return int(fen)


def _fields(line: str) -> list[str]:
    line = line.rstrip("\r")
    if line.startswith("`"):
        return [x for x in line[1:].split(",`")]
    return line.split(",")


def parse_bill(text: str) -> tuple[list[dict], dict]:
    """(rows, summary): each row ``{time, appid, ..., total_fee: fen, ...}``; the
    summary ``{count, settlement_total_fee: fen, ..., fee: "0.00300"}``."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 3:
        raise _bad("a bill has a header, rows, a summary header and a summary")
    header = [h.strip().lstrip("\ufeff") for h in lines[0].split(",")]
    unknown = [h for h in header if h not in NAMES]
    if unknown:
        raise _bad(f"unknown bill column {unknown[0][:20]!r}")
    keys = [NAMES[h] for h in header]
    try:
        split = next(i for i, ln in enumerate(lines) if ln.startswith("总交易单数"))
    except StopIteration:
        raise _bad("the bill has no summary") from None
    rows = []
    for n, ln in enumerate(lines[1:split], start=2):
        values = _fields(ln)
        if len(values) != len(keys):
            raise _bad(f"line {n} has {len(values)} fields, the header {len(keys)}")
        row = {}
        for k, v in zip(keys, values):
            row[k] = _fen(v, f"line {n} {k}") if k in _MONEY else v
        rows.append(row)
    sum_keys = [SUMMARY_NAMES.get(h.strip()) for h in lines[split].split(",")]
    if None in sum_keys or split + 1 >= len(lines):
        raise _bad("the bill's summary is malformed")
    values = _fields(lines[split + 1])
    if len(values) != len(sum_keys):
        raise _bad("the bill's summary line does not match its header")
    summary = {}
    for k, v in zip(sum_keys, values):
        if k == "count":
            if not v.isdigit():
                raise _bad("the bill's trade count is not a number")
            summary[k] = int(v)
        else:
            summary[k] = _fen(v, f"summary {k}") if k in _MONEY else v
    return rows, summary


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def _fee(fen: int) -> str:
    return f"{Decimal(fen) / 100 * RATE:.5f}"


def format_bill(trades: list[dict], bill_type: str = "ALL") -> str:
    """The bill text of ``trades`` (``{kind: SUCCESS|REFUND, time, appid, mch_id,
    transaction_id, out_trade_no, openid, trade_type, total_fee, body, attach,
    refund_id, out_refund_no, refund_fee, refund_status, refund_time}``, fen)."""
    if bill_type == "SUCCESS":
        chosen = [t for t in trades if t["kind"] == "SUCCESS"]
    elif bill_type in ("REFUND", "RECHARGE_REFUND"):
        chosen = [t for t in trades if t["kind"] == "REFUND"]
    else:
        chosen = list(trades)
    cols = COLUMNS[bill_type]
    out = [",".join(cols)]
    sums = {"settle": 0, "refund": 0, "fee": Decimal(0), "total": 0, "asked": 0}
    for t in chosen:
        refund = t["kind"] == "REFUND"
        settle = 0 if refund else int(t["total_fee"])
        refunded = int(t.get("refund_fee") or 0) if refund else 0
        fee = -Decimal(refunded) / 100 * RATE if refund else Decimal(settle) / 100 * RATE
        values = {
            "交易时间": t.get("time", ""), "公众账号ID": t.get("appid", ""),
            "商户号": t.get("mch_id", ""), "特约商户号": "0", "设备号": t.get("device_info", "WEB"),
            "微信订单号": t.get("transaction_id", ""), "商户订单号": t.get("out_trade_no", ""),
            "用户标识": t.get("openid", ""), "交易类型": t.get("trade_type", "JSAPI"),
            "交易状态": "REFUND" if refund else "SUCCESS", "付款银行": t.get("bank_type", "OTHERS"),
            "货币种类": "CNY", "应结订单金额": _yuan(settle), "代金券金额": "0.00",
            "退款申请时间": t.get("refund_time", "") if refund else "",
            "退款成功时间": t.get("refund_time", "") if refund else "",
            "微信退款单号": t.get("refund_id", "0") if refund else "0",
            "商户退款单号": t.get("out_refund_no", "0") if refund else "0",
            "退款金额": _yuan(refunded), "充值券退款金额": "0.00",
            "退款类型": "ORIGINAL" if refund else "",
            "退款状态": t.get("refund_status", "SUCCESS") if refund else "",
            "商品名称": t.get("body", ""), "商户数据包": t.get("attach", ""),
            "手续费": f"{fee:.5f}", "费率": "0.60%",
            "订单金额": _yuan(0 if refund else int(t["total_fee"])),
            "申请退款金额": _yuan(refunded), "费率备注": "",
        }
        out.append(",".join("`" + str(values[c]).replace(",`", ", `") for c in cols))
        sums["settle"] += settle
        sums["refund"] += refunded
        sums["fee"] += fee
        sums["total"] += 0 if refund else int(t["total_fee"])
        sums["asked"] += refunded
    out.append(",".join(_SUMMARY))
    out.append(",".join("`" + v for v in (
        str(len(chosen)), _yuan(sums["settle"]), _yuan(sums["refund"]), "0.00",
        f"{sums['fee']:.5f}", _yuan(sums["total"]), _yuan(sums["asked"]))))
    return "\r\n".join(out) + "\r\n"
