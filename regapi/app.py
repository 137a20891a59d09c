"""The WSGI app that serves ``.regapi`` templates: ``make_app(store_url)``.

Per request: route the path (``regapi.router``), build the request metadata
(``regapi.request``), create the request object only when the template uses ``${id}``
(one store write, content and metadata at once), run the *parsed* template in a fresh
``Session`` of the API's user, confined to that user's home (``confine=True``: nothing
outside ``/home/<usr>`` can be read, changed or found), with the metadata as
``template_vars``, and map the outcome to a response (``regapi.response``).  One store
per worker process; parsed templates and routes are cached per worker.

Limits on by default: request body 1 MiB (413), a per-request deadline (504), and a
catch-all so that no traceback ever reaches a client.  One access-log line per request
(method, path without the query string, status, bytes, duration): buffered to stderr by
``wnshell serve`` (``BufferedAccessLog``), else on the ``regapi.access`` logger.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from objstore.errors import TIMEOUT, WnError

from regapi import request as rq
from regapi import response as rs
from regapi.router import RouteError, Router, wsgi_path

log = logging.getLogger("regapi")
access_log = logging.getLogger("regapi.access")

DEFAULT_DEADLINE = 30.0
PURGE_EVERY = 30.0
REQOBJ_META = "regapi-reqobj"     # API metadata: true forces a request object


# Commands that only touch the store and memory: a template made of these alone runs
# on the request thread (a thread hop costs more than the whole command).  Any other
# command (httpc, weixin, plugins, a name computed at run time) runs on the pool so
# that the deadline can answer 504 while it is stuck.
INLINE_COMMANDS = frozenset({"echo", "true", "false", "exit", "export", "env", "cd", "pwd",
                             "cat", "ls", "mkdir", "touch", "rm", "mv", "obj", "json",
                             "help", "man"})


def _walk(node):
    from wnshell import nodes as n
    stack = [node]
    while stack:
        x = stack.pop()
        yield x
        if isinstance(x, n.Var):
            if x.default:
                stack.extend(x.default)
        elif isinstance(x, n.Word):
            stack.extend(x.parts)
        elif isinstance(x, n.Sub):
            stack.append(x.body)
        elif isinstance(x, n.Script):
            stack.extend(x.items)
        elif isinstance(x, n.AndOr):
            stack.append(x.first)
            stack.extend(p for _, p in x.rest)
        elif isinstance(x, n.Pipeline):
            stack.extend(x.cmds)
        elif isinstance(x, n.Simple):
            stack.extend(w for _, w in x.assigns)
            stack.extend(x.words)
            stack.extend(r.target for r in x.redirs if isinstance(r.target, n.Node))
        elif isinstance(x, (list, tuple)):
            stack.extend(x)


def uses_var(node, name: str) -> bool:
    """Does the syntax tree reference template variable ``name`` anywhere (words,
    assignments, redirection targets, defaults, ``$(...)`` bodies)?"""
    from wnshell import nodes as n
    return any(isinstance(x, n.Var) and x.name == name for x in _walk(node))


def runs_inline(node) -> bool:
    """True when every command the tree can run is a literal name in INLINE_COMMANDS."""
    from wnshell import nodes as n
    for x in _walk(node):
        if isinstance(x, n.Simple) and x.words:
            parts = x.words[0].parts
            if not parts or not all(isinstance(p, n.Lit) for p in parts):
                return False
            if "".join(p.text for p in parts) not in INLINE_COMMANDS:
                return False
    return True


class Template:
    """A parsed API object, with what the response needs from its metadata."""
    __slots__ = ("ast", "uses_id", "inline", "version", "headers", "mime", "redirect",
                 "names", "api", "as_json", "qs_mime")

    def __init__(self, ast, api, version):
        from wnshell import nodes as n
        self.ast = ast
        self.names = frozenset(x.name for x in _walk(ast) if isinstance(x, n.Var))
        self.uses_id = uses_var(ast, "id") or api.get(REQOBJ_META) is True
        self.inline = runs_inline(ast)
        self.version = version
        self.headers = tuple(rs.api_headers(api))
        self.mime = rs.content_type(api)
        self.qs_mime = api.get(rs.QS_MIME_META) is True
        self.as_json = rs.is_json(self.mime)
        self.redirect = rs.redirect_code(api)
        self.api = api          # the object it was made from (identity = still current)


class RegApiApp:
    def __init__(self, store, *, route_ttl: float = 1.0, max_body: int = rq.MAX_BODY,
                 deadline: float | None = DEFAULT_DEADLINE, req_ttl_ms: int = rq.REQ_TTL_MS,
                 purge_every: float = PURGE_EVERY, threads: int = 64, access=None):
        self.store = store
        self.router = Router(store, ttl=route_ttl)
        self.max_body = max_body
        self.deadline = deadline
        self.req_ttl_ms = req_ttl_ms
        self.purge_every = purge_every
        self._templates: dict[str, Template] = {}
        self._purge_lock = threading.Lock()
        self._last_purge = time.monotonic()
        self.threads = threads
        self._executor = None
        # access log: a callable (method, path, status, nbytes, seconds), e.g. a
        # BufferedAccessLog; None logs through the ``regapi.access`` logger
        self.access = access

    # -- templates ------------------------------------------------------------
    def template(self, api) -> Template:
        t = self._templates.get(api["id"])
        if t is not None and t.api is api:      # the same cached route object
            return t
        version = (api.get("lm"), api.get("sha1"), api.get("len"), api.get("ph"))
        if t is not None and t.version == version:
            t.api = api
            return t
        from wnshell.parser import parse
        try:
            text = self.store.read(api["id"]).decode("utf-8")
        except UnicodeDecodeError:
            raise WnError("e.regapi.api.invalid", "API template is not UTF-8",
                          kind="internal") from None
        try:
            ast = parse(text)
        except WnError as e:     # the API's own text is broken: a server-side fault
            raise WnError("e.regapi.api.invalid", f"{e.key} : {e.reason}",
                          kind="internal") from None
        t = Template(ast, api, version)
        if len(self._templates) > 4096:
            self._templates.clear()
        self._templates[api["id"]] = t
        return t

    # -- housekeeping ---------------------------------------------------------
    def maybe_purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < self.purge_every:
            return
        if not self._purge_lock.acquire(blocking=False):
            return
        self._last_purge = now

        def purge():
            try:
                self.store.purge_expired()
            except Exception:  # noqa: BLE001 - housekeeping must never hurt requests
                log.warning("purge of expired objects failed", exc_info=True)
            finally:
                self._purge_lock.release()

        threading.Thread(target=purge, name="regapi-purge", daemon=True).start()

    # -- WSGI -----------------------------------------------------------------
    def __call__(self, environ, start_response):
        t0 = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        path = "?"
        try:
            path = wsgi_path(environ)
            status, headers, body = self.handle(environ, path)
        except rq.HttpError as e:
            status, headers, body = e.http_code, [], rs.error_body(e.key, e.reason, False)
        except WnError as e:
            status, headers, body = rs.error_status(e), [], rs.error_body(e.key, e.reason, False)
        except Exception:  # noqa: BLE001 - never a traceback to a client
            log.exception("internal error serving %s %s", method, _log_path(path))
            status, headers, body = 500, [], b"e.regapi.internal : internal error\n"
        if status != 200 and not any(h[0] == "Content-Type" for h in headers):
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        headers.append(("Content-Length", str(len(body))))
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response(_STATUS.get(status) or rs.status_line(status), headers)
        if method == "HEAD":
            body = b""
        if self.access is not None:
            self.access(method, path, status, len(body), time.perf_counter() - t0)
        elif access_log.isEnabledFor(logging.INFO):
            access_log.info('%s %s %d %d %.1fms', method, _log_path(path), status,
                            len(body), (time.perf_counter() - t0) * 1000)
        return [body]

    def handle(self, environ, path):
        route = self.router.resolve_path(path)
        if route is None:
            raise RouteError("e.regapi.noexists", "no such API", kind="not_found")
        usr = route.usr
        tpl = self.template(route.api)
        try:
            rq.check_length(environ, self.max_body)
            query = rq.parse_query(environ.get("QUERY_STRING", ""))
        except rq.HttpError as e:       # in the API's own error format (JSON or text)
            return _error(e.http_code, e.key, e.reason, tpl.as_json)
        mime, as_json = tpl.mime, tpl.as_json
        if tpl.qs_mime and query.get("mime"):     # opted in; passive types only
            mime = rs.query_mime(query["mime"]) or mime
            as_json = rs.is_json(mime)
        try:
            if tpl.uses_id:
                meta = rq.build_meta(environ, usr, path, route.rel, route.args, query)
                body = rq.read_body(environ, self.max_body)
                rq.check_body(body)
                obj = rq.create_request_object(self.store, usr, meta, body, self.req_ttl_ms)
                tvars = rq.template_vars(meta)
                tvars["id"] = obj["id"]
                self.maybe_purge()
            else:
                tvars = rq.select_vars(environ, usr, path, route.rel, route.args, query,
                                       tpl.names)
            status, out, err, last = self.run(usr, tpl, tvars)
        except rq.HttpError as e:
            return _error(e.http_code, e.key, e.reason, as_json)
        except WnError as e:
            return _error(rs.error_status(e), e.key, e.reason, as_json)

        if status == 0:
            headers = list(tpl.headers)
            if tpl.redirect:
                loc = rs.check_location(out)
                if loc is None:
                    return _error(500, "e.regapi.redirect.invalid", "bad redirect target",
                                  as_json)
                headers.append(("Location", loc))
                return tpl.redirect, headers, b""
            headers.append(("Content-Type", rs.with_charset(mime)))
            return 200, headers, out.encode("utf-8")
        if last is not None:
            return _error(rs.error_status(last), last.key, last.reason, as_json)
        line = (err.strip().splitlines() or [""])[-1]
        key, _, reason = line.partition(" : ")
        if not key.startswith("e.") or " " in key:
            key, reason = "e.regapi.failed", f"exit status {status}"
        return _error(500, key, reason, as_json)

    def run(self, usr, tpl, tvars):
        """Run the parsed template in a fresh Session of ``usr`` (empty stdin) under the
        deadline; (status, stdout, stderr, last_error).

        The deadline is enforced twice: a template that may block (see
        INLINE_COMMANDS) runs on a worker thread and the request answers 504 when it is
        not done in time (the request thread is never stuck behind a hung command);
        and the Session's registry refuses to start any further command once the
        deadline has passed (so an abandoned or slow run stops at its next command)."""
        Session, REGISTRY = _shell()
        # confine=True: the session's store is a view of /home/<usr> only, so no value
        # of the request can name another user's object (objstore/scoped.py).
        # home_known=True: the API object lives below /home/<usr>, so the home exists;
        # spare the Session its "create home when missing" lookup (one store read).
        if not self.deadline:
            session = Session(self.store, user=usr, confine=True, home_known=True)
            status, out, err = session.run_ast(tpl.ast, stdin="", template_vars=tvars)
            return status, out, err, session.last_error
        limit = time.monotonic() + self.deadline
        session = Session(self.store, user=usr, registry=DeadlineRegistry(REGISTRY, limit),
                          confine=True, home_known=True)
        if tpl.inline:
            status, out, err = session.run_ast(tpl.ast, stdin="", template_vars=tvars)
            if time.monotonic() > limit:
                raise WnError("e.regapi.timeout", f"no answer within {self.deadline:g}s",
                              kind=TIMEOUT)
            return status, out, err, session.last_error

        def job():
            status, out, err = session.run_ast(tpl.ast, stdin="", template_vars=tvars)
            return status, out, err, session.last_error

        fut = self._pool().submit(job)
        try:
            return fut.result(timeout=max(0.0, limit - time.monotonic()))
        except FutureTimeout:
            raise WnError("e.regapi.timeout", f"no answer within {self.deadline:g}s",
                          kind=TIMEOUT) from None

    def _pool(self):
        pool = self._executor
        if pool is None:
            with _POOL_LOCK:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.threads,
                                                        thread_name_prefix="regapi-run")
                pool = self._executor
        return pool


_SHELL = None


def _shell():
    """(Session, REGISTRY), imported once (at the first request, not at import)."""
    global _SHELL
    if _SHELL is None:
        from wnshell.registry import REGISTRY
        from wnshell.session import Session
        _SHELL = (Session, REGISTRY)
    return _SHELL


class DeadlineRegistry:
    """The command registry as a Session sees it, refusing new commands once the
    request's deadline has passed (the rest of an abandoned template never runs)."""

    def __init__(self, parent, limit: float):
        self._parent = parent
        self._limit = limit

    def get(self, name):
        if time.monotonic() > self._limit:
            raise WnError("e.regapi.timeout", "request deadline passed", kind=TIMEOUT)
        return self._parent.get(name)

    def __getattr__(self, attr):
        return getattr(self._parent, attr)


