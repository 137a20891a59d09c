"""weixin xxx refund: the merchant certificate from the store, out_refund_no stored
before the call, partial refunds never exceeding the paid amount, refund
notifications (AES req_info) applied exactly once, refundquery."""
from __future__ import annotations

import json
import threading

import pytest

from wnshell.session import Session
from wxpay.api import SUCCESS_XML
from wxpay.refund import encrypt_req_info
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import (APPID, MCH_ID, OPENID, PAY_KEY, Receiver, install_wxconf,
                       make_order, run, write_file)

REFUND_TEMPLATE = "weixin xxx refund -result id:${id}\n"


@pytest.fixture()
def refund_receiver(store):
    r = Receiver(lambda: store, template=REFUND_TEMPLATE)
    yield r
    r.close()


@pytest.fixture()
def rsh(store, sim, receiver, refund_receiver):
    """Account xxx with its certificate in the store and a refund notify URL."""
    install_wxconf(store, sim.url, receiver.url,
                   extra=f'pay_secapi_base : "{sim.secure_url}"\n'
                         f'pay_refund_notify_url : "{refund_receiver.url}"\n')
    write_file(store, "/home/demo/.weixin/xxx/apiclient_cert.p12", sim.merchant_p12(MCH_ID))
    write_file(store, "/home/demo/.weixin/xxx/wxpay_ca.pem", sim.ca_pem)
    sim.set_refund_outcome("SUCCESS", 0.05)
    yield Session(store, user="demo")
    sim.set_refund_outcome("SUCCESS", 0.1)


def paid_order(sh, store, sim, name="r1", fee=1000):
    order = make_order(store, name, total_fee=fee)
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                               f"-openid {OPENID}")
    assert status == 0, err
    sim.pay(out_trade_no=f"{order.id}_1")
    sim.wait_notified(f"{order.id}_1")
    o = store.get(order.id)
    assert o["or_status"] == 2
    return o


def refund(sh, order, fee, extra=""):
    return run(sh, f"weixin xxx refund {order.id} -fee {fee}{extra}")


def test_partial_then_full_refund(rsh, store, sim):
    order = paid_order(rsh, store, sim)
    status, out, err = refund(rsh, order, 300, " -reason 'size too small'")
    assert status == 0, err
    res = json.loads(out)
    assert res["out_refund_no"] == f"{order.id}_r1" and res["refund_fee"] == 300
    snap = sim.wait_refund_notified(f"{order.id}_r1")
    assert snap["state"] == "SUCCESS" and snap["notify"]["status"] == "delivered"
    o = store.get(order.id)
    assert o["pay_refunds"][0]["status"] == "SUCCESS" and o["pay_refunded"] == 300
    assert o["pay_refunds"][0]["reason"] == "size too small"
    assert o["or_status"] == 2                         # partly refunded: still paid
    status, out, err = refund(rsh, order, 701)
    assert status != 0 and err.startswith("e.cmd.weixin.refund.exceeds")
    assert "700 of 1000" in err
    status, out, err = refund(rsh, order, 700)
    assert status == 0, err
    sim.wait_refund_notified(f"{order.id}_r2")
    o = store.get(order.id)
    assert o["or_status"] == 5 and o["pay_refunded"] == 1000
    assert [r["status"] for r in o["pay_refunds"]] == ["SUCCESS", "SUCCESS"]
    assert refund(rsh, order, 1)[0] != 0


def test_or_status_3_while_in_flight_and_refund_query(rsh, store, sim):
    order = paid_order(rsh, store, sim, "r2")
    sim.set_refund_outcome("PROCESSING")
    status, out, err = refund(rsh, order, 1000)
    assert status == 0, err
    o = store.get(order.id)
    assert o["or_status"] == 3 and o["pay_refunds"][0]["status"] == "PROCESSING"
    assert o["pay_refund_from"] == 2
    # WeChat settles it; the notification is lost: -query finds it
    with sim._lock:
        r = sim._find_refund(f"{order.id}_r1")
        r.notify_url = None
    sim.settle_refund(f"{order.id}_r1", "SUCCESS")
    status, out, err = run(rsh, f"weixin xxx refund -query {order.id}")
    assert status == 0, err
    res = json.loads(out)
    assert res["or_status"] == 5 and res["refunds"][0]["status"] == "SUCCESS"


