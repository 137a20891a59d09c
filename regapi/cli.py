"""``wnshell serve|demo|sync ...`` (``wnshell.cli`` hands these argv over lazily).

    wnshell serve [--host 127.0.0.1] [--port 8080] [--workers N] [--store URL]
                  [--regapi-dir DIR [--user U]] [--threads N] [--deadline S]
                  [--max-body BYTES] [--thread-idle S] [--no-access-log]
    wnshell sync DIR [--user U] [--store URL] [--dry-run] [--create-user]
    wnshell demo [--keep] [--port P] [--store URL] [--api v2|v3]

``main(argv) -> int`` never raises for bad input: it prints one ``e.key : reason`` line
and returns 2 (usage) or 1.
"""
from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        raise _Usage(message)


class _Usage(Exception):
    pass


def _port(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 65535:
        raise ValueError(text)
    return n


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def _seconds(text: str) -> float:
    n = float(text)
    if not 0 < n <= 3600:
        raise ValueError(text)
    return n


def _ttl(text: str) -> float:
    n = float(text)
    if not 0 <= n <= 3600:
        raise ValueError(text)
    return n


def _idle(text: str) -> int:
    n = int(text)
    if not 5 <= n <= 600:          # granian's bounds
        raise ValueError(text)
    return n


SYNC_HELP = """\
Make /home/USER/.regapi/api in the store match DIR, file for file:

  DIR/                                 the store
    pay                          ->    /home/USER/.regapi/api/pay  (GET /api/USER/pay)
    payresult.regapi             ->    /home/USER/.regapi/api/payresult  (".regapi" dropped)
    payresult.regapi.meta.json         metadata of payresult, a JSON object, e.g.
                                       {"http-header-Content-Type": "text/xml"}
    user/_ANY/_action            ->    /home/USER/.regapi/api/user/_ANY/_action

A file's content is its command template.  Folders become DIRs; objects the folder no
longer has are removed; metadata keys a sidecar no longer has are removed.  Hidden
files and folders (.git, .env) and editor leftovers (*~, *.swp) are skipped.
Everything is checked first (names, sidecars, that every template parses) and every
problem is listed (and then nothing is changed).  --dry-run shows what would change.
"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wnshell", add_help=True)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("serve", help="serve .regapi APIs over HTTP (granian)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                         "127.0.0.1)")
    s.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    s.add_argument("--workers", type=_positive, default=1,
                   help="worker processes, each with its own store connection (default 1)")
    s.add_argument("--threads", type=_positive, default=None,
                   help="request threads per worker (default 32)")
    s.add_argument("--store", default=None, help="store URL (default: WNSHELL_STORE or "
                                                 "the SQLite file in the XDG data dir)")
    s.add_argument("--regapi-dir", default=None,
                   help="folder of .regapi files synced into --user's API tree at start "
                        "and on SIGHUP")
    s.add_argument("--user", default="demo", help="owner of --regapi-dir's APIs (default demo)")
    s.add_argument("--deadline", type=_seconds, default=None,
                   help="per-request deadline in seconds (default 30)")
    s.add_argument("--max-body", type=_positive, default=None,
                   help="largest request body in bytes (default 1048576)")
    s.add_argument("--route-ttl", type=_ttl, default=None,
                   help="seconds a resolved API is reused before it is looked up again "
                        "(default 1)")
    s.add_argument("--sweep", type=float, default=60.0, metavar="SECONDS",
                   help="run 'weixin <conf> order -sweep' for every account this often, "
                        "in one process beside the workers (0: never; default 60)")
    s.add_argument("--thread-idle", type=_idle, default=None, metavar="S",
                   help="seconds an idle request thread lives before it is retired, "
                        "5..600 (default 30)")
    s.add_argument("--no-access-log", action="store_true",
                   help="no line per request on stderr")
    s.add_argument("--pin-workers", choices=("auto", "on", "off"), default="auto",
                   help="run worker i on CPU i only: auto (when --workers equals the "
                        "CPUs), on, off (default auto)")

    y = sub.add_parser("sync", help="make a user's .regapi/api tree match a folder",
                       description=SYNC_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    y.add_argument("dir", help="the folder of .regapi files (kept in git, say)")
    y.add_argument("--user", default=None,
                   help="whose API tree: /home/USER/.regapi/api (default demo, created "
                        "when missing, as the shell does); a USER given here must exist "
                        "unless --create-user")
    y.add_argument("--store", default=None, help="store URL (default: WNSHELL_STORE or "
                                                 "the SQLite file in the XDG data dir)")
    y.add_argument("--dry-run", action="store_true",
                   help="print what would change, change nothing")
    y.add_argument("--create-user", action="store_true",
                   help="create /home/USER when it does not exist")

    d = sub.add_parser("demo", help="run the WeChat Pay seed end to end over HTTP")
    d.add_argument("--keep", action="store_true",
                   help="leave the simulator and server running; print the URLs")
    d.add_argument("--port", type=_port, default=0, help="server port (default: free)")
    d.add_argument("--store", default=None,
                   help="store URL (default: a fresh SQLite file in a temp folder)")
    d.add_argument("--timeout", type=float, default=20.0, help="seconds for each wait")
    d.add_argument("--api", choices=("v2", "v3", "2", "3"), default="v2",
                   help="the merchant API the account speaks (v3: JSON, RSA keys "
                        "generated at start, AES-GCM notifications)")
    return p


def _sync(ns) -> int:
    from objstore import open_store
    from regapi.sync import SyncErrors, sync_dir
    # the default user is created when missing (as `wnshell` does); a named one must
    # exist, so a typo in --user does not publish a new API tree
    create_user = ns.create_user or ns.user is None
    ns.user = ns.user or "demo"
    store = open_store(ns.store)
    try:
        rep = sync_dir(store, ns.dir, ns.user, dry_run=ns.dry_run, create_user=create_user)
    except SyncErrors as e:
        for err in e.errors:             # every problem, one line each
            print(err.line(), file=sys.stderr)
        return 1
    finally:
        store.close()
    would = "would be " if ns.dry_run else ""
    for what, names in (("created", rep.created), ("updated", rep.updated),
                        ("removed", rep.removed)):
        for n in names:
            print(f"{would}{what} {n}")
    dry = " (dry run, nothing changed)" if ns.dry_run else ""
    print(f"sync /home/{ns.user}/.regapi/api{dry}: {rep.line()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = build_parser().parse_args(argv)
    except _Usage as e:
        print(f"e.cmd.wnshell.usage : {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    from objstore.errors import WnError
    try:
        if ns.cmd == "serve":
            from regapi.server import serve
            return serve(host=ns.host, port=ns.port, workers=ns.workers, store_url=ns.store,
                         regapi_dir=ns.regapi_dir, user=ns.user,
                         threads=ns.threads or 32, deadline=ns.deadline,
                         max_body=ns.max_body, route_ttl=ns.route_ttl,
                         access_log=not ns.no_access_log, sweep=ns.sweep,
                         thread_idle=ns.thread_idle or 30, pin=ns.pin_workers)
        if ns.cmd == "sync":
            return _sync(ns)
        if ns.cmd == "demo":
            from regapi.demo import run_demo
            return run_demo(keep=ns.keep, port=ns.port, store_url=ns.store,
                            timeout=ns.timeout, api=3 if ns.api in ("v3", "3") else 2)
    except WnError as e:
        print(e.line(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2
