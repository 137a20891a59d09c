"""Child-process side of the multi-process store tests.

``python -m tests.objstore._worker incr URL OID N``   -- incr OID's "n" N times
``python -m tests.objstore._worker cas URL OID GOFILE`` -- wait for GOFILE, then race a
                                                         cas of or_status 0 -> 2;
                                                         prints "won" or "lost"
``python -m tests.objstore._worker threads URL OID T N`` -- T threads at once, each
                                                         incr OID's "n" N times
``python -m tests.objstore._worker stream URL DIRPATH`` -- create FILEs under DIRPATH
                                                         forever, printing each
                                                         acknowledged id (flushed)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import objstore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def spawn(*args: str, **kw) -> subprocess.Popen:
    """This module in a child process (the interpreter running the tests), its output
    piped as text."""
    return subprocess.Popen([sys.executable, "-m", "tests.objstore._worker", *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def main(argv: list[str]) -> int:
    cmd, url = argv[0], argv[1]
    store = objstore.open_store(url)
    if cmd == "incr":
        oid, n = argv[2], int(argv[3])
        for _ in range(n):
            store.incr(oid, "n")
        return 0
    if cmd == "threads":
        import threading
        oid, t, n = argv[2], int(argv[3]), int(argv[4])
        start = threading.Barrier(t)
        errors = []

        def run():
            start.wait()
            try:
                for _ in range(n):
                    store.incr(oid, "n")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
        ts = [threading.Thread(target=run) for _ in range(t)]
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        if errors:
            raise SystemExit(errors[0])
        return 0
    if cmd == "cas":
        oid, gofile = argv[2], argv[3]
        while not os.path.exists(gofile):
            time.sleep(0.001)
        won = store.cas(oid, {"or_status": 0}, {"or_status": 2, "winner": os.getpid()})
        print("won" if won is not None else "lost", flush=True)
        return 0
    if cmd == "stream":
        dirpath = argv[2]
        i = 0
        while True:
            obj = store.create(f"{dirpath}/f{i}", meta={"i": i}, content=b"x" * (i % 50))
            sys.stdout.write(obj.id + "\n")
            sys.stdout.flush()
            i += 1
    raise SystemExit(f"unknown worker command {cmd}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