def _first_refund_ends(rsh, store, sim, order, outcome: str, delay: float):
    """Refund all 1000 fen; WeChat's notification says ``outcome``: the refund holds it,
    and the order is still paid (2).  The order, after."""
    sim.set_refund_outcome(outcome, delay)
    assert refund(rsh, order, 1000)[0] == 0
    sim.wait_refund_notified(f"{order.id}_r1")
    o = store.get(order.id)
    assert o["pay_refunds"][0]["status"] == outcome and o["or_status"] == 2
    return o


def test_refundclose_releases_the_amount(rsh, store, sim):
    order = paid_order(rsh, store, sim, "r3")
    _first_refund_ends(rsh, store, sim, order, "REFUNDCLOSE", 0.05)
    sim.set_refund_outcome("SUCCESS", 0.05)
    assert refund(rsh, order, 1000)[0] == 0             # the amount is free again
    sim.wait_refund_notified(f"{order.id}_r2")
    assert store.get(order.id)["or_status"] == 5


def test_network_error_keeps_the_number_and_a_retry_reuses_it(rsh, store, sim):
    order = paid_order(rsh, store, sim, "r4")
    sim.set_faults({"timeout": True, "hold": 1.0, "count": 1})
    install_wxconf(store, sim.url, "http://127.0.0.1:9/n",
                   extra=f'pay_secapi_base : "{sim.secure_url}"\npay_timeout : 0.5\n')
    status, out, err = refund(rsh, order, 400)
    assert status != 0 and err.startswith("e.weixin.transport")
    o = store.get(order.id)
    assert o["pay_refunds"][0]["status"] == "PENDING" and o["pay_refunds"][0]["doubt"]
    assert o["or_status"] == 3
    # WeChat did get it (the reply was lost): the retry reuses the same number
    assert sim.refund(f"{order.id}_r1")["refund_fee"] == 400
    status, out, err = refund(rsh, order, 400)
    assert status == 0, err
    assert json.loads(out)["out_refund_no"] == f"{order.id}_r1"
    assert len(sim.order(f"{order.id}_1")["refunds"]) == 1
    assert len(store.get(order.id)["pay_refunds"]) == 1


def test_no_certificate_is_a_clear_error_and_changes_nothing(sh, store, sim, receiver):
    install_wxconf(store, sim.url, receiver.url,
                   extra=f'pay_secapi_base : "{sim.secure_url}"\n')
    order = paid_order(sh, store, sim, "r5")
    before = store.get(order.id)
    status, out, err = refund(sh, order, 100)
    assert status != 0 and err.startswith("e.cmd.weixin.cert.noexists")
    assert "apiclient_cert.p12" in err and err.count("\n") == 1
    assert store.get(order.id) == before


def test_another_merchants_certificate_is_refused_by_the_simulator(sh, store, sim,
                                                                   receiver):
    install_wxconf(store, sim.url, receiver.url,
                   extra=f'pay_secapi_base : "{sim.secure_url}"\n')
    write_file(store, "/home/demo/.weixin/xxx/apiclient_cert.p12",
               sim.merchant_p12("1999999999", password=MCH_ID))
    write_file(store, "/home/demo/.weixin/xxx/wxpay_ca.pem", sim.ca_pem)
    order = paid_order(sh, store, sim, "r6")
    status, out, err = refund(sh, order, 100)
    assert status != 0 and err.startswith("e.weixin.return.fail") and "证书" in err
    o = store.get(order.id)
    assert o["pay_refunds"][0]["status"] == "FAILED" and o["or_status"] == 2


