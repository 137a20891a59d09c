"""The ``weixin`` commands on a WeChat Pay v3 account (``pay_api_version: 3``), against
the v3 simulator on loopback: the seed's command lines unchanged."""
from __future__ import annotations

import json

import pytest

from wnshell.session import Session
from wxpay.v3.simserver import V3Server
from wxpay.v3.simulator import V3Simulator

from .conftest import OPENID, make_order, run, write_file
from .v3env import V3_APIV3_KEY, V3_APPID, V3_MCHID, V3Merchant, V3Receiver, install_v3


@pytest.fixture(scope="module")
def merchant():
    return V3Merchant()


@pytest.fixture()
def v3srv(merchant):
    sim = V3Simulator(retry_schedule=(0.05, 0.1, 0.2), hold=3.0, notify_timeout=5.0,
                      refund_delay=0.05)
    sim.add_merchant(V3_MCHID, [V3_APPID], merchant.public, merchant.serial, V3_APIV3_KEY)
    with V3Server(sim) as s:
        yield s


@pytest.fixture()
def v3rcv(store):
    r = V3Receiver(store)
    yield r
    r.close()


@pytest.fixture()
def v3sh(store, v3srv, v3rcv, merchant):
    install_v3(store, merchant, v3srv.url, v3rcv.url)
    return Session(store, user="demo")


# ---- wxconf -----------------------------------------------------------------------------
def test_info_masks_every_v3_key(v3sh, store, merchant):
    status, out, err = run(v3sh, "weixin v3 info")
    assert status == 0, err
    info = json.loads(out)
    assert info["pay_api_version"] == 3 and info["pay_mch_id"] == V3_MCHID
    assert V3_APIV3_KEY not in out and merchant.serial not in out
    assert "PRIVATE KEY" not in out and info["pay_apiv3_key"].startswith("****")


def test_v3_account_without_its_private_key_is_refused_in_one_line(v3sh, store):
    key = store.fetch("/home/demo/.weixin/v3/apiclient_key.pem")
    store.delete(key.id)
    status, out, err = run(v3sh, "weixin v3 info")
    assert status != 0 and err.count("\n") == 1
    assert err.startswith("e.cmd.weixin.conf.invalid : v3: ") and "apiclient_key.pem" in err
    assert "Traceback" not in err


def test_replaced_private_key_is_picked_up(v3sh, store, merchant):
    from commands.weixin import conf
    first = conf.load(v3sh, "v3")
    assert conf.load(v3sh, "v3") is first              # cached while nothing changed
    other = V3Merchant()
    write_file(store, "/home/demo/.weixin/v3/apiclient_key.pem", other.pem)
    again = conf.load(v3sh, "v3")
    assert again is not first
    assert again.account.private_key.public_key().public_numbers() == \
        other.key.public_key().public_numbers()


def test_platform_certificates_are_cached_in_the_account_folder(v3sh, store, v3srv):
    from commands.weixin import conf
    loaded = conf.load(v3sh, "v3")
    loaded.client.refresh_certificates()
    obj = store.fetch("/home/demo/.weixin/v3/platform_certs.json")
    assert obj is not None
    text = store.read(obj.id).decode()
    assert "BEGIN CERTIFICATE" in text and "PRIVATE" not in text
    assert V3_APIV3_KEY not in text
    # a fresh load (another process) starts from the cache: no refetch needed
    conf.forget()
    fresh = conf.load(v3sh, "v3")
    assert [c.serial for c in fresh.account.keys.certificates()] == \
        [v3srv.sim.platform_serial()]
    assert not fresh.account.keys.needs_refresh()


# ---- the seed's flow on v3 ----------------------------------------------------------------
SUBMIT = "weixin v3 order -submit id:{id} -client_ip 10.0.0.8 -openid " + OPENID


def _submit(sh, order):
    status, out, err = run(sh, SUBMIT.format(id=order.id))
    assert status == 0, err
    return json.loads(out)


