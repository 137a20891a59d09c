"""order -result: forged notifications are refused, duplicates are idempotent,
concurrency gives exactly one transition."""
from __future__ import annotations

import json
import logging
import threading

import pytest
import requests

import objstore
from wnshell.session import Session
from wxpay.api import SUCCESS_XML
from wxpay.sign import sign
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import (APPID, MCH_ID, OPENID, PAY_KEY, Receiver, install_wxconf,
                       make_order, run)


def notification(out_trade_no, total_fee="888", **over):
    n = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID, "mch_id": MCH_ID,
         "device_info": "WEB", "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
         "result_code": "SUCCESS", "openid": OPENID, "is_subscribe": "N",
         "trade_type": "JSAPI", "bank_type": "CMC", "total_fee": total_fee,
         "fee_type": "CNY", "cash_fee": total_fee,
         "transaction_id": "4200000000202611270000000001",
         "out_trade_no": out_trade_no, "time_end": "20261127100000"}
    n.update(over)
    n = {k: v for k, v in n.items() if v is not None}
    return n


def signed(fields, key=PAY_KEY):
    return dict(fields, sign=sign(fields, key))


def deliver(sh, store, body, name="req"):
    req = store.create(f"/home/demo/.regapi/tmp/{name}", "FILE", {"http-method": "POST"},
                       parents=True, content=body.encode("utf-8") if isinstance(body, str)
                       else body)
    return run(sh, f"weixin xxx order -result id:{req.id}")


@pytest.fixture()
def submitted(sh, store):
    order = make_order(store)
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                               f"-openid {OPENID}")
    assert status == 0, err
    return store.get(order.id)


