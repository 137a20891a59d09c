"""``wnshell serve``: the regapi WSGI app on granian.

Why granian: measured on this machine (2 cores, loopback, ``wrk -t2 -c64 -d5s``, the
same bare WSGI hello app): granian 2 workers ~61k req/s, gunicorn sync 2 workers ~7.3k,
gunicorn gthread 2x8 ~15k, waitress 4 threads ~1.9k (docs/regapi.md has the table).

The main process, in this order: checks the store URL and opens it once (creating a
SQLite file and its schema), so a bad store is reported whatever the port; checks that
the address can be listened on; loads ``--regapi-dir`` into the store when given (so a
taken port changes nothing in the store); and hands over to granian, which forks
``--workers`` processes; each opens its own store and builds one app (``worker_app``:
``regapi.app:app_factory`` counted by ``InFlight``).

Signals: SIGTERM/SIGINT: graceful shutdown (in-flight requests finish; how many there
are is printed); a second SIGTERM/SIGINT during it kills the workers at once.  SIGHUP:
the folder is synced again and the workers are respawned gracefully (fresh caches).

Worker crashes are not silent: ``faulthandler`` is on in every worker (a crash prints
the Python stacks to stderr before granian respawns the worker).  docs/regapi.md
("Serving without crashes") has the granian/CPython 3.11 thread-retirement segfault
this guards against and the option to reproduce it (``--thread-idle``).

Placement (``--pin-workers``, default ``auto``): with as many workers as CPUs this
process may use, worker i runs on CPU i only (``cpu_plan``).  A worker's Python threads
take turns at one GIL; left free, the scheduler runs two of them on two cores, where
the one waiting for the GIL only spins the handover, and moves them between cores
(cold caches).  Measured here (2 CPUs, 2 workers, duplicate notifications, pinned and
free servers alternating round by round): 8.8k against 7.7k req/s, 0.20 against 0.22 ms
of CPU a request, in one run; 9.5k-11.7k against 5.7k-6.6k in another.  Free, the rate
swings from one run to the next far more than pinned.
``on`` pins even when the counts differ (worker i on the i-th CPU, round robin);
``off`` leaves placement to the kernel -- better when other busy processes (a database
server) share these CPUs and a pinned worker could wait behind them.

Memory: glibc's malloc arenas are capped at ``MALLOC_ARENAS`` (2) per worker unless
``MALLOC_ARENA_MAX`` is set (``cap_malloc_arenas``; docs/regapi.md, "What a worker's
memory is").  ``WNSHELL_MEMPROBE=FILE`` makes each worker sample its memory into FILE
(``regapi.memprobe``; off by default).
"""
from __future__ import annotations

import logging
import os
import sys

from objstore.errors import BAD_INPUT, INTERNAL, WnError

log = logging.getLogger("regapi")

DEFAULT_THREADS = 32
DEFAULT_THREAD_IDLE = 30        # granian's default; it accepts 5..600 seconds
KILL_TIMEOUT = 35               # graceful shutdown: seconds before a worker is killed
MALLOC_ARENAS = 2               # glibc malloc arenas per worker (cap_malloc_arenas)


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


PIN_CHOICES = ("auto", "on", "off")


def cpu_plan(workers: int, pin: str = "auto", usable=None) -> list[int]:
    """The CPU of each worker (worker i: ``plan[i]``), or [] to leave placement to the
    kernel: ``auto`` pins when there are as many workers as usable CPUs (two or more),
    ``on`` always (round robin), ``off`` never.  ``usable``: the CPUs this process may
    run on (``os.sched_getaffinity``; none known: no plan)."""
    if pin not in PIN_CHOICES:
        raise WnError("e.regapi.serve.pin", f"--pin-workers is one of {', '.join(PIN_CHOICES)}",
                      kind=BAD_INPUT)
    if usable is None:
        try:
            usable = os.sched_getaffinity(0)
        except (AttributeError, OSError):   # not Linux
            usable = ()
    cpus = sorted(usable)
    if pin == "off" or not cpus or (pin == "auto" and (workers != len(cpus) or workers < 2)):
        return []
    return [cpus[i % len(cpus)] for i in range(workers)]


class OnCpu:
    """granian's worker loader, run first on one CPU: the worker's main thread is
    pinned before the loader builds the app and granian starts the worker's runtime,
    so every thread it makes afterwards (the runtime's, the request threads) inherits
    the CPU.  A CPU that cannot be had leaves the worker where it is, with a line."""

    def __init__(self, loader, cpu: int):
        self.loader, self.cpu = loader, cpu

    def __call__(self, *args, **kwargs):
        try:
            os.sched_setaffinity(0, {self.cpu})
        except OSError as e:                # a CPU taken away since the plan was made
            _say(f"regapi: worker {os.getpid()} not pinned to CPU {self.cpu}: "
                 f"{e.strerror or type(e).__name__}\n")
        else:
            for tid in os.listdir("/proc/self/task"):      # threads made before this
                try:
                    os.sched_setaffinity(int(tid), {self.cpu})
                except OSError:
                    pass                    # one that has ended meanwhile
        return self.loader(*args, **kwargs)


