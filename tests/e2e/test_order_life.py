"""End to end, the order's life after payment: ``wnshell serve`` (2 workers, SQLite)
with its sweeper on a short timer, the WeChat Pay simulator in this process."""
from __future__ import annotations

import time

import pytest

from regapi.demo import PAY_API, PAYRESULT_API
from tests.e2e import served
from tests.e2e.served import get, new_order

USER = served.USER

APIS = {
    "pay": (PAY_API, {"http-header-Content-Type": "application/json"}),
    "payresult.regapi": (PAYRESULT_API, {"http-header-Content-Type": "text/xml"}),
}


def _write_dir(root):
    import json
    for rel, (text, meta) in APIS.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        if meta:
            (root / (rel + ".meta.json")).write_text(json.dumps(meta), encoding="utf-8")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("life")
    apis = tmp / "apis"
    _write_dir(apis)
    s = served.start(tmp, f"sqlite://{tmp / 'store.db'}", apis, mch_id="1900000411",
                     extra_args=("--sweep", "0.5"))
    yield s
    assert served.stop(s) == 0


def _wait(cond, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def _submit(s, name):
    order, openid = new_order(s, name)
    r = get(s, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid})
    assert r.status_code == 200, r.text
    return order, r.json()


def test_the_servers_sweeper_applies_a_late_payment_and_closes_expired_orders(srv):
    late, _ = _submit(srv, "late")
    unpaid, _ = _submit(srv, "unpaid")
    srv.sim.set_faults({"notify_latency": 600, "count": 1})   # the notification is lost
    srv.sim.pay(out_trade_no=f"{late['id']}_1")
    past = int(time.time() * 1000) - 1000
    for o in (late, unpaid):                  # their time_expire has passed (our side)
        srv.store.set_meta(o["id"], {"pay_expire_at": past})
    _wait(lambda: srv.store.get(late["id"]).get("or_status") == 2)
    _wait(lambda: srv.store.get(unpaid["id"]).get("pay_closed"))
    assert srv.sim.order(f"{unpaid['id']}_1")["state"] == "CLOSED"
    assert srv.store.get(unpaid["id"])["pay_closed"]["by"] == "sweep"
    log = srv.log.read_text(encoding="utf-8", errors="replace")
    # one sweeper for the two workers: each order handled once
    assert log.count(f'"id": "{unpaid["id"]}"') == 1
    assert log.count(f'"id": "{late["id"]}"') == 1