def test_submit_signs_pay_jsobj_with_rsa_and_keeps_the_seed_fields(v3sh, store, merchant,
                                                                    v3srv):
    from wxpay.v3.crypto import rsa_verify
    order = make_order(store)
    js = _submit(v3sh, order)
    assert js["signType"] == "RSA" and js["appId"] == V3_APPID
    assert js["package"].startswith("prepay_id=")
    msg = f"{js['appId']}\n{js['timeStamp']}\n{js['nonceStr']}\n{js['package']}\n"
    assert rsa_verify(merchant.key.public_key(), msg, js["paySign"])
    o = store.get(order.id)
    assert o["pay_send"]["amount"] == {"total": 888, "currency": "CNY"}
    assert o["pay_send"]["payer"] == {"openid": OPENID} and o["pay_send"]["mchid"] == V3_MCHID
    assert o["pay_out_trade_no"] == f"{order.id}_1" and o["pay_seq"] == 1
    assert o["pay_remap"]["prepay_id"] == js["package"][len("prepay_id="):]
    assert json.loads(o["pay_rexml"]) == o["pay_remap"]
    assert o["pay_jsobj"] == js and o["pay_jsobj_choose"]["paySign"] == js["paySign"]
    assert isinstance(o["pay_expire_at"], int)
    # submitted again unchanged: the same pay_jsobj, no new attempt
    assert _submit(v3sh, order) == js and store.get(order.id)["pay_seq"] == 1


def test_paid_through_the_notification_exactly_once(v3sh, store, v3srv, v3rcv):
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    v3srv.sim.wait_notified(f"{order.id}_1")
    o = store.get(order.id)
    assert o["or_status"] == 2 and o.get("expi") is None
    pr = o["pay_result"]
    assert pr["trade_state"] == "SUCCESS" and pr["amount"]["total"] == 888
    assert pr["total_fee"] == "888" and pr["mch_id"] == V3_MCHID and len(pr["time_end"]) == 14
    assert v3rcv.replies and all(code == 204 and out == "" for code, _s, out, _e in v3rcv.replies)
    # -query agrees and changes nothing
    status, out, err = run(v3sh, f"weixin v3 order -query id:{order.id}")
    assert status == 0 and json.loads(out)["trade_state"] == "SUCCESS"


def _paid_without_notification(v3sh, store, v3srv, merchant):
    """An order paid at WeChat whose notification goes nowhere (notify_url: a closed
    port): the store still has it unpaid."""
    install_v3(store, merchant, v3srv.url, "http://127.0.0.1:9/api/demo/payresult")
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    return order


def test_query_applies_a_payment_whose_notification_was_lost(v3sh, store, v3srv, merchant):
    order = _paid_without_notification(v3sh, store, v3srv, merchant)
    status, out, err = run(v3sh, f"weixin v3 order -query id:{order.id}")
    assert status == 0, err
    state = json.loads(out)
    assert state["trade_state"] == "SUCCESS" and state["or_status"] == 2
    assert store.get(order.id)["pay_result"]["transaction_id"] == state["transaction_id"]


def test_close_then_a_new_submit_is_a_new_attempt(v3sh, store, v3srv):
    order = make_order(store)
    _submit(v3sh, order)
    status, out, err = run(v3sh, f"weixin v3 order -close id:{order.id}")
    assert status == 0, err
    assert json.loads(out)["closed"] == [f"{order.id}_1"]
    assert v3srv.sim.order(f"{order.id}_1")["trade_state"] == "CLOSED"
    js = _submit(v3sh, order)
    assert store.get(order.id)["pay_out_trade_no"] == f"{order.id}_2" and js["paySign"]


def test_close_of_an_order_paid_at_wechat_applies_the_payment(v3sh, store, v3srv, merchant):
    order = _paid_without_notification(v3sh, store, v3srv, merchant)
    status, out, err = run(v3sh, f"weixin v3 order -close id:{order.id}")
    assert status != 0 and err.startswith("e.weixin.err.ORDERPAID : ")
    assert store.get(order.id)["or_status"] == 2