def serve(host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          store_url: str | None = None, regapi_dir: str | None = None,
          user: str = "demo", threads: int = DEFAULT_THREADS,
          deadline: float | None = None, max_body: int | None = None,
          route_ttl: float | None = None, access_log: bool = True,
          sweep: float = 0, thread_idle: int = DEFAULT_THREAD_IDLE,
          pin: str = "auto") -> int:
    import faulthandler

    plan = cpu_plan(workers, pin)
    url = prepare_store(store_url)          # the order the module docstring gives
    check_bind(host, port)
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

    global _INFLIGHT
    _INFLIGHT = InFlight(workers, threads)
    # on in the main process, inherited by the forked workers: a segfault in a worker
    # prints its Python stacks before granian respawns it
    faulthandler.enable()
    cap_malloc_arenas()                     # inherited by the workers, like faulthandler
    server = _server_class()(
        "regapi.server:worker_app",
        address=host,
        port=port,
        interface=_wsgi(),
        workers=workers,
        blocking_threads=threads,
        blocking_threads_idle_timeout=thread_idle,
        websockets=False,
        factory=True,
        log_access=False,
        log_dictconfig=granian_config(),        # one time format for every line
        respawn_failed_workers=True,
        workers_kill_timeout=KILL_TIMEOUT,
    )
    server.inflight = _INFLIGHT
    server.cpu_plan = plan
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
    placed = f", on CPU{'s' if len(set(plan)) > 1 else ''} " \
        f"{', '.join(map(str, plan))}" if plan else ""
    line(f"serving http://{host}:{port}/api/<user>/<api> "
         f"({workers} worker{'s' if workers != 1 else ''}{placed}, store {_safe_url(url)})")
    sweeper = start_sweeper(url, sweep)
    try:
        server.serve()
    except (OSError, RuntimeError) as e:
        raise WnError("e.regapi.serve.failed", f"{type(e).__name__}: {e}",
                      kind=INTERNAL) from None
    finally:
        stop_sweeper(sweeper)
    return 0


