"""``Session``: the one object every entry point runs shell text through (REPL, ``-c``,
scripts, piped stdin, ``.regapi`` requests, tests).

    s = Session(open_store("memory://"), user="demo")
    status, out, err = s.run("echo hi | cat")
    tree = wnshell.parser.parse("echo ${http-qs-id}")    # parse once, run many times
    status, out, err = s.run_ast(tree, "", template_vars={"http-qs-id": "o1"})

Attributes: ``store``, ``user``, ``home`` (``/home/<user>``, created when missing),
``cwd``, ``env`` (dict of strings), ``argv`` (``$0 $1 ...``), ``registry``,
``last_status``, ``last_error`` (the last ``WnError`` of the latest run, or None),
``exit_requested`` (the status given to ``exit``, else None), ``response_status`` and
``response_type`` (what a command chose for the HTTP answer of a ``.regapi`` request,
through :meth:`Session.set_response`; None by default, reset by each top-level run).

``Session(store, user, confine=True)`` confines the session to the user's home: its
``store`` is then an ``objstore.scoped.ScopedStore`` view of ``store`` in which nothing
outside ``/home/<user>`` exists (reads: not found; creates/moves there: forbidden;
queries: only the home's subtree), whatever path, ``id:`` or query a command is given.
Every ``.regapi`` request runs confined; the interactive shell and ``-c`` do not (the
local user owns the store) unless ``wnshell --confine``.  ``home_known=True`` skips the
home check (one store read) when the caller knows the home exists.  A confined session
may also ``hide`` subtrees of the home (names, e.g. ``(".weixin", ".regapi")``: invisible
and unwritable to it) and ``held`` objects that only it can see (``(obj, content)``
pairs kept in memory: a request's own object).

``deadline`` (a ``time.monotonic()`` value) bounds the run: the executor starts no
command after it (``e.cmd.timeout``, kind timeout), and commands that wait on the
network take ``session.remaining()`` as their timeout.
"""
from __future__ import annotations

import io
import time

from objstore.paths import resolve as _resolve_path
from wnshell.errors import BAD_INPUT, INTERNAL, ShellSyntaxError, WnError
from wnshell.executor import Executor, ExitShell


_SCOPED = None


_REGISTRY = None


def _registry():
    """wnshell.registry.REGISTRY, imported once (a ``from ... import`` statement costs
    ~0.6 µs even when the module is loaded; every request makes a session)."""
    global _REGISTRY
    if _REGISTRY is None:
        from wnshell.registry import REGISTRY
        _REGISTRY = REGISTRY
    return _REGISTRY


def _scoped_store():
    """objstore.scoped.ScopedStore, imported by the first confined session (a
    ``from ... import`` statement costs ~0.6 µs even when the module is loaded, and a
    .regapi request makes one confined session)."""
    global _SCOPED
    if _SCOPED is None:
        from objstore.scoped import ScopedStore
        _SCOPED = ScopedStore
    return _SCOPED


_NOT_IN_USER = frozenset("/\\:\n\r\t ")
_USERS_SEEN: set[str] = set()    # names _valid_user accepted (a session per request)


def _valid_user(user: str) -> bool:
    return isinstance(user, str) and bool(user) and user not in (".", "..") \
        and _NOT_IN_USER.isdisjoint(user) and user[0] != "~"


# what Session.set_response accepts: a status a request's answer may have (3xx are the
# API's redirect metadata), and the content types a command may choose
RESPONSE_STATUSES = frozenset(range(200, 300)) | frozenset(range(400, 600))
RESPONSE_TYPES = frozenset({"application/json", "text/xml", "text/plain"})


class _ConfinedView:
    """``Session.store`` of a confined session until a command first uses it: then the
    ``ScopedStore`` view is made and put in the instance, which hides this descriptor
    (it has no ``__set__``), so later reads are plain attribute reads.  A template
    that never touches the store (``echo ${http-qs-x}``) makes no view at all."""

    def __get__(self, session, owner=None):
        if session is None:
            return self
        inner, hide, held = session._view_of
        view = session.store = (_SCOPED or _scoped_store())(inner, session.home,
                                                            hide=hide, held=held)
        return view