def test_refund_and_its_notification(v3sh, store, v3srv, v3rcv):
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    v3srv.sim.wait_notified(f"{order.id}_1")
    status, out, err = run(v3sh, f"weixin v3 refund id:{order.id} -fee 300 -reason test")
    assert status == 0, err
    got = json.loads(out)
    assert got["out_refund_no"] == f"{order.id}_r1" and got["or_status"] == 3
    v3srv.sim.wait_notified(out_refund_no=f"{order.id}_r1")
    o = store.get(order.id)
    assert o["pay_refunds"][0]["status"] == "SUCCESS" and o["pay_refunded"] == 300
    assert o["or_status"] == 2
    status, out, err = run(v3sh, f"weixin v3 refund -query id:{order.id}")
    assert status == 0, err
    assert json.loads(out)["wechat"][0]["refund_status"] == "SUCCESS"
    assert any(code == 204 for code, *_ in v3rcv.replies)


def test_sweep_closes_an_expired_unpaid_order_and_applies_a_late_payment(v3sh, store,
                                                                          v3srv, merchant):
    import time
    install_v3(store, merchant, v3srv.url, "http://127.0.0.1:9/api/demo/payresult")
    unpaid, late = make_order(store, "u1"), make_order(store, "l1")
    _submit(v3sh, unpaid)
    js = _submit(v3sh, late)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])     # notification lost
    past = int(time.time() * 1000) - 1
    for o in (unpaid, late):
        store.set_meta(o.id, {"pay_expire_at": past})
    status, out, err = run(v3sh, "weixin v3 order -sweep")
    assert status == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    outcome = {x["id"]: x["outcome"] for x in lines if "id" in x}
    assert outcome == {unpaid.id: "closed", late.id: "paid"}
    assert v3srv.sim.order(f"{unpaid.id}_1")["trade_state"] == "CLOSED"
    assert store.get(late.id)["or_status"] == 2
    assert store.get(unpaid.id)["pay_closed"]["by"] == "sweep"


def test_bill_of_a_past_day_on_v3(v3sh, store, v3srv, v3rcv):
    from datetime import datetime, timedelta
    from wxpay.v3.api import BEIJING
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    v3srv.sim.wait_notified(f"{order.id}_1")
    status, out, err = run(v3sh, f"weixin v3 refund id:{order.id} -fee 200")
    assert status == 0, err
    v3srv.sim.wait_notified(out_refund_no=f"{order.id}_r1")
    v3srv.sim.backdate(f"{order.id}_1", 86400)          # the order and its refund
    day = (datetime.now(BEIJING) - timedelta(days=1)).strftime("%Y%m%d")
    status, out, err = run(v3sh, f"weixin v3 bill -date {day}")
    assert status == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    rows = [x for x in lines if "summary" not in x]
    assert [(r["trade_state"], r["out_trade_no"], r["total_fee"], r["refund_fee"])
            for r in rows] == [("SUCCESS", f"{order.id}_1", 888, 0),
                               ("REFUND", f"{order.id}_1", 0, 200)]
    assert lines[-1]["summary"]["count"] == 2
    two_days = (datetime.now(BEIJING) - timedelta(days=2)).strftime("%Y%m%d")
    status, out, err = run(v3sh, f"weixin v3 bill -date {two_days}")
    assert status == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["count"] == 0


# ---- bill -reconcile on v3 -------------------------------------------------------------
def _paid(sh, store, sim, name, fee):
    order = make_order(store, name, total_fee=fee)
    js = _submit(sh, order)
    sim.pay(prepay_id=js["package"][len("prepay_id="):])
    sim.wait_notified(f"{order.id}_1")
    return store.get(order.id)


