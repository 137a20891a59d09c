"""The seed's .regapi templates, verbatim, run as templates (request values are
literal words), and concurrent submits of one order."""
from __future__ import annotations

import json
import threading

import requests

import objstore
from wnshell.session import Session
from wxpay.api import SUCCESS_XML

from .conftest import RESULT_TEMPLATE, OPENID, install_wxconf, make_order, record

SUBMIT_TEMPLATE = """# 提交订单支付信息
weixin xxx order -submit ${http-qs-id} 
           -client_ip ${http-remote-host} 
           -openid ${http-qs-openid} 
"""


def trun(session, text, values):
    status, out, err = session.run(text, "", template_vars=values)
    record("stdout", out)
    record("stderr", err)
    return status, out, err


def test_seed_templates_verbatim(sh, store, sim, receiver):
    order = make_order(store)
    status, out, err = trun(sh, SUBMIT_TEMPLATE, {"http-qs-id": order.id,
                                                  "http-remote-host": "127.0.0.1",
                                                  "http-qs-openid": OPENID})
    assert status == 0, err
    jsobj = json.loads(out)
    assert jsobj["package"].startswith("prepay_id=")
    # the user pays; the simulator notifies the receiver, which runs the seed's
    # result template against the stored request object
    o = store.get(order.id)
    requests.post(sim.url + "/sim/pay", json={"prepay_id": o["pay_remap"]["prepay_id"]},
                  timeout=5).raise_for_status()
    snap = sim.wait_notified(o["pay_out_trade_no"], timeout=10)
    assert snap["notify"]["status"] == "delivered"
    assert receiver.replies and receiver.replies[-1][1] == SUCCESS_XML
    paid = store.get(order.id)
    assert paid["or_status"] == 2 and paid["pay_result"]["result_code"] == "SUCCESS"


def test_template_values_cannot_become_options(sh, store):
    order = make_order(store)
    before = store.get(order.id)
    for values in ({"http-qs-id": f"{order.id} -openid {OPENID}",
                    "http-remote-host": "127.0.0.1", "http-qs-openid": "attacker"},
                   {"http-qs-id": order.id, "http-remote-host": "127.0.0.1",
                    "http-qs-openid": "-openid_key title"},
                   {"http-qs-id": "", "http-remote-host": "127.0.0.1",
                    "http-qs-openid": OPENID}):
        status, out, err = trun(sh, SUBMIT_TEMPLATE, values)
        assert status != 0 and out == "", values
    assert store.get(order.id) == before
    status, out, err = trun(sh, RESULT_TEMPLATE, {"id": "nosuch; echo hi"})
    assert status == 1 and "hi" not in out


def test_concurrent_submits_keep_the_order_consistent(tmp_path, sim):
    url = f"sqlite:///{tmp_path}/submits.db"
    setup = objstore.open_store(url)
    install_wxconf(setup, sim.url, "http://127.0.0.1:9/notify")
    order = make_order(setup)
    n = 12
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        st = objstore.open_store(url)
        try:
            s = Session(st, user="demo")
            barrier.wait(timeout=30)
            results[i] = s.run(f"weixin xxx order -submit {order.id} "
                               f"-client_ip 127.0.0.1 -openid {OPENID}")
        finally:
            st.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r[0] for r in results] == [0] * n, [r[2] for r in results]
    o = setup.get(order.id)
    assert 1 <= o["pay_seq"] <= n
    # one consistent attempt is stored
    assert o["pay_send"]["out_trade_no"] == o["pay_out_trade_no"]
    assert o["pay_jsobj"]["package"] == "prepay_id=" + o["pay_remap"]["prepay_id"]
    assert o["pay_remap"]["prepay_id"] == sim.order(o["pay_out_trade_no"])["prepay_id"]
    # every printed jsobj names a prepay the simulator knows for this order
    for _status, out, _err in results:
        prepay = json.loads(out)["package"].split("=", 1)[1]
        assert any(sim.order(f"{order.id}_{k}") and
                   sim.order(f"{order.id}_{k}")["prepay_id"] == prepay
                   for k in range(1, o["pay_seq"] + 1))
    setup.close()
