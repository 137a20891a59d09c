"""Start-up time: median wall time of ``wnshell -c 'echo hi'`` / ``python3 -c pass``.

20 runs each, interleaved (so load spikes hit both alike).  Target: ratio <= 3.
The store is the default one (SQLite in $XDG_DATA_HOME), in a throwaway directory;
warm-up runs create it first.  Byte-code caching is switched on for both commands
(PYTHONDONTWRITEBYTECODE removed, caches in a throwaway PYTHONPYCACHEPREFIX), as for
any installed package: otherwise every run would compile every module from source.
Run:  python bench/startup.py [RUNS]
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
