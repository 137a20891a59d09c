"""A memory probe for ``wnshell serve`` workers: where a worker's RssAnon goes.

Off unless ``WNSHELL_MEMPROBE`` names a file (``bench/soak.py --memprobe`` sets it):
then each worker starts one daemon thread that appends a JSON line to that file every
``WNSHELL_MEMPROBE_EVERY`` seconds (default 10):

* ``anon``: RssAnon (KiB), ``threads``: threads in the process;
* ``glibc``: ``mallinfo2()`` -- ``arena`` bytes the heaps took from the system,
  ``mmap`` bytes in mmapped chunks, ``used``/``free`` bytes in and out of use,
  ``keep`` the top chunk -- and ``arenas``, the number of glibc arenas
  (``malloc_info``): every thread that mallocs can get its own, up to 8 per core;
* ``sqlite``: bytes SQLite holds (``sqlite3_status64(MEMORY_USED)``: page caches,
  prepared statements, schema), and its high-water mark;
* ``py``: bytes Python objects hold (tracemalloc), only with
  ``WNSHELL_MEMPROBE_TRACE=1``, which also writes the 12 biggest growths by line
  since the first sample past ``WNSHELL_MEMPROBE_BASE`` seconds (default 60) --
  tracemalloc slows every allocation, so this is for finding a leak, not measuring;
* ``blocks``: memory blocks Python has allocated (``sys.getallocatedblocks()``: its
  small objects live in its own mmapped arenas, which ``mallinfo2`` does not see);
* ``modules``: entries in ``sys.modules`` (lazy imports are a warm-up cost).

The rest of RssAnon is granian's own (its Rust side allocates with jemalloc) and the
thread stacks.  Nothing here runs unless the variable is set.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

_STARTED = False


def start_from_env() -> None:
    """Start the probe thread when ``WNSHELL_MEMPROBE`` is set (once per process)."""
    global _STARTED
    path = os.environ.get("WNSHELL_MEMPROBE")
    if not path or _STARTED:
        return
    _STARTED = True
    every = float(os.environ.get("WNSHELL_MEMPROBE_EVERY") or 10)
    trace = os.environ.get("WNSHELL_MEMPROBE_TRACE") == "1"
    base_after = float(os.environ.get("WNSHELL_MEMPROBE_BASE") or 60)
    if trace:
        import tracemalloc
        tracemalloc.start(4)
    threading.Thread(target=_run, args=(path, every, trace, base_after),
                     name="wnshell-memprobe", daemon=True).start()


class _Libs:
    def __init__(self):
        import ctypes
        import ctypes.util
        self.ct = ctypes
        self.libc = ctypes.CDLL(None)
        self.mallinfo2 = None
        if hasattr(self.libc, "mallinfo2"):
            class MallInfo2(ctypes.Structure):
                _fields_ = [(n, ctypes.c_size_t) for n in (
                    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                    "fsmblks", "uordblks", "fordblks", "keepcost")]
            self.mallinfo2 = self.libc.mallinfo2
            self.mallinfo2.restype = MallInfo2
        self.libc.open_memstream.restype = ctypes.c_void_p
        self.libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p),
                                             ctypes.POINTER(ctypes.c_size_t)]
        self.libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        self.libc.fclose.argtypes = [ctypes.c_void_p]
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.sqlite = None
        name = ctypes.util.find_library("sqlite3")
        if name:
            try:
                lib = ctypes.CDLL(name)         # the copy _sqlite3 already loaded
                lib.sqlite3_status64.argtypes = [
                    ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                    ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
                self.sqlite = lib
            except (OSError, AttributeError):
                pass

    def glibc(self) -> dict:
        out = {}
        if self.mallinfo2 is not None:
            m = self.mallinfo2()
            out = {"arena": m.arena, "mmap": m.hblkhd, "used": m.uordblks,
                   "free": m.fordblks, "keep": m.keepcost}
        ct = self.ct
        buf, size = ct.c_char_p(), ct.c_size_t()
        f = self.libc.open_memstream(ct.byref(buf), ct.byref(size))
        if f:
            self.libc.malloc_info(0, f)
            self.libc.fclose(f)
            text = ct.string_at(buf, size.value).decode("ascii", "replace")
            self.libc.free(ct.cast(buf, ct.c_void_p))
            out["arenas"] = text.count("<heap nr=")
        return out

    def sqlite_used(self) -> list | None:
        if self.sqlite is None:
            return None
        cur, hi = self.ct.c_int64(), self.ct.c_int64()
        if self.sqlite.sqlite3_status64(0, self.ct.byref(cur), self.ct.byref(hi), 0) != 0:
            return None
        return [cur.value, hi.value]


def _anon_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _run(path: str, every: float, trace: bool, base_after: float) -> None:
    libs = _Libs()
    t0 = time.monotonic()
    base = None
    while True:
        time.sleep(every)
        rec = {"pid": os.getpid(), "t": round(time.monotonic() - t0, 1),
               "anon": _anon_kb(), "threads": len(os.listdir("/proc/self/task")),
               "glibc": libs.glibc(), "sqlite": libs.sqlite_used(),
               "blocks": sys.getallocatedblocks(), "modules": len(sys.modules)}
        if trace:
            import tracemalloc
            rec["py"] = tracemalloc.get_traced_memory()[0]
            if rec["t"] >= base_after:
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
                if base is None:
                    base = snap
                else:
                    rec["growth"] = [
                        [str(s.traceback[0]), s.size_diff, s.count_diff]
                        for s in snap.compare_to(base, "lineno")[:12]]
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
