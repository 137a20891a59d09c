"""The expiry sweeper as a process: ``python -m commands.weixin.sweeper [--store URL]
[--interval S]`` (the store defaults to ``$WNSHELL_STORE``).

Every ``interval`` seconds it runs ``weixin <conf> order -sweep`` for every account
``/home/<user>/.weixin/<conf>/wxconf`` in the store, in a session of that user.
``wnshell serve`` starts exactly one of these beside its workers (however many there
are), so each expired order is asked and closed by one sweeper only; it stops with the
server (SIGTERM) and by itself within a second when its parent is gone.  Lines go to stderr (the
server's log) only when something was swept or failed.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from .common import log

DEFAULT_INTERVAL = 60.0


def accounts(store) -> list[tuple[str, str]]:
    """(user, conf) of every wxconf under /home/*/.weixin/*/."""
    out = []
    home = store.fetch("/home")
    if home is None:
        return out
    for user in store.children(home.id):
        if not user.is_dir:
            continue
        wx = store.fetch(f"/home/{user['nm']}/.weixin")
        if wx is None or not wx.is_dir:
            continue
        for conf in store.children(wx.id):
            if conf.is_dir and store.fetch(f"{conf['ph']}/wxconf") is not None:
                out.append((user["nm"], conf["nm"]))
    return out


def sweep_all(store, stderr=sys.stderr) -> int:
    """One round over every account; returns how many orders were handled."""
    import json
    from wnshell.session import Session
    handled = 0
    for user, conf in accounts(store):
        session = Session(store, user=user)
        status, out, err = session.run(f"weixin {conf} order -sweep", "")
        for line in out.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if "summary" in item:
                handled += item["summary"].get("swept", 0)
            else:
                stderr.write(f"weixin sweep {user}/{conf}: {line}\n")
        if err.strip():
            stderr.write(err if err.endswith("\n") else err + "\n")
    stderr.flush()
    return handled


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m commands.weixin.sweeper")
    ap.add_argument("--store", default=None, help="default: $WNSHELL_STORE")
    ap.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    ap.add_argument("--parent", type=int, default=None,
                    help="stop when this process is no longer our parent (the server)")
    args = ap.parse_args(argv)
    from objstore import open_store
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    # the server's pid as it said (it may have died before we got here)
    parent = args.parent if args.parent else os.getppid()
    url = args.store or os.environ.get("WNSHELL_STORE")
    if not url:
        ap.error("give --store or set WNSHELL_STORE")
    store = open_store(url)
    interval = max(0.05, args.interval)
    try:
        next_round = time.monotonic() + interval
        while not done.wait(min(1.0, max(0.0, next_round - time.monotonic()))):
            if os.getppid() != parent:          # the server is gone: so are we
                break
            if time.monotonic() < next_round:
                continue
            next_round = time.monotonic() + interval
            try:
                sweep_all(store)
            except Exception as e:  # noqa: BLE001 - one bad round must not end sweeping
                msg = e.line() if hasattr(e, "line") else type(e).__name__
                sys.stderr.write(f"weixin sweep: round failed: {msg}\n")
                log.warning("weixin sweep: round failed: %s", msg)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
