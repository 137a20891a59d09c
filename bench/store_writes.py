"""What the SQLite write path costs under concurrency, and what each part buys.

    python bench/store_writes.py [--procs 2] [--threads 16] [--ops 300]

``--procs`` processes x ``--threads`` threads on one SQLite file, each thread doing
the pay flow's writes on its own orders: ``incr`` (the attempt counter), then ``cas``
(the paid transition, or_status 1 -> 2).  Measured in one run, alternately:

* ``one statement``: plain keys, so cas/incr are one ``UPDATE ... RETURNING``;
* ``transaction``: the same on a key with a dot (``or.status``, ``pay.seq``), which
  takes the BEGIN IMMEDIATE / read / check / write / COMMIT path (what every cas and
  incr did before);
* each with the write gate (threads queue in-process, processes on a flock; queued
  single statements share one group commit) and without it (every statement its own
  commit, SQLite's busy handler alone: the store before), and with
  ``synchronous=FULL`` (the store's setting) or ``NORMAL`` (what durability costs).

Printed: writes/s over all processes, and p50/p99 of one write.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def worker(url, ids, keys, sync, gate, threads, q):
    import objstore
    import objstore.sqlite_backend as sb
    sb.USE_WRITE_GATE = gate
    store = objstore.open_store(url)
    status, seq = keys
    lat: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    # every connection of the store's pool, those made later included
    for c in store._connections():
        c.execute(f"PRAGMA synchronous = {sync}")
    make = store._pool.make

    def synced():
        c = make()
        c.execute(f"PRAGMA synchronous = {sync}")
        return c
    store._pool.make = synced

    def run(chunk):
        mine = []
        start.wait()
        for oid in chunk:
            t = time.perf_counter()
            store.incr(oid, seq)
            t1 = time.perf_counter()
            assert store.cas(oid, {status: 1}, {status: 2, "pay_time": 1}) is not None
            t2 = time.perf_counter()
            mine += [t1 - t, t2 - t1]
        with lock:
            lat.extend(mine)
    per = len(ids) // threads
    ts = [threading.Thread(target=run, args=(ids[i * per:(i + 1) * per],))
          for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((time.perf_counter() - t0, lat))
    store.close()


def measure(url, ids, keys, sync, gate, procs, threads):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    per = len(ids) // procs
    ps = [ctx.Process(target=worker, args=(url, ids[i * per:(i + 1) * per], keys, sync,
                                           gate, threads, q)) for i in range(procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    lat = sorted(x for _, l in res for x in l)
    wall = max(w for w, _ in res)
    return len(lat) / wall, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--ops", type=int, default=300, help="orders per thread")
    a = ap.parse_args(argv)
    import objstore
    tmp = tempfile.mkdtemp(prefix="wnshell-writes-")
    try:
        url = f"sqlite://{tmp}/store.db"
        store = objstore.open_store(url)
        n = a.procs * a.threads * a.ops
        blob = {"pay_send": {"body": "x" * 200, "openid": "o" * 28},
                "pay_rexml": "<xml>" + "y" * 600 + "</xml>"}
        cases = [("one statement", ("or_status", "pay_seq")),
                 ("transaction", ("or.status", "pay.seq"))]
        configs = [(name, keys, sync, gate) for sync in ("FULL", "NORMAL")
                   for gate in (True, False) for name, keys in cases]
        print(f"SQLite writes, {a.procs} processes x {a.threads} threads, incr + cas per "
              f"order, {os.cpu_count()} CPUs (machine may be shared)")
        print(f"  {'path':14s} {'sync':6s} {'gate':4s} {'writes/s':>9s} {'p50 ms':>7s} "
              f"{'p99 ms':>7s}")
        for name, keys, sync, gate in configs:
            ids = [store.create(f"/o/{name[0]}{sync}{gate}{i}", parents=True,
                                meta=dict(blob, **{keys[0]: 1}))["id"] for i in range(n)]
            rate, p50, p99 = measure(url, ids, keys, sync, gate, a.procs, a.threads)
            print(f"  {name:14s} {sync:6s} {'on' if gate else 'off':4s} {rate:9.0f} "
                  f"{p50:7.2f} {p99:7.2f}")
        store.close()
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
