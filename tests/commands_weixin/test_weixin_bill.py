"""weixin xxx bill: the day's bill as JSON lines, and -reconcile against the store,
with a simulator of its own (its ledger holds this module's trades only)."""
from __future__ import annotations

import json

import pytest

from wnshell.session import Session
from wxpay.api import beijing_stamp
from wxpay.simulator import Simulator

from .conftest import (APPID, MCH_ID, OPENID, PAY_KEY, Receiver, install_wxconf,
                       make_order, run, write_file)


@pytest.fixture()
def bsim():
    s = Simulator(merchants=[(APPID, MCH_ID, PAY_KEY)], retry_schedule=(0.2, 0.3))
    s.start()
    s.set_refund_outcome("SUCCESS", 0.02)
    yield s
    s.stop()


@pytest.fixture()
def bsh(store, bsim):
    pay = Receiver(lambda: store)
    ref = Receiver(lambda: store, template="weixin xxx refund -result id:${id}\n")
    install_wxconf(store, bsim.url, pay.url,
                   extra=f'pay_secapi_base : "{bsim.secure_url}"\n'
                         f'pay_refund_notify_url : "{ref.url}"\n')
    write_file(store, "/home/demo/.weixin/xxx/apiclient_cert.p12",
               bsim.merchant_p12(MCH_ID))
    write_file(store, "/home/demo/.weixin/xxx/wxpay_ca.pem", bsim.ca_pem)
    yield Session(store, user="demo")
    pay.close()
    ref.close()


def _paid(sh, store, sim, name, fee):
    order = make_order(store, name, total_fee=fee)
    assert run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                   f"-openid {OPENID}")[0] == 0
    sim.pay(out_trade_no=f"{order.id}_1")
    sim.wait_notified(f"{order.id}_1")
    return store.get(order.id)


def _refund(sh, sim, order, fee, n):
    status, out, err = run(sh, f"weixin xxx refund {order.id} -fee {fee}")
    assert status == 0, err
    sim.wait_refund_notified(f"{order.id}_r{n}")


def lines(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


@pytest.fixture()
def day(bsh, store, bsim):
    a = _paid(bsh, store, bsim, "a", 1000)
    b = _paid(bsh, store, bsim, "b", 250)
    _refund(bsh, bsim, a, 300, 1)
    return {"a": a, "b": b, "date": beijing_stamp()[:8]}


def test_bill_as_json_lines_in_fen(bsh, day):
    status, out, err = run(bsh, f"weixin xxx bill -date {day['date']}")
    assert status == 0, err
    got = lines(out)
    rows, summary = got[:-1], got[-1]["summary"]
    pays = [r for r in rows if r["trade_state"] == "SUCCESS"]
    refunds = [r for r in rows if r["trade_state"] == "REFUND"]
    assert sorted(r["total_fee"] for r in pays) == [250, 1000]
    assert refunds[0]["refund_fee"] == 300 and refunds[0]["out_refund_no"] == f"{day['a'].id}_r1"
    assert summary["count"] == 3 and summary["total_fee"] == 1250
    assert summary["settlement_refund_fee"] == 300
    status, out, err = run(bsh, f"weixin xxx bill -date {day['date']} -type REFUND")
    assert [r["trade_state"] for r in lines(out)[:-1]] == ["REFUND"]


def test_reconcile_clean_day(bsh, day):
    status, out, err = run(bsh, f"weixin xxx bill -date {day['date']} -reconcile")
    assert status == 0, (out, err)
    assert lines(out) == [{"reconcile": {"date": day["date"], "bill_payments": 2,
                                         "bill_refunds": 1, "store_payments": 2,
                                         "store_refunds": 1, "differences": 0}}]


def test_reconcile_finds_every_kind_of_difference(bsh, store, bsim, day):
    c = _paid(bsh, store, bsim, "c", 500)
    bsim.set_refund_outcome("PROCESSING")
    assert run(bsh, f"weixin xxx refund {c.id} -fee 100")[0] == 0      # in flight here
    trades = bsim.ledger_trades(MCH_ID, day["date"])
    a, b = day["a"], day["b"]
    by = {(t["kind"], t["out_trade_no"]): t for t in trades}
    pay_a = by[("SUCCESS", f"{a.id}_1")]
    changed = []
    for t in trades:
        if t["kind"] == "SUCCESS" and t["out_trade_no"] == f"{b.id}_1":
            continue                                         # b: absent from the bill
        t = dict(t)
        if t["kind"] == "SUCCESS" and t["out_trade_no"] == f"{c.id}_1":
            t["total_fee"] = 499                             # c: amount differs
        changed.append(t)
    changed.append(dict(pay_a, out_trade_no="zzzzunknown_1", transaction_id="4200999"))
    changed.append(dict(pay_a, kind="REFUND", out_refund_no="zzzzunknown_r1",
                        refund_id="5099", refund_fee=10, refund_status="SUCCESS",
                        refund_time=pay_a["time"]))
    changed.append(dict(by[("SUCCESS", f"{c.id}_1")], kind="REFUND",
                        out_refund_no=f"{c.id}_r1", refund_id="5098", refund_fee=100,
                        refund_status="SUCCESS", refund_time=pay_a["time"]))
    # a's refund: the bill says 301, and a second refund of a (the store's) is missing
    changed = [dict(t, refund_fee=301) if t.get("out_refund_no") == f"{a.id}_r1" else t
               for t in changed]
    _refund_more = run(bsh, f"weixin xxx refund {a.id} -fee 50")
    assert _refund_more[0] == 0, _refund_more
    bsim.settle_refund(f"{a.id}_r2", "SUCCESS")
    bsim.wait_refund_notified(f"{a.id}_r2")
    bsim.set_bill(MCH_ID, day["date"], changed)
    status, out, err = run(bsh, f"weixin xxx bill -date {day['date']} -reconcile")
    assert status == 1, err
    got = lines(out)
    kinds = {d["diff"]: d for d in got[:-1]}
    assert set(kinds) == {"paid_at_wechat_not_in_store", "amount_differs",
                          "paid_in_store_not_in_bill", "refund_not_in_store",
                          "refund_amount_differs", "refund_status_differs",
                          "refund_in_store_not_in_bill"}
    assert kinds["paid_at_wechat_not_in_store"]["out_trade_no"] == "zzzzunknown_1"
    assert kinds["amount_differs"]["bill_total_fee"] == 499
    assert kinds["amount_differs"]["store_total_fee"] == 500
    assert kinds["paid_in_store_not_in_bill"]["order"] == b.id
    assert kinds["refund_amount_differs"]["bill_refund_fee"] == 301
    assert kinds["refund_status_differs"]["store_status"] == "PROCESSING"
    assert kinds["refund_in_store_not_in_bill"]["out_refund_no"] == f"{a.id}_r2"
    assert got[-1]["reconcile"]["differences"] == 7


def test_no_bill_and_bad_input(bsh):
    status, out, err = run(bsh, "weixin xxx bill -date 20260101")
    assert status == 0 and lines(out) == [{"summary": {"count": 0}}]
    status, out, err = run(bsh, "weixin xxx bill -date 20260101 -reconcile")
    assert status == 0 and lines(out)[-1]["reconcile"]["differences"] == 0
    for bad in ("-date 2026-01-01", "-date 20261301", "", "-date 20260101 -type X",
                "-date 20260101 -what"):
        status, out, err = run(bsh, f"weixin xxx bill {bad}")
        assert status != 0 and err.count("\n") == 1, bad
