"""A served worker's malloc arenas stay capped however many request threads it runs.

Why (docs/regapi.md, "What a worker's memory is"): glibc gives each new thread an arena
of its own up to 8 per core, and every arena keeps the high-water mark of what was
allocated in it; on a 2-core machine the soak's SQLite workers had 16 arenas holding
8-10 MiB free between them, and RssAnon still rising after 7 minutes.  ``wnshell serve``
caps them at ``regapi.server.MALLOC_ARENAS`` (2) unless the operator set
``MALLOC_ARENA_MAX``.  Read through the worker memory probe (``WNSHELL_MEMPROBE``,
regapi/memprobe.py), which reports glibc's own count (``malloc_info``).
"""
import http.client
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from objstore import open_store
from regapi.demo import free_port
from regapi.server import MALLOC_ARENAS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def _burst(port: int, conc: int = 40, per: int = 10) -> dict:
    codes: dict = {}
    lock = threading.Lock()
    start = threading.Barrier(conc)

    def one():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        for _ in range(per):
            try:
                c.request("GET", "/api/demo/obj")
                r = c.getresponse()
                r.read()
                code = r.status
            except (OSError, http.client.HTTPException) as e:
                code = type(e).__name__
                c.close()
            with lock:
                codes[code] = codes.get(code, 0) + 1
        c.close()

    ts = [threading.Thread(target=one) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes


def _arenas_after_burst(tmp_path, env_extra: dict) -> tuple[int, dict]:
    url = f"sqlite://{tmp_path / 's.db'}"
    st = open_store(url)
    st.create("/home/demo/things/t1", "FILE", {"n": 1}, parents=True)
    st.create("/home/demo/.regapi/api/obj", "FILE",
              {"http-header-Content-Type": "application/json"}, parents=True,
              content=b"obj ~/things/t1")
    st.close()
    probe = tmp_path / "probe.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env.update(WNSHELL_MEMPROBE=str(probe), WNSHELL_MEMPROBE_EVERY="0.5", **env_extra)
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(port), "--workers", "1",
             "--store", url, "--no-access-log"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            start_new_session=True, env=env)
    try:
        deadline = time.time() + 30
        while True:
            assert p.poll() is None, log.read_text()
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/")
                if c.getresponse().status == 404:
                    break
            except OSError:
                pass
            assert time.time() < deadline, log.read_text()
            time.sleep(0.1)
        codes = _burst(port)
        seen = probe.stat().st_size if probe.exists() else 0
        deadline = time.time() + 10      # a sample taken after the burst
        while not (probe.exists() and probe.stat().st_size > seen):
            assert time.time() < deadline, log.read_text()
            time.sleep(0.1)
        last = json.loads(probe.read_text().splitlines()[-1])
        return last["glibc"]["arenas"], codes
    finally:
        p.terminate()
        try:
            p.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()


@pytest.mark.skipif(not _glibc(), reason="malloc arenas are glibc's")
def test_served_worker_keeps_at_most_two_malloc_arenas(tmp_path):
    arenas, codes = _arenas_after_burst(tmp_path, {})
    assert codes == {200: 400}, codes
    assert 1 <= arenas <= MALLOC_ARENAS, arenas


@pytest.mark.skipif(not _glibc(), reason="malloc arenas are glibc's")
def test_operators_malloc_arena_max_is_left_alone(tmp_path):
    # the burst's 40 threads would each get an arena of their own, up to the limit
    arenas, codes = _arenas_after_burst(tmp_path, {"MALLOC_ARENA_MAX": "4"})
    assert codes == {200: 400}, codes
    assert arenas == 4, arenas
