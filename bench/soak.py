"""Soak: ``wnshell serve`` under a mixed load for minutes; does it stay up and flat?

    python bench/soak.py [--duration 600] [--workers 2] [--store URL | --store postgresql]
                         [--clients 8] [--thread-idle 5] [--bucket 30] [--hups 2]
                         [--warmup-cycles 2] [--memprobe FILE] [--samples FILE]

One ``wnshell serve`` (2 workers, a SQLite file in a temp folder unless ``--store``;
``postgresql`` starts a throwaway PostgreSQL from Debian's binaries), the project's
WeChat Pay simulator (``wxpay.simulator``) as WeChat, everything on 127.0.0.1.  The
load runs in cycles until ``--duration`` seconds have passed:

* steady (20 s): ``--clients`` threads mixing echo and object reads, pay-submits of
  fresh orders (one unifiedorder each), re-submits of a submitted order, payments in
  the simulator (its notification, first time; some sent twice in a row or five
  times at once: duplicates), and hostile requests (shell syntax and path escapes in
  the query, ``..`` in the path, an oversized body, a forged notification, unknown
  users and orders, a 16 KiB URL) -- each with the statuses it may answer;
* a burst: 400 requests over 40 connections;
* an idle gap of ``--thread-idle`` + 3 s: nothing at all, so granian retires the
  burst's request threads (the condition of the worker segfault, docs/regapi.md);
* at 40 % and 70 % of the run: SIGHUP (the API folder is synced again and the
  workers are respawned gracefully).

It prints: requests by kind and status; p50/p99 per ``--bucket`` seconds as an ASCII
chart; worker deaths (granian's "Unexpected exit", faulthandler's "Fatal Python
error", and new ``segfault`` lines in the kernel log when readable); RSS of every
worker at the end of idle gaps: at its start -- the end of its warm-up, its first
``--warmup-cycles`` cycles (2; 1 in runs under 5 minutes) counted from the first gap
20 s after its spawn, in which it served every kind of request, bursts and gaps -- and
at its end, and the least-squares slope over the last half of its samples (a leak
keeps a slope; a warm-up flattens); store growth against the orders made; every non-2xx
answer that was not expected.  And the goals: 0 worker deaths, 0 unexpected 5xx, RSS
growth <= 10 % per worker, store growth only from the orders (request objects expire).
Exit status 0 when every goal is met.

``--memprobe FILE`` has every worker append a memory sample to FILE every 10 s
(regapi/memprobe.py: glibc heap in use and free, arenas, SQLite's memory, Python's
allocated blocks); ``--samples FILE`` writes the RSS samples as JSON; ``--hups 0``
lets the workers live the whole run.

The load generator, the simulator and the server share the machine: latencies include
the generator's own GIL and the other jobs running there.  Every loop is bounded by
the deadline; every process is stopped at the end.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.loopback import free_port, throwaway_postgresql  # noqa: E402  (after ROOT is on sys.path)

USER = "demo"
BURST, BURST_CONNS = 400, 40
STEADY = 20.0
RSS_WARM = 20.0          # a worker's cycles count from its first idle gap this long after spawn
WARM_CYCLES = 2          # its "start" RSS: the end of its 2nd cycle (--warmup-cycles)
RSS_GOAL = 0.10
HUP_AT = (0.4, 0.7)      # SIGHUP re-syncs at these fractions of the run

ECHO_API = "echo ${http-qs-x?}\n"
THING_API = "obj ~/things/t${http-qs-n?0}\n"


# -- helpers ----------------------------------------------------------------------------


class Stats:
    """Every answer: (kind, status) counts, latencies by time bucket, unexpected ones."""

    def __init__(self, t0: float, bucket: float):
        self.t0, self.bucket = t0, bucket
        self.lock = threading.Lock()
        self.by_kind: dict[str, Counter] = defaultdict(Counter)
        self.lat: dict[int, list[float]] = defaultdict(list)
        self.unexpected: list[tuple] = []
        self.unexpected_n: Counter = Counter()

    def add(self, kind: str, status, seconds: float | None, ok: bool, detail: str = ""):
        with self.lock:
            self.by_kind[kind][status] += 1
            if seconds is not None:
                self.lat[int((time.monotonic() - self.t0) // self.bucket)].append(seconds)
            if not ok:
                self.unexpected_n[(kind, status)] += 1
                if self.unexpected_n[(kind, status)] <= 3:
                    self.unexpected.append((round(time.monotonic() - self.t0, 1), kind,
                                            status, detail[:160]))


class Client:
    """One keep-alive HTTP/1.1 connection to the server (reconnects after an error)."""

    def __init__(self, port: int):
        self.port = port
        self.c = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, retry: bool = True):
        """(status or error name, body bytes, seconds)."""
        t = time.perf_counter()
        for attempt in ((0, 1) if retry else (1,)):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=40)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data, time.perf_counter() - t
            except (OSError, http.client.HTTPException) as e:
                self.close()
                # a keep-alive connection the server closed while idle: retry once on a
                # fresh one (what every HTTP client does); anything else is an error
                if attempt == 0 and isinstance(e, (http.client.RemoteDisconnected,
                                                   BrokenPipeError, ConnectionResetError)):
                    t = time.perf_counter()
                    continue
                return type(e).__name__, b"", time.perf_counter() - t
        return "unreachable", b"", 0.0

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def rss_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, RssAnon) in KiB.  RssAnon -- the heap, thread stacks -- is what a leak
    grows; VmRSS also counts the pages of the SQLite file the workers read through
    their memory map, which grow with the store itself."""
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    vals[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return None
    if "VmRSS" not in vals:
        return None
    return vals["VmRSS"], vals.get("RssAnon", vals["VmRSS"])


def children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def is_sweeper(pid: int) -> bool:
    """The ``--sweep`` process beside the workers (``commands.weixin.sweeper``): not a
    worker, so not judged as one."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"commands.weixin.sweeper" in f.read()
    except OSError:
        return False


def threads_of(pid: int) -> set[int]:
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    except OSError:
        return set()


def dmesg_segfaults() -> list[str] | None:
    try:
        r = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return [ln for ln in r.stdout.splitlines() if "segfault" in ln]


def store_size(store_url: str, store) -> int | None:
    """Bytes on disk: the SQLite file and its WAL, or the PostgreSQL schema's tables."""
    if store_url.startswith("sqlite://"):
        from objstore import url_path
        p = url_path(store_url)
        return sum(os.path.getsize(p + s) for s in ("", "-wal") if os.path.exists(p + s))
    try:
        import psycopg
        with psycopg.connect(store_url, autocommit=True) as c:
            return c.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'").fetchone()[0]
    except Exception:  # noqa: BLE001 - a report line, not a reason to fail the soak
        return None


# -- the load -----------------------------------------------------------------------------
class Soak:
    def __init__(self, a, store_url: str, tmp: str):
        from objstore import open_store
        from regapi.demo import PAY_API, PAYRESULT_API, WXCONF
        from wxpay.simulator import Simulator
        self.a, self.store_url, self.tmp = a, store_url, tmp
        key = secrets.token_hex(16)
        self.appid, self.mch = "wx" + secrets.token_hex(8), "1900000555"
        self.sim = Simulator(merchants=[(self.appid, self.mch, key)]).start()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.store = open_store(store_url)
        self.apis = os.path.join(tmp, "apis")
        os.makedirs(self.apis)
        for name, text, meta in (
                ("echo", ECHO_API, None), ("thing", THING_API, None),
                ("pay", PAY_API, {"http-header-Content-Type": "application/json"}),
                ("payresult", PAYRESULT_API, {"http-header-Content-Type": "text/xml"})):
            with open(os.path.join(self.apis, name + ".regapi"), "w") as f:
                f.write(text)
            if meta:
                with open(os.path.join(self.apis, name + ".regapi.meta.json"), "w") as f:
                    json.dump(meta, f)
        self.store.create(f"/home/{USER}/.weixin/xxx/wxconf", "FILE", parents=True,
                          content=WXCONF.format(
                              appid=self.appid, appsecret=secrets.token_hex(16),
                              mch_id=self.mch, pay_key=key,
                              notify_url=f"{self.base}/api/{USER}/payresult",
                              api_base=self.sim.url).encode())
        for n in range(10):
            self.store.create(f"/home/{USER}/things/t{n}", "FILE", {"n": n, "label": "x" * n},
                              parents=True)
        self.openid = "o" + secrets.token_hex(8)
        self.lock = threading.Lock()
        self.pay_lock = threading.Lock()        # simulator faults apply to the next pay
        self.orders: list[str] = []             # made by the soak (store growth)
        self.submitted: list[tuple[str, str]] = []   # (order id, prepay_id)
        self.paid: dict[str, tuple[str, int]] = {}   # out_trade_no -> (order id, copies)
        self.stop = threading.Event()
        self.quiet = threading.Event()          # set: steady clients pause (burst, gap)
        self.stats: Stats | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(tmp, "server.log")
        self.rss: dict[int, list[tuple[float, int]]] = defaultdict(list)
        self.rss_quiet: dict[int, list[tuple[float, int]]] = defaultdict(list)
        self.nthreads: dict[str, list[int]] = defaultdict(list)
        self.spawned: dict[int, float] = {}
        self.tids: set[int] = set()
        self.hups = 0

    def seed(self, n: int):
        """``n`` paid orders made before the server starts (a store that is not new:
        its B-trees as deep as a used one's); counted as "before", not as growth."""
        for k in range(n):
            self.store.create(f"/home/{USER}/orders/seed{k}", "FILE",
                              {"openid": self.openid, "total_fee": 1 + k % 99999,
                               "or_status": 2}, parents=True)

    # server
    def start_server(self):
        self.log = open(self.log_path, "wb")
        env = dict(os.environ)
        if self.a.memprobe:
            env["WNSHELL_MEMPROBE"] = os.path.abspath(self.a.memprobe)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(self.port),
             "--workers", str(self.a.workers), "--store", self.store_url,
             "--regapi-dir", self.apis, "--user", USER,
             "--thread-idle", str(self.a.thread_idle)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            start_new_session=True, env=env)
        c = Client(self.port)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("server exited:\n" + self.log_text()[-3000:])
            st, _, _ = c.request("GET", "/api/demo/echo?x=warm")
            if st == 200:
                c.close()
                return
            time.sleep(0.1)
        raise SystemExit("server did not start:\n" + self.log_text()[-3000:])

    def log_text(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def sample(self, phase: str = ""):
        """RSS of each current worker (``phase`` "quiet": at the end of an idle gap, the
        like-for-like point RSS growth is judged on), and the thread ids seen in them."""
        now = time.monotonic()
        for pid in children(self.proc.pid):
            if is_sweeper(pid):
                continue
            self.spawned.setdefault(pid, now)
            kb = rss_kb(pid)
            if kb:
                self.rss[pid].append((now, kb))
                if phase == "quiet":
                    self.rss_quiet[pid].append((now, kb))
            tids = threads_of(pid)
            self.tids |= tids
            if phase:
                self.nthreads[phase].append(len(tids))

    # one request of each kind --------------------------------------------------------
    def echo(self, c: Client, kind="echo"):
        x = secrets.token_hex(4)
        st, body, t = c.request("GET", f"/api/{USER}/echo?x={x}")
        self.stats.add(kind, st, t, st == 200 and body.strip() == x.encode(),
                       body.decode("utf-8", "replace"))

    def thing(self, c: Client, kind="obj"):
        n = random.randrange(10)
        st, body, t = c.request("GET", f"/api/{USER}/thing?n={n}")
        self.stats.add(kind, st, t, st == 200 and f'"n":{n}'.encode() in body.replace(b" ", b""),
                       body.decode("utf-8", "replace"))

    def submit(self, c: Client):
        o = self.store.create(f"/home/{USER}/orders/s{secrets.token_hex(6)}", "FILE",
                              {"openid": self.openid, "total_fee": random.randint(1, 99999),
                               "or_status": 0}, parents=True)
        with self.lock:
            self.orders.append(o["id"])
        st, body, t = c.request("GET", f"/api/{USER}/pay?id={o['id']}&openid={self.openid}")
        ok = False
        if st == 200:
            try:
                pkg = json.loads(body)["package"]
                ok = pkg.startswith("prepay_id=")
                with self.lock:
                    self.submitted.append((o["id"], pkg[10:]))
            except (ValueError, KeyError, TypeError):
                pass
        self.stats.add("submit", st, t, ok, body.decode("utf-8", "replace"))

    def resubmit(self, c: Client):
        with self.lock:
            if not self.submitted:
                return
            oid, prepay = random.choice(self.submitted[-200:])
        st, body, t = c.request("GET", f"/api/{USER}/pay?id={oid}&openid={self.openid}")
        # the same order again: its signed pay_jsobj again -- or, once it is paid, a
        # clear 4xx (an order that is paid cannot be paid again)
        ok = (st == 200 and prepay.encode() in body) or (isinstance(st, int) and 400 <= st < 500)
        self.stats.add("resubmit", st, t, ok, body.decode("utf-8", "replace"))

    def pay(self, c: Client):
        with self.lock:
            if not self.submitted:
                return
            # one of the newest: an order older than its time_expire (10 minutes in
            # long runs) is closed by the sweeper and no longer payable
            n = len(self.submitted)
            oid, prepay = self.submitted.pop(random.randrange(max(0, n - 500), n))
        r = random.random()
        copies = 2 if r < 0.15 else 5 if r < 0.20 else 1
        with self.pay_lock:
            if copies == 2:
                self.sim.set_faults({"duplicate_notify": 2, "count": 1})
            elif copies == 5:
                self.sim.set_faults({"concurrent_notify": 5, "count": 1})
            try:
                res = self.sim.pay(prepay_id=prepay)
            except (LookupError, ValueError) as e:
                self.sim.clear_faults()
                self.stats.add("sim-pay", "refused", None, False, str(e))
                return
        with self.lock:
            self.paid[res["out_trade_no"]] = (oid, res["notify_copies"])

    def hostile(self, c: Client):
        h = random.randrange(9)
        if h == 0:      # shell syntax in a value: data, never code
            x = "$(cat${IFS}/etc/passwd);`id`;echo${IFS}pwned"
            from urllib.parse import quote
            st, body, t = c.request("GET", f"/api/{USER}/echo?x={quote(x)}")
            ok = st == 200 and b"root:" not in body and b"uid=" not in body
            kind = "hostile-shell"
        elif h == 1:    # out of the path
            st, body, t = c.request("GET", f"/api/{USER}/../../etc/passwd")
            ok, kind = st in (400, 404), "hostile-dotdot"
        elif h == 2:    # a value naming another user's object
            st, body, t = c.request("GET", f"/api/{USER}/thing?n=/../../../root/x")
            ok, kind = st in (400, 403, 404, 500) and b"Traceback" not in body, "hostile-objpath"
        elif h == 3:    # 2 MiB body
            st, body, t = c.request("POST", f"/api/{USER}/payresult",
                                    body=b"<xml>" + b"a" * (2 << 20), retry=False)
            # 413 -- or the server answered 413 and closed before the whole body was
            # sent, which the client sees as a broken pipe / reset
            ok = st in (413, "BrokenPipeError", "ConnectionResetError")
            kind = "hostile-bigbody"
        elif h == 4:    # a forged notification (bad signature): never a paid order
            forged = ("<xml><return_code>SUCCESS</return_code><result_code>SUCCESS"
                      f"</result_code><appid>{self.appid}</appid><mch_id>{self.mch}</mch_id>"
                      "<out_trade_no>forged1</out_trade_no><total_fee>1</total_fee>"
                      "<transaction_id>4200000</transaction_id><sign>BAD</sign></xml>")
            st, body, t = c.request("POST", f"/api/{USER}/payresult", body=forged.encode(),
                                    headers={"Content-Type": "text/xml"})
            ok = isinstance(st, int) and (400 <= st < 500 or (st == 200 and b"FAIL" in body))
            kind = "hostile-forged-notify"
        elif h == 5:    # an unknown user's API
            st, body, t = c.request("GET", "/api/nosuchuser/echo?x=1")
            ok, kind = st == 404, "hostile-nouser"
        elif h == 6:    # an order that does not exist
            st, body, t = c.request("GET", f"/api/{USER}/pay?id=zz{secrets.token_hex(8)}&openid=o")
            ok, kind = isinstance(st, int) and 400 <= st < 500, "hostile-noorder"
        elif h == 7:    # 16 KiB URL
            st, body, t = c.request("GET", f"/api/{USER}/echo?x={'a' * 16384}")
            ok, kind = st in (200, 400, 414, 431), "hostile-longurl"
        else:           # bad UTF-8 / percent-encoding
            st, body, t = c.request("GET", f"/api/{USER}/echo?x=%ff%fe%zz")
            ok, kind = st in (200, 400), "hostile-badutf8"
        self.stats.add(kind, st, t, ok, body.decode("utf-8", "replace"))

    # phases ------------------------------------------------------------------------------
    def steady_client(self, i: int):
        c = Client(self.port)
        rnd = random.Random(i)
        kinds = ([self.echo] * 35 + [self.thing] * 20 + [self.submit] * 15 +
                 [self.resubmit] * 8 + [self.pay] * 10 + [self.hostile] * 12)
        while not self.stop.is_set():
            if self.quiet.is_set():
                c.close()           # the gap is really idle: no keep-alive either
                self.quiet_wait()
                continue
            rnd.choice(kinds)(c)
            time.sleep(rnd.uniform(0, 0.02))
        c.close()

    def quiet_wait(self):
        while self.quiet.is_set() and not self.stop.is_set():
            time.sleep(0.05)

    def burst(self):
        per = BURST // BURST_CONNS

        def one(k):
            c = Client(self.port)
            for j in range(per):
                (self.echo if (k + j) % 2 else self.thing)(c, "burst")
            c.close()
        ts = [threading.Thread(target=one, args=(k,)) for k in range(BURST_CONNS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def sampler(self):
        while not self.stop.wait(5.0):
            self.sample()

    def run(self) -> float:
        a = self.a
        t0 = time.monotonic()
        self.stats = Stats(t0, a.bucket)
        end = t0 + a.duration
        hups = [t0 + a.duration * f for f in HUP_AT[:a.hups]]
        self.sample()
        clients = [threading.Thread(target=self.steady_client, args=(i,), daemon=True)
                   for i in range(a.clients)]
        sampler = threading.Thread(target=self.sampler, daemon=True)
        for t in clients + [sampler]:
            t.start()
        gap = a.thread_idle + 3
        while time.monotonic() < end:
            if hups and time.monotonic() >= hups[0]:
                hups.pop(0)
                self.proc.send_signal(signal.SIGHUP)
                self.hups += 1
            left = end - time.monotonic()
            time.sleep(max(0.0, min(STEADY, left)))
            if time.monotonic() >= end:
                break
            self.quiet.set()
            time.sleep(0.5)             # let the steady requests finish
            self.burst()
            self.sample("burst")
            time.sleep(max(0.0, min(gap, end - time.monotonic())))
            self.sample("quiet")
            self.quiet.clear()
        self.stop.set()
        self.quiet.clear()
        for t in clients:
            t.join(timeout=60)
        self.sample()
        return time.monotonic() - t0


# -- the report -------------------------------------------------------------------------
def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def fit_slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y) points (y per unit of t)."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


def ms(s: float) -> str:
    return f"{s * 1000:7.1f}ms" if s < 10 else f"{s:7.2f}s "


def chart(stats: Stats, width: int = 40) -> list[str]:
    """One row per bucket: '=' up to p50, '#' on to p99 (linear; the widest row is the
    highest p99)."""
    rows = sorted(stats.lat.items())
    top = max((pct(v, 0.99) for _, v in rows), default=0.0) or 1.0
    out = [f"  {'t (s)':>11} {'answers':>8} {'p50':>9} {'p99':>9}  "
           f"'=' to p50, '#' to p99; one mark = {ms(top / width).strip()}"]
    for b, v in rows:
        p50, p99 = pct(v, 0.5), pct(v, 0.99)
        n50 = round(p50 / top * width)
        n99 = max(1, round(p99 / top * width))
        lo, hi = int(b * stats.bucket), int((b + 1) * stats.bucket)
        out.append(f"  {lo:>5}-{hi:<5} {len(v):>8} {ms(p50)} {ms(p99)}  "
                   f"{'=' * n50}{'#' * max(0, n99 - n50)}")
    return out


def report(s: Soak, elapsed: float, before: dict, after: dict, segv0, segv1) -> int:
    a, st = s.a, s.stats
    log = s.log_text()
    goals = []
    print(f"soak -- wnshell serve, {a.workers} workers x 32 threads (--thread-idle "
          f"{a.thread_idle}), store {s.store_url.split(':', 1)[0]}, {elapsed:.0f} s, "
          f"{a.clients} steady clients + bursts of {BURST} over {BURST_CONNS} connections, "
          f"{s.hups} SIGHUP re-syncs; loopback, {os.cpu_count()} CPUs shared with other jobs "
          f"(load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print("\nrequests by kind and status:")
    total = Counter()
    for kind in sorted(st.by_kind):
        c = st.by_kind[kind]
        total.update(c)
        print(f"  {kind:<22} " + "  ".join(f"{k}:{v}" for k, v in sorted(c.items(), key=str)))
    print(f"  {'all':<22} " + "  ".join(f"{k}:{v}" for k, v in sorted(total.items(), key=str)))

    # notifications, as the simulator saw them
    firsts, dups, retries = Counter(), Counter(), Counter()
    delivered = 0
    for no, (oid, copies) in list(s.paid.items()):
        snap = s.sim.order(no) or {}
        note = snap.get("notify") or {}
        for att in note.get("log", []):
            into = retries if att.get("n", 1) > 1 else firsts if att.get("copy", 0) == 0 \
                else dups
            into[att.get("status") or "error"] += 1
        delivered += note.get("status") == "delivered"
    for name, c in (("notify first time", firsts), ("notify duplicates", dups),
                    ("notify retries", retries)):
        print(f"  {name:<22} " + ("  ".join(f"{k}:{v}" for k, v in sorted(c.items(), key=str))
                                  or "none"))
    paid_ok = sum(1 for oid, _ in s.paid.values()
                  if (s.store.get(oid) or {}).get("or_status") == 2)
    transitions = len(re.findall(r"wnshell\.weixin weixin: order \S+ paid", log))
    print(f"  paid in the simulator: {len(s.paid)}; notification delivered (SUCCESS): "
          f"{delivered}; orders paid in the store: {paid_ok}; 'paid' transitions in the "
          f"server log: {transitions} (one per order, duplicates included)")
    n5 = sum(v for (k, code), v in st.unexpected_n.items() if isinstance(code, int) and code >= 500)
    n5 += sum(v for k, v in firsts.items() if isinstance(k, int) and k >= 500)
    n5 += sum(v for k, v in dups.items() if isinstance(k, int) and k >= 500)
    n5 += sum(v for k, v in retries.items() if isinstance(k, int) and k >= 500)
    conn_err = sum(v for (k, code), v in st.unexpected_n.items() if not isinstance(code, int))

    print(f"\nlatency per {a.bucket:g} s (all answers; bursts and gaps included):")
    for line in chart(st):
        print(line)

    deaths = log.count("Unexpected exit from worker")
    fatal = log.count("Fatal Python error")
    print(f"\nworker deaths: {deaths} (granian 'Unexpected exit'), faulthandler reports: {fatal}")
    if segv0 is None or segv1 is None:
        print("  kernel log: not readable here")
        new_segv = []
    else:
        new_segv = segv1[len(segv0):] if segv1[:len(segv0)] == segv0 else \
            [x for x in segv1 if x not in set(segv0)]
        ours = [x for x in new_segv
                if any(f"[{t}]" in x for t in s.tids)]
        print(f"  kernel log: {len(new_segv)} new segfault line(s) on the machine during the "
              f"run, {len(ours)} in a thread of this run's workers")
        for x in new_segv[:5]:
            print("    " + x[:200])
    goals.append(("0 worker deaths", deaths == 0 and fatal == 0,
                  f"{deaths} deaths, {fatal} crash reports"))

    nb, nq = s.nthreads.get("burst", []), s.nthreads.get("quiet", [])
    if nb and nq:
        print(f"  threads per worker (mean of {len(nq)} samples): {sum(nb) / len(nb):.0f} "
              f"after a burst, {sum(nq) / len(nq):.0f} after the idle gap that follows "
              "(the burst's request threads were retired)")

    warm = a.warmup_cycles
    print("\nRSS per worker (RSS = VmRSS, anon = RssAnon: heap and stacks, what a leak "
          "grows; VmRSS also counts the store's memory-mapped file pages), at the end of "
          f"idle gaps; start = the end of the worker's warm-up: its first {warm} "
          f"cycle{'s' if warm != 1 else ''} (steady mix of every request kind, a burst, an "
          f"idle gap; counted from the first gap >= {RSS_WARM:g} s after its spawn), so "
          "lazy imports, caches and malloc arenas have reached their working size; "
          "SIGHUP respawns make new lines:")
    worst = 0.0
    judged = 0
    slopes = []
    for pid, samples in sorted(s.rss.items(), key=lambda kv: s.spawned.get(kv[0], 0)):
        born = s.spawned.get(pid, samples[0][0])
        quiet = [(t, v) for t, v in s.rss_quiet.get(pid, []) if t - born >= RSS_WARM]
        quiet = quiet[warm - 1:]
        life = samples[-1][0] - born
        peak = max(v[0] for _, v in samples)
        if len(quiet) < 2:
            print(f"  pid {pid:>7}  lived {life:6.0f} s  peak RSS {peak / 1024:6.1f} MiB  "
                  "(fewer than 2 quiet samples after its warm-up: not judged)")
            continue
        (r0, a0), (r1, a1) = quiet[0][1], quiet[-1][1]
        growth = (a1 - a0) / a0
        worst = max(worst, growth)
        judged += 1
        print(f"  pid {pid:>7}  lived {life:4.0f} s  over {quiet[-1][0] - quiet[0][0]:4.0f} s: "
              f"anon {a0 / 1024:6.1f} -> {a1 / 1024:6.1f} MiB {growth * 100:+6.1f} %   "
              f"RSS {r0 / 1024:6.1f} -> {r1 / 1024:6.1f} MiB {(r1 - r0) / r0 * 100:+6.1f} %   "
              f"peak RSS {peak / 1024:6.1f} MiB")
        if len(quiet) >= 3:
            pts = [(t, v[1]) for t, v in quiet]
            half = pts[len(pts) // 2:] if len(pts) >= 8 else None
            slopes.append((pid, a0, fit_slope(pts), pts[-1][0] - pts[0][0], len(pts),
                           fit_slope(half) if half else None,
                           half[-1][0] - half[0][0] if half else 0, len(half or ())))
    if slopes:
        print("  slope of anon (least squares over the judged samples, and over their last "
              "half when there are 8 or more; a leak keeps a slope, a warm-up flattens; one "
              "sample varies by about 1 MiB with the threads alive):")
        for pid, a0, k, span, n, k2, span2, n2 in slopes:
            line = (f"    pid {pid:>7}  {k * 60 / 1024:+6.2f} MiB/min over {span:4.0f} s "
                    f"({n:2d} samples) = {k * 600 / a0 * 100:+6.1f} % per 10 min")
            if k2 is not None:
                line += (f";  last half {k2 * 60 / 1024:+6.2f} MiB/min over {span2:4.0f} s "
                         f"= {k2 * 600 / a0 * 100:+6.1f} % per 10 min")
            print(line)
    goals.append((f"RSS (anon) growth <= {RSS_GOAL * 100:.0f} % per worker",
                  None if judged == 0 else worst <= RSS_GOAL,
                  f"worst {worst * 100:+.1f} % of {judged} workers judged, after "
                  f"{warm} warm-up cycle{'s' if warm != 1 else ''}" if judged else
                  "no worker lived through 2 idle gaps after its warm-up: run longer"))

    print("\nstore:")
    made = len(s.orders)
    grew = after["objects"] - before["objects"]
    other = grew - made
    print(f"  objects outside the request-object folder {before['objects']} -> "
          f"{after['objects']} (+{grew}); orders made by the load {made}; anything else "
          f"{other:+d}; live request objects (they expire after 60 s and are purged) "
          f"{before['reqobjs']} -> {after['reqobjs']}")
    if before["bytes"] is not None and after["bytes"] is not None:
        before["bytes"], after["bytes"] = int(before["bytes"]), int(after["bytes"])
        db = after["bytes"] - before["bytes"]
        print(f"  size {before['bytes'] / 1e6:.2f} MB -> {after['bytes'] / 1e6:.2f} MB "
              f"({db / 1e6:+.2f} MB, {db / max(1, made):.0f} bytes per order)")
    goals.append(("store growth only from the orders", other == 0,
                  f"{made} orders, {other:+d} other objects"))

    print("\nunexpected answers (first 3 of each kind/status):")
    if not st.unexpected:
        print("  none")
    for t, kind, code, detail in st.unexpected[:40]:
        print(f"  t={t:>6}s {kind:<22} {code}  {detail!r}")
    for (kind, code), v in sorted(st.unexpected_n.items(), key=str):
        print(f"  {kind:<22} {code}: {v} in all")
    goals.append(("0 unexpected 5xx", n5 == 0, f"{n5}"))
    goals.append(("every payment recorded exactly once",
                  paid_ok == len(s.paid) == delivered == transitions,
                  f"{paid_ok}/{len(s.paid)} in the store, {transitions} transitions"))
    if conn_err:
        print(f"  ({conn_err} connection errors: see above)")

    print("\ngoals:")
    for name, ok, what in goals:
        word = "n/a" if ok is None else "MET" if ok else "NOT MET"
        print(f"  {name:<40} {word:<8} ({what})")
    return 0 if all(ok is not False for _, ok, _ in goals) else 1


def store_counts(store, url: str) -> dict:
    """Objects outside the request-object folder (one query: request objects expire on
    their own clock), the live request objects, and bytes on disk."""
    from regapi.request import tmp_dir
    tmpd = store.fetch(tmp_dir(USER))
    return {"objects": store.count({"pid": "!" + tmpd["id"]}),
            "reqobjs": store.count({"pid": tmpd["id"]}),
            "bytes": store_size(url, store)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--store", default=None,
                   help="store URL; 'postgresql' starts a throwaway PostgreSQL "
                        "(default: a SQLite file in a temp folder)")
    p.add_argument("--clients", type=int, default=8, help="steady client threads")
    p.add_argument("--thread-idle", type=int, default=5,
                   help="wnshell serve --thread-idle (5: retire the burst's threads in "
                        "every gap)")
    p.add_argument("--bucket", type=float, default=None,
                   help="seconds per latency row (default duration/20, at least 10)")
    p.add_argument("--hups", type=int, default=len(HUP_AT), choices=range(len(HUP_AT) + 1),
                   help="SIGHUP re-syncs (default 2, at 40 %% and 70 %%; 0: the workers "
                        "live the whole run)")
    p.add_argument("--memprobe", metavar="FILE", default=None,
                   help="workers append a memory sample per 10 s to FILE "
                        "(regapi/memprobe.py; WNSHELL_MEMPROBE_TRACE=1 adds tracemalloc)")
    p.add_argument("--seed-orders", type=int, default=0, metavar="N",
                   help="paid orders put in the store before the server starts (default 0)")
    p.add_argument("--samples", metavar="FILE", default=None,
                   help="write every RSS sample of every worker to FILE (JSON)")
    p.add_argument("--warmup-cycles", type=int, default=None,
                   help="cycles (steady mix, burst, idle gap) of a worker's life before "
                        f"its start RSS is taken (default {WARM_CYCLES}; 1 in runs "
                        "shorter than 5 minutes)")
    a = p.parse_args(argv)
    if a.warmup_cycles is None:
        a.warmup_cycles = WARM_CYCLES if a.duration >= 300 else 1
    if a.bucket is None:
        a.bucket = max(10.0, round(a.duration / 20))
    tmp = tempfile.mkdtemp(prefix="wnshell-soak-")
    stop_pg = None
    s = None
    try:
        store_url = a.store or f"sqlite://{tmp}/store.db"
        if store_url == "postgresql":
            store_url, stop_pg = throwaway_postgresql("soak")
        s = Soak(a, store_url, tmp)
        if a.seed_orders:
            s.seed(a.seed_orders)
        s.start_server()
        segv0 = dmesg_segfaults()
        # the request-object folder exists after the first notification; make it now so
        # that the counts before and after compare like with like
        for d in (f"/home/{USER}/.regapi/tmp", f"/home/{USER}/orders"):
            if s.store.fetch(d) is None:
                s.store.create(d, "DIR", parents=True)
        before = store_counts(s.store, store_url)
        elapsed = s.run()
        # let the last notifications and retries land, and expired request objects go
        deadline = time.time() + 30
        while time.time() < deadline and any(
                ((s.sim.order(no) or {}).get("notify") or {}).get("status") == "pending"
                for no in list(s.paid)[-200:]):
            time.sleep(0.5)
        s.store.purge_expired()
        after = store_counts(s.store, store_url)
        s.sample()
        segv1 = dmesg_segfaults()
        s.proc.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if a.samples:
            with open(a.samples, "w") as f:
                json.dump({"spawned": s.spawned, "rss": s.rss, "quiet": s.rss_quiet,
                           "t0": s.stats.t0}, f)
        return report(s, elapsed, before, after, segv0, segv1)
    finally:
        if s is not None:
            if s.proc is not None and s.proc.poll() is None:
                try:
                    os.killpg(s.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                s.proc.wait()
            s.sim.stop()
            s.store.close()
        if stop_pg is not None:
            stop_pg()
        if os.environ.get("SOAK_KEEP"):
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
