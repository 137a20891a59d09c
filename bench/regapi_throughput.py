"""regapi throughput: one bounded run on loopback, the same server and worker count.

    python bench/regapi_throughput.py [--workers 2] [--duration 5] [--connections 64]
                                      [--store URL | --store postgresql]

Measures, with ``wrk`` when installed (else a bounded Python load generator):

1. a bare WSGI "hello" app on granian (the same settings ``wnshell serve`` uses, its
   workers placed on CPUs as ``wnshell serve --pin-workers auto`` places its own);
2. ``wnshell serve`` answering the ``.regapi`` API ``echo ${http-qs-x}`` (SQLite store
   unless ``--store``, access log on, as in production) -- and the ratio echo / hello (target >= 0.6, issue 10);
3. the seed's pay-submit API ``/api/demo/pay?id=…&openid=…`` against the WeChat Pay
   simulator: a new order on every request (one unifiedorder round trip each), and the
   same order again and again (its signed ``pay_jsobj`` is reused, no upstream call).

hello and echo are measured twice, alternately, and the best of each is kept (the
machine may be shared).  Everything listens on 127.0.0.1 and stops at the end.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import signal
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
from regapi.server import cpu_plan  # noqa: E402

THREADS = 32        # blocking threads per worker, as `wnshell serve` defaults
TARGET_ECHO = 0.6   # echo API ÷ bare WSGI hello (issue 10)


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"hello\n"]






def settle(port: int, timeout: float = 20.0) -> None:
    """Wait until the server has drained what the previous run left queued (an echo
    answered within 50 ms), so one run's backlog is not timed in the next."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/api/demo/echo?x=settle")
        c.getresponse().read()
        c.close()
        if time.perf_counter() - t < 0.05:
            return
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- load generators -------------------------------------------------------------------
def run_wrk(url: str, duration: float, conns: int, script: str | None = None,
            env: dict | None = None) -> tuple[float, int]:
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{max(1, int(duration))}s", "--latency",
           "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True,
                         timeout=duration + 30, env=dict(os.environ, **(env or {}))).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if not m:
        raise SystemExit("wrk failed:\n" + out)
    errs = re.search(r"Socket errors: (.*)", out)
    if errs:      # e.g. "timeout 3": a request slower than wrk's 10 s timeout
        print(f"  (wrk {url.split('/', 3)[-1][:40]}: socket errors: {errs.group(1)})")
    p99 = re.search(r"\s99%\s+(\S+)", out)
    LAT[url] = p99.group(1) if p99 else "?"
    return float(m.group(1)), int(bad.group(1)) if bad else 0


LAT: dict[str, str] = {}       # url -> p99 latency of its last wrk run


def run_python(url_paths, port: int, duration: float, conns: int) -> tuple[float, int]:
    """Bounded keep-alive load: ``conns`` threads (at most 32), each on one
    connection, cycling through ``url_paths`` (a callable giving the next path)."""
    stop_at = time.monotonic() + duration
    counts, bad = [0] * min(conns, 32), [0]
    lock = threading.Lock()

    def worker(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while time.monotonic() < stop_at:
            c.request("GET", url_paths())
            r = c.getresponse()
            r.read()
            if r.status >= 400:
                with lock:
                    bad[0] += 1
            n += 1
        counts[i] = n
        c.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(len(counts))]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0), bad[0]


def explain_failures(path: str, limit: int = 5) -> list[str]:
    """Counts of non-2xx statuses per API, and the first warning lines (the server's
    log holds no secrets and no query strings)."""
    from collections import Counter
    counts, warnings = Counter(), []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.search(r"regapi\.access \S+ (\S+) (\S+) (\d{3}) ", line)  # ADDR METHOD PATH
            if m and not m.group(3).startswith(("2", "3")):
                counts[f"{m.group(1)} {m.group(2)} -> {m.group(3)}"] += 1
            elif ("WARNING" in line or "ERROR" in line or "rror" in line) \
                    and "Python threads" not in line and len(warnings) < limit:
                warnings.append(line.strip()[:240])
    return [f"{n} x {k}" for k, n in counts.most_common(limit)] + warnings


