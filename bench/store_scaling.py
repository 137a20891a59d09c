#!/usr/bin/env python3
"""How store operations scale with the number of objects (a benchmark, not a test).

    python bench/store_scaling.py [--backends sqlite,tinydb] [--sizes 1000,10000,100000]
                                  [--pg-url postgresql://...] [--budget 2.0]

For each backend and each N: N FILE objects in one directory, then the median latency of
get-by-id, fetch-by-path, set-meta, create, and a query by a metadata field (one match,
no index on that field, so it scans).  Prints a table and cost(largest N)/cost(smallest
N) per operation.  TinyDB stops at 10k (it rewrites its whole file per write).

Adding a backend is one entry in ``BACKENDS``.  PostgreSQL joins when a URL is given by
``--pg-url`` or env ``WNSHELL_BENCH_PG`` (each run works in its own directory of that
store and deletes it afterwards); ``--backends postgresql`` without a URL starts a
throwaway server from Debian's binaries (fsync on, unix socket) for the run.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import objstore  # noqa: E402
from objstore import common as C, paths  # noqa: E402

# name -> (url_maker(tmpdir) -> URL, largest N it is run with)
BACKENDS = {
    "sqlite": (lambda d: f"sqlite://{d}/bench.db", None),
    "tinydb": (lambda d: f"tinydb://{d}/bench.json", 10_000),
    "memory": (lambda d: "memory://", None),
}
TARGET_MS = {"get": 0.2, "fetch": 0.2, "set_meta": 0.2}
TARGET_MS_PG = {"get": 1.0, "fetch": 1.0, "set_meta": 1.0}


def throwaway_pg():
    """A throwaway PostgreSQL (Debian's binaries, fsync on, unix socket) for
    ``--backends postgresql`` without ``--pg-url``; returns (url, stop)."""
    from tests.objstore import pg_backend
    bindir = pg_backend.find_bindir()
    if bindir is None:
        raise SystemExit(pg_backend.missing_reason())
    srv = pg_backend.PgServer(bindir, fsync=True)
    return srv.url(), srv.stop


def populate(store, top: str, n: int) -> list:
    """N FILEs under ``top``.  TinyDB is filled in one transaction of its own store (one
    file write instead of N); every other backend through ``create``."""
    store.create(top, "DIR")
    if store.url.startswith("tinydb:"):
        from tinydb.table import Document
        parent = store.fetch(top)
        now = C.now_ms()
        docs = [C.new_doc(paths.new_id(), parent.id, f"o{i}", f"{top}/o{i}", "FILE",
                          {"i": i, "grp": i % 100, "title": f"order {i}"}, now)
                for i in range(n)]
        with store._txn(True):
            store.obj.insert_multiple(Document(d, doc_id=d["id"]) for d in docs)
        store._index_gen = -1
        return [d["id"] for d in docs]
    return [store.create(f"{top}/o{i}", meta={"i": i, "grp": i % 100, "title": f"order {i}"}).id
            for i in range(n)]


def timed(fn, budget: float, max_samples: int = 3000, min_samples: int = 5) -> float:
    """Median seconds of ``fn(k)`` over up to ``max_samples`` calls / ``budget`` s."""
    samples: list[float] = []
    k = 0
    warm_until = time.perf_counter() + min(0.2, budget / 10)
    while k < 20 and time.perf_counter() < warm_until:     # warm caches first
        fn(k)
        k += 1
    start = time.perf_counter()
    while len(samples) < max_samples and (
            len(samples) < min_samples or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn(k)
        samples.append(time.perf_counter() - t0)
        k += 1
    return statistics.median(samples)


def run_one(url: str, n: int, budget: float) -> dict[str, float]:
    store = objstore.open_store(url)
    top = f"/bench-{n}-{paths.new_id()[:6]}"
    try:
        t0 = time.perf_counter()
        ids = populate(store, top, n)
        fill = time.perf_counter() - t0
        rnd = random.Random(n)
        picks = [rnd.randrange(n) for _ in range(1000)]
        res = {
            "get": timed(lambda k: store.get(ids[picks[k % 1000]]), budget),
            "fetch": timed(lambda k: store.fetch(f"{top}/o{picks[k % 1000]}"), budget),
            "set_meta": timed(lambda k: store.set_meta(ids[picks[k % 1000]], {"v": k}), budget),
            "create": timed(lambda k: store.create(f"{top}/new{k}", meta={"k": k}), budget),
            "query": timed(lambda k: store.query({"i": picks[k % 1000]}), budget, 50),
        }
        assert store.get(ids[0]) is not None and len(store.query({"i": 1})) == 1
        res["fill_s"] = fill
        return res
    finally:
        try:
            store.delete(store.fetch(top).id, recursive=True) if store.fetch(top) else None
        except objstore.StoreError:
            pass
        store.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--backends", default="sqlite,tinydb")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--pg-url", default=os.environ.get("WNSHELL_BENCH_PG"))
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per measured op")
    args = ap.parse_args(argv)
    backends = dict(BACKENDS)
    names = [b for b in args.backends.split(",") if b]
    stop_pg = None
    if "postgresql" in names and not args.pg_url:
        args.pg_url, stop_pg = throwaway_pg()
    if args.pg_url:
        backends["postgresql"] = (lambda d, url=args.pg_url: url, None)
        if "postgresql" not in names:
            names.append("postgresql")
    try:
        return report(args, backends, names)
    finally:
        if stop_pg is not None:
            stop_pg()


def report(args, backends, names) -> int:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    ops = ["get", "fetch", "set_meta", "create", "query"]
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name in names:
        if name not in backends:
            print(f"unknown backend {name} (have {', '.join(backends)})", file=sys.stderr)
            return 2
        make_url, cap = backends[name]
        results[name] = {}
        for n in sizes:
            if cap is not None and n > cap:
                continue
            tmp = tempfile.mkdtemp(prefix="wnbench-")
            try:
                results[name][n] = run_one(make_url(tmp), n, args.budget)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            r = results[name][n]
            print(f"  {name} N={n}: filled in {r['fill_s']:.1f}s", file=sys.stderr, flush=True)

    print("median latency in ms (query = one match by a metadata field, full scan)")
    print(f"{'backend':<11}{'N':>8}" + "".join(f"{op:>11}" for op in ops))
    for name, by_n in results.items():
        for n, r in by_n.items():
            print(f"{name:<11}{n:>8}" + "".join(f"{r[op] * 1000:>11.3f}" for op in ops))
    print()
    print("cost(largest N) / cost(smallest N)")
    verdict_ok = True
    for name, by_n in results.items():
        if len(by_n) < 2:
            continue
        lo, hi = min(by_n), max(by_n)
        line = f"{name:<11}{f'{hi // 1000}k/{lo // 1000}k':>8}"
        for op in ops:
            line += f"{by_n[hi][op] / by_n[lo][op]:>11.2f}"
        print(line)
        targets = {"sqlite": TARGET_MS, "postgresql": TARGET_MS_PG}.get(name)
        if targets and hi >= 100_000:
            for op, limit in targets.items():
                ms = by_n[hi][op] * 1000
                ratio = by_n[hi][op] / by_n[lo][op]
                ok = ms <= limit and ratio <= 2
                verdict_ok &= ok
                print(f"  {name} {op} at {hi}: {ms:.3f} ms (target <= {limit}), ratio "
                      f"{ratio:.2f} (target <= 2): {'ok' if ok else 'MISSED'}")
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
