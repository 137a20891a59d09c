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
    conf._cache.clear()
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


def test_query_applies_a_payment_whose_notification_was_lost(v3sh, store, v3srv, merchant):
    install_v3(store, merchant, v3srv.url, "http://127.0.0.1:9/api/demo/payresult")
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
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
    install_v3(store, merchant, v3srv.url, "http://127.0.0.1:9/api/demo/payresult")
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
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
    v3srv.sim.backdate(f"{order.id}_1", 86400)
    day = (datetime.now(BEIJING) - timedelta(days=1)).strftime("%Y%m%d")
    status, out, err = run(v3sh, f"weixin v3 bill -date {day}")
    assert status == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    rows = [x for x in lines if "summary" not in x]
    assert [(r["out_trade_no"], r["total_fee"]) for r in rows] == [(f"{order.id}_1", 888)]
    assert lines[-1]["summary"]["count"] == 1
    two_days = (datetime.now(BEIJING) - timedelta(days=2)).strftime("%Y%m%d")
    status, out, err = run(v3sh, f"weixin v3 bill -date {two_days}")
    assert status == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["count"] == 0


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


def test_checkout_on_v3_status_queries_and_native_is_unavailable(v3sh, store, v3srv,
                                                                merchant):
    install_v3(store, merchant, v3srv.url, "http://127.0.0.1:9/api/demo/payresult")
    order = make_order(store)
    js = _submit(v3sh, order)
    v3srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])      # notification lost
    status, out, err = run(v3sh, f"weixin v3 checkout -status {order.id} -openid {OPENID} "
                                 f"-query 1")
    assert status == 0, err
    assert json.loads(out)["or_status"] == 2
    other = make_order(store, "n1")
    status, out, err = run(v3sh, f"weixin v3 checkout -native {other.id} -openid {OPENID} "
                                 f"-client_ip 10.0.0.8")
    assert status != 0 and err.startswith("e.cmd.weixin.checkout.native.unavailable : ")