LUA_IDS = r"""
local ids = {}
for line in io.lines(os.getenv("WRK_IDS")) do ids[#ids + 1] = line end
local openid = os.getenv("WRK_OPENID")
local started = 0
function setup(thread)
  thread:set("offset", started)
  started = started + 1
end
local n = 0
function request()
  n = n + 1
  local i = ((n - 1) * 2 + (offset or 0)) % #ids + 1
  return wrk.format("GET", "/api/demo/pay?id=" .. ids[i] .. "&openid=" .. openid)
end
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--orders", type=int, default=6000,
                    help="orders prepared for the new-order pay-submit run")
    ap.add_argument("--store", default=None,
                    help="URL of an empty store (default: a fresh SQLite file); the word "
                         "'postgresql' starts a throwaway PostgreSQL (fsync on, unix socket)")
    a = ap.parse_args(argv)
    a.duration = min(a.duration, 30.0)
    use_wrk = shutil.which("wrk") is not None
    tool = (f"wrk -t2 -c{a.connections} -d{int(a.duration)}s" if use_wrk
            else f"python keep-alive x{min(a.connections, 32)} for {a.duration:g}s")

    from objstore import open_store
    from bench.pay_vs_peer import install_seed_apis
    from wxpay.simulator import Simulator

    tmp = tempfile.mkdtemp(prefix="wnshell-bench-")
    procs: list[subprocess.Popen] = []
    sim = None
    stop_pg = None
    try:
        store_url = a.store or f"sqlite://{tmp}/store.db"
        if store_url == "postgresql":
            store_url, stop_pg = throwaway_postgresql("bench")
        key = secrets.token_hex(16)
        appid, mch = "wx" + secrets.token_hex(8), "1900000999"
        sim = Simulator(merchants=[(appid, mch, key)]).start()
        port_hello, port_api = free_port(), free_port()
        store = open_store(store_url)
        api = "/home/demo/.regapi/api"
        store.create(f"{api}/echo", "FILE", parents=True, content=b"echo ${http-qs-x}\n")
        install_seed_apis(store, (appid, mch, key), sim.url,
                          f"http://127.0.0.1:{port_api}/api/demo/payresult")
        openid = "o" + secrets.token_hex(8)
        ids = [store.create(f"/home/demo/orders/o{i}", "FILE",
                            {"openid": openid, "total_fee": 1 + i % 500, "or_status": 0},
                            parents=True)["id"] for i in range(a.orders + 1)]
        repeat_id = ids.pop()
        store.close()
        ids_file = os.path.join(tmp, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(ids) + "\n")
        lua = os.path.join(tmp, "pay.lua")
        with open(lua, "w") as f:
            f.write(LUA_IDS)

        log = open(os.path.join(tmp, "server.log"), "wb")
        hello = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers",
             str(a.workers), "--blocking-threads", str(THREADS), "--no-ws", "--host",
             "127.0.0.1", "--port", str(port_hello), "--log-level", "warning",
             "--working-dir", HERE, "regapi_throughput:hello_app"],
            stdout=subprocess.DEVNULL, stderr=log, cwd=HERE)
        procs.append(hello)
        server = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(port_api), "--workers",
             str(a.workers), "--threads", str(THREADS), "--store", store_url],
            stdout=log, stderr=log, cwd=ROOT)
        procs.append(server)
        wait_http(port_hello)
        wait_http(port_api, "/api/demo/echo?x=warm")
        # "the same settings wnshell serve uses": its workers' placement too
        place_workers(hello, cpu_plan(a.workers, "auto"))

        def measure(port, path):
            if use_wrk:
                return run_wrk(f"http://127.0.0.1:{port}{path}", a.duration, a.connections)
            return run_python(lambda: path, port, a.duration, a.connections)

        # warm both (imports, caches), then alternate
        measure(port_hello, "/")
        measure(port_api, "/api/demo/echo?x=hello")
        hello_rps, echo_rps, echo_bad = 0.0, 0.0, 0
        for _ in range(2):
            hello_rps = max(hello_rps, measure(port_hello, "/")[0])
            rps, bad = measure(port_api, "/api/demo/echo?x=hello")
            echo_rps, echo_bad = max(echo_rps, rps), echo_bad + bad

        # pay-submit, a new order each request (unifiedorder against the simulator)
        if use_wrk:
            pay_rps, pay_bad = run_wrk(f"http://127.0.0.1:{port_api}/", a.duration,
                                       a.connections, lua,
                                       {"WRK_IDS": ids_file, "WRK_OPENID": openid})
        else:
            it = iter(ids * 4)
            lock = threading.Lock()

            def nxt():
                with lock:
                    return f"/api/demo/pay?id={next(it)}&openid={openid}"
            pay_rps, pay_bad = run_python(nxt, port_api, a.duration, a.connections)
        settle(port_api)
        # pay-submit, the same order again (pay_jsobj reused, no upstream call)
        rep_rps, rep_bad = measure(port_api, f"/api/demo/pay?id={repeat_id}&openid={openid}")
        sim_calls = sim.requests_seen

        print(f"regapi throughput -- granian, {a.workers} workers x {THREADS} threads, "
              f"{tool}, loopback, {os.cpu_count()} CPUs, store {store_url.split(':', 1)[0]}")
        def p99(port, path):
            v = LAT.get(f"http://127.0.0.1:{port}{path}")
            return f"p99 {v:>7s}" if v else ""

        print(f"  workers' CPUs: hello {placement(hello)}, wnshell {placement(server)} "
              f"(wnshell serve --pin-workers auto; hello placed the same way)")
        print(f"  bare WSGI hello (granian)            {hello_rps:10.0f} req/s   "
              f"{p99(port_hello, '/')}")
        print(f"  echo API  /api/demo/echo?x=hello     {echo_rps:10.0f} req/s   "
              f"{p99(port_api, '/api/demo/echo?x=hello')}  non-2xx {echo_bad}")
        ratio = echo_rps / hello_rps if hello_rps else 0.0
        print(f"  ratio echo / hello                   {ratio:10.2f}         "
              f"target >= 0.6: {'MET' if ratio >= TARGET_ECHO else 'NOT MET'}")
        print(f"  pay-submit, new order each request   {pay_rps:10.0f} req/s   "
              f"{p99(port_api, '/')}  non-2xx {pay_bad}  (one unifiedorder to the "
              f"simulator each; {sim_calls} simulator requests in all)")
        print(f"  pay-submit, same order (reuse)       {rep_rps:10.0f} req/s   "
              f"{p99(port_api, f'/api/demo/pay?id={repeat_id}&openid={openid}')}  "
              f"non-2xx {rep_bad}")
        for p in procs:
            stop(p)                             # flushes the access logs
        log.close()
        why = explain_failures(os.path.join(tmp, "server.log"))
        if why:
            print("  non-2xx answers, from the server log:")
            for line in why:
                print("    " + line)
        return 0
    finally:
        for p in procs:
            stop(p)
        if sim is not None:
            sim.stop()
        if stop_pg is not None:
            stop_pg()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
