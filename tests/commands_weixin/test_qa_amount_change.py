"""QA: the order's amount changes after a prepay was made, and the user pays the old
prepay anyway.  The money is real: WeChat must get SUCCESS (or it retries for a day),
the payment must be kept for a refund, and the order must not be marked paid for the
old amount.  A new submit gets a new out_trade_no and prepay for the new amount."""
from __future__ import annotations

import json

import requests

from wxpay.api import SUCCESS_XML
from wxpay.sign import sign
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import APPID, MCH_ID, OPENID, make_order, run


def _submit(sh, order):
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                               f"-openid {OPENID}")
    assert status == 0, err
    return json.loads(out)


def test_paying_an_older_attempt_after_the_amount_changed(sh, store, sim, receiver):
    order = make_order(store, total_fee=888)
    first = _submit(sh, order)
    old = store.get(order.id)
    store.set_meta(order.id, {"total_fee": 999})
    second = _submit(sh, order)
    new = store.get(order.id)
    assert new["pay_out_trade_no"] == f"{order.id}_2" and second != first
    assert new["pay_send"]["total_fee"] == "999"
    assert sim.order(f"{order.id}_2")["total_fee"] == 999

    # the user pays the old page's prepay: 888 fen
    r = requests.post(sim.url + "/sim/pay",
                      json={"prepay_id": old["pay_remap"]["prepay_id"]}, timeout=5)
    assert r.status_code == 200, r.text
    snap = sim.wait_notified(f"{order.id}_1", timeout=10)
    assert snap["notify"]["status"] == "delivered", snap["notify"]
    assert snap["notify"]["last_reply"] == SUCCESS_XML
    after = store.get(order.id)
    assert after["or_status"] == 0 and "pay_result" not in after
    extra = after["pay_result_extra"]
    assert [(x["out_trade_no"], x["total_fee"]) for x in extra] == \
        [(f"{order.id}_1", "888")]

    # a page polling the order sees it unpaid, with the stray payment noted
    status, out, err = run(sh, f"weixin xxx order -query {order.id}")
    assert status == 0, err
    state = json.loads(out)
    assert state["or_status"] == 0
    assert len(store.get(order.id)["pay_result_extra"]) == 1       # not recorded twice

    # paying the current prepay pays the order
    r = requests.post(sim.url + "/sim/pay",
                      json={"prepay_id": new["pay_remap"]["prepay_id"]}, timeout=5)
    assert r.status_code == 200, r.text
    sim.wait_notified(f"{order.id}_2", timeout=10)
    paid = store.get(order.id)
    assert paid["or_status"] == 2
    assert paid["pay_result"]["out_trade_no"] == f"{order.id}_2"
    assert paid["pay_result"]["total_fee"] == "999"


def test_older_attempt_with_an_amount_never_sent_is_still_refused(sh, store, sim):
    order = make_order(store, total_fee=888)
    _submit(sh, order)
    store.set_meta(order.id, {"total_fee": 999})
    _submit(sh, order)
    before = store.get(order.id)
    n = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
         "result_code": "SUCCESS", "openid": OPENID, "trade_type": "JSAPI",
         "total_fee": "1", "cash_fee": "1", "fee_type": "CNY",
         "transaction_id": "4200000000202611270000000077", "nonce_str": "abc",
         "out_trade_no": f"{order.id}_1", "time_end": "20261127100000"}
    from .conftest import PAY_KEY
    body = to_xml(dict(n, sign=sign(n, PAY_KEY)))
    req = store.create("/home/demo/.regapi/tmp/forged", "FILE", {}, parents=True,
                       content=body.encode())
    status, out, err = run(sh, f"weixin xxx order -result id:{req.id}")
    assert status == 0 and from_xml(out)["return_code"] == "FAIL"
    assert store.get(order.id) == before