_POOL_LOCK = threading.Lock()
_STATUS = {c: rs.status_line(c) for c in rs.REASONS}


def _error(code: int, key: str, reason: str, as_json: bool):
    ctype = "application/json; charset=utf-8" if as_json else "text/plain; charset=utf-8"
    return code, [("Content-Type", ctype)], rs.error_body(key, reason, as_json)


def _log_path(path: str) -> str:
    """The path as one field of a log line: control and non-ASCII characters escaped,
    spaces as %20 (a path must never add fields to the line), at most 300 characters."""
    if not (path.isascii() and path.isprintable()):
        path = path.encode("unicode_escape").decode("ascii")
    if " " in path:
        path = path.replace(" ", "%20")
    return path[:300]


class BufferedAccessLog:
    """One line per request -- ``TIME [PID] METHOD PATH STATUS BYTES DURATIONms`` (no
    query string, no headers, no bodies) -- appended to a buffer that a thread writes
    out every ``interval`` seconds and at process exit.  About 1 µs a request, where a
    ``logging`` call costs 10."""

    def __init__(self, stream, interval: float = 0.25):
        self.stream = stream
        self.interval = interval
        self._buf: deque[str] = deque()     # append/popleft are atomic: no lost line
        self._sec = -1
        self._stamp = ""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, name="regapi-access-log", daemon=True).start()
        import atexit
        import multiprocessing.util
        atexit.register(self.flush)
        # forked workers leave through multiprocessing, which skips atexit
        multiprocessing.util.Finalize(self, self.flush, exitpriority=100)

    def __call__(self, method, path, status, nbytes, seconds):
        now = int(time.time())
        if now != self._sec:
            self._sec = now
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self._buf.append(f"{self._stamp} [{self._pid}] regapi.access {method} "
                         f"{_log_path(path)} {status} {nbytes} {seconds * 1000:.1f}ms\n")

    def flush(self):
        with self._lock:
            q = self._buf
            buf = [q.popleft() for _ in range(len(q))]
            if buf:
                try:
                    self.stream.write("".join(buf))
                    self.stream.flush()
                except (OSError, ValueError):
                    pass

    def _loop(self):
        while True:
            time.sleep(self.interval)
            self.flush()