def test_pem_pair_and_cert_password(sh, store, sim, receiver):
    install_wxconf(store, sim.url, receiver.url,
                   extra=f'pay_secapi_base : "{sim.secure_url}"\n')
    cert, key = sim.merchant_pem(MCH_ID)
    write_file(store, "/home/demo/.weixin/xxx/apiclient_cert.pem", cert)
    write_file(store, "/home/demo/.weixin/xxx/apiclient_key.pem", key)
    write_file(store, "/home/demo/.weixin/xxx/wxpay_ca.pem", sim.ca_pem)
    order = paid_order(sh, store, sim, "r7")
    assert refund(sh, order, 100)[0] == 0
    # a p12 with its own password, named in wxconf
    install_wxconf(store, sim.url, receiver.url,
                   extra=f'pay_secapi_base : "{sim.secure_url}"\n'
                         'pay_cert_password : "s3cret-pw"\n')
    write_file(store, "/home/demo/.weixin/xxx/apiclient_cert.p12",
               sim.merchant_p12(MCH_ID, password="s3cret-pw"))
    assert refund(sh, order, 100)[0] == 0
    store.write(store.fetch("/home/demo/.weixin/xxx/apiclient_cert.p12").id,
                sim.merchant_p12(MCH_ID, password="other"))
    status, out, err = refund(sh, order, 100)
    assert status != 0 and err.startswith("e.cmd.weixin.cert.invalid")
    assert "s3cret-pw" not in err


def test_thirty_concurrent_refunds_never_exceed_the_paid_amount(rsh, store, sim):
    order = paid_order(rsh, store, sim, "r8", fee=1000)
    results = []
    lock = threading.Lock()

    def one():
        sh = Session(store, user="demo")
        res = run(sh, f"weixin xxx refund {order.id} -fee 70")
        with lock:
            results.append(res)
    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ok = [r for r in results if r[0] == 0]
    assert len(ok) == 14                                   # 14 x 70 = 980 <= 1000
    assert all("e.cmd.weixin.refund.exceeds" in r[2] or "busy" in r[2]
               for r in results if r[0] != 0)
    o = store.get(order.id)
    assert sum(r["refund_fee"] for r in o["pay_refunds"]) == 980
    assert len({r["out_refund_no"] for r in o["pay_refunds"]}) == 14
    assert sum(r["refund_fee"] for r in sim.order(f"{order.id}_1")["refunds"]) == 980


# ---- notifications -------------------------------------------------------------------
def _notification(order, n=1, key=PAY_KEY, mch_id=MCH_ID, status="SUCCESS", fee=None):
    pr = order["pay_result"]
    entry = order["pay_refunds"][n - 1]
    inner = {"transaction_id": pr["transaction_id"], "out_trade_no": pr["out_trade_no"],
             "refund_id": "50000000000000000000000001", "out_refund_no": entry["out_refund_no"],
             "total_fee": pr["total_fee"], "refund_fee": str(fee or entry["refund_fee"]),
             "refund_status": status, "success_time": "2026-12-01 12:00:05",
             "refund_recv_accout": "支付用户零钱"}
    root = "<root>" + to_xml(inner)[5:-6] + "</root>"
    return to_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": mch_id,
                   "nonce_str": "n1", "req_info": encrypt_req_info(root.encode(), key)})


def _deliver(sh, store, body, name):
    req = store.create(f"/home/demo/.regapi/tmp/{name}", "FILE", {}, parents=True,
                       content=body.encode("utf-8"))
    return run(sh, f"weixin xxx refund -result id:{req.id}")


@pytest.fixture()
def processing(rsh, store, sim):
    order = paid_order(rsh, store, sim, "n1")
    sim.set_refund_outcome("PROCESSING")
    assert refund(rsh, order, 1000)[0] == 0
    return store.get(order.id)


