"""order -close and order -sweep: an unpaid order's end at WeChat, and the late
payment the sweeper must not lose."""
from __future__ import annotations

import json
import time

from .conftest import OPENID, make_order, run


def submit(sh, order):
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                               f"-openid {OPENID}")
    assert status == 0, err
    return json.loads(out)


def lines(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def expire_in_store(store, order):
    """Our side of 'time_expire has passed' (the sweeper's index)."""
    store.set_meta(order.id, {"pay_expire_at": int(time.time() * 1000) - 1000})


def test_close_closes_every_attempt_and_records_it(sh, store, sim):
    order = make_order(store, "c1")
    submit(sh, order)
    store.set_meta(order.id, {"total_fee": 999})
    submit(sh, order)                                  # a second attempt, new amount
    status, out, err = run(sh, f"weixin xxx order -close {order.id}")
    assert status == 0, err
    res = json.loads(out)
    assert res["closed"] == [f"{order.id}_1", f"{order.id}_2"]
    for n in (1, 2):
        assert sim.order(f"{order.id}_{n}")["state"] == "CLOSED"
    o = store.get(order.id)
    assert o["pay_closed"]["by"] == "close" and o["pay_closed"]["out_trade_nos"] == res["closed"]
    assert o["or_status"] == 0
    # closing again is harmless (ORDERCLOSED counts as closed)
    assert run(sh, f"weixin xxx order -close {order.id}")[0] == 0
    # a new submit opens a new attempt and clears pay_closed
    submit(sh, order)
    assert "pay_closed" not in store.get(order.id)


def test_close_refuses_a_paid_order_with_orderpaid(sh, store, sim, receiver):
    order = make_order(store, "c2")
    submit(sh, order)
    sim.pay(out_trade_no=f"{order.id}_1")
    sim.wait_notified(f"{order.id}_1")
    status, out, err = run(sh, f"weixin xxx order -close {order.id}")
    assert status != 0 and err.startswith("e.weixin.err.ORDERPAID") and "ORDERPAID" in err
    assert "pay_closed" not in store.get(order.id)


def test_close_of_an_order_paid_unknown_to_us_applies_the_payment(sh, store, sim):
    order = make_order(store, "c3")
    submit(sh, order)
    sim.set_faults({"notify_latency": 600, "count": 1})     # the notification is late
    sim.pay(out_trade_no=f"{order.id}_1")
    status, out, err = run(sh, f"weixin xxx order -close {order.id}")
    assert status != 0 and err.startswith("e.weixin.err.ORDERPAID")
    o = store.get(order.id)
    assert o["or_status"] == 2 and "pay_closed" not in o


def test_sweep_applies_late_payment_and_closes_expired_unpaid(sh, store, sim):
    paid_late = make_order(store, "s1")
    unpaid = make_order(store, "s2")
    fresh = make_order(store, "s3")
    for o in (paid_late, unpaid, fresh):
        submit(sh, o)
    sim.set_faults({"notify_latency": 600, "count": 1})     # its notification is lost
    sim.pay(out_trade_no=f"{paid_late.id}_1")
    expire_in_store(store, paid_late)
    expire_in_store(store, unpaid)
    status, out, err = run(sh, "weixin xxx order -sweep")
    assert status == 0, err
    got = {x["id"]: x for x in lines(out) if "id" in x}
    assert got[paid_late.id]["outcome"] == "paid"
    assert got[unpaid.id]["outcome"] == "closed" and fresh.id not in got
    assert lines(out)[-1] == {"summary": {"swept": 2, "paid": 1, "closed": 1, "refunds": 0,
                                            "errors": 0}}
    assert store.get(paid_late.id)["or_status"] == 2
    assert sim.order(f"{unpaid.id}_1")["state"] == "CLOSED"
    assert store.get(unpaid.id)["pay_closed"]["by"] == "sweep"
    assert sim.order(f"{fresh.id}_1")["state"] == "NOTPAY"
    # a second sweep finds nothing left to do
    status, out, err = run(sh, "weixin xxx order -sweep")
    assert lines(out) == [{"summary": {"swept": 0, "paid": 0, "closed": 0, "refunds": 0,
                                      "errors": 0}}]


def test_sweep_reports_an_unreachable_wechat_and_retries_later(sh, store, sim):
    order = make_order(store, "s4")
    submit(sh, order)
    expire_in_store(store, order)
    sim.set_faults({"http_status": 503, "count": 1})
    status, out, err = run(sh, "weixin xxx order -sweep")
    assert status == 1 and "e.weixin.transport" in err
    assert lines(out)[-1]["summary"]["errors"] == 1
    assert "pay_closed" not in store.get(order.id)
    status, out, err = run(sh, "weixin xxx order -sweep")
    assert status == 0 and lines(out)[-1]["summary"]["closed"] == 1


def test_close_and_sweep_usage(sh, store):
    assert run(sh, "weixin xxx order -close")[0] == 2
    assert run(sh, "weixin xxx order -sweep -limit x")[0] == 2
    assert run(sh, "weixin xxx order -close nosuchorder")[0] != 0
