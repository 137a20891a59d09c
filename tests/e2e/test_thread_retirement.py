"""Bursts with idle gaps: granian retires the idle request threads and no worker dies.

The crash this guards against (docs/regapi.md, "Serving without crashes"): each request
thread's SQLite connection was closed as the thread was retired, inside CPython 3.11's
final PyGILState_Release, and sqlite3's function destructor re-entered it: a segfault
in libpython, the worker respawned, its requests lost.  ``--thread-idle 5`` (granian's
minimum) makes the retirement happen in seconds instead of after 30 s.
"""
import http.client
import os
import subprocess
import sys
import threading
import time

from objstore import open_store
from regapi.demo import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def burst(port: int, paths, n: int = 400, conc: int = 40) -> dict:
    """``n`` GETs over ``conc`` keep-alive connections; {status or error name: count}."""
    codes: dict = {}
    lock = threading.Lock()

    def one_client(k: int):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for j in range(k):
            try:
                c.request("GET", paths[j % len(paths)])
                r = c.getresponse()
                r.read()
                code = r.status
            except (OSError, http.client.HTTPException) as e:
                code = type(e).__name__
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                codes[code] = codes.get(code, 0) + 1
        c.close()

    ts = [threading.Thread(target=one_client, args=(n // conc,)) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes


def test_idle_thread_retirement_kills_no_worker(tmp_path):
    url = f"sqlite://{tmp_path / 's.db'}"
    st = open_store(url)
    st.create("/home/demo/.regapi/api/echo", "FILE", parents=True,
              content=b"echo hello ${http-qs-a?x}")
    st.create("/home/demo/things/t1", "FILE", {"n": 1}, parents=True)
    st.create("/home/demo/.regapi/api/obj", "FILE",
              {"http-header-Content-Type": "application/json"},
              content=b"obj ~/things/t1")
    st.close()
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(port), "--workers", "2",
             "--store", url, "--thread-idle", "5", "--no-access-log"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            start_new_session=True)
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
        paths = ["/api/demo/echo?a=1", "/api/demo/obj"]
        results = []
        for _ in range(3):
            results.append(burst(port, paths))
            time.sleep(7)           # > --thread-idle: the burst's extra threads retire
        results.append(burst(port, paths, 40, 4))
        text = log.read_text(errors="replace")
        assert "Unexpected exit" not in text and "Fatal Python error" not in text, text
        assert text.count("Spawning worker") == 2, text     # never respawned
        assert results[:3] == [{200: 400}] * 3 and results[3] == {200: 40}, results
    finally:
        p.terminate()
        try:
            p.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