def test_forged_refund_notifications_fail_and_change_nothing(rsh, store, processing):
    before = store.get(processing.id)
    cases = {
        "wrong key": _notification(processing, key="0" * 32),
        "another merchant": _notification(processing, mch_id="1900000999"),
        "garbage req_info": to_xml({"return_code": "SUCCESS", "appid": APPID,
                                    "mch_id": MCH_ID, "req_info": "bm90IGNpcGhlcnRleHQ="}),
        "not base64": to_xml({"return_code": "SUCCESS", "appid": APPID,
                              "mch_id": MCH_ID, "req_info": "%%%"}),
        "no req_info": to_xml({"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID}),
        "garbage": "not xml at all",
        "other amount": _notification(processing, fee=1),
    }
    for i, (name, body) in enumerate(cases.items()):
        status, out, err = _deliver(rsh, store, body, f"f{i}")
        assert status == 0, (name, err)
        assert from_xml(out)["return_code"] == "FAIL", name
        assert err.startswith("weixin: refund notification rejected: "), name
        assert store.get(processing.id) == before, name


def test_fifty_concurrent_duplicate_notifications_make_one_transition(
        rsh, store, processing, caplog):
    import logging
    caplog.set_level(logging.INFO, logger="wnshell.weixin")
    body = _notification(processing)
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def one(i):
        sh = Session(store, user="demo")
        req = store.create(f"/home/demo/.regapi/tmp/d{i}", "FILE", {}, parents=True,
                           content=body.encode())
        barrier.wait(10)
        res = run(sh, f"weixin xxx refund -result id:{req.id}")
        with lock:
            results.append(res)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 50 and all(r == (0, SUCCESS_XML, "") for r in results)
    o = store.get(processing.id)
    assert o["or_status"] == 5 and o["pay_refunds"][0]["status"] == "SUCCESS"
    applied = [r for r in caplog.records
               if f"refund {processing.id}_r1 of order" in r.getMessage()
               and "SUCCESS" in r.getMessage()]
    assert len(applied) == 1


def test_man_weixin_documents_every_handler_and_every_field_written(rsh, store, sim):
    """Every handler, and every order field a whole life writes, is in `man weixin`."""
    from commands.weixin import HANDLERS
    from objstore.base import RESERVED
    status, man, err = run(rsh, "man weixin")
    assert status == 0, err
    usage = man.split("ACCOUNT")[0]
    for handler in HANDLERS:
        assert f"weixin CONF {handler}" in usage, handler
    for mode in ("-submit", "-result", "-query", "-close", "-sweep"):
        assert f"order {mode}" in usage, mode
    for mode in ("-result", "-query", "-fee"):
        assert mode in usage.split("refund", 1)[1], mode
    paid = paid_order(rsh, store, sim, "man1")
    store.set_meta(paid.id, {"expi": 4102444800000})
    assert refund(rsh, paid, 100)[0] == 0
    sim.wait_refund_notified(f"{paid.id}_r1")
    native = make_order(store, "man2", openid=None)
    assert run(rsh, f"weixin xxx order -submit {native.id} -client_ip 127.0.0.1 "
                    "-trade_type NATIVE")[0] == 0
    assert run(rsh, f"weixin xxx order -close {native.id}")[0] == 0
    initial = {"openid", "or_status", "total_fee", "title"}
    fields_section = man.split("ORDER FIELDS")[1]
    written = set()
    for oid in (paid.id, native.id):
        written |= {k for k in store.get(oid) if k not in RESERVED and k not in initial}
    written |= {k for r in store.get(paid.id)["pay_refunds"] for k in r}
    assert {"pay_refunds", "pay_closed", "pay_native", "pay_expire_at"} <= written
    missing = sorted(k for k in written if k not in fields_section)
    assert not missing, missing


def test_sweep_looks_up_a_refund_whose_notification_was_lost(rsh, store, sim):
    order = paid_order(rsh, store, sim, "sw1")
    sim.set_refund_outcome("PROCESSING")
    assert refund(rsh, order, 1000)[0] == 0
    with sim._lock:
        sim._find_refund(f"{order.id}_r1").notify_url = None      # it will be lost
    sim.settle_refund(f"{order.id}_r1", "SUCCESS")
    status, out, err = run(rsh, "weixin xxx order -sweep")
    assert json.loads(out.splitlines()[-1])["summary"]["refunds"] == 0   # too recent
    o = store.get(order.id)
    entries = [dict(r, time=r["time"] - 3 * 60_000) for r in o["pay_refunds"]]
    store.set_meta(order.id, {"pay_refunds": entries})
    status, out, err = run(rsh, "weixin xxx order -sweep")
    assert status == 0, err
    got = [json.loads(x) for x in out.splitlines()]
    assert {"id": order.id, "outcome": "refunds", "or_status": 5} in got
    assert store.get(order.id)["or_status"] == 5


def test_info_masks_the_certificate_password(sh, store, sim, receiver):
    install_wxconf(store, sim.url, receiver.url, extra='pay_cert_password : "p12-S3cret"\n')
    status, out, err = run(sh, "weixin xxx info")
    assert status == 0 and "p12-S3cret" not in out and "pay_cert_password" in out


def test_a_refused_input_reserves_nothing(rsh, store, sim):
    order = paid_order(rsh, store, sim, "bad1")
    before = store.get(order.id)
    for extra in (" -reason 'a\x01b'", " -reason " + "x" * 81):
        status, out, err = refund(rsh, order, 100, extra)
        assert status != 0 and err.count("\n") == 1, extra
        assert store.get(order.id) == before, extra
    for fee in ("0", "-5", "1.5", "abc"):
        status, out, err = run(rsh, f"weixin xxx refund {order.id} -fee {fee}")
        assert status != 0 and store.get(order.id) == before, fee
    unpaid = make_order(store, "bad2")
    status, out, err = refund(rsh, unpaid, 100)
    assert status != 0 and err.startswith("e.cmd.weixin.refund.unpaid")


def test_systemerror_keeps_the_refund_for_a_retry_and_bill_faults_are_clear(rsh, store,
                                                                            sim):
    order = paid_order(rsh, store, sim, "sys1")
    sim.set_faults({"systemerror": True, "count": 1})
    status, out, err = refund(rsh, order, 100)
    assert status != 0 and err.startswith("e.weixin.err.SYSTEMERROR")
    o = store.get(order.id)
    assert o["pay_refunds"][0]["status"] == "PENDING" and o["pay_refunds"][0]["doubt"]
    status, out, err = refund(rsh, order, 100)
    assert status == 0 and json.loads(out)["out_refund_no"] == f"{order.id}_r1"
    sim.set_faults({"http_status": 503, "count": 1})
    status, out, err = run(rsh, "weixin xxx bill -date 20261201")
    assert status != 0 and err.startswith("e.weixin.transport") and "503" in err


def test_sweep_settles_a_refund_left_in_doubt(rsh, store, sim):
    """A refund whose call timed out is looked up by the sweeper: made at WeChat →
    applied; unknown to WeChat → released (FAILED), its amount free again."""
    made = paid_order(rsh, store, sim, "doubt1")
    never = paid_order(rsh, store, sim, "doubt2")
    sim.set_faults({"timeout": True, "hold": 1.0, "count": 1})
    install_wxconf(store, sim.url, "http://127.0.0.1:9/n",
                   extra=f'pay_secapi_base : "{sim.secure_url}"\npay_timeout : 0.5\n')
    assert refund(rsh, made, 400)[0] != 0          # WeChat made it; the reply was lost
    sim.set_faults({"http_status": 503, "count": 1})
    assert refund(rsh, never, 400)[0] != 0         # never reached WeChat's refund logic
    for o in (made, never):
        fresh = store.get(o.id)
        assert fresh["pay_refunds"][0]["doubt"] and fresh["or_status"] == 3
        store.set_meta(o.id, {"pay_refunds": [dict(r, time=r["time"] - 3 * 60_000)
                                              for r in fresh["pay_refunds"]]})
    status, out, err = run(rsh, "weixin xxx order -sweep")
    assert status == 0, err
    m, n = store.get(made.id), store.get(never.id)
    assert m["pay_refunds"][0]["status"] in ("PROCESSING", "SUCCESS")
    assert n["pay_refunds"][0]["status"] == "FAILED" and n["or_status"] == 2
    assert refund(rsh, never, 1000)[0] == 0        # the whole amount is free again


def test_change_keeps_the_amount_reserved_until_resolved(rsh, store, sim):
    """CHANGE (退款异常: the money went back to the merchant, to be refunded by hand)
    is not in flight, not refunded, and its amount stays reserved."""
    order = paid_order(rsh, store, sim, "chg")
    o = _first_refund_ends(rsh, store, sim, order, "CHANGE", 0.02)
    assert o["pay_refunded"] == 0
    status, out, err = refund(rsh, order, 1)
    assert status != 0 and "exceeds" in err
