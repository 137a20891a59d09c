"""What a duplicate payment notification costs at each layer of wnshell, in-process.

    python bench/notify_layers.py [--orders 3000] [--passes 5]

Needs the bench extra (``pip install -e '.[bench]'``: the peer's flask and wechatpy).

The duplicate leg of bench/pay_vs_peer.py is CPU-bound on both sides, so this measures
where its CPU goes, on one thread with no server and no profiler (a profiler inflates
the layers made of many small calls).  A fresh SQLite store gets the seed's two APIs
and ``--orders`` orders, each submitted (to the in-process simulator) and paid by a
first notification; then the same notifications are timed again, layer by layer, each
layer including the ones above it:

1. the core: parse the XML, check the signature and the merchant
   (``wxpay.api.parse_notification``), read the order (``store.get``), find the
   transaction already recorded -- what any implementation of the API must do, here
   with wnshell's own components;
2. ``weixin ... order -result`` itself, on a session made beforehand;
3. a fresh ``Session`` and the ``weixin`` command's dispatch (account, handler,
   options);
4. the template run: ``RegApiApp.run`` (the executor, the deadline);
5. the request object the template's ``${id}`` names (``regapi.request.HeldRequest``,
   whose metadata is built only if a command looks at it);
6. the whole WSGI call (routing, the body's checks, the response, the access log).

The peer of bench/pay_vs_peer.py (Flask + wechatpy + SQLite) answers the same kind of
duplicate, in-process too, as the baseline of the same run.  Printed: microseconds per
request (the best of ``--passes`` passes over every order) and each layer's share.
Served, every figure is about twice as much (threads handing the GIL to each other):
what matters is the shares.
"""
from __future__ import annotations

import argparse
import io
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.profile_pay import call, environ_for  # noqa: E402  (after ROOT is on sys.path)


def best_us(fn, n: int, passes: int) -> float:
    """Microseconds per call of ``fn(i)`` for i in range(n): the best pass."""
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def wnshell_layers(tmp: str, merchant: tuple, n: int, passes: int) -> list[tuple[str, float]]:
    from objstore import open_store
    from pay_vs_peer import OPENID, TITLE, install_seed_apis, notification
    from regapi import request as rq
    from regapi.app import HIDDEN, BufferedAccessLog, RegApiApp, _shell
    from wnshell.registry import REGISTRY
    from wxpay.account import Account
    from wxpay.api import parse_notification
    from wxpay.simulator import Simulator

    from commands.weixin import conf, order

    sim = Simulator(merchants=[merchant]).start()
    try:
        store = open_store(f"sqlite://{tmp}/store.db")
        install_seed_apis(store, merchant, sim.url, "http://127.0.0.1:9/api/demo/payresult")
        ids = [store.create(f"/home/demo/orders/o{i}", "FILE",
                            {"title": TITLE, "openid": OPENID, "total_fee": 1 + i % 500,
                             "or_status": 0}, parents=True)["id"] for i in range(n)]
        app = RegApiApp(store, access=BufferedAccessLog(open(os.devnull, "w"), interval=3600))
        path = "/api/demo/payresult"
        for oid in ids:
            status, _ = call(app, environ_for("GET", "/api/demo/pay", f"id={oid}&openid={OPENID}"))
            if not status.startswith("200"):
                raise SystemExit(f"submit of {oid} failed: {status}")
        bodies = [notification(*merchant, store.get(o)["pay_out_trade_no"],
                               store.get(o)["total_fee"], i).encode()
                  for i, o in enumerate(ids)]
        for b in bodies:
            if b"SUCCESS" not in call(app, environ_for("POST", path, body=b))[1]:
                raise SystemExit("a first notification was not answered SUCCESS")

        acct = Account(*merchant, notify_url="http://127.0.0.1:9/x")

        def core(i):
            params = parse_notification(acct, bodies[i])
            got = store.get(params["out_trade_no"].rpartition("_")[0])
            if (got.get("pay_result") or {}).get("transaction_id") != params["transaction_id"]:
                raise SystemExit("the order does not hold the notified transaction")

        route = app.router.resolve_path(path)
        tpl = app.template(route.api)
        Session = _shell()[0]
        weixin = REGISTRY.get("weixin")

        def held_request(i):
            return rq.HeldRequest(envs[i], "demo", path, route.rel, route.args, {},
                                  bodies[i])

        envs = [environ_for("POST", path, body=b) for b in bodies]
        objs = [held_request(i)() for i in range(n)]     # their fields made up front

        def session(i):
            return Session(store, user="demo", confine=True, home_known=True, hide=HIDDEN,
                           held=((objs[i], bodies[i]),), deadline=None)

        loaded = conf.load(session(0), "xxx")
        made: list = []

        def result_only(i):
            order.result(made[i], loaded, "id:" + objs[i]["id"], io.StringIO(), io.StringIO())

        def command(i):
            weixin.run(session(i), ["xxx", "order", "-result", "id:" + objs[i]["id"]],
                       io.StringIO(""), io.StringIO(), io.StringIO())

        def template(i):
            app.run("demo", tpl, {"id": objs[i]["id"]}, ((objs[i], bodies[i]),))

        def with_request_object(i):
            obj = held_request(i)
            app.run("demo", tpl, {"id": obj.id}, ((obj, bodies[i]),))

        def whole(i):
            # a fresh environ each call: its wsgi.input is read once
            if b"SUCCESS" not in call(app, environ_for("POST", path, body=bodies[i]))[1]:
                raise SystemExit("a duplicate was not answered SUCCESS")

        rows = [("core: XML + signature + order read", best_us(core, n, passes))]
        fresh = []
        for _ in range(passes):     # a session made beforehand is used once
            made[:] = [session(i) for i in range(n)]
            fresh.append(best_us(result_only, n, 1))
        rows.append(("+ weixin order -result", min(fresh)))
        rows.append(("+ Session, weixin dispatch, options", best_us(command, n, passes)))
        rows.append(("+ the template run (RegApiApp.run)", best_us(template, n, passes)))
        rows.append(("+ the request object (${id})", best_us(with_request_object, n, passes)))
        rows.append(("whole WSGI call", best_us(whole, n, passes)))
        store.close()
        return rows
    finally:
        sim.stop()


