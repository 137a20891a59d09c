"""What every bench needs to run servers on loopback: a free port, waiting until a
server answers (or has died), a throwaway PostgreSQL (``--store postgresql``), and
placing a granian server's workers on CPUs as ``wnshell serve --pin-workers`` does."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str = "/", proc: subprocess.Popen | None = None,
              timeout: float = 30.0) -> None:
    """Until GET ``path`` on 127.0.0.1:``port`` answers; SystemExit when ``proc`` (the
    server) exits first or ``timeout`` passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited ({proc.returncode})")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def throwaway_postgresql(schema: str):
    """``(url, stop)``: a fresh schema ``schema`` on a throwaway PostgreSQL server with
    fsync on (Debian's binaries, as the tests use); SystemExit saying why when they are
    missing."""
    from tests.objstore import pg_backend
    reason = pg_backend.missing_reason()
    if reason:
        raise SystemExit(reason)
    pg = pg_backend.PgServer(pg_backend.find_bindir(), fsync=True)
    return pg.fresh_schema_url(schema), pg.stop


def worker_pids(proc: subprocess.Popen) -> list[int]:
    """The server's workers in the order granian spawned them: its children forked
    from it (their command line is its own; wnshell's sweeper beside them is not)."""
    def cmdline(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read()
        except OSError:
            return None
    own = cmdline(proc.pid)
    kids = []
    for task in os.listdir(f"/proc/{proc.pid}/task"):
        try:
            with open(f"/proc/{proc.pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return sorted(k for k in kids if cmdline(k) == own)


def place_workers(proc: subprocess.Popen, plan: list[int]) -> None:
    """Worker i of the server ``proc`` on CPU ``plan[i]`` (``regapi.server.cpu_plan``),
    every thread of it (the threads it makes later inherit it from theirs): what
    ``wnshell serve --pin-workers`` does for its own workers."""
    for pid, cpu in zip(worker_pids(proc), plan):
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(task), {cpu})
            except OSError:
                pass            # a thread that has just ended


def placement(proc: subprocess.Popen) -> str:
    """Where each worker may run, e.g. "0 | 1" (its main thread's allowed CPUs)."""
    out = []
    for pid in worker_pids(proc):
        try:
            with open(f"/proc/{pid}/status") as f:
                out += [line.split(":", 1)[1].strip() for line in f
                        if line.startswith("Cpus_allowed_list")]
        except OSError:
            out.append("?")
    return " | ".join(out)