def _refunded(sh, sim, order, fee, n):
    status, out, err = run(sh, f"weixin v3 refund id:{order.id} -fee {fee}")
    assert status == 0, err
    sim.wait_notified(out_refund_no=f"{order.id}_r{n}")


@pytest.fixture()
def today(v3sh, store, v3srv, v3rcv):
    """Two payments and a refund of a today; the simulator bills today so far."""
    from wxpay.api import beijing_stamp
    v3srv.sim.same_day_bills = True
    a = _paid(v3sh, store, v3srv.sim, "a", 1000)
    b = _paid(v3sh, store, v3srv.sim, "b", 250)
    _refunded(v3sh, v3srv.sim, a, 300, 1)
    return {"a": a, "b": b, "date": beijing_stamp()[:8]}


def _lines(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_bill_reconcile_on_v3_finds_no_difference_on_a_clean_day(v3sh, today):
    status, out, err = run(v3sh, f"weixin v3 bill -date {today['date']} -reconcile")
    assert status == 0, (out, err)
    assert _lines(out) == [{"reconcile": {"date": today["date"], "bill_payments": 2,
                                          "bill_refunds": 1, "store_payments": 2,
                                          "store_refunds": 1, "differences": 0}}]
    status, out, err = run(v3sh, f"weixin v3 bill -date {today['date']}")
    rows = _lines(out)[:-1]
    assert sorted((r["trade_state"], r["total_fee"] if r["trade_state"] == "SUCCESS"
                   else r["refund_fee"]) for r in rows) == \
        [("REFUND", 300), ("SUCCESS", 250), ("SUCCESS", 1000)]


def test_bill_reconcile_on_v3_finds_every_kind_of_difference(v3sh, store, v3srv, today):
    sim = v3srv.sim
    c = _paid(v3sh, store, sim, "c", 500)
    sim.refund_delay = 3600                  # c's refund stays PROCESSING in the store
    assert run(v3sh, f"weixin v3 refund id:{c.id} -fee 100")[0] == 0
    sim.refund_delay = 0.05
    a, b = today["a"], today["b"]
    _refunded(v3sh, sim, a, 50, 2)           # a second refund of a: the bill will lack it
    trades = sim.ledger_trades(V3_MCHID, today["date"])
    by = {(t["kind"], t.get("out_refund_no") or t["out_trade_no"]): t for t in trades}
    pay_a, pay_c = by[("SUCCESS", f"{a.id}_1")], by[("SUCCESS", f"{c.id}_1")]
    changed = [dict(t, total_fee=499) if t is pay_c else               # c: amount differs
               dict(t, refund_fee=301) if t.get("out_refund_no") == f"{a.id}_r1" else t
               for t in trades
               if t is not by[("SUCCESS", f"{b.id}_1")]                 # b: not billed
               and t.get("out_refund_no") != f"{a.id}_r2"]              # a_r2: not billed
    changed.append(dict(pay_a, out_trade_no="zzzzunknown_1", transaction_id="4200999"))
    changed.append(dict(pay_a, kind="REFUND", out_refund_no="zzzzunknown_r1",
                        refund_id="5099", refund_fee=10, refund_status="SUCCESS",
                        refund_time=pay_a["time"]))
    changed.append(dict(pay_c, kind="REFUND", out_refund_no=f"{c.id}_r1", refund_id="5098",
                        refund_fee=100, refund_status="SUCCESS", refund_time=pay_a["time"]))
    sim.set_bill(V3_MCHID, today["date"], changed)
    status, out, err = run(v3sh, f"weixin v3 bill -date {today['date']} -reconcile")
    assert status == 1, err
    got = _lines(out)
    kinds = {d["diff"]: d for d in got[:-1]}
    assert set(kinds) == {"paid_at_wechat_not_in_store", "amount_differs",
                          "paid_in_store_not_in_bill", "refund_not_in_store",
                          "refund_amount_differs", "refund_status_differs",
                          "refund_in_store_not_in_bill"}
    assert kinds["paid_at_wechat_not_in_store"]["out_trade_no"] == "zzzzunknown_1"
    assert kinds["amount_differs"]["bill_total_fee"] == 499
    assert kinds["amount_differs"]["store_total_fee"] == 500
    assert kinds["paid_in_store_not_in_bill"]["order"] == b.id
    assert kinds["refund_not_in_store"]["out_refund_no"] == "zzzzunknown_r1"
    assert kinds["refund_amount_differs"]["bill_refund_fee"] == 301
    assert kinds["refund_status_differs"]["store_status"] == "PROCESSING"
    assert kinds["refund_in_store_not_in_bill"]["out_refund_no"] == f"{a.id}_r2"
    assert got[-1]["reconcile"]["differences"] == 7
    # back to the simulator's own ledger: only c's pending refund is not billed yet
    sim.set_bill(V3_MCHID, today["date"], None)
    status, out, err = run(v3sh, f"weixin v3 bill -date {today['date']} -reconcile")
    assert status == 0, out
    assert _lines(out)[-1]["reconcile"]["bill_payments"] == 3


def test_v3_simulator_bills_today_only_when_asked(v3sh, store, v3srv, v3rcv):
    from wxpay.api import beijing_stamp
    _paid(v3sh, store, v3srv.sim, "t", 100)
    date = beijing_stamp()[:8]
    status, out, err = run(v3sh, f"weixin v3 bill -date {date}")     # like WeChat: none yet
    assert status == 0 and _lines(out) == [{"summary": {"count": 0}}]
    v3srv.sim.same_day_bills = True
    status, out, err = run(v3sh, f"weixin v3 bill -date {date}")
    assert status == 0 and _lines(out)[-1]["summary"]["count"] == 1


def test_v3_error_bodies_keep_v2_error_keys(v3sh, store, v3srv):
    order = make_order(store)
    _submit(v3sh, order)
    v3srv.sim.set_faults({"systemerror": True, "count": 1})
    store.set_meta(order.id, {"total_fee": 999})       # a new attempt is needed
    status, out, err = run(v3sh, SUBMIT.format(id=order.id))
    assert status != 0 and err.startswith("e.weixin.err.SYSTEMERROR : ")
    assert store.get(order.id)["pay_error"]["key"] == "e.weixin.err.SYSTEMERROR"


def test_a_rotated_platform_certificate_is_fetched_once_for_its_notification(v3sh, store,
                                                                             v3srv, v3rcv):
    from commands.weixin import conf
    first = make_order(store, "r1")
    _submit(v3sh, first)                             # certificates fetched and cached
    v3srv.sim.rotate_platform()                      # WeChat signs with a new one now
    order = make_order(store, "r2")
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    v3srv.sim.wait_notified(f"{order.id}_1")
    assert store.get(order.id)["or_status"] == 2
    serials = [c.serial for c in conf.load(v3sh, "v3").account.keys.certificates()]
    assert v3srv.sim.platform_serial() in serials
    cached = store.read(store.fetch("/home/demo/.weixin/v3/platform_certs.json").id)
    assert cached.count(b"BEGIN CERTIFICATE") == len(serials) >= 2


def test_a_forged_notification_on_the_shell_answers_4xx_and_changes_nothing(v3sh, store):
    order = make_order(store)
    _submit(v3sh, order)
    req = write_file(store, "/home/demo/tmp/forged", b'{"id":"x"}',
                     {"http-header-WECHATPAY-SIGNATURE": "c2ln",
                      "http-header-WECHATPAY-TIMESTAMP": "1",
                      "http-header-WECHATPAY-NONCE": "n",
                      "http-header-WECHATPAY-SERIAL": "ABC"})
    status, out, err = run(v3sh, f"weixin v3 order -result id:{req.id}")
    assert status == 0 and json.loads(out)["code"] == "FAIL"
    assert v3sh.response[0] in (400, 401)
    assert err.startswith("weixin: payment notification rejected: ")
    assert store.get(order.id)["or_status"] == 0


@pytest.mark.parametrize("cmd", ["weixin v3 pay '{body: \"x\"}'", "weixin v3 payre '<xml/>'"])
def test_the_v2_xml_handlers_refuse_a_v3_account_in_one_line(v3sh, cmd):
    status, out, err = run(v3sh, cmd)
    assert status != 0 and out == "" and err.count("\n") == 1
    assert err.startswith("e.cmd.weixin.pay") and "API v3" in err


def test_one_combined_simulator_pays_a_v2_and_a_v3_account_side_by_side(store, merchant,
                                                                        v3rcv, receiver):
    from wxpay.simulator import Simulator
    from .conftest import APPID, MCH_ID, PAY_KEY, install_wxconf
    sim = Simulator(merchants=[(APPID, MCH_ID, PAY_KEY)], retry_schedule=(0.1, 0.2),
                    tls=False)
    sim.add_v3_merchant(V3_MCHID, [V3_APPID], merchant.public, merchant.serial,
                        V3_APIV3_KEY)
    with sim:
        install_wxconf(store, sim.url, receiver.url)            # account xxx: v2
        install_v3(store, merchant, sim.url, v3rcv.url)          # account v3: v3
        sh = Session(store, user="demo")
        o2, o3 = make_order(store, "two"), make_order(store, "three")
        status, out, err = run(sh, f"weixin xxx order -submit id:{o2.id} -client_ip "
                                   f"10.0.0.8 -openid {OPENID}")
        assert status == 0, err
        js2 = json.loads(out)
        js3 = _submit(sh, o3)
        assert js2["signType"] == "MD5" and js3["signType"] == "RSA"
        sim.pay(js2["package"][len("prepay_id="):])
        sim.v3.pay(prepay_id=js3["package"][len("prepay_id="):])
        sim.wait_notified(f"{o2.id}_1")
        sim.v3.wait_notified(f"{o3.id}_1")
    p2, p3 = store.get(o2.id)["pay_result"], store.get(o3.id)["pay_result"]
    assert store.get(o2.id)["or_status"] == store.get(o3.id)["or_status"] == 2
    assert p2["mch_id"] == MCH_ID and "amount" not in p2          # v2 fields, as ever
    assert p3["mchid"] == V3_MCHID and p3["amount"]["total"] == 888


def test_a_refund_in_doubt_is_retried_with_the_same_number(v3sh, store, v3srv, v3rcv):
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    v3srv.sim.wait_notified(f"{order.id}_1")
    v3srv.sim.set_faults({"systemerror": True, "count": 1})
    status, out, err = run(v3sh, f"weixin v3 refund id:{order.id} -fee 200")
    assert status != 0 and err.startswith("e.weixin.err.SYSTEMERROR : ")
    entry = store.get(order.id)["pay_refunds"][0]
    assert entry["status"] == "PENDING" and entry["doubt"] is True
    status, out, err = run(v3sh, f"weixin v3 refund id:{order.id} -fee 200")
    assert status == 0, err
    assert json.loads(out)["out_refund_no"] == f"{order.id}_r1"      # the same number
    v3srv.sim.wait_notified(out_refund_no=f"{order.id}_r1")
    o = store.get(order.id)
    assert len(o["pay_refunds"]) == 1 and o["pay_refunded"] == 200


def test_checkout_on_v3_status_queries(v3sh, store, v3srv, merchant):
    install_v3(store, merchant, v3srv.url, "http://127.0.0.1:9/api/demo/payresult")
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])      # notification lost
    status, out, err = run(v3sh, f"weixin v3 checkout -status {order.id} -openid {OPENID} "
                                 f"-query 1")
    assert status == 0, err
    assert json.loads(out)["or_status"] == 2