def peer_whole(tmp: str, merchant: tuple, n: int, passes: int) -> float:
    from pay_vs_peer import OPENID, TITLE, notification
    db = os.path.join(tmp, "peer.db")
    os.environ.update(PEER_DB=db, PEER_APPID=merchant[0], PEER_MCH_ID=merchant[1],
                      PEER_KEY=merchant[2], PEER_API_BASE="http://127.0.0.1:9",
                      PEER_NOTIFY_URL="http://127.0.0.1:9/payresult")
    from bench.peer.app import create_app, init_db
    init_db(db)
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO orders (id, openid, total_fee, body, or_status, pay_seq, "
            "out_trade_no) VALUES (?, ?, ?, ?, 2, 1, ?)",
            [(f"p{i}", OPENID, 1 + i % 500, TITLE, f"p{i}_1") for i in range(n)])
    conn.close()
    app = create_app()
    bodies = [notification(*merchant, f"p{i}_1", 1 + i % 500, i).encode() for i in range(n)]

    def whole(i):
        if b"SUCCESS" not in call(app, environ_for("POST", "/payresult", body=bodies[i]))[1]:
            raise SystemExit("the peer did not answer a duplicate SUCCESS")
    return best_us(whole, n, passes)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=3000)
    ap.add_argument("--passes", type=int, default=5)
    a = ap.parse_args(argv)
    sys.path.insert(0, HERE)
    tmp = tempfile.mkdtemp(prefix="wnshell-layers-")
    merchant = ("wx" + secrets.token_hex(8), "1900000999", secrets.token_hex(16))
    try:
        import logging
        logging.getLogger("wnshell").addHandler(logging.NullHandler())
        logging.getLogger("wnshell").propagate = False
        rows = wnshell_layers(tmp, merchant, a.orders, a.passes)
        peer = peer_whole(tmp, merchant, a.orders, a.passes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"duplicate notification, in-process, one thread, {a.orders} paid orders "
          f"(us per request, best of {a.passes} passes)")
    print(f"  {'peer (Flask + wechatpy + SQLite), whole WSGI call':48s} {peer:7.1f}")
    print("  wnshell, each layer with those above it:     us   share  of the peer")
    whole = rows[-1][1]
    prev = 0.0
    for label, us in rows:
        print(f"    {label:44s} {us:7.1f}  {(us - prev) / whole:5.0%}   {us / peer:5.2f}")
        prev = us
    print(f"  a duplicate 1.5x as fast as the peer's needs {peer / 1.5:.1f} us in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
