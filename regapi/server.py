"""``wnshell serve``: the regapi WSGI app on granian.

Why granian: measured on this machine (2 cores, loopback, ``wrk -t2 -c64 -d5s``, the
same bare WSGI hello app): granian 2 workers ~61k req/s, gunicorn sync 2 workers ~7.3k,
gunicorn gthread 2x8 ~15k, waitress 4 threads ~1.9k (docs/regapi.md has the table).

The main process checks the store URL (and creates the store), loads ``--regapi-dir``
into the store when given, and then hands over to granian, which forks ``--workers``
processes; each opens its own store and builds one app (``regapi.app:app_factory``).
SIGTERM/SIGINT: graceful shutdown (in-flight requests finish).  SIGHUP: the folder is
synced again and the workers are respawned gracefully (fresh caches).
"""
from __future__ import annotations

import logging
import os
import sys

from objstore.errors import BAD_INPUT, INTERNAL, WnError

log = logging.getLogger("regapi")

DEFAULT_THREADS = 32


def prepare_store(store_url: str | None) -> str:
    """Resolve and open the store once in the main process (creates SQLite files and
    schema, fails early on a bad URL); returns the URL the workers will use."""
    from objstore import default_url, open_store
    url = store_url or os.environ.get("WNSHELL_STORE") or default_url()
    if url.split(":", 1)[0].lower() == "memory":
        raise WnError("e.regapi.serve.store",
                      "memory:// lives inside one process; serve a sqlite://, tinydb:// "
                      "or postgresql:// store", kind=BAD_INPUT)
    if url.startswith("sqlite://"):
        from objstore import url_path
        os.makedirs(os.path.dirname(url_path(url)), exist_ok=True)
    store = open_store(url)
    store.close()
    return url


def sync_folder(store_url: str, regapi_dir: str, user: str) -> str:
    from objstore import open_store
    from regapi.sync import sync_dir
    store = open_store(store_url)
    try:
        return sync_dir(store, regapi_dir, user).line()
    finally:
        store.close()


def serve(host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          store_url: str | None = None, regapi_dir: str | None = None,
          user: str = "demo", threads: int = DEFAULT_THREADS,
          deadline: float | None = None, max_body: int | None = None,
          route_ttl: float | None = None, access_log: bool = True,
          sweep: float = 0) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    check_bind(host, port)
    url = prepare_store(store_url)
    os.environ["WNSHELL_STORE"] = url
    for key, value in (("DEADLINE", deadline), ("MAX_BODY", max_body),
                       ("ROUTE_TTL", route_ttl), ("THREADS", threads)):
        if value is not None:
            os.environ["WNSHELL_REGAPI_" + key] = str(value)
    os.environ["WNSHELL_REGAPI_ACCESS_LOG"] = "1" if access_log else "0"
    from regapi.logfmt import granian_config, line
    if regapi_dir:
        line(f"synced {regapi_dir} -> /home/{user}/.regapi/api: "
             f"{sync_folder(url, regapi_dir, user)}")

    server = Granian(
        "regapi.app:app_factory",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        websockets=False,
        factory=True,
        log_access=False,
        log_dictconfig=granian_config(),        # one time format for every line
        respawn_failed_workers=True,
        workers_kill_timeout=35,
    )
    if regapi_dir:
        @server.on_reload
        def _resync():
            try:
                done = sync_folder(url, regapi_dir, user)
                line(f"reload: synced {regapi_dir}: {done}")
            except Exception as e:  # noqa: BLE001 - keep serving the last good tree
                msg = e.line() if hasattr(e, "line") else type(e).__name__
                line(f"reload: sync failed, store unchanged: {msg}")

    # granian warns about more Python threads than cores; ours mostly wait on I/O
    # (WeChat replies, the store), which is what they are for
    logging.getLogger("_granian").addFilter(
        lambda r: "Python threads" not in r.getMessage())
    line(f"serving http://{host}:{port}/api/<user>/<api> "
         f"({workers} worker{'s' if workers != 1 else ''}, store {_safe_url(url)})")
    sweeper = start_sweeper(url, sweep)
    try:
        server.serve()
    except (OSError, RuntimeError) as e:
        raise WnError("e.regapi.serve.failed", f"{type(e).__name__}: {e}",
                      kind=INTERNAL) from None
    finally:
        stop_sweeper(sweeper)
    return 0


def start_sweeper(url: str, interval: float):
    """The WeChat Pay expiry sweeper (``commands.weixin.sweeper``): ONE process beside
    the workers, however many there are, so an expired order is closed once.  A
    subprocess (not a thread of this process: granian forks the workers from it)."""
    if not interval or interval <= 0:
        return None
    import subprocess
    # the store URL goes by the environment (it may hold a password: not in `ps`)
    env = dict(os.environ, WNSHELL_STORE=url)
    # -P: the installed package, never a `commands` folder in the current directory
    return subprocess.Popen([sys.executable, "-P", "-m", "commands.weixin.sweeper",
                             "--interval", str(interval), "--parent", str(os.getpid())],
                            stdin=subprocess.DEVNULL, env=env)


def stop_sweeper(proc) -> None:
    if proc is None:
        return
    import subprocess
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def check_bind(host: str, port: int) -> None:
    """Fail early, in one line, when the address cannot be listened on."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise WnError("e.regapi.serve.bind", f"bad host {host!r}: {e.strerror}",
                      kind=BAD_INPUT) from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise WnError("e.regapi.serve.bind",
                          f"cannot listen on {host}:{port}: {e.strerror}",
                          kind=BAD_INPUT) from None


_SECRET_PARAMS = ("password", "sslpassword")    # libpq takes these in the query too


def _safe_url(url: str) -> str:
    """A store URL for a log line: any password removed (``user:pw@`` and the
    ``password=``/``sslpassword=`` query parameters)."""
    from urllib.parse import unquote, urlsplit, urlunsplit
    try:
        p = urlsplit(url)
        q = p
        if p.password:
            q = q._replace(netloc=p.netloc.replace(":" + p.password + "@", ":***@"))
        if p.query:
            parts = []
            for part in p.query.split("&"):
                key, eq, _ = part.partition("=")
                if eq and unquote(key).strip().lower() in _SECRET_PARAMS:
                    part = key + "=***"
                parts.append(part)
            q = q._replace(query="&".join(parts))
        return url if q == p else urlunsplit(q)    # (file URLs stay as they were given)
    except ValueError:
        return url.split("://", 1)[0] + "://..."