class Session:
    store = _ConfinedView()
    response_status: int | None = None
    response_type: str | None = None
    # the state a session starts with (class defaults: one session per request)
    last_status = 0
    last_error: WnError | None = None
    exit_requested: int | None = None
    _depth = 0
    errexit = False                 # set -e (the executor asks after every statement)
    script_name: str | None = None  # the script file being run (error locations)

    def __init__(self, store, user: str = "demo", cwd: str | None = None,
                 env: dict | None = None, *, registry=None, argv=None,
                 confine: bool = False, home_known: bool = False,
                 hide=(), held=(), deadline: float | None = None):
        if type(user) is not str or user not in _USERS_SEEN:
            if not _valid_user(user):
                raise WnError("e.cmd.user.invalid", repr(user), BAD_INPUT)
            if type(user) is str and len(_USERS_SEEN) < 1024:
                _USERS_SEEN.add(user)
        self.user = user
        self.home = home = "/home/" + user
        self.registry = registry if registry is not None else (_REGISTRY or _registry())
        if env:
            self.env = dict(env)
            self.env.setdefault("HOME", home)
            self.env.setdefault("USER", user)
        else:
            self.env = {"HOME": home, "USER": user}
        self.argv: list[str] = list(argv) if argv else ["wnshell"]
        if not home_known and store.fetch(home) is None:
            try:
                store.create(home, "DIR", parents=True)
            except WnError:
                if store.fetch(home) is None:  # not a lost race: a real failure
                    raise
        self.confined = confine
        if confine:
            # the confined view is made when a command first uses ``self.store``
            self._view_of = (store, hide, held)
        else:
            self.store = store
        # time.monotonic() after which no further command starts (None: no deadline)
        self.deadline = deadline
        self.cwd = home
        if cwd:
            self.cwd = self.resolve(cwd)

    @classmethod
    def for_request(cls, store, user: str, hide=(), held=(), deadline=None) -> "Session":
        """``cls(store, user, confine=True, home_known=True, hide=hide, held=held,
        deadline=deadline)``: the session of a ``.regapi`` request (its API lives
        below the home, so the home exists).  Made with ``__new__`` and ``__init__``:
        calling a class with keywords builds a dict of them first (CPython 3.11), a
        third of what making this session costs, and a request makes one."""
        session = cls.__new__(cls)
        session.__init__(store, user, confine=True, home_known=True, hide=hide, held=held,
                         deadline=deadline)
        return session

    def resolve(self, path: str) -> str:
        """A path as typed (``~``, ``.``, ``..``, relative, ``id:``) -> store path.

        The one place where a request value's provenance is checked: a path some of
        whose text came from a request (``wnshell.provenance``) may only have had names
        added below the template's own path, else ``e.io.path.escape`` (400)."""
        if type(path) is not str:
            from wnshell.provenance import check_path
            check_path(path)
        return _resolve_path(path, cwd=self.cwd, home=self.home)

    def set_response(self, status: int, content_type: str | None = None) -> None:
        """Choose the HTTP status (and content type) of the ``.regapi`` answer when the
        template exits 0 (regapi/app.py; docs/regapi.md "The response").  ``status`` is
        2xx or 4xx/5xx (a 204 is sent without a body); ``content_type`` one of
        ``RESPONSE_TYPES`` (a ``; charset=…`` suffix is dropped), None: the API's own.
        The shell (``-c``, the REPL) has nothing to answer and ignores it."""
        if isinstance(status, bool) or not isinstance(status, int) \
                or status not in RESPONSE_STATUSES:
            raise WnError("e.cmd.response.status", f"not an answer status: {status!r}"[:80],
                          BAD_INPUT)
        if content_type is not None:
            content_type = str(content_type).split(";", 1)[0].strip().lower()
            if content_type not in RESPONSE_TYPES:
                raise WnError("e.cmd.response.type",
                              f"not an answer type: {content_type!r}"[:80], BAD_INPUT)
        self.response_status, self.response_type = status, content_type

    @property
    def response(self) -> tuple[int, str | None] | None:
        """``(status, content_type)`` chosen by :meth:`set_response`, or None."""
        if self.response_status is None:
            return None
        return self.response_status, self.response_type

    def remaining(self) -> float | None:
        """Seconds left before ``deadline`` (never below 0), or None when there is no
        deadline.  Commands that wait on the network use it as their timeout."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def check_deadline(self) -> None:
        """``e.cmd.timeout`` (kind timeout, 504) once the deadline has passed."""
        if self.deadline is not None:
            if time.monotonic() > self.deadline:
                from wnshell.errors import TIMEOUT
                raise WnError("e.cmd.timeout", "deadline passed", TIMEOUT)

    def run(self, text: str, stdin="", template_vars=None, *, stdout=None,
            stderr=None) -> tuple[int, str, str]:
        """Parse and run ``text``.  Returns ``(status, stdout, stderr)``; when the
        ``stdout``/``stderr`` streams are given, output goes there as it is produced and
        the returned strings are empty.  ``stdin`` is a string or a readable stream."""
        from wnshell.parser import parse
        try:
            tree = parse(text)
        except ShellSyntaxError as e:
            self.last_error = e
            self.last_status = 2
            if stderr is not None:
                stderr.write(e.line() + "\n")
                return 2, "", ""
            return 2, "", e.line() + "\n"
        return self.run_ast(tree, stdin, template_vars, stdout=stdout, stderr=stderr)

    def run_ast(self, tree, stdin="", template_vars=None, *, stdout=None,
                stderr=None) -> tuple[int, str, str]:
        """Run a tree from ``wnshell.parser.parse``.  ``template_vars`` are looked up
        before ``env`` by every ``${k}``/``$k``/``$<k>``; their values are data."""
        out = io.StringIO() if stdout is None else stdout
        err = io.StringIO() if stderr is None else stderr
        # (a str is asked first: hasattr raises and catches an AttributeError for one)
        inp = io.StringIO(stdin) if type(stdin) is str else \
            stdin if hasattr(stdin, "read") else io.StringIO(stdin or "")
        top = self._depth == 0
        saved_exit = self.exit_requested
        self.exit_requested = None
        if top:
            self.last_error = None
            if self.response_status is not None:
                self.response_status = self.response_type = None
        self._depth += 1
        try:
            status = Executor(self, template_vars).script(tree, inp, out, err)
        except ExitShell as e:
            status = e.status
        except KeyboardInterrupt:
            if not top:
                raise
            status = 130
        except RecursionError:
            e = WnError("e.cmd.recursion", "too deeply nested", INTERNAL)
            self.last_error = e
            err.write(e.line() + "\n")
            status = 1
        finally:
            self._depth -= 1
            if not top:
                self.exit_requested = saved_exit
        self.last_status = status
        return (status, "" if stdout is not None else out.getvalue(),
                "" if stderr is not None else err.getvalue())
