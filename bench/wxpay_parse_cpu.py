"""CPU per call of the v2 notification check, in-process (no server, no store).

Times ``from_xml``, ``string_to_sign``, ``verify`` and ``api.parse_notification`` on a
realistic signed 17-field notification (the one ``bench/pay_vs_peer.py`` sends), as
bytes (what the store hands ``weixin payre``), with ``time.process_time``; prints the
best of several rounds in microseconds per call (the machine is shared: the best round
is the one least disturbed by others).  The baseline, measured in the same run: the
peer's check of the same body (``bench/peer/app.py``: wechatpy's
``parse_payment_result`` and its appid/mch_id comparison), when wechatpy is installed
(``[bench]`` or ``[test]``); the ratio is the peer's time / ours.

    .venv/bin/python bench/wxpay_parse_cpu.py [--calls 50000] [--rounds 5] [--hmac]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from wxpay.account import Account  # noqa: E402
from wxpay.api import parse_notification  # noqa: E402
from wxpay.sign import HMAC_SHA256, MD5, sign, string_to_sign, verify  # noqa: E402
from wxpay.xmlcodec import from_xml, to_xml  # noqa: E402

APPID, MCH_ID, KEY = "wxd930ea5d5a258f4f", "10000100", "192006250b4c09247ec02edce69f6a2d"


def notification(sign_type: str) -> bytes:
    params = {"appid": APPID, "mch_id": MCH_ID, "nonce_str": "5d2b6c2a8db53831f7eda20af46e531c",
              "result_code": "SUCCESS", "return_code": "SUCCESS",
              "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "is_subscribe": "N",
              "trade_type": "JSAPI", "bank_type": "CMC", "total_fee": "888",
              "cash_fee": "888", "fee_type": "CNY",
              "transaction_id": "4200000000000000000000001234", "out_trade_no": "o_123456",
              "time_end": "20261201142233", "device_info": "WEB"}
    if sign_type != MD5:
        params["sign_type"] = sign_type
    params["sign"] = sign(params, KEY, sign_type)
    return to_xml(params).encode("utf-8")


def per_call(fn, calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, time.process_time() - t0)
    return best / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hmac", action="store_true", help="an HMAC-SHA256 account")
    args = ap.parse_args()
    st = HMAC_SHA256 if args.hmac else MD5
    body = notification(st)
    account = Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n", sign_type=st)
    fields = from_xml(body)
    assert parse_notification(account, body) == fields
    print(f"notification: {len(body)} bytes, {len(fields)} fields, {st}")
    for name, fn in (("from_xml", lambda: from_xml(body)),
                     ("string_to_sign", lambda: string_to_sign(fields, KEY)),
                     ("verify", lambda: verify(fields, KEY, st)),
                     ("parse_notification", lambda: parse_notification(account, body))):
        ours = per_call(fn, args.calls, args.rounds)
        print(f"{name:20s} {ours:7.2f} µs/call")
    peer = peer_check(body) if st == MD5 else None
    if peer is None:
        print("peer (wechatpy)      no baseline (wechatpy not installed, or HMAC: its "
              "parse_payment_result checks MD5 only)")
        return
    theirs = per_call(peer, args.calls, args.rounds)
    print(f"peer (wechatpy)      {theirs:7.2f} µs/call   peer / parse_notification = "
          f"{theirs / ours:.2f}")


def peer_check(body: bytes):
    """The peer's notification check of ``body`` as a call, or None without wechatpy."""
    try:
        from wechatpy.pay import WeChatPay
    except ImportError:
        return None
    pay = WeChatPay(APPID, KEY, MCH_ID)

    def check():
        data = pay.parse_payment_result(body)
        if data.get("return_code") != "SUCCESS" or data.get("appid") != APPID \
                or data.get("mch_id") != MCH_ID:
            raise AssertionError("the peer refused the notification")
        return data
    check()
    return check


if __name__ == "__main__":
    main()
