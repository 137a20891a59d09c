"""Durability is not traded for speed: the paid transition (the compare-and-set that
``weixin xxx order -result`` makes before it answers WeChat SUCCESS) is committed with
a full sync.  SQLite: the connection that commits it is in WAL mode with
``synchronous=FULL`` (the WAL is fsynced by every commit) and nothing switches that
off around it, and the commit is done when the call returns.  PostgreSQL: every pooled
session has ``synchronous_commit = on``, even where the database's default is off."""
from __future__ import annotations

import os

import objstore
from wnshell.session import Session
from wxpay.sign import sign
from wxpay.xmlcodec import to_xml

APPID, MCH_ID, KEY = "wxd930ea5d5a258f4f", "1900000109", "Qz7vX2mZ9tR4wB8nL1pH6sD3fG5jKeyA"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
WXCONF = (f"appID : '{APPID}'\npay_mch_id : '{MCH_ID}'\npay_key : '{KEY}'\n"
          "pay_notify_url : 'https://example.com/api/demo/payresult'\n")
FULL = 2        # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def submitted_order(store):
    """An order as a submit leaves it (attempt 1 sent for 888 fen), the account, and
    the verified-to-be notification WeChat sends for it, stored as a request object."""
    store.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True,
                 content=WXCONF.encode())
    order = store.create("/home/demo/orders/o1", "FILE",
                         {"openid": OPENID, "total_fee": 888, "or_status": 1, "pay_seq": 1,
                          "pay_out_trade_no": "", "pay_fees": {}}, parents=True)
    otn = f"{order.id}_1"
    store.set_meta(order.id, {"pay_out_trade_no": otn, "pay_fees": {otn: 888}})
    note = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID,
            "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "result_code": "SUCCESS",
            "openid": OPENID, "trade_type": "JSAPI", "bank_type": "CMC",
            "total_fee": "888", "cash_fee": "888", "fee_type": "CNY",
            "transaction_id": "4200000000202612010000000001", "out_trade_no": otn,
            "time_end": "20261201100000"}
    note["sign"] = sign(note, KEY)
    req = store.create("/home/demo/.regapi/tmp/req1", "FILE", parents=True,
                       content=to_xml(note).encode())
    return order, req


def pay(store, req):
    status, out, err = Session(store, user="demo").run(f"weixin xxx order -result id:{req.id}")
    assert status == 0 and "SUCCESS" in out and "FAIL" not in out, (out, err)


def test_sqlite_paid_transition_commits_with_a_full_sync(tmp_path):
    store = objstore.open_store(f"sqlite://{tmp_path}/store.db")
    try:
        order, req = submitted_order(store)
        statements: list[str] = []
        conns = store._connections()    # the pool's and the writers' leader's, which commits
        for conn in conns:
            conn.set_trace_callback(statements.append)
        pay(store, req)                 # on this thread, as a template runs inline
        for conn in conns:
            conn.set_trace_callback(None)
        assert store._connections() == conns     # no other connection was made
        assert store.get(order.id)["or_status"] == 2
        paid = [s for s in statements if s.lstrip().upper().startswith("UPDATE")
                and "or_status" in s.replace('"', "")]
        assert paid, statements         # the transition went through this connection ...
        assert not any("synchronous" in s.lower() for s in statements)   # ... untouched
        for conn in conns:
            assert not conn.in_transaction  # committed before the call returned
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
            assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        store.close()


def test_sqlite_every_connection_is_fully_synced(tmp_path):
    """Every connection of the pool is FULL, not only the first."""
    import threading
    store = objstore.open_store(f"sqlite://{tmp_path}/store.db")
    seen = []

    def look(i):
        f = store.create(f"/t/{i}", parents=True)
        store.cas(f.id, {}, {"x": 1})
        seen.extend(c.execute("PRAGMA synchronous").fetchone()[0]
                    for c in store._connections())
    try:
        ts = [threading.Thread(target=look, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert seen and set(seen) == {FULL}
    finally:
        store.close()


def test_postgresql_sessions_commit_synchronously_whatever_the_default():
    from tests.objstore import pg_backend
    srv = pg_backend.get_server()
    name = f"durable_{os.getpid()}"
    srv.execute(f'DROP DATABASE IF EXISTS "{name}"')
    srv.execute(f'CREATE DATABASE "{name}"')
    srv.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    store = objstore.open_store(srv.url(name))
    try:
        order, req = submitted_order(store)
        pay(store, req)
        assert store.get(order.id)["or_status"] == 2
        pool = store._get_pool()
        conns = [pool.getconn() for _ in range(3)]      # the session used and new ones
        try:
            for c in conns:
                assert c.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        finally:
            for c in conns:
                pool.putconn(c)
    finally:
        store.close()
        srv.execute(f'DROP DATABASE IF EXISTS "{name}"')
