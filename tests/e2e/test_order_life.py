"""End to end, the order's life after payment: ``wnshell serve`` (2 workers, SQLite)
with its sweeper on a short timer, the WeChat Pay simulator in this process."""
from __future__ import annotations

import time

import pytest

from tests.e2e import served
from tests.e2e.served import get, new_order, wait_for

USER = served.USER

JSON = {"http-header-Content-Type": "application/json"}
APIS = {
    **served.seed_apis("payresult.regapi"),
    "refund": ("weixin xxx refund ${http-qs-id} -fee ${http-qs-fee}\n", JSON),
    "refundresult": ("weixin xxx refund -result id:${id}\n",
                     {"http-header-Content-Type": "text/xml"}),
    "refundquery": ("weixin xxx refund -query ${http-qs-id}\n", JSON),
    "close": ("weixin xxx order -close ${http-qs-id}\n", JSON),
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("life")
    apis = tmp / "apis"
    served.write_apis(apis, APIS)
    s = served.start(tmp, f"sqlite://{tmp / 'store.db'}", apis, mch_id="1900000411",
                     extra_args=("--sweep", "0.5"),
                     wxconf_extra=lambda s: (
                         f'pay_secapi_base : "{s.sim.secure_url}"\n'
                         f'pay_refund_notify_url : "{s.base}/api/{USER}/refundresult"\n'))
    conf = f"/home/{USER}/.weixin/xxx"
    s.store.create(f"{conf}/apiclient_cert.p12", "FILE",
                   content=s.sim.merchant_p12(s.mch_id))
    s.store.create(f"{conf}/wxpay_ca.pem", "FILE", content=s.sim.ca_pem)
    s.sim.set_refund_outcome("SUCCESS", 0.05)
    yield s
    assert served.stop(s) == 0


def _submit(s, name):
    order, openid = new_order(s, name)
    r = get(s, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid})
    assert r.status_code == 200, r.text
    return order, r.json()


def _refund_left_processing(srv, order, fee: int) -> None:
    """Ask a refund through the API while the simulator keeps refunds PROCESSING (no
    notification until the test settles it); refunds then succeed again in 0.05 s."""
    srv.sim.set_refund_outcome("PROCESSING")
    try:
        r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": fee})
        assert r.status_code == 200, r.text
    finally:
        srv.sim.set_refund_outcome("SUCCESS", 0.05)


def test_the_servers_sweeper_applies_a_late_payment_and_closes_expired_orders(srv):
    late, _ = _submit(srv, "late")
    unpaid, _ = _submit(srv, "unpaid")
    srv.sim.set_faults({"notify_latency": 600, "count": 1})   # the notification is lost
    srv.sim.pay(out_trade_no=f"{late['id']}_1")
    past = int(time.time() * 1000) - 1000
    for o in (late, unpaid):                  # their time_expire has passed (our side)
        srv.store.set_meta(o["id"], {"pay_expire_at": past})
    wait_for(lambda: srv.store.get(late["id"]).get("or_status") == 2)
    wait_for(lambda: srv.store.get(unpaid["id"]).get("pay_closed"))
    assert srv.sim.order(f"{unpaid['id']}_1")["state"] == "CLOSED"
    assert srv.store.get(unpaid["id"])["pay_closed"]["by"] == "sweep"
    # one sweeper for the two workers: each order handled once.  Its lines are written
    # after its round, which may end after the store changes seen above
    wanted = [f'"id": "{o["id"]}"' for o in (unpaid, late)]

    def log():
        return srv.log.read_text(encoding="utf-8", errors="replace")
    wait_for(lambda: all(w in log() for w in wanted))
    assert [log().count(w) for w in wanted] == [1, 1]


def _paid(s, name, fee=1000):
    order, js = _submit(s, name) if fee == 888 else _submit_fee(s, name, fee)
    s.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    s.sim.wait_notified(f"{order['id']}_1", timeout=20)
    wait_for(lambda: s.store.get(order["id"]).get("or_status") == 2)
    return order


def _submit_fee(s, name, fee):
    order, openid = new_order(s, name, total_fee=fee)
    r = get(s, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid})
    assert r.status_code == 200, r.text
    return order, r.json()