def _forgeries(otn, order_id):
    good = notification(otn)
    xxe = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<xml><return_code>SUCCESS</return_code><out_trade_no>&x;</out_trade_no></xml>')
    bomb = ('<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            '<xml><return_code>&b;</return_code></xml>')
    return {
        "bad sign": to_xml(dict(signed(good), total_fee="1", cash_fee="1")),
        "tampered field": to_xml(dict(signed(good), transaction_id="4200000000999")),
        "other key": to_xml(signed(good, key="0" * 32)),
        "missing sign": to_xml(good),
        "empty sign": to_xml(dict(good, sign="")),
        "wrong appid": to_xml(signed(dict(good, appid="wx0000000000000000"))),
        "wrong mch_id": to_xml(signed(dict(good, mch_id="1900000999"))),
        "wrong total_fee": to_xml(signed(notification(otn, total_fee="1"))),
        "non-integer total_fee": to_xml(signed(notification(otn, total_fee="888.00"))),
        "unknown order": to_xml(signed(notification("abcdefghijklmnopqrstuvwxyz_1"))),
        "unsent seq": to_xml(signed(notification(f"{order_id}_7"))),
        "no seq": to_xml(signed(notification(order_id))),
        "return_code FAIL": to_xml(signed(dict(good, return_code="FAIL",
                                               return_msg="error"))),
        "XXE": xxe,
        "entity bomb": bomb,
        "garbage": "this is not xml",
        "empty": "",
        "huge": "<xml>" + "<a>x</a>" * 20000 + "</xml>",
    }


def test_forged_notifications_are_refused(sh, store, submitted, caplog):
    caplog.set_level(logging.WARNING, logger="wnshell.weixin")
    before = store.get(submitted.id)
    cases = _forgeries(submitted["pay_out_trade_no"], submitted.id)
    for i, (name, body) in enumerate(cases.items()):
        status, out, err = deliver(sh, store, body, f"f{i}")
        assert status == 0, (name, err)
        reply = from_xml(out)
        assert reply["return_code"] == "FAIL", name
        assert reply["return_msg"], name
        assert err.startswith("weixin: notification rejected: "), (name, err)
        assert err.count("\n") == 1, name
        assert store.get(submitted.id) == before, name
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == len(cases)


def test_forged_notifications_over_http(sh, store, submitted, receiver):
    """The same refusals through the receiver's HTTP endpoint (body = reply XML)."""
    before = store.get(submitted.id)
    for name, body in _forgeries(submitted["pay_out_trade_no"], submitted.id).items():
        r = requests.post(receiver.url, data=body.encode("utf-8"), timeout=10)
        assert r.status_code == 200, name
        assert from_xml(r.content)["return_code"] == "FAIL", name
    assert store.get(submitted.id) == before
    # and the genuine one is accepted
    good = signed(notification(submitted["pay_out_trade_no"]))
    r = requests.post(receiver.url, data=to_xml(good).encode("utf-8"), timeout=10)
    assert r.text == SUCCESS_XML
    assert store.get(submitted.id)["or_status"] == 2


def test_genuine_notification_then_other_transaction(sh, store, submitted, caplog):
    otn = submitted["pay_out_trade_no"]
    status, out, err = deliver(sh, store, to_xml(signed(notification(otn))), "n1")
    assert (status, out) == (0, SUCCESS_XML), err
    paid = store.get(submitted.id)
    assert paid["or_status"] == 2 and paid["pay_result"]["out_trade_no"] == otn
    assert isinstance(paid["pay_time"], int)
    # a second, different payment of the same order: SUCCESS (stop WeChat's retries),
    # or_status/pay_result untouched, recorded for a refund
    caplog.set_level(logging.WARNING, logger="wnshell.weixin")
    other = signed(notification(otn, transaction_id="4200000000202611279999999999"))
    status, out, err = deliver(sh, store, to_xml(other), "n2")
    assert (status, out) == (0, SUCCESS_XML), err
    after = store.get(submitted.id)
    assert after["pay_result"] == paid["pay_result"] and after["pay_time"] == paid["pay_time"]
    assert [x["transaction_id"] for x in after["pay_result_extra"]] == \
        ["4200000000202611279999999999"]
    assert any("pay_result_extra" in r.getMessage() for r in caplog.records)


def test_notification_for_cancelled_order_is_recorded_not_applied(sh, store, submitted):
    store.set_meta(submitted.id, {"or_status": 3})
    otn = submitted["pay_out_trade_no"]
    status, out, err = deliver(sh, store, to_xml(signed(notification(otn))), "c1")
    assert (status, out) == (0, SUCCESS_XML), err
    o = store.get(submitted.id)
    assert o["or_status"] == 3 and "pay_result" not in o
    assert len(o["pay_result_extra"]) == 1


def test_result_code_fail_is_acknowledged_without_change(sh, store, submitted):
    before = store.get(submitted.id)
    n = notification(submitted["pay_out_trade_no"], result_code="FAIL",
                     err_code="NOTENOUGH", err_code_des="余额不足")
    status, out, err = deliver(sh, store, to_xml(signed(n)), "rf")
    assert (status, out) == (0, SUCCESS_XML), err
    assert store.get(submitted.id) == before


def test_missing_request_object(sh):
    status, out, err = run(sh, "weixin xxx order -result id:nosuchrequest")
    assert status == 1 and err.startswith("e.cmd.weixin.req.noexists")


def test_request_object_that_is_a_directory(sh, store):
    store.create("/home/demo/reqdir", "DIR", parents=True)
    for handler in ("order", "refund"):
        status, out, err = run(sh, f"weixin xxx {handler} -result ~/reqdir")
        assert status == 1 and err.startswith("e.cmd.weixin.req.invalid"), (handler, err)
        status, out, err = run(sh, f"weixin xxx {handler} -result id:nosuchrequest")
        assert status == 1 and err.startswith("e.cmd.weixin.req.noexists"), (handler, err)


def test_50_concurrent_duplicates_one_transition(tmp_path, sim, caplog):
    """50 threads, each with its own Session and its own store handle on one SQLite
    file, deliver the same notification at once: one transition, 50 SUCCESS."""
    url = f"sqlite:///{tmp_path}/shared.db"
    setup = objstore.open_store(url)
    install_wxconf(setup, sim.url, "http://127.0.0.1:9/notify")
    sh = Session(setup, user="demo")
    order = make_order(setup)
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} "
                               f"-client_ip 127.0.0.1 -openid {OPENID}")
    assert status == 0, err
    body = to_xml(signed(notification(setup.get(order.id)["pay_out_trade_no"])))
    reqs = [setup.create(f"/home/demo/.regapi/tmp/c{i}", "FILE", parents=True,
                         content=body.encode()) for i in range(50)]
    caplog.set_level(logging.INFO, logger="wnshell.weixin")
    barrier = threading.Barrier(50)
    results = [None] * 50

    def worker(i):
        store = objstore.open_store(url)
        try:
            s = Session(store, user="demo")
            barrier.wait(timeout=30)
            results[i] = run(s, f"weixin xxx order -result id:{reqs[i].id}")
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results)
    assert [r[0] for r in results] == [0] * 50, [r[2] for r in results if r[0]]
    assert [r[1] for r in results] == [SUCCESS_XML] * 50
    transitions = [r for r in caplog.records if r.getMessage().startswith(
        f"weixin: order {order.id} paid")]
    assert len(transitions) == 1
    o = setup.get(order.id)
    assert o["or_status"] == 2 and "pay_result_extra" not in o
    setup.close()