def cap_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """At most ``n`` glibc malloc arenas in this process and the workers it forks
    (``mallopt(M_ARENA_MAX)``; glibc's default is 8 per core).  Each request thread
    that mallocs may get an arena of its own, and every arena keeps the high-water
    mark of what was allocated in it: measured on a 2-core machine, 16 arenas kept
    8-10 MiB free per worker (RssAnon still rising after 7 minutes), 2 arenas 2-3 MiB,
    with the live allocations the same (docs/regapi.md, "What a worker's memory is").
    The GIL serialises the Python side anyway, so fewer arenas cost no parallelism
    worth having.  Not on other C libraries, and never over ``MALLOC_ARENA_MAX`` set
    by the operator (glibc applied it when the process started).  True when set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        import ctypes
        return ctypes.CDLL(None).mallopt(-8, n) == 1     # -8: M_ARENA_MAX (malloc.h)
    except (ValueError, OSError, AttributeError):
        return False


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


def _wsgi():
    from granian.constants import Interfaces
    return Interfaces.WSGI


# -- requests in flight, and "Ctrl-C twice means now" --------------------------------

_INFLIGHT: InFlight | None = None


class InFlight:
    """Requests in flight per worker, in a shared anonymous memory map the forked
    workers inherit.  Block i of the map: the pid of the worker that claimed it (when
    its app is built: ``wrap``), a count kept under a lock, and one cell per request
    thread; the main process adds up the blocks of the workers it has (``total``).

    A thread takes a cell of its own at its first request and from then on is the only
    writer of it: 1 while it serves a request, else 0 -- no lock, no read-modify-write
    per request (the lock and its two updates cost 1.8 µs of CPU a request, served, 5%
    of the echo API's rate).  A cell whose thread has ended (its thread-local data,
    and the token a weak reference watches, are gone) goes to the next new thread; a
    thread that finds none free counts under the lock."""

    SPARE_CELLS = 8             # beyond the request threads: threads being replaced

    def __init__(self, workers: int, threads: int = DEFAULT_THREADS):
        import mmap
        import multiprocessing
        self.nslots = 16 + 4 * workers       # respawned workers take fresh blocks
        self.width = 2 + threads + self.SPARE_CELLS     # pid, locked count, cells
        self._mm = mmap.mmap(-1, 8 * self.width * self.nslots)  # MAP_SHARED: every fork
        self._v = memoryview(self._mm).cast("q")
        self._claim = multiprocessing.Lock()

    def _slot(self) -> int | None:
        pid = os.getpid()
        v, width = self._v, self.width
        with self._claim:
            for i in range(self.nslots):
                owner = v[i * width]
                if owner == 0 or not _alive(owner):
                    zeros = memoryview(bytes(8 * (width - 1))).cast("q")
                    v[i * width + 1:(i + 1) * width] = zeros
                    v[i * width] = pid
                    return i
        return None

    def wrap(self, app):
        """``app`` counted; unchanged when no block is free."""
        import threading
        import weakref
        i = self._slot()
        if i is None:
            return app
        v = self._v
        shared = i * self.width + 1
        cells = range(shared + 1, (i + 1) * self.width)
        owner: dict = {}            # cell -> weak reference to its thread's token
        local = threading.local()
        lock = threading.Lock()

        def claim() -> int:
            """A cell for this thread: one no thread has, or whose thread has ended
            (its local data, and the token in it, are gone).  Nothing of ours runs
            when a thread ends: a retiring thread's teardown is where the
            thread-retirement segfault of docs/regapi.md happened."""
            token = _Token()
            with lock:              # once per thread
                for cell in cells:
                    ref = owner.get(cell)
                    if ref is None or ref() is None:
                        owner[cell] = weakref.ref(token)
                        break
                else:
                    cell = 0        # none free: this thread counts under the lock
            local.token, local.cell = token, cell
            return cell

        def counted(environ, start_response):
            try:
                cell = local.cell
            except AttributeError:
                cell = claim()
            if not cell:
                return locked(environ, start_response)
            v[cell] = 1
            try:
                return app(environ, start_response)   # the body is complete on return
            finally:
                v[cell] = 0

        def locked(environ, start_response):
            with lock:
                v[shared] += 1
            try:
                return app(environ, start_response)
            finally:
                with lock:
                    v[shared] -= 1

        counted.app = app
        return counted

    def total(self, pids) -> int:
        v, width = self._v, self.width
        return sum(max(0, sum(v[i * width + 1:(i + 1) * width]))
                   for i in range(self.nslots)
                   if v[i * width] and v[i * width] in pids)


class _Token:
    """What a request thread's local data holds: a weak reference to it tells whether
    the thread (its cell's owner) has ended."""
    __slots__ = ("__weakref__",)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_app():
    """granian's target (``factory=True``) in each worker: the regapi app, counted."""
    from regapi.app import app_factory
    if os.environ.get("WNSHELL_MEMPROBE"):      # a diagnostic, off by default
        from regapi.memprobe import start_from_env
        start_from_env()
    app = app_factory()
    return _INFLIGHT.wrap(app) if _INFLIGHT is not None else app


def _say(text: str) -> None:
    """A line on stderr from a signal handler (no buffered stream: re-entrant safe)."""
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def _server_class():
    from granian import Granian

    class Server(Granian):
        """granian's server, with a second SIGINT/SIGTERM meaning "stop now", and
        each worker (respawned ones too) on its CPU of ``cpu_plan``."""
        inflight: InFlight | None = None
        cpu_plan: list = []

        def _spawn_worker(self, idx, target, callback_loader, *args, **kwargs):
            if self.cpu_plan:
                callback_loader = OnCpu(callback_loader,
                                        self.cpu_plan[idx % len(self.cpu_plan)])
            return super()._spawn_worker(idx, target, callback_loader, *args, **kwargs)

        def signal_handler_interrupt(self, signum=None, *args, **kwargs):
            name = _signame(signum)
            if not getattr(self, "interrupt_signal", False):
                pids = _pids(getattr(self, "wrks", ()))
                n = self.inflight.total(pids) if self.inflight is not None else None
                what = "unknown" if n is None else str(n)
                _say(f"regapi: {name}: graceful shutdown, {what} request"
                     f"{'' if n == 1 else 's'} in flight (again to stop now; workers "
                     f"are killed after {KILL_TIMEOUT}s)\n")
                return super().signal_handler_interrupt(signum, *args, **kwargs)
            # the second one: kill the workers now; the main process leaves as soon
            # as granian's watchers have seen them go
            pids = _pids(getattr(self, "wrks", ()))
            n = self.inflight.total(pids) if self.inflight is not None else None
            _say(f"regapi: {name} again: stopping now"
                 + (f", {n} request{'' if n == 1 else 's'} cut off" if n else "") + "\n")
            for w in list(getattr(self, "wrks", ())):
                try:
                    w.kill()
                except (OSError, AttributeError, ValueError):
                    pass
            raise SystemExit(128 + (signum or 15))

    return Server


def _pids(workers) -> set:
    return {p for p in (getattr(getattr(w, "inner", None), "pid", None)
                        for w in list(workers)) if p}


def _signame(signum) -> str:
    import signal
    try:
        return signal.Signals(signum).name
    except (ValueError, TypeError):
        return "signal"


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
