"""Bursts with idle gaps: granian retires the idle request threads and no worker dies.

The crash this guards against (docs/regapi.md, "Serving without crashes"): each request
thread's SQLite connection was closed as the thread was retired, inside CPython 3.11's
final PyGILState_Release, and sqlite3's function destructor re-entered it: a segfault
in libpython, the worker respawned, its requests lost.  ``--thread-idle 5`` (granian's
minimum) makes the retirement happen in seconds instead of after 30 s.
"""
import time

from objstore import open_store
from tests.e2e import served
from tests.e2e.served import burst


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
    s = served.bare(tmp_path, url)
    served.spawn(s, ("--workers", "2", "--thread-idle", "5", "--no-access-log"), 30)
    try:
        paths = ["/api/demo/echo?a=1", "/api/demo/obj"]
        results = []
        for _ in range(3):
            results.append(burst(s.port, paths))
            time.sleep(7)           # > --thread-idle: the burst's extra threads retire
        results.append(burst(s.port, paths, 40, 4))
        text = s.log.read_text(errors="replace")
        assert "Unexpected exit" not in text and "Fatal Python error" not in text, text
        assert text.count("Spawning worker") == 2, text     # never respawned
        assert results[:3] == [{200: 400}] * 3 and results[3] == {200: 40}, results
    finally:
        served.stop(s, timeout=40)
