"""wnshell's pay path side by side with a Flask + wechatpy + SQLite peer (bench/peer/).

    python bench/pay_vs_peer.py [--workers 2] [--connections 16] [--duration 3]
                                [--rounds 3] [--orders 48000]
                                [--store URL | --store postgresql]

Needs ``wrk`` and the bench extra (``pip install -e '.[bench]'``: flask, wechatpy).

Both apps are served by granian with the same workers and blocking threads, each
placed as it deploys by default: wnshell serve pins its workers one per CPU when there
are as many as CPUs (``--pin-workers``), granian leaves the peer's to the kernel
(``--pin-peer`` places them as wnshell's; the line "workers' CPUs" shows where each
side's ran), both call
the same stand-in WeChat Pay server (bench/wechat_standin.py: the simulator's own
request handling on granian; its rate alone is measured and printed first), both keep
their orders in SQLite with ``synchronous=FULL`` (wnshell: ``--store`` may put it on
PostgreSQL instead; the peer stays on SQLite).  Three legs, each with ``wrk`` and
bench/pay_slices.lua (each wrk thread its own slice of the requests, so nothing is sent
twice by accident), each leg in ``--rounds`` rounds, the two sides alternating round
by round (this machine's speed drifts from one run to the next; each side's median
round is the number shown, every round's is printed too):

1. submit, a new order each request (one unifiedorder each);
2. notification, first time: a correctly signed SUCCESS notification for each
   submitted order (its out_trade_no and amount), so each moves the order to paid;
3. notification, duplicate: the same notifications again (the orders stay as they are),
   as many distinct ones on each side as the side that paid fewer orders in leg 2 has
   (the same working set on both sides).

Between 1 and 2 every order is submitted (untimed), so leg 2 has one notification per
order.  Checked: every answer is a 200 with the expected body (JSAPI parameters with a
paySign, SUCCESS XML), the orders counted paid in each store after leg 2 match the
notifications answered, and leg 3 changes none.  Printed: req/s, p99, the ratios
wnshell / peer against the targets (>= 1.5 each leg, wnshell's p99 <= the peer's), and
the resident memory of each worker after the run (target <= 60 MiB).
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.loopback import (free_port, place_workers, placement,  # noqa: E402
                            throwaway_postgresql, wait_http)   # (after ROOT is on sys.path)
from regapi.server import PIN_CHOICES, cpu_plan  # noqa: E402

LUA = os.path.join(HERE, "pay_slices.lua")
WRK_THREADS = 2
# The stand-in plays WeChat, whose CPU is not the merchant's: every ms it spends here
# is taken from the two apps on the same two cores.  Its work is all in memory (no
# I/O to overlap), so one Python thread serves it best; with 8, its threads handed the
# GIL to each other on every request: 0.24 ms of CPU a call and 4.8k req/s alone,
# against 0.12 ms and 10k with one (same run, 16 connections).
STANDIN_THREADS = 1
TARGET_RATIO = 1.5
TARGET_RSS_MIB = 60
OPENID = "o" + secrets.token_hex(10)
TITLE = "bench: one bowl of noodles"






def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            pass
    return out


def rss_mib(pid: int) -> tuple[float, float, float, float]:
    """(VmRSS, RssAnon, RssFile, Pss) in MiB: RssFile is mostly shared pages (libraries,
    the SQLite file mapped by mmap), RssAnon the worker's own memory, Pss the resident
    memory with shared pages split between the processes that map them."""
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    vals[k] = int(v.split()[0]) / 1024
    except OSError:
        pass
    pss = 0.0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return (vals.get("VmRSS", 0.0), vals.get("RssAnon", 0.0), vals.get("RssFile", 0.0),
            pss)


def worker_rss(proc: subprocess.Popen) -> list[tuple[float, float, float]]:
    """RSS of the worker processes (the leaves below the server's main process)."""
    kids = descendants(proc.pid)
    leaves = [k for k in kids if not descendants(k)] or kids
    return sorted(rss_mib(k) for k in leaves)


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU seconds used so far by ``proc`` and every process below it
    (the server's main process and its workers, all their threads)."""
    total = 0
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])      # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


