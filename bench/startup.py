"""Start-up time: median wall time of ``wnshell -c 'echo hi'`` / ``python3 -c pass``.

20 runs each, interleaved (so load spikes hit both alike).  Target: ratio <= 3.
The store is the default one (SQLite in $XDG_DATA_HOME), in a throwaway directory;
warm-up runs create it first.  Byte-code caching is switched on for both commands
(PYTHONDONTWRITEBYTECODE removed, caches in a throwaway PYTHONPYCACHEPREFIX), as for
any installed package: otherwise every run would compile every module from source.
Run:  python bench/startup.py [RUNS]

Then, for each start-up trick in the code, the time of the trick's statement and of the
plain statement it replaces, each timed inside a fresh interpreter that first imports
what the shell imports anyway (so a module already loaded costs nothing).  A trick is
worth its obscurity where it saves 1% of ``python -c pass`` or more (measured
alongside, so machine load cancels out): every shell start and every ``-c`` pays it.
``tests/wnshell/test_cli.py::test_dash_c_on_the_default_store_stays_lean`` keeps the
modules the tricks avoid out of a ``-c`` run.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    py = sys.executable
    script = shutil.which("wnshell", path=os.path.dirname(py)) or shutil.which("wnshell")
    shell = [script] if script else [py, "-m", "wnshell.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_DATA_HOME=tmp,
                   PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
        env.pop("WNSHELL_STORE", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cmd_shell = shell + ["-c", "echo hi"]
        cmd_py = [py, "-c", "pass"]
        # for the breakdown: the interpreter plus importing and opening the store only
        cmd_store = [py, "-c", "import objstore; objstore.open_store().close()"]
        subprocess.run(cmd_py, env=env, check=False)
        first = subprocess.run(cmd_shell, env=env, capture_output=True, text=True)
        if first.returncode != 0 or first.stdout != "hi\n":
            print(f"wnshell failed: {first.returncode} {first.stdout!r} {first.stderr!r}")
            return 1
        t_shell, t_py, t_store = [], [], []
        for _ in range(runs):
            for cmd, acc in ((cmd_py, t_py), (cmd_shell, t_shell), (cmd_store, t_store)):
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
                acc.append(time.perf_counter() - t0)
    m_shell, m_py = statistics.median(t_shell), statistics.median(t_py)
    m_store = statistics.median(t_store)
    ratio = m_shell / m_py
    print(f"python3 -c pass        median {m_py * 1000:7.1f} ms  ({runs} runs)")
    print(f"wnshell -c 'echo hi'   median {m_shell * 1000:7.1f} ms  ({runs} runs)")
    print(f"  breakdown: python -c 'import objstore; open_store()' median "
          f"{m_store * 1000:.1f} ms, so the store costs ~{(m_store - m_py) * 1000:.1f} ms and "
          f"the shell ~{(m_shell - m_store) * 1000:.1f} ms on top of the interpreter")
    print(f"ratio {ratio:.2f}  (target <= 3: {'ok' if ratio <= 3 else 'MISSED'})")
    _tricks(py, env, max(5, runs // 2))
    return 0


# what `wnshell -c 'echo hi'` on the default store imports anyway, before any trick
_CONTEXT = "import sqlite3, re, os, io; "
TRICKS = [
    # (where, with the trick, without it)
    ("objstore/sqlite_backend.py: _thread/_weakrefset instead of threading/weakref",
     "from _thread import _local, allocate_lock; from _weakrefset import WeakSet",
     "from threading import local, Lock; from weakref import WeakSet"),
    ("objstore/*.py: TYPE_CHECKING = False instead of typing",
     "TYPE_CHECKING = False",
     "from typing import TYPE_CHECKING"),
    ("wnshell/registry.py: entry_points.txt scan instead of importlib.metadata",
     "from wnshell.registry import entry_points; entry_points('wnshell.commands')",
     "from importlib.metadata import entry_points; entry_points(group='wnshell.commands')"),
]


def _tricks(py: str, env: dict, runs: int) -> None:
    print(f"start-up tricks: the statement's own time in a fresh interpreter, median of "
          f"{runs} (after: {_CONTEXT.strip('; ')})")
    base = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([py, "-c", "pass"], env=env, check=False)
        base.append(time.perf_counter() - t0)
    m_py = statistics.median(base) * 1000
    print(f"  (python3 -c pass, measured alongside: {m_py:.1f} ms)")
    for where, with_trick, without in TRICKS:
        times: tuple[list, list] = ([], [])
        for _ in range(runs):
            for stmt, acc in zip((with_trick, without), times):
                code = (_CONTEXT + "import time; t0 = time.perf_counter(); " + stmt +
                        "; print(time.perf_counter() - t0)")
                r = subprocess.run([py, "-c", code], env=env, capture_output=True,
                                   text=True, check=False)
                if r.returncode:
                    print(f"  {where}: {stmt!r} failed: {r.stderr.strip()[-200:]}")
                    return
                acc.append(float(r.stdout))
        m_with, m_without = (statistics.median(t) * 1000 for t in times)
        saved = m_without - m_with
        print(f"  {where}\n      with {m_with:6.2f} ms   without {m_without:6.2f} ms   "
              f"saves {saved:5.2f} ms = {100 * saved / m_py:4.1f}% of python3 -c pass"
              f"  ({'keep' if saved >= 0.01 * m_py else 'not worth it'})")


if __name__ == "__main__":
    sys.exit(main())
