"""Where the time of one pay request goes, in-process, one thread (cProfile).

    python bench/profile_pay.py [--n 400] [--store URL | --store postgresql] [--top 25]

The regapi WSGI app is called directly (no server, no network, deadline off so the
template runs on the calling thread and cProfile sees all of it) on a fresh SQLite store
(or ``--store``), with the seed's two APIs and account; unifiedorder goes to the
in-process simulator.  Profiled, each over ``--n`` requests: a submit of a new order,
a first-time notification (the order becomes paid) and the same notification again (a
duplicate).  For each: wall ms per request (unprofiled), the steps (cumulative ms per
request of the functions that make up the flow), SQL statements, store operations and
JSON encode/decode calls per request, and the top functions by own time.

The cost of the thread-pool hop that ``wnshell serve`` adds (deadline on) is measured
as the wall time difference with the deadline on and off.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# (label, file suffix, function name): cumulative time per request of each
STEPS = [
    ("WSGI app, whole request", "regapi/app.py", "__call__"),
    ("  route lookup", "regapi/router.py", "resolve_path"),
    ("  request object write (create_request_object)", "regapi/request.py",
     "create_request_object"),
    ("  Session run of the template", "wnshell/session.py", "run_ast"),
    ("    weixin account load (conf.load)", "commands/weixin/conf.py", "load"),
    ("    request object fetch (fetch_obj)", "commands/weixin/common.py", "fetch_obj"),
    ("    order -submit", "commands/weixin/order.py", "submit"),
    ("      unifiedorder HTTP call (post_xml)", "wxpay/client.py", "post_xml"),
    ("      reply check (parse_reply)", "wxpay/api.py", "parse_reply"),
    ("      store.incr (pay_seq)", "sqlstore.py|rules.py|_backend.py|postgres.py", "incr"),
    ("    order -result", "commands/weixin/order.py", "result"),
    ("      XML + signature (parse_notification)", "wxpay/api.py", "parse_notification"),
    ("      order read (match_order)", "commands/weixin/order.py", "match_order"),
    ("      paid transition (mark_paid)", "commands/weixin/order.py", "mark_paid"),
    ("  store.get (all)", "sqlstore.py|rules.py|_backend.py|postgres.py", "get"),
    ("  store.fetch (all)", "sqlstore.py|rules.py|_backend.py|postgres.py", "fetch"),
    ("  store.cas (all)", "sqlstore.py|rules.py|_backend.py|postgres.py", "cas"),
    ("  store.cas_applied (all)", "base.py|_backend.py", "cas_applied"),
    ("  store.read (all)", "sqlstore.py|rules.py|_backend.py|postgres.py", "read"),
    ("  store.create (all)", "sqlstore.py|rules.py|_backend.py|postgres.py", "create"),
    ("  logging (Logger._log)", "logging/__init__.py", "_log"),
    ("  json.dumps", "json/__init__.py", "dumps"),
    ("  json.loads", "json/__init__.py", "loads"),
]
STORE_OPS = ("get", "fetch", "cas", "cas_applied", "incr", "read", "create", "set_meta", "write",
             "children", "query", "count", "delete")


def environ_for(method: str, path: str, query: str = "", body: bytes = b"") -> dict:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "CONTENT_TYPE": "text/xml" if body else "",
            "wsgi.input": io.BytesIO(body), "HTTP_HOST": "127.0.0.1"}


def call(app, env) -> tuple[str, bytes]:
    out = {}

    def start_response(status, headers, exc_info=None):
        out["status"] = status
    body = b"".join(app(env, start_response))
    return out["status"], body


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--store", default=None,
                    help="an empty store's URL, or 'postgresql' for a throwaway server")
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args(argv)

    from objstore import open_store
    from regapi.app import RegApiApp
    from wxpay.simulator import Simulator
    sys.path.insert(0, HERE)
    from bench.loopback import throwaway_postgresql
    from pay_vs_peer import OPENID, TITLE, install_seed_apis, notification

    tmp = tempfile.mkdtemp(prefix="wnshell-profile-")
    merchant = ("wx" + secrets.token_hex(8), "1900000999", secrets.token_hex(16))
    sim = Simulator(merchants=[merchant]).start()
    stop_pg = None
    try:
        url = a.store or f"sqlite://{tmp}/store.db"
        if url == "postgresql":          # a throwaway server, fsync on
            url, stop_pg = throwaway_postgresql("profile")
        store = open_store(url)
        install_seed_apis(store, merchant, sim.url, "http://127.0.0.1:9/api/demo/payresult")
        n = a.n
        ids = [store.create(f"/home/demo/orders/o{i}", "FILE",
                            {"title": TITLE, "openid": OPENID, "total_fee": 1 + i % 500,
                             "or_status": 0}, parents=True)["id"] for i in range(4 * n + 20)]
        sink = open(os.devnull, "w")
        from regapi.app import BufferedAccessLog
        apps = {"inline": RegApiApp(store, deadline=None, access=BufferedAccessLog(sink)),
                "pool": RegApiApp(store, access=BufferedAccessLog(sink))}
        import logging
        logging.getLogger("wnshell").setLevel(logging.INFO)    # as wnshell serve does
        logging.getLogger("wnshell").addHandler(logging.StreamHandler(sink))
        logging.getLogger("wnshell").propagate = False

        def submit_env(oid):
            return environ_for("GET", "/api/demo/pay", f"id={oid}&openid={OPENID}")

        def notify_env(xml):
            return environ_for("POST", "/api/demo/payresult", body=xml.encode())

        # SQL statements of every connection of the store's pool (SQLite)
        sql = [0]

        def trace(_s):
            sql[0] += 1
        if hasattr(store, "_connections"):
            for c in store._connections():
                c.set_trace_callback(trace)
            make = store._pool.make

            def traced():
                c = make()
                c.set_trace_callback(trace)
                return c
            store._pool.make = traced
        ops = {k: 0 for k in STORE_OPS}
        for op in STORE_OPS:
            orig = getattr(store, op)

            def counted(*args, _orig=orig, _op=op, **kw):
                ops[_op] += 1
                return _orig(*args, **kw)
            setattr(store, op, counted)

        def warm(app):
            for oid in ids[-20:-10] if app is apps["inline"] else ids[-10:]:
                assert call(app, submit_env(oid))[0].startswith("200")

        for app in apps.values():
            warm(app)
        chunks = {"submit": ids[:n], "submit-pool": ids[n:2 * n]}
        # orders to notify: submitted untimed
        for oid in ids[2 * n:4 * n]:
            assert call(apps["inline"], submit_env(oid))[0].startswith("200")
        order_of = {o: store.get(o) for o in ids[2 * n:4 * n]}
        xmls = [notification(*merchant, order_of[o]["pay_out_trade_no"],
                             order_of[o]["total_fee"], i)
                for i, o in enumerate(ids[2 * n:4 * n])]
        first, first_pool = xmls[:n], xmls[n:]

        def timed(app, envs, expect: bytes) -> float:
            t = time.perf_counter()
            for env in envs:
                status, body = call(app, env)
                if not status.startswith("200") or expect not in body:
                    raise SystemExit(f"unexpected answer {status}: {body[:200]!r}")
            return (time.perf_counter() - t) / len(envs) * 1000

        # wall times, unprofiled: inline vs the pool hop
        wall = {}
        wall["submit"] = timed(apps["inline"], [submit_env(o) for o in chunks["submit"][:n // 2]], b"paySign")
        wall["submit-pool"] = timed(apps["pool"], [submit_env(o) for o in chunks["submit-pool"][:n // 2]], b"paySign")
        wall["first"] = timed(apps["inline"], [notify_env(x) for x in first[:n // 2]], b"SUCCESS")
        wall["first-pool"] = timed(apps["pool"], [notify_env(x) for x in first_pool[:n // 2]], b"SUCCESS")
        wall["duplicate"] = timed(apps["inline"], [notify_env(x) for x in first[:n // 2]], b"SUCCESS")
        wall["duplicate-pool"] = timed(apps["pool"], [notify_env(x) for x in first_pool[:n // 2]], b"SUCCESS")

        cases = [("submit, a new order", [submit_env(o) for o in chunks["submit"][n // 2:]],
                  b"paySign"),
                 ("notification, first time", [notify_env(x) for x in first[n // 2:]],
                  b"SUCCESS"),
                 ("notification, duplicate", [notify_env(x) for x in first[n // 2:]],
                  b"SUCCESS")]
        print(f"profile of the pay path, in-process, one thread, store "
              f"{store.url.split(':', 1)[0]}, {n - n // 2} requests per case")
        for key in ("submit", "first", "duplicate"):
            print(f"  wall ms/request {key:10s} inline {wall[key]:.3f}   via the thread pool "
                  f"{wall[key + '-pool']:.3f}   (hop {wall[key + '-pool'] - wall[key]:+.3f})")
        for label, envs, expect in cases:
            sql[0] = 0
            for k in ops:
                ops[k] = 0
            prof = cProfile.Profile()
            prof.enable()
            timed(apps["inline"], envs, expect)
            prof.disable()
            count = len(envs)
            st = pstats.Stats(prof)
            stmts = f"{sql[0] / count:.1f} SQL statements, " if hasattr(store, "_connections") else ""
            print(f"\n== {label}: per request {stmts}"
                  f"{sum(ops.values()) / count:.1f} store operations ("
                  + ", ".join(f"{k} {v / count:.1f}" for k, v in ops.items() if v) + ")")
            rows = {}
            for (file, _line, fn), (cc, nc, tt, ct, _callers) in st.stats.items():
                for step, suffix, name in STEPS:
                    if fn == name and file.endswith(tuple(suffix.split("|"))):
                        # the one function of that name taking the most time (e.g.
                        # RegApiApp.__call__, not the access log's __call__)
                        if ct > rows.get(step, (0, -1.0))[1]:
                            rows[step] = (nc, ct)
            for step, _suffix, _name in STEPS:
                if step in rows:
                    calls, ct = rows[step]
                    print(f"  {step:52s} {ct / count * 1000:7.3f} ms  "
                          f"({calls / count:.1f} calls)")
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(a.top)
            text = out.getvalue()
            body = text[text.find("   ncalls"):]
            print(f"  top {a.top} by own time (cProfile inflates small calls):")
            for line in body.splitlines()[:a.top + 1]:
                print("    " + line.replace(ROOT + "/", "").replace(sys.prefix, "<py>"))
        store.close()
        return 0
    finally:
        sim.stop()
        if stop_pg is not None:
            stop_pg()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