# ---- Native (QR code) on v3 ------------------------------------------------------------------
NATIVE = "weixin v3 order -submit id:{id} -client_ip 10.0.0.8 -trade_type NATIVE"


def _native(sh, order, extra=""):
    status, out, err = run(sh, NATIVE.format(id=order.id) + extra)
    assert status == 0, err
    return json.loads(out)


def test_native_submit_on_v3_stores_pay_native_in_v2s_shape(v3sh, store, v3srv):
    order = make_order(store)
    got = _native(v3sh, order)
    assert set(got) == {"trade_type", "code_url", "out_trade_no", "prepay_id",
                        "time_expire", "total_fee"}                 # v2's pay_native keys
    assert got["trade_type"] == "NATIVE" and got["code_url"].startswith("weixin://")
    assert got["out_trade_no"] == f"{order.id}_1" and got["total_fee"] == 888
    assert got["prepay_id"] is None and len(got["time_expire"]) == 14
    o = store.get(order.id)
    assert o["pay_native"] == got and o.get("pay_jsobj") is None
    assert "payer" not in o["pay_send"] and o["pay_send"]["amount"]["total"] == 888
    assert json.loads(o["pay_rexml"]) == o["pay_remap"] == {"code_url": got["code_url"]}
    assert v3srv.sim.order(f"{order.id}_1")["trade_type"] == "NATIVE"
    # again unchanged: the same code_url, no new attempt; with the owner's -openid too
    assert _native(v3sh, order) == got
    assert _native(v3sh, order, f" -openid {OPENID}") == got
    assert store.get(order.id)["pay_seq"] == 1
    # somebody else's openid is refused, as on v2
    status, out, err = run(v3sh, NATIVE.format(id=order.id) + " -openid oSomebodyElse")
    assert status != 0 and err.startswith("e.cmd.weixin.order.user.nosame : ")
    # a JSAPI submit afterwards is a new attempt (v3 will not turn one into the other)
    js = _submit(v3sh, order)
    o = store.get(order.id)
    assert o["pay_seq"] == 2 and o.get("pay_native") is None and o["pay_jsobj"] == js


