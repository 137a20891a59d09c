"""``weixin <conf> checkout -status | -native``: what the checkout page asks, for the
session's own openid only; ``-query 1`` finds a payment whose notification is late."""
from __future__ import annotations

import json

import requests

from .conftest import OPENID, make_order, run


def test_status_for_the_buyer_only(sh, store):
    o = make_order(store, "c1", total_fee=1205)
    st, out, err = run(sh, f"weixin xxx checkout -status {o.id} -openid {OPENID}")
    assert st == 0, err
    assert json.loads(out) == {"id": o.id, "name": "测试订单", "total_fee": 1205,
                               "yuan": "12.05", "or_status": 0, "state": "unpaid"}
    st, out, err = run(sh, f"weixin xxx checkout -status {o.id} -openid someone_else")
    assert st != 0 and out == "" and err.startswith("e.cmd.weixin.order.user.nosame : ")
    assert "1205" not in err and "测试" not in err
    st, out, err = run(sh, f"weixin xxx checkout -status {o.id} -openid ''")
    assert st != 0 and err.startswith("e.cmd.weixin.checkout.nosession : ")
    st, out, err = run(sh, f"weixin xxx checkout -status ~/.weixin/xxx/wxconf -openid {OPENID}")
    assert st != 0 and out == ""


def test_query_finds_a_payment_whose_notification_is_late(sh, store, sim):
    o = make_order(store, "c2")
    st, out, err = run(sh, f"weixin xxx order -submit {o.id} -client_ip 127.0.0.1 -openid {OPENID}")
    assert st == 0, err
    sim.set_faults({"notify_latency": 30, "count": 1})
    prepay = json.loads(out)["package"][len("prepay_id="):]
    requests.post(sim.url + "/sim/pay", json={"prepay_id": prepay}, timeout=5).raise_for_status()
    st, out, _ = run(sh, f"weixin xxx checkout -status {o.id} -openid {OPENID} -query 0")
    assert json.loads(out)["state"] == "unpaid"            # no -query: the store only
    st, out, err = run(sh, f"weixin xxx checkout -status {o.id} -openid {OPENID} -query 1")
    assert st == 0, err
    assert json.loads(out)["state"] == "paid" and store.get(o.id)["or_status"] == 2


def test_query_asks_wechat_at_most_every_two_seconds(sh, store, sim):
    o = make_order(store, "c3")
    run(sh, f"weixin xxx order -submit {o.id} -client_ip 127.0.0.1 -openid {OPENID}")
    run(sh, f"weixin xxx checkout -status {o.id} -openid {OPENID} -query 1")
    first = store.get(o.id)["ck_query_at"]
    for _ in range(5):
        run(sh, f"weixin xxx checkout -status {o.id} -openid {OPENID} -query 1")
    assert store.get(o.id)["ck_query_at"] == first


def test_native_needs_the_trade_type(sh, store):
    o = make_order(store, "c4")
    st, out, err = run(sh, f"weixin xxx checkout -native {o.id} -openid {OPENID} "
                           "-client_ip 127.0.0.1")
    if st == 0:          # a server with the NATIVE trade type
        got = json.loads(out)
        assert got["code_url"].startswith("weixin://") and got["qr"].startswith("data:image/svg")
    else:
        assert err.startswith("e.cmd.weixin.checkout.native.unavailable : "), err
    for bad in ("weixin xxx checkout", f"weixin xxx checkout -status {o.id} -x 1",
                f"weixin xxx checkout -native {o.id} -openid {OPENID}"):
        st, _, err = run(sh, bad)
        assert st != 0 and err.startswith("e.cmd.weixin.checkout.usage"), (bad, err)
