"""A served worker's malloc arenas stay capped however many request threads it runs.

Why (docs/regapi.md, "What a worker's memory is"): glibc gives each new thread an arena
of its own up to 8 per core, and every arena keeps the high-water mark of what was
allocated in it; on a 2-core machine the soak's SQLite workers had 16 arenas holding
8-10 MiB free between them, and RssAnon still rising after 7 minutes.  ``wnshell serve``
caps them at ``regapi.server.MALLOC_ARENAS`` (2) unless the operator set
``MALLOC_ARENA_MAX``.  Read through the worker memory probe (``WNSHELL_MEMPROBE``,
regapi/memprobe.py), which reports glibc's own count (``malloc_info``).
"""
import json
import os
import time

import pytest

from objstore import open_store
from regapi.server import MALLOC_ARENAS
from tests.e2e import served


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


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
    s = served.bare(tmp_path, url)
    served.spawn(s, ("--workers", "1", "--no-access-log"), 30, env=env)
    try:
        codes = served.burst(s.port, ["/api/demo/obj"])
        seen = probe.stat().st_size if probe.exists() else 0
        deadline = time.time() + 10      # a sample taken after the burst
        while not (probe.exists() and probe.stat().st_size > seen):
            assert time.time() < deadline, s.log.read_text()
            time.sleep(0.1)
        last = json.loads(probe.read_text().splitlines()[-1])
        return last["glibc"]["arenas"], codes
    finally:
        served.stop(s, timeout=40)


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