def make_app(store_url: str | None = None, **kw) -> RegApiApp:
    """The WSGI app over the store at ``store_url`` (None: ``WNSHELL_STORE`` or the
    default SQLite file).  ``serve`` passes settings through ``WNSHELL_REGAPI_*``."""
    from objstore import open_store
    store = open_store(store_url or os.environ.get("WNSHELL_STORE") or None)
    for key, conv in (("route_ttl", float), ("max_body", int), ("deadline", float),
                      ("threads", int)):
        env = os.environ.get("WNSHELL_REGAPI_" + key.upper())
        if env and key not in kw:
            kw[key] = conv(env)
    return RegApiApp(store, **kw)


def app_factory() -> RegApiApp:
    """Target for granian (``factory=True``): one app, one store, per worker process."""
    import sys
    access = os.environ.get("WNSHELL_REGAPI_ACCESS_LOG", "1") != "0"
    _setup_logging(access)
    return make_app(access=BufferedAccessLog(sys.stderr) if access else None)


def _setup_logging(access: bool = True) -> None:
    """Server logging: ``regapi`` lines (and the ``weixin`` command's) to stderr; the
    access log at INFO unless turned off."""
    if not log.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(name)s %(message)s"))
        for lg in (log, logging.getLogger("wnshell")):   # regapi and the commands' logs
            lg.addHandler(h)
            lg.propagate = False
            lg.setLevel(logging.INFO)
    access_log.setLevel(logging.INFO if access else logging.WARNING)