def test_close_over_http(srv):
    order, _ = _submit(srv, "toclose")
    r = get(srv, f"/api/{USER}/close", params={"id": order["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["closed"] == [f"{order['id']}_1"]
    assert srv.sim.order(f"{order['id']}_1")["state"] == "CLOSED"
    paid = _paid(srv, "paidclose")
    r = get(srv, f"/api/{USER}/close", params={"id": paid["id"]})
    assert r.status_code == 409 and "ORDERPAID" in r.text


def test_partial_then_full_refund_with_notifications(srv):
    order = _paid(srv, "refundme")
    r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": 250})
    assert r.status_code == 200, r.text
    assert r.json()["out_refund_no"] == f"{order['id']}_r1"
    srv.sim.wait_refund_notified(f"{order['id']}_r1", timeout=20)
    o = srv.store.get(order["id"])
    assert o["pay_refunds"][0]["status"] == "SUCCESS" and o["or_status"] == 2
    r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": 750})
    assert r.status_code == 200, r.text
    snap = srv.sim.wait_refund_notified(f"{order['id']}_r2", timeout=20)
    assert snap["notify"]["status"] == "delivered"
    o = srv.store.get(order["id"])
    assert o["or_status"] == 5 and o["pay_refunded"] == 1000
    r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": 1})
    assert r.status_code == 409 and "e.cmd.weixin.refund.exceeds" in r.text
    r = get(srv, f"/api/{USER}/refundquery", params={"id": order["id"]})
    assert r.status_code == 200 and r.json()["or_status"] == 5


def test_thirty_concurrent_refund_requests_never_exceed_the_paid_amount(srv):
    from concurrent.futures import ThreadPoolExecutor
    order = _paid(srv, "race30")
    import requests as rq

    def one(_):
        with rq.Session() as h:
            h.trust_env = False
            return h.get(f"{srv.base}/api/{USER}/refund",
                         params={"id": order["id"], "fee": 70}, timeout=60)
    with ThreadPoolExecutor(30) as pool:
        replies = list(pool.map(one, range(30)))
    ok = [r for r in replies if r.status_code == 200]
    assert len(ok) == 14, [r.text for r in replies if r.status_code != 200][:3]
    assert all(r.status_code == 409 for r in replies if r.status_code != 200)
    o = srv.store.get(order["id"])
    assert sum(r["refund_fee"] for r in o["pay_refunds"]) == 980
    assert sum(r["refund_fee"] for r in srv.sim.order(f"{order['id']}_1")["refunds"]) == 980


def test_fifty_concurrent_duplicate_refund_notifications_one_transition(srv):
    order = _paid(srv, "dup50")
    _refund_left_processing(srv, order, 1000)
    srv.sim.set_faults({"concurrent_notify": 50, "count": 1})
    srv.sim.settle_refund(f"{order['id']}_r1", "SUCCESS")
    snap = srv.sim.wait_refund_notified(f"{order['id']}_r1", timeout=60)
    firsts = [a for a in snap["notify"]["log"] if a["n"] == 1]
    assert len(firsts) == 50 and all(a["ok"] for a in firsts)
    o = srv.store.get(order["id"])
    assert o["or_status"] == 5 and o["pay_refunds"][0]["status"] == "SUCCESS"
    assert served.log_count(srv, f"refund {order['id']}_r1 of order {order['id']} "
                                 "SUCCESS") == 1


def test_forged_refund_notifications_fail_and_change_nothing(srv):
    from wxpay.refund import encrypt_req_info
    from wxpay.xmlcodec import from_xml, to_xml
    order = _paid(srv, "forged")
    _refund_left_processing(srv, order, 100)
    before = srv.store.get(order["id"])
    pr = before["pay_result"]
    inner = {"transaction_id": pr["transaction_id"], "out_trade_no": pr["out_trade_no"],
             "refund_id": "5001", "out_refund_no": f"{order['id']}_r1",
             "total_fee": pr["total_fee"], "refund_fee": "100", "refund_status": "SUCCESS"}
    root = ("<root>" + to_xml(inner)[5:-6] + "</root>").encode()

    def outer(key=srv.key, mch_id=srv.mch_id, req_info=None):
        return to_xml({"return_code": "SUCCESS", "appid": srv.appid, "mch_id": mch_id,
                       "nonce_str": "n",
                       "req_info": req_info or encrypt_req_info(root, key)})
    for name, body in {"wrong key": outer(key="f" * 32),
                       "another merchant": outer(mch_id="1900000999"),
                       "garbage": "garbage", "bad req_info": outer(req_info="QUJD")}.items():
        r = srv.http.post(f"{srv.base}/api/{USER}/refundresult", data=body.encode(),
                          timeout=20)
        assert r.status_code == 200 and from_xml(r.content)["return_code"] == "FAIL", name
        assert srv.store.get(order["id"]) == before, name
    r = srv.http.post(f"{srv.base}/api/{USER}/refundresult", data=outer().encode(),
                      timeout=20)
    assert from_xml(r.content)["return_code"] == "SUCCESS"
    assert srv.store.get(order["id"])["pay_refunds"][0]["status"] == "SUCCESS"


def test_refund_without_certificate_or_with_anothers(srv):
    order = _paid(srv, "nocert")
    p12 = srv.store.fetch(f"/home/{USER}/.weixin/xxx/apiclient_cert.p12")
    good = srv.store.read(p12["id"])
    srv.store.delete(p12["id"])
    try:
        r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": 100})
        assert r.status_code == 404 and "e.cmd.weixin.cert.noexists" in r.text
        assert "pay_refunds" not in srv.store.get(order["id"])
        srv.store.create(f"/home/{USER}/.weixin/xxx/apiclient_cert.p12", "FILE",
                         content=srv.sim.merchant_p12("1900000999", password=srv.mch_id))
        r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": 100})
        assert r.status_code == 502 and "证书" in r.text          # refused by WeChat
        assert srv.store.get(order["id"])["pay_refunds"][0]["status"] == "FAILED"
    finally:
        obj = srv.store.fetch(f"/home/{USER}/.weixin/xxx/apiclient_cert.p12")
        if obj is not None:
            srv.store.delete(obj["id"])
        srv.store.create(f"/home/{USER}/.weixin/xxx/apiclient_cert.p12", "FILE",
                         content=good)
    r = get(srv, f"/api/{USER}/refund", params={"id": order["id"], "fee": 100})
    assert r.status_code == 200, r.text


def test_reconcile_through_the_cli_finds_every_kind_of_difference(srv):
    import subprocess
    import sys
    from wxpay.api import beijing_stamp
    a = _paid(srv, "billa")
    b = _paid(srv, "billb", fee=600)
    c = _paid(srv, "billc", fee=300)
    assert get(srv, f"/api/{USER}/refund", params={"id": a["id"], "fee": 100}).status_code == 200
    srv.sim.wait_refund_notified(f"{a['id']}_r1", timeout=20)
    assert get(srv, f"/api/{USER}/refund", params={"id": b["id"], "fee": 100}).status_code == 200
    srv.sim.wait_refund_notified(f"{b['id']}_r1", timeout=20)
    _refund_left_processing(srv, c, 50)
    date = beijing_stamp()[:8]

    def cli():
        return subprocess.run(
            [sys.executable, "-c", "import sys; from wnshell.cli import main; "
             "sys.exit(main())", "--store", srv.store_url, "--user", USER,
             "-c", f"weixin xxx bill -date {date} -reconcile"],
            capture_output=True, text=True, timeout=60, cwd=served.ROOT)
    ours = {a["id"], b["id"], c["id"]}
    trades = [t for t in srv.sim.ledger_trades(srv.mch_id, date)
              if t["out_trade_no"].rpartition("_")[0] in ours]
    pay = {t["out_trade_no"]: t for t in trades if t["kind"] == "SUCCESS"}
    bill = []
    for t in trades:
        if t["kind"] == "SUCCESS" and t["out_trade_no"] == f"{b['id']}_1":
            continue                                             # b's payment absent
        if t.get("out_refund_no") == f"{b['id']}_r1":
            continue                                             # b's refund absent
        if t["kind"] == "SUCCESS" and t["out_trade_no"] == f"{c['id']}_1":
            t = dict(t, total_fee=301)                           # amount differs
        if t.get("out_refund_no") == f"{a['id']}_r1":
            t = dict(t, refund_fee=99)                           # refund amount differs
        bill.append(t)
    base = pay[f"{a['id']}_1"]
    bill += [dict(base, out_trade_no="unknownorder_1", transaction_id="4200000000001"),
             dict(base, kind="REFUND", out_refund_no="unknownorder_r1", refund_id="501",
                  refund_fee=5, refund_status="SUCCESS", refund_time=base["time"]),
             dict(pay[f"{c['id']}_1"], kind="REFUND", out_refund_no=f"{c['id']}_r1",
                  refund_id="502", refund_fee=50, refund_status="SUCCESS",
                  refund_time=base["time"])]
    srv.sim.set_bill(srv.mch_id, date, bill)
    try:
        proc = cli()
    finally:
        srv.sim.set_bill(srv.mch_id, date, None)
    import json
    got = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    mine = [d for d in got[:-1]
            if (d.get("order") in ours) or "unknownorder" in json.dumps(d)]
    kinds = {d["diff"] for d in mine}
    assert kinds == {"paid_at_wechat_not_in_store", "amount_differs",
                     "paid_in_store_not_in_bill", "refund_not_in_store",
                     "refund_amount_differs", "refund_status_differs",
                     "refund_in_store_not_in_bill"}, got


def test_a_temporary_order_paid_through_the_server_is_kept(srv):
    """Walnut's temporary orders (expi): submit keeps expi past time_expire, payment
    clears it (it once vanished after payment: e.io.obj.noexists)."""
    from commands.weixin.common import EXPI_AFTER_PAY_WINDOW_MS
    order, openid = new_order(srv, "temporary")
    srv.store.set_meta(order["id"], {"expi": int(time.time() * 1000) + 90_000})
    r = get(srv, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid})
    assert r.status_code == 200, r.text
    o = srv.store.get(order["id"])
    assert o["expi"] >= o["pay_expire_at"] + EXPI_AFTER_PAY_WINDOW_MS
    srv.sim.pay(prepay_id=r.json()["package"][len("prepay_id="):])
    wait_for(lambda: srv.store.get(order["id"]).get("or_status") == 2)
    assert "expi" not in srv.store.get(order["id"])
