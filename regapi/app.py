"""The WSGI app that serves ``.regapi`` templates: ``make_app(store_url)``.

Per request: route the path (``regapi.router``), build the request metadata
(``regapi.request``; every value marked as the request's, so it can only add names
below the path the template wrote), make the request object only when the template
uses ``${id}`` -- in memory, held by the request's session, never in the store unless
the API asks to keep it -- run the *parsed* template on the request thread in a fresh
``Session`` of the API's user, confined to that user's home with ``~/.weixin`` and
``~/.regapi`` hidden (nothing else can be read, changed or found), with the metadata as
``template_vars``, and map the outcome to a response (``regapi.response``).  One store
per worker process; parsed templates and routes are cached per worker.

Limits on by default: request body 1 MiB (413), a per-request deadline (504), and a
catch-all so that no traceback ever reaches a client.  One access-log line per request
(client address, method, path without the query string, status, bytes, duration): buffered to stderr by
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

from regapi import guard
from regapi import request as rq
from regapi import response as rs
from regapi import websession
from regapi.router import RouteError, Router, wsgi_path

log = logging.getLogger("regapi")
access_log = logging.getLogger("regapi.access")

DEFAULT_DEADLINE = 30.0
PURGE_EVERY = 30.0
REQOBJ_META = "regapi-reqobj"     # API metadata: true forces a request object


# A request's session sees neither the merchant's account nor the API tree: the commands
# that own them (weixin) read them through the store's unhidden view.
HIDDEN = (".weixin", ".regapi")
KEEP_META = "regapi-reqobj-keep"  # API metadata: true or seconds -> store the request object
KEEP_MAX_S = 86400


def keep_ms(api, default_ms: int) -> int | None:
    """How long an API asks to keep its request objects (ms), or None (in memory only)."""
    v = api.get(KEEP_META)
    if v is True:
        return default_ms
    if isinstance(v, int) and not isinstance(v, bool) and 0 < v <= KEEP_MAX_S:
        return v * 1000
    return None


def runs_inline(tree, registry) -> bool:
    """May the template run on the request thread?  Yes when every command it can run
    is known by name (the syntax tree says which: ``wnshell.nodes.command_names``) and
    declares that it never waits, or waits only within the session's deadline
    (``Command.blocks``); a command that does not declare it, or a name computed at run
    time, runs where the deadline can still answer 504 without it."""
    from wnshell.nodes import command_names
    names = command_names(tree)
    if names is None:
        return False
    for name in names:
        try:
            cmd = registry.get(name)
        except Exception:  # noqa: BLE001 - a plugin that fails to load: not inline
            return False
        if cmd is not None and getattr(cmd, "blocks", True) not in (False, "deadline"):
            return False
    return True


class Template:
    """A parsed API object, with what the response needs from its metadata."""
    __slots__ = ("ast", "uses_id", "inline", "version", "headers", "mime", "redirect",
                 "names", "api", "as_json", "qs_mime", "keep_ms", "token", "cors", "ws",
                 "binds_session", "ok_headers", "request_names", "query_keys", "plan")

    def __init__(self, ast, api, version, registry=None, default_keep_ms=rq.REQ_TTL_MS):
        from wnshell.nodes import variables
        self.ast = ast
        self.names = variables(ast)
        # the names select_vars takes from the request (${id} is the app's own)
        self.request_names = self.names - {"id"}
        # the template reads the query string only: (name, key) pairs, else None
        self.query_keys = rq.query_keys(self.request_names)
        self.keep_ms = keep_ms(api, default_keep_ms)
        self.token = guard.token_of(api)        # api-access-token (None: open)
        self.cors = guard.cors_of(api)          # http-cross-origin (None: no CORS)
        self.ws = websession.mode(api)          # None for every ordinary API
        self.binds_session = bool(self.ws) or websession.wanted(self.names)
        self.uses_id = ("id" in self.names or api.get(REQOBJ_META) is True
                        or self.keep_ms is not None)
        registry = registry if registry is not None else _shell()[1]
        self.inline = runs_inline(ast, registry)
        # the plainest templates (echo ${http-qs-x}) run without a session
        self.plan = None
        if self.query_keys is not None and self.inline and not self.uses_id \
                and not self.binds_session:
            from wnshell.plan import compile_plan
            self.plan = compile_plan(ast, registry, self.request_names)
        self.version = version
        self.headers = tuple(rs.api_headers(api))
        self.mime = rs.content_type(api)
        # a 200 in the API's own type: its headers, then its Content-Type
        self.ok_headers = self.headers + (("Content-Type", rs.with_charset(self.mime)),)
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
        # access log: a BufferedAccessLog (its ``record``, a C call, takes each
        # request's fields); None logs through the ``regapi.access`` logger
        self.access = access
        self._record = access.record if access is not None else None

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
        t = Template(ast, api, version, default_keep_ms=self.req_ttl_ms)
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
        if status == 204:           # no content: no body, no framing of one
            body = b""
        elif status != 200 and not any(h[0] == "Content-Type" for h in headers):
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        if status != 204:
            headers.append(("Content-Length", str(len(body))))
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response(_STATUS.get(status) or rs.status_line(status), headers)
        if method == "HEAD":
            body = b""
        if self._record is not None:      # one C call (BufferedAccessLog.record)
            t1 = time.perf_counter()
            self._record((t1, method, path, status, len(body), t1 - t0,
                          environ.get("REMOTE_ADDR")))
        elif access_log.isEnabledFor(logging.INFO):
            access_log.info('%s %s %s %d %d %.1fms', _log_addr(environ.get("REMOTE_ADDR")),
                            method, _log_path(path), status, len(body),
                            (time.perf_counter() - t0) * 1000)
        return [body]

    def handle(self, environ, path):
        route = self.router.resolve_path(path)
        if route is None:
            raise RouteError("e.regapi.noexists", "no such API", kind="not_found")
        tpl = self.template(route.api)
        if tpl.cors is None:
            return self._answer(environ, path, route, tpl)
        if environ.get("REQUEST_METHOD") == "OPTIONS":     # preflight: metadata only
            return guard.preflight(tpl.cors, environ)
        status, headers, body = self._answer(environ, path, route, tpl)
        headers = list(headers) + guard.cors_headers(tpl.cors, environ)
        return status, headers, body

    def _answer(self, environ, path, route, tpl):
        usr = route.usr
        try:
            rq.check_length(environ, self.max_body)
            query = rq.parse_query(environ.get("QUERY_STRING", ""))
            if tpl.token is not None and not guard.token_ok(environ, query, tpl.token):
                raise guard.token_refused()
        except rq.HttpError as e:       # in the API's own error format (JSON or text)
            return _error(e.http_code, e.key, e.reason, tpl.as_json)
        mime, as_json = tpl.mime, tpl.as_json
        if tpl.qs_mime and query.get("mime"):     # opted in; passive types only
            mime = rs.query_mime(query["mime"]) or mime
            as_json = rs.is_json(mime)
        try:
            held, granted = (), None
            if tpl.uses_id:
                body = rq.read_body(environ, self.max_body)
                rq.check_body(body)
                if tpl.keep_ms is None:     # in memory, held by this request's session
                    obj = rq.HeldRequest(environ, usr, path, route.rel, route.args,
                                         query, body)
                    held = ((obj, body),)
                else:                       # kept: stored where only this request sees it
                    meta = rq.build_meta(environ, usr, path, route.rel, route.args, query)
                    obj = rq.keep_request_object(self.store, usr, meta, body, tpl.keep_ms)
                    granted = obj["id"]
                    self.maybe_purge()
            # only the variables the template names: it can observe no other
            if tpl.query_keys is not None:      # (and so when it names none)
                tvars = rq.select_query(query, tpl.query_keys)
            else:
                tvars = rq.select_vars(environ, usr, path, route.rel, route.args, query,
                                       tpl.request_names)
            if tpl.uses_id:
                tvars["id"] = obj.id if granted is None else granted
            ws = tpl.ws
            if tpl.binds_session:
                websession.bind(self.store, environ, usr, tvars, ws, query)
            out = tpl.plan.run(tvars) if tpl.plan is not None else None
            if out is not None:     # what the session would give: exit 0, only stdout
                status, err, last, chosen = 0, "", None, None
            else:
                status, out, err, last, chosen = self.run(usr, tpl, tvars, held, granted)
        except rq.HttpError as e:
            return _error(e.http_code, e.key, e.reason, as_json)
        except WnError as e:
            return _error(rs.error_status(e), e.key, e.reason, as_json)

        if status == 0 and ws:
            return websession.respond(self.store, environ, usr, ws, out, as_json)
        if status == 0:
            if mime is tpl.mime and chosen is None and not tpl.redirect:    # most answers
                return 200, list(tpl.ok_headers), out.encode("utf-8")
            headers = list(tpl.headers)
            if tpl.redirect:
                loc = rs.check_location(out)
                if loc is None:
                    return _error(500, "e.regapi.redirect.invalid", "bad redirect target",
                                  as_json)
                headers.append(("Location", loc))
                return tpl.redirect, headers, b""
            if chosen is not None:          # session.set_response: the command's choice
                code, ctype = chosen
                if code == 204:
                    return 204, headers, b""
                headers.append(("Content-Type", rs.with_charset(ctype or mime)))
                return code, headers, out.encode("utf-8")
            headers.append(("Content-Type", rs.with_charset(mime)))
            return 200, headers, out.encode("utf-8")
        if last is not None:
            return _error(rs.error_status(last), last.key, last.reason, as_json)
        line = (err.strip().splitlines() or [""])[-1]
        key, _, reason = line.partition(" : ")
        if not key.startswith("e.") or " " in key:
            key, reason = "e.regapi.failed", f"exit status {status}"
        return _error(500, key, reason, as_json)

    def run(self, usr, tpl, tvars, held=(), granted=None):
        """Run the parsed template in a fresh Session of ``usr`` (empty stdin) under the
        deadline; (status, stdout, stderr, last_error, the status and content type a
        command chose with ``session.set_response`` or None).

        The session is confined to the user's home with ``HIDDEN`` hidden, and holds
        the request object (``held``) or is granted the kept one.  The deadline is the
        session's: the executor starts no command after it, and commands that wait on
        the network take the remaining time as their timeout.  So a template runs on
        the request thread -- unless it can run a command that does not declare
        (``Command.blocks``) that it waits within the deadline: that one runs on a
        pool thread and the request answers 504 when it is not done in time."""
        Session = (_SHELL or _shell())[0]
        limit = time.monotonic() + self.deadline if self.deadline else None
        # confined, and the home known to exist: the API object lives below /home/<usr>
        # (spares the Session its "create home when missing" lookup, one store read)
        session = Session.for_request(self.store, usr, HIDDEN, held, limit)
        if granted is not None:
            session.store.grant(granted)
        if tpl.inline:          # on this thread: the session's deadline bounds it
            result = _run_in(session, tpl, tvars)
            if limit is None or time.monotonic() <= limit:
                return result
        elif limit is None:
            return _run_in(session, tpl, tvars)
        else:
            fut = self._pool().submit(_run_in, session, tpl, tvars)
            try:
                result = fut.result(timeout=max(0.0, limit - time.monotonic()))
            except FutureTimeout:
                result = None
        if result is None or time.monotonic() > limit:      # (limit is set here)
            raise WnError("e.regapi.timeout", f"no answer within {self.deadline:g}s",
                          kind=TIMEOUT)
        return result

    def _pool(self):
        pool = self._executor
        if pool is None:
            with _POOL_LOCK:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.threads,
                                                        thread_name_prefix="regapi-run")
                pool = self._executor
        return pool


def _run_in(session, tpl, tvars):
    """The template run in ``session``: what ``RegApiApp.run`` returns."""
    status, out, err = session.run_ast(tpl.ast, stdin="", template_vars=tvars)
    return status, out, err, session.last_error, session.response


_SHELL = None


def _shell():
    """(Session, REGISTRY), imported once (at the first request, not at import)."""
    global _SHELL
    if _SHELL is None:
        from wnshell.registry import REGISTRY
        from wnshell.session import Session
        _SHELL = (Session, REGISTRY)
    return _SHELL


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


def _log_field(text: str) -> str:
    """A request method as one field (granian only passes HTTP tokens; still, a field
    never adds fields to the line)."""
    if type(text) is str and text.isascii() and text.isprintable() and " " not in text:
        return text[:32] or "-"
    return "?"


FIELDS_CACHED = 4096    # BufferedAccessLog: (address, method, path) triples remembered


def _log_addr(addr) -> str:
    """The client address as one field (it comes from the socket, but never trust a
    field to be what it should be)."""
    if not addr:
        return "-"
    if type(addr) is not str or not (addr.isascii() and addr.isprintable()) \
            or " " in addr or len(addr) > 64:
        return "?"
    return addr


class BufferedAccessLog:
    """One line per request -- ``TIME [PID] regapi.access ADDR METHOD PATH STATUS BYTES
    DURATIONms`` (TIME as in ``regapi.logfmt``; no query string, no headers, no bodies)
    -- appended to a buffer that a thread writes out every ``interval`` seconds and at
    process exit.

    A request costs one C call, ``record((perf_counter, method, path, status, nbytes,
    seconds, addr))`` (``deque.append``); the thread makes the lines, each with the
    UTC second the request ended in (its ``perf_counter`` put on the wall clock at the
    flush).  Measured served (2 workers, echo API): a ``logging`` call costs about
    10 µs of CPU a request; this log 1.5 µs, where making the line on the request's
    thread cost 3.5."""

    # every 50 ms: the thread holds the GIL while it makes the lines, and at 40k
    # requests a second 0.25 s of them doubled the p99 of the echo API (7 ms, not 3)
    def __init__(self, stream, interval: float = 0.05):
        self.stream = stream
        self.interval = interval
        # lines (str) and requests (tuples) in order; append/popleft are atomic
        self._buf: deque = deque()
        self.record = self._buf.append
        self._pid = os.getpid()
        self._second = (-1, "")     # (second, "TIME [PID] regapi.access ") made last
        # (addr, method, path) -> their checked fields: clients and APIs repeat
        self._fields: dict[tuple, str] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, name="regapi-access-log", daemon=True).start()
        import atexit
        import multiprocessing.util
        atexit.register(self.flush)
        # forked workers leave through multiprocessing, which skips atexit
        multiprocessing.util.Finalize(self, self.flush, exitpriority=100)

    def _line(self, req: tuple, offset: float) -> str:
        """The line of one ``record``ed request (``offset``: wall clock - perf_counter)."""
        ended, method, path, status, nbytes, seconds, addr = req
        second = int(ended + offset)
        if second != self._second[0]:
            from regapi.logfmt import stamp
            self._second = (second, f"{stamp(second)} [{self._pid}] regapi.access ")
        key = (addr, method, path)
        fields = self._fields.get(key)
        if fields is None:
            fields = f"{_log_addr(addr)} {_log_field(method)} {_log_path(path)}"
            if len(self._fields) >= FIELDS_CACHED:
                self._fields.clear()
            self._fields[key] = fields
        return f"{self._second[1]}{fields} {status} {nbytes} {seconds * 1000:.1f}ms\n"

    def add(self, line: str, now: bool = False) -> None:
        """Another line (ending in a newline) for the buffer; ``now``: written at once,
        after every line before it."""
        self._buf.append(line)
        if now:
            self.flush()

    def flush(self):
        with self._lock:
            q = self._buf
            buf = [q.popleft() for _ in range(len(q))]
            if not buf:
                return
            offset = time.time() - time.perf_counter()   # perf_counter -> wall clock
            text = "".join(x if type(x) is str else self._line(x, offset) for x in buf)
            try:
                self.stream.write(text)
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
    lines = BufferedAccessLog(sys.stderr)
    _setup_logging(access, lines)
    return make_app(access=lines if access else None)


class BufferedLogHandler(logging.Handler):
    """The server's ``regapi``/``wnshell`` log records into a ``BufferedAccessLog``:
    INFO lines (an order paid) leave with the next flush, off the request's thread
    (no write and flush of stderr on the pay path); a WARNING or worse is written at
    once, after the lines before it, so the order of lines is kept."""

    def __init__(self, sink: BufferedAccessLog):
        super().__init__()
        self.sink = sink

    def emit(self, record):
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - logging's own contract: never raise
            self.handleError(record)
            return
        self.sink.add(line, now=record.levelno >= logging.WARNING)


def _setup_logging(access: bool = True, lines: BufferedAccessLog | None = None) -> None:
    """Server logging: ``regapi`` lines (and the ``weixin`` command's) to stderr
    (through ``lines`` when given); the access log at INFO unless turned off."""
    # what no server line shows (LINE_FORMAT: time, process, logger, message), not
    # computed for each record: the caller's file and line (a walk up the stack), the
    # thread's and the multiprocessing process's names (the logging HOWTO's
    # "Optimization")
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    if not log.handlers:
        from regapi.logfmt import Formatter
        h = BufferedLogHandler(lines) if lines is not None else logging.StreamHandler()
        h.setFormatter(Formatter())
        for lg in (log, logging.getLogger("wnshell")):   # regapi and the commands' logs
            lg.addHandler(h)
            lg.propagate = False
            lg.setLevel(logging.INFO)
    access_log.setLevel(logging.INFO if access else logging.WARNING)