# ---- wrk -------------------------------------------------------------------------------
class Run:
    cpu_ms = float("nan")           # server CPU per answered request (set by timed())
    standin_cpu_ms = float("nan")   # the stand-in's CPU per answered request

    def __init__(self, out: str):
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not m:
            raise SystemExit("wrk failed:\n" + out)
        self.rps = float(m.group(1))
        self.done = int(re.search(r"(\d+) requests in", out).group(1))
        p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        self.p99_ms = (float(p99.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
                       if p99 else float("nan"))
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        self.non2xx = int(non2xx.group(1)) if non2xx else 0
        sl = re.search(r"slices: bad (\d+) sent (\d+)", out)
        self.bad = int(sl.group(1)) if sl else -1
        self.sent = int(sl.group(2)) if sl else -1
        errs = re.search(r"Socket errors: (.*)", out)
        self.socket_errors = errs.group(1) if errs else ""

    def ok(self) -> bool:
        return self.bad == 0 and self.non2xx == 0 and not self.socket_errors


class Rounds:
    """A leg's rounds (each its own ``Run``): the median round's req/s and p99 (a round
    disturbed by the machine counts as one of several, not as the result), the counts
    summed, CPU per request over all of them."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.rps = statistics.median(r.rps for r in runs)
        self.p99_ms = statistics.median(r.p99_ms for r in runs)
        self.done = sum(r.done for r in runs)
        self.sent = sum(r.sent for r in runs)
        self.bad = sum(r.bad for r in runs)
        self.non2xx = sum(r.non2xx for r in runs)
        self.socket_errors = "; ".join(r.socket_errors for r in runs if r.socket_errors)
        done = self.done or 1
        self.cpu_ms = sum(r.cpu_ms * r.done for r in runs) / done
        self.standin_cpu_ms = sum(r.standin_cpu_ms * r.done for r in runs) / done

    def ok(self) -> bool:
        return all(r.ok() for r in self.runs)


def wrk(port: int, duration: float, conns: int, env: dict, path: str = "/") -> Run:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{conns}", f"-d{max(1, int(duration))}s",
           "--latency", "--timeout", "10s", "-s", LUA, f"http://127.0.0.1:{port}{path}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                         env=dict(os.environ, WRK_THREADS=str(WRK_THREADS), **env))
    return Run(res.stdout + res.stderr)


def timed(side_proc: subprocess.Popen, standin: subprocess.Popen, run) -> Run:
    """``run()`` (a wrk run) with the CPU the server and the stand-in spent on it."""
    before, sbefore = cpu_seconds(side_proc), cpu_seconds(standin)
    r = run()
    if r.done:
        r.cpu_ms = (cpu_seconds(side_proc) - before) * 1000 / r.done
        r.standin_cpu_ms = (cpu_seconds(standin) - sbefore) * 1000 / r.done
    return r


def write_lines(path: str, lines: list[str]) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            if "\n" in line:
                raise ValueError("a request line holds a newline")
            f.write(line + "\n")
    return path


def fetch_all(port: int, paths: list[str], expect: bytes, threads: int = 16) -> int:
    """GET every path once (keep-alive, ``threads`` at a time); how many failed."""
    it = iter(paths)
    lock = threading.Lock()
    bad = [0]

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                p = next(it, None)
            if p is None:
                break
            c.request("GET", p)
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or expect not in body:
                with lock:
                    bad[0] += 1
        c.close()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return bad[0]


# ---- notifications -----------------------------------------------------------------
def notification(appid: str, mch_id: str, key: str, out_trade_no: str, fee: int,
                 n: int) -> str:
    from wxpay.sign import sign
    from wxpay.xmlcodec import to_xml
    params = {"appid": appid, "mch_id": mch_id, "nonce_str": secrets.token_hex(16),
              "result_code": "SUCCESS", "return_code": "SUCCESS", "openid": OPENID,
              "is_subscribe": "N", "trade_type": "JSAPI", "bank_type": "CMC",
              "total_fee": str(fee), "cash_fee": str(fee), "fee_type": "CNY",
              "transaction_id": f"42000{n:023d}"[:32], "out_trade_no": out_trade_no,
              "time_end": time.strftime("%Y%m%d%H%M%S")}
    params["sign"] = sign(params, key)
    return to_xml(params)


def install_seed_apis(store, merchant: tuple, api_base: str, notify_url: str) -> None:
    """User demo's two seed APIs (pay, payresult) and its account ``xxx`` for
    ``merchant`` (appid, mch_id, pay_key), calling WeChat Pay at ``api_base``."""
    from regapi.demo import PAY_API, PAYRESULT_API, WXCONF
    api = "/home/demo/.regapi/api"
    store.create(f"{api}/pay", "FILE", {"http-header-Content-Type": "application/json"},
                 parents=True, content=PAY_API.encode())
    store.create(f"{api}/payresult", "FILE", {"http-header-Content-Type": "text/xml"},
                 content=PAYRESULT_API.encode())
    store.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True,
                 content=WXCONF.format(appid=merchant[0], appsecret=secrets.token_hex(16),
                                       mch_id=merchant[1], pay_key=merchant[2],
                                       notify_url=notify_url, api_base=api_base).encode())


# ---- the two sides ----------------------------------------------------------------
class Side:
    name = ""
    submit_prefix = ""
    notify_path = ""

    def __init__(self, tmp: str, workers: int, threads: int, merchant: tuple, api_base: str):
        self.tmp, self.workers, self.threads = tmp, workers, threads
        self.appid, self.mch_id, self.key = merchant
        self.api_base = api_base
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.ids: list[str] = []
        self.runs: dict[str, list[Run]] = {"submit": [], "first": [], "duplicate": []}

    def submit_paths(self, ids: list[str] | None = None) -> list[str]:
        return [f"{self.submit_prefix}?id={i}&openid={OPENID}"
                for i in (self.ids if ids is None else ids)]


class Wnshell(Side):
    name = "wnshell"
    submit_prefix = "/api/demo/pay"
    notify_path = "/api/demo/payresult"

    def __init__(self, *a, store_url: str, **kw):
        super().__init__(*a, **kw)
        self.store_url = store_url

    def prepare(self, n: int) -> None:
        from objstore import open_store
        store = open_store(self.store_url)
        install_seed_apis(store, (self.appid, self.mch_id, self.key), self.api_base,
                          f"http://127.0.0.1:{self.port}{self.notify_path}")
        self.ids = [store.create(f"/home/demo/orders/o{i}", "FILE",
                                 {"title": TITLE, "openid": OPENID, "total_fee": 1 + i % 500,
                                  "or_status": 0}, parents=True)["id"] for i in range(n)]
        store.close()

    def start(self, log, plan: list[int] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(self.port), "--workers",
             str(self.workers), "--threads", str(self.threads), "--store", self.store_url,
             "--pin-workers", "on" if plan else "off"],
            stdout=log, stderr=log, cwd=ROOT)
        wait_http(self.port, "/", self.proc)

    def _orders(self, store):
        folder = store.fetch("/home/demo/orders")
        return store.children(folder["id"])

    def submitted(self) -> list[tuple[str, int]]:
        from objstore import open_store
        with open_store(self.store_url) as store:
            return [(o["pay_out_trade_no"], o["total_fee"]) for o in self._orders(store)
                    if o.get("pay_out_trade_no")]

    def paid(self) -> list[tuple[str, int]]:
        from objstore import open_store
        with open_store(self.store_url) as store:
            return [(o["pay_out_trade_no"], o["total_fee"]) for o in self._orders(store)
                    if o.get("or_status") == 2]


class Peer(Side):
    name = "peer"
    submit_prefix = "/pay"
    notify_path = "/payresult"

    def prepare(self, n: int) -> None:
        from bench.peer.app import init_db
        self.db = os.path.join(self.tmp, "peer.db")
        init_db(self.db)
        conn = sqlite3.connect(self.db)
        self.ids = [f"p{secrets.token_hex(8)}" for _ in range(n)]
        with conn:
            conn.executemany("INSERT INTO orders (id, openid, total_fee, body) VALUES "
                             "(?, ?, ?, ?)", [(oid, OPENID, 1 + i % 500, TITLE)
                                              for i, oid in enumerate(self.ids)])
        conn.close()

    def start(self, log, plan: list[int] = ()) -> None:
        env = dict(os.environ, PEER_DB=self.db, PEER_APPID=self.appid,
                   PEER_MCH_ID=self.mch_id, PEER_KEY=self.key, PEER_API_BASE=self.api_base,
                   PEER_NOTIFY_URL=f"http://127.0.0.1:{self.port}{self.notify_path}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers",
             str(self.workers), "--blocking-threads", str(self.threads), "--no-ws",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             "bench.peer.app:app"], stdout=log, stderr=log, cwd=ROOT, env=env)
        wait_http(self.port, "/", self.proc)
        place_workers(self.proc, plan)     # where wnshell serve puts its own workers

    def _rows(self, where: str) -> list[tuple[str, int]]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(f"SELECT out_trade_no, total_fee FROM orders WHERE {where}"
                                ).fetchall()
        finally:
            conn.close()

    def submitted(self) -> list[tuple[str, int]]:
        return self._rows("out_trade_no IS NOT NULL")

    def paid(self) -> list[tuple[str, int]]:
        return self._rows("or_status = 2")


def standin_rate(port: int, tmp: str, merchant: tuple, duration: float, conns: int) -> Run:
    """The stand-in alone: signed unifiedorder requests, a new out_trade_no each --
    enough of them for 25k req/s over ``duration`` (a run that used them up would ask
    for /__exhausted__, counted as bad answers: 40000 ran out at 13k req/s)."""
    from wxpay.account import Account
    from wxpay.api import build_unifiedorder
    from wxpay.xmlcodec import to_xml
    acct = Account(merchant[0], merchant[1], merchant[2],
                   notify_url="http://127.0.0.1:9/notify")
    bodies = [to_xml(build_unifiedorder(acct, {
        "body": TITLE, "out_trade_no": f"standin{i}", "total_fee": 1 + i % 500,
        "openid": OPENID, "spbill_create_ip": "127.0.0.1"}))
        for i in range(max(40000, int(25000 * duration)))]
    f = write_lines(os.path.join(tmp, "standin.txt"), bodies)
    return wrk(port, duration, conns, {"WRK_FILE": f, "WRK_MODE": "post",
                                       "WRK_PATH": "/pay/unifiedorder",
                                       "WRK_EXPECT": "prepay_id"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32, help="blocking threads per worker")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of each leg, the sides alternating (the median is shown)")
    ap.add_argument("--orders", type=int, default=48000,
                    help="orders per side (each round of a leg takes its own third)")
    ap.add_argument("--pin-workers", choices=PIN_CHOICES, default="auto",
                    help="wnshell serve's option of that name: its workers one CPU each "
                         "(default auto: when --workers equals the CPUs)")
    ap.add_argument("--pin-peer", action="store_true",
                    help="place the peer's workers as wnshell's (default: where the "
                         "kernel puts them, as granian leaves them)")
    ap.add_argument("--store", default=None,
                    help="wnshell's store: the URL of an empty store (default: a fresh "
                         "SQLite file), or 'postgresql' to start a throwaway PostgreSQL "
                         "(fsync on)")
    a = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench/pay_vs_peer.py needs wrk (Debian package 'wrk')")
    try:
        import flask  # noqa: F401
        import wechatpy  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"the peer needs the bench extra (pip install -e '.[bench]'): {e}")

    tmp = tempfile.mkdtemp(prefix="wnshell-peer-bench-")
    procs: list[subprocess.Popen] = []
    stop_pg = None
    log = open(os.path.join(tmp, "servers.log"), "wb")
    try:
        store_url = a.store or f"sqlite://{tmp}/store.db"
        if store_url == "postgresql":
            store_url, stop_pg = throwaway_postgresql("bench")
        merchant = ("wx" + secrets.token_hex(8), "1900000999", secrets.token_hex(16))

        sport = free_port()
        standin = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory",
             "--workers", "1", "--blocking-threads", str(STANDIN_THREADS), "--no-ws",
             "--host", "127.0.0.1",
             "--port", str(sport), "--log-level", "warning",
             "bench.wechat_standin:app_factory"], stdout=log, stderr=log, cwd=ROOT,
            env=dict(os.environ, WXPAY_SIM_MERCHANTS=":".join(merchant)))
        procs.append(standin)
        wait_http(sport, "/", standin)
        api_base = f"http://127.0.0.1:{sport}"

        peer = Peer(tmp, a.workers, a.threads, merchant, api_base)
        wn = Wnshell(tmp, a.workers, a.threads, merchant, api_base, store_url=store_url)
        sides = (peer, wn)
        plan = cpu_plan(a.workers, a.pin_workers)
        for s in sides:
            s.prepare(a.orders)
            s.start(log, plan if s is wn or a.pin_peer else [])
            procs.append(s.proc)

        st = standin_rate(sport, tmp, merchant, a.duration, a.connections)
        env_common = {"WRK_WRAP": "0"}

        # warm-up: imports, caches, connections (a few orders each, then left out)
        for s in sides:
            warm, s.ids = s.ids[:50], s.ids[50:]
            if fetch_all(s.port, [f"{s.submit_prefix}?id={i}&openid={OPENID}" for i in warm],
                         b"paySign", threads=4):
                raise SystemExit(f"{s.name}: warm-up submits failed (see {tmp}/servers.log)")

        # 1. fresh submits: each round its own orders, the sides alternating
        for rnd in range(a.rounds):
            for s in sides:
                chunk = len(s.ids) // a.rounds
                f = write_lines(os.path.join(tmp, f"{s.name}-submit-{rnd}.txt"),
                                s.submit_paths(s.ids[rnd * chunk:(rnd + 1) * chunk]))
                s.runs["submit"].append(timed(s.proc, standin, lambda: wrk(
                    s.port, a.duration, a.connections,
                    dict(env_common, WRK_FILE=f, WRK_MODE="get", WRK_EXPECT="paySign"))))
        # every order submitted (untimed; the ones done above reuse their pay_jsobj)
        for s in sides:
            bad = fetch_all(s.port, s.submit_paths(), b"paySign", threads=32)
            if bad:
                print(f"  ({s.name}: {bad} submits of the top-up failed)")
        # 2. first-time notifications, 3. the same again
        sent: dict[str, dict[str, str]] = {s.name: {} for s in sides}
        files: dict[tuple[str, str], list[str]] = {}
        for leg in ("first", "duplicate"):
            got = {s.name: sorted(s.submitted() if leg == "first" else s.paid())
                   for s in sides}
            if leg == "duplicate":
                counts = {name: len(rows) for name, rows in got.items()}
                # the same number of distinct duplicates on each side: the side that
                # paid more orders in leg 2 would otherwise cycle through a larger
                # working set (more of its store, more of the CPU caches) than the other
                repeats = min(counts.values())
            for s in sides:
                rows = got[s.name]
                if leg == "first":
                    xmls = [notification(*merchant, otn, fee, n)
                            for n, (otn, fee) in enumerate(rows)]
                    sent[s.name] = {otn: x for (otn, _fee), x in zip(rows, xmls)}
                    # each round notifies its own orders (a first time is once)
                    chunk = len(xmls) // a.rounds
                    parts = [xmls[r * chunk:(r + 1) * chunk] for r in range(a.rounds)]
                else:
                    # the very notifications leg 2 delivered, byte for byte (the same
                    # transaction_id): what WeChat repeats when it missed our SUCCESS
                    parts = [[sent[s.name][otn] for otn, _fee in rows[:repeats]]] * a.rounds
                files[s.name, leg] = [
                    write_lines(os.path.join(tmp, f"{s.name}-{leg}-{r}.txt"), part)
                    for r, part in enumerate(parts)]
            for rnd in range(a.rounds):
                for s in sides:
                    f = files[s.name, leg][rnd]
                    s.runs[leg].append(timed(s.proc, standin, lambda: wrk(
                        s.port, a.duration, a.connections,
                        dict(WRK_FILE=f, WRK_MODE="post", WRK_PATH=s.notify_path,
                             WRK_EXPECT="SUCCESS",
                             WRK_WRAP="1" if leg == "duplicate" else "0"))))
        for s in sides:
            s.runs = {leg: Rounds(runs) for leg, runs in s.runs.items()}
        after = {s.name: len(s.paid()) for s in sides}
        rss = {s.name: worker_rss(s.proc) for s in sides}
        where = {s.name: placement(s.proc) for s in sides}

        # ---- report ------------------------------------------------------------------
        kind = store_url.split(":", 1)[0]
        print(f"pay path, wnshell vs Flask + wechatpy 1.8.18 -- granian {a.workers} workers x "
              f"{a.threads} threads each, wrk -t{WRK_THREADS} -c{a.connections} "
              f"-d{int(a.duration)}s x {a.rounds} rounds a leg (sides alternating; median "
              f"round shown), loopback, {os.cpu_count()} CPUs")
        print(f"  wnshell store: {kind}{' (throwaway, fsync on)' if a.store == 'postgresql' else ''}"
              f"; peer store: SQLite (WAL, synchronous=FULL)")
        print(f"  workers' CPUs: " + ", ".join(f"{s.name} {where[s.name]}" for s in sides)
              + f" (wnshell serve --pin-workers {a.pin_workers}"
              + ("; the peer placed the same way)" if a.pin_peer else
                 "; the peer as granian leaves it)"))
        print(f"  stand-in WeChat Pay (simulator logic on granian, 1 worker x "
              f"{STANDIN_THREADS} thread): "
              f"{st.rps:8.0f} req/s  p99 {st.p99_ms:6.2f} ms  "
              f"{'ok' if st.ok() else 'BAD ANSWERS'}")
        print(f"  {'leg':34s} {'peer req/s':>10s} {'p99 ms':>7s} {'wnshell':>9s} {'p99 ms':>7s}"
              f" {'ratio':>6s}  target")
        labels = {"submit": "submit, a new order each request",
                  "first": "notification, first time (-> paid)",
                  "duplicate": "notification, duplicate"}
        all_met = True
        fastest = max(s.runs["submit"].rps for s in sides)
        if st.rps < 2 * fastest:
            print(f"  !! the stand-in alone ({st.rps:.0f} req/s) is within 2x of the fastest "
                  f"submit leg ({fastest:.0f}): it may bound the submit numbers")
        for leg, label in labels.items():
            p, w = peer.runs[leg], wn.runs[leg]
            ratio = w.rps / p.rps if p.rps else 0.0
            met = ratio >= TARGET_RATIO and w.p99_ms <= p.p99_ms
            all_met &= met
            print(f"  {label:34s} {p.rps:10.0f} {p.p99_ms:7.2f} {w.rps:9.0f} {w.p99_ms:7.2f}"
                  f" {ratio:6.2f}  >= {TARGET_RATIO} and p99 <=: {'MET' if met else 'NOT MET'}")
        print("  CPU per request (ms; server = main process + workers, all threads):")
        for leg, label in labels.items():
            p, w = peer.runs[leg], wn.runs[leg]
            extra = (f"   stand-in {p.standin_cpu_ms:5.3f} / {w.standin_cpu_ms:5.3f}"
                     if leg == "submit" else "")
            print(f"    {label:34s} peer {p.cpu_ms:6.3f}  wnshell {w.cpu_ms:6.3f}{extra}")
        print("  each round (req/s, in the order run):")
        for leg, label in labels.items():
            print(f"    {label:34s} " + "   ".join(
                f"{s.name} " + " ".join(f"{r.rps:.0f}" for r in s.runs[leg].runs)
                for s in sides))
        for leg in labels:
            for s in sides:
                r = s.runs[leg]
                if not r.ok():
                    all_met = False
                    print(f"  !! {s.name} {leg}: {r.bad} bad answers, {r.non2xx} non-2xx"
                          f"{', socket errors ' + r.socket_errors if r.socket_errors else ''}"
                          f" (a slice that ran out: raise --orders)")
        print("  checks:")
        for s in sides:
            first, dup = s.runs["first"], s.runs["duplicate"]
            ok = (first.done - first.non2xx <= counts[s.name] <= first.sent
                  and after[s.name] == counts[s.name] and first.ok() and dup.ok())
            all_met &= ok
            print(f"    {s.name:8s} {len(s.submitted())} orders submitted; leg 2 answered "
                  f"{first.done} (sent {first.sent}), {counts[s.name]} orders paid after it, "
                  f"{after[s.name]} after {dup.done} duplicates (of {repeats} orders): "
                  f"{'ok' if ok else 'MISMATCH'}")
        for s in sides:
            mibs = rss[s.name]
            worst = max(m[0] for m in mibs) if mibs else 0.0
            met = s is peer or worst <= TARGET_RSS_MIB
            all_met &= met
            print(f"    {s.name:8s} resident memory per worker after the run: "
                  + ", ".join(f"{m[0]:.1f} (anon {m[1]:.1f} + file {m[2]:.1f}; pss {m[3]:.1f})"
                             for m in mibs)
                  + " MiB"
                  + ("" if s is peer else f"  target <= {TARGET_RSS_MIB}: "
                     f"{'MET' if worst <= TARGET_RSS_MIB else 'NOT MET'}"))
        print(f"  all targets: {'MET' if all_met else 'NOT MET'}")
        return 0
    finally:
        for p in reversed(procs):
            stop(p)
        log.close()
        if stop_pg is not None:
            stop_pg()
        if os.environ.get("WNSHELL_BENCH_KEEP"):
            print(f"  (kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