def test_native_on_v3_paid_by_a_scan_through_the_notification(v3sh, store, v3srv, v3rcv):
    order = make_order(store)
    got = _native(v3sh, order)
    v3srv.sim.pay(code_url=got["code_url"], openid="oScannedBySomeone")
    v3srv.sim.wait_notified(f"{order.id}_1")
    o = store.get(order.id)
    assert o["or_status"] == 2
    assert o["pay_result"]["trade_type"] == "NATIVE" and o["pay_result"]["total_fee"] == "888"
    assert all(code == 204 for code, *_ in v3rcv.replies)
    status, out, err = run(v3sh, NATIVE.format(id=order.id))        # paid: not again
    assert status != 0 and err.count("\n") == 1


def test_a_native_answer_without_a_code_url_is_recorded_and_refused(v3sh, store, v3srv):
    order = make_order(store)
    v3srv.sim.set_faults({"garbage": True, "count": 1})
    status, out, err = run(v3sh, NATIVE.format(id=order.id))
    assert status != 0 and out == "" and err.count("\n") == 1
    o = store.get(order.id)
    assert o["pay_error"]["out_trade_no"] == f"{order.id}_1" and o.get("pay_native") is None


def test_checkout_native_on_v3_gives_the_code_url_and_its_qr(v3sh, store, v3srv, v3rcv):
    order = make_order(store, "n1")
    status, out, err = run(v3sh, f"weixin v3 checkout -native {order.id} -openid {OPENID} "
                                 f"-client_ip 10.0.0.8")
    assert status == 0, err
    got = json.loads(out)
    assert got["code_url"] == store.get(order.id)["pay_native"]["code_url"]
    assert got["qr"].startswith("data:image/svg+xml")
    v3srv.sim.pay(code_url=got["code_url"], openid=OPENID)
    v3srv.sim.wait_notified(f"{order.id}_1")
    status, out, err = run(v3sh, f"weixin v3 checkout -status {order.id} -openid {OPENID}")
    assert status == 0 and json.loads(out)["or_status"] == 2