def test_concurrent_notifications_from_the_simulator(tmp_path, sim, caplog):
    """The simulator itself sends 20 concurrent copies to a receiver whose every
    request opens its own handle on a shared SQLite file."""
    url = f"sqlite:///{tmp_path}/recv.db"
    handles = []
    lock = threading.Lock()

    def factory():
        st = objstore.open_store(url)
        with lock:
            handles.append(st)
        return st

    receiver = Receiver(factory)
    setup = objstore.open_store(url)
    try:
        install_wxconf(setup, sim.url, receiver.url)
        sh = Session(setup, user="demo")
        order = make_order(setup)
        assert run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                       f"-openid {OPENID}")[0] == 0
        caplog.set_level(logging.INFO, logger="wnshell.weixin")
        sim.set_faults({"concurrent_notify": 20})
        prepay = setup.get(order.id)["pay_remap"]["prepay_id"]
        requests.post(sim.url + "/sim/pay", json={"prepay_id": prepay},
                      timeout=5).raise_for_status()
        snap = sim.wait_notified(f"{order.id}_1", timeout=30)
        assert snap["notify"]["successes"] == 20, snap["notify"]
        assert [r[1] for r in receiver.replies] == [SUCCESS_XML] * 20
        assert len([r for r in caplog.records
                    if r.getMessage().startswith(f"weixin: order {order.id} paid")]) == 1
        assert setup.get(order.id)["or_status"] == 2
    finally:
        receiver.close()
        setup.close()
        for h in handles:
            h.close()


# ---- issue 11: the account's sign type; a duplicate whatever the status ------------
@pytest.mark.parametrize("status", [3, 4, 5])
def test_the_paying_transaction_again_is_a_duplicate_whatever_the_status(
        sh, store, submitted, status):
    otn = submitted["pay_out_trade_no"]
    body = to_xml(signed(notification(otn)))
    assert deliver(sh, store, body, "p1")[1] == SUCCESS_XML
    store.set_meta(submitted.id, {"or_status": status})      # refund asked, fulfilled...
    before = store.get(submitted.id)
    st, out, err = deliver(sh, store, body, "p2")
    assert (st, out) == (0, SUCCESS_XML), err
    after = store.get(submitted.id)
    assert "pay_result_extra" not in after and after == before


@pytest.fixture()
def hmac_sh(store, sim, receiver):
    install_wxconf(store, sim.url, receiver.url, name="hm",
                   extra='pay_sign_type : "HMAC-SHA256"\n')
    return Session(store, user="demo")


def _hmac_submitted(hmac_sh, store):
    order = make_order(store, "h1")
    status, out, err = run(hmac_sh, f"weixin hm order -submit {order.id} "
                                    f"-client_ip 127.0.0.1 -openid {OPENID}")
    assert status == 0, err
    return store.get(order.id)


def _deliver_to(sh, store, conf, body, name):
    req = store.create(f"/home/demo/.regapi/tmp/{name}", "FILE", {}, parents=True,
                       content=body.encode("utf-8"))
    return run(sh, f"weixin {conf} order -result id:{req.id}")


def test_hmac_account_accepts_hmac_notification_without_sign_type(hmac_sh, store):
    """Real WeChat HMAC notifications carry no sign_type: pay_sign_type decides."""
    order = _hmac_submitted(hmac_sh, store)
    n = notification(order["pay_out_trade_no"])
    body = to_xml(dict(n, sign=sign(n, PAY_KEY, "HMAC-SHA256")))
    st, out, err = _deliver_to(hmac_sh, store, "hm", body, "h1")
    assert (st, out) == (0, SUCCESS_XML), err
    assert store.get(order.id)["or_status"] == 2


@pytest.mark.parametrize("typed", [False, True])
def test_hmac_account_refuses_md5_signed_notification(hmac_sh, store, typed):
    order = _hmac_submitted(hmac_sh, store)
    n = notification(order["pay_out_trade_no"], sign_type="MD5" if typed else None)
    body = to_xml(dict(n, sign=sign(n, PAY_KEY, "MD5")))
    st, out, err = _deliver_to(hmac_sh, store, "hm", body, "h2")
    assert st == 0 and from_xml(out)["return_code"] == "FAIL"
    assert "sign" in err and store.get(order.id)["or_status"] == 0


def test_hmac_order_paid_through_the_simulator(hmac_sh, store, sim, receiver):
    receiver.conf = "hm"
    order = _hmac_submitted(hmac_sh, store)
    otn = order["pay_out_trade_no"]
    sim.pay(out_trade_no=otn)
    snap = sim.wait_notified(otn, timeout=10)
    assert snap["notify"]["status"] == "delivered", snap["notify"]["log"]
    assert store.get(order.id)["or_status"] == 2


# ---- the order's amount changed after a prepay, and the user pays the old prepay ------
# The money is real: WeChat must get SUCCESS (or it retries for a day), the payment must
# be kept for a refund, and the order must not be marked paid for the old amount.  A
# new submit gets a new out_trade_no and prepay for the new amount.
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
    n = notification(f"{order.id}_1", total_fee="1",
                     transaction_id="4200000000202611270000000077")
    status, out, err = deliver(sh, store, to_xml(signed(n)), name="forged")
    assert status == 0 and from_xml(out)["return_code"] == "FAIL"
    assert store.get(order.id) == before
