"""Map ``/api/<usr>/<seg…>`` to an API object in ``/home/<usr>/.regapi/api/``.

Walnut's rules (../shared/docs/walnut.md §3): exact names win; then a child named
``_ANY`` matches one segment -- a DIR ``_ANY`` continues the walk (its command lives in
``_ANY/_action``), a FILE ``_ANY`` takes all the remaining segments.  The segments matched
by ``_ANY`` become ``args``.  When the walk ends on a DIR, its ``_action`` FILE is the API.

A URL segment that is literally ``_ANY`` or ``_action`` is a 404: those names are the
router's markers, never part of an API's address.

Safety: the URL path is decoded once (by the server, as WSGI requires), must be UTF-8,
and every segment is checked (no empty segment, no ``.``/``..``, no NUL or control
character, bounded length), so a request can only ever name objects *below* the user's
``.regapi/api`` directory.  User names are checked against a strict pattern.

Lookups are cached per worker: a route found is reused for ``ttl`` seconds (default
1 s) without touching the store; after that the walk is redone (for an all-exact path
that is one store read).  So an edited, added or removed API takes effect within
``ttl`` seconds; ``ttl=0`` checks on every request.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from objstore.errors import BAD_INPUT, NOT_FOUND, WnError

API_PREFIX = "/api/"
ANY = "_ANY"
ACTION = "_action"
MAX_SEGMENTS = 32
MAX_SEGMENT_LEN = 255
MAX_LOOKUPS = 256           # store reads one walk may make (bounds pathological trees)

USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")     # fullmatch: "$" would let a trailing newline in
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class RouteError(WnError):
    """Bad or unknown API path (kind bad_input -> 400, not_found -> 404)."""


def check_user(usr: str) -> str:
    if not USER_RE.fullmatch(usr) or usr in (".", "..") or ".." in usr:
        raise RouteError("e.regapi.usr.invalid", "bad user name", kind=BAD_INPUT)
    return usr


def check_segment(seg: str) -> str:
    if seg in ("", ".", ".."):
        raise RouteError("e.regapi.path.invalid", "empty or dot segment", kind=BAD_INPUT)
    if len(seg) > MAX_SEGMENT_LEN:
        raise RouteError("e.regapi.path.invalid", "segment too long", kind=BAD_INPUT)
    if _BAD_CHARS.search(seg) or "/" in seg or "\\" in seg:
        raise RouteError("e.regapi.path.invalid", "control character in path", kind=BAD_INPUT)
    return seg


def wsgi_path(environ: dict) -> str:
    """PATH_INFO as real text: WSGI hands it over decoded, as latin-1 code points of
    the raw bytes; re-read those bytes as UTF-8 (anything else -> 400)."""
    raw = environ.get("PATH_INFO", "") or ""
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise RouteError("e.regapi.path.invalid", "path is not UTF-8", kind=BAD_INPUT) from None


def split_api_path(path: str) -> tuple[str, list[str]]:
    """``/api/demo/pay/x`` -> ``("demo", ["pay", "x"])``.  A single trailing slash is
    ignored; every other empty segment, dot segment or control character is refused."""
    if not path.startswith(API_PREFIX):
        raise RouteError("e.regapi.noexists", "not an API path", kind=NOT_FOUND)
    rest = path[len(API_PREFIX):]
    if rest.endswith("/"):
        rest = rest[:-1]
    parts = rest.split("/")
    if len(parts) < 2:
        raise RouteError("e.regapi.noexists", "no API named", kind=NOT_FOUND)
    if len(parts) > MAX_SEGMENTS + 1:
        raise RouteError("e.regapi.path.invalid", "too many segments", kind=BAD_INPUT)
    usr = check_user(parts[0])
    segs = [check_segment(s) for s in parts[1:]]
    if ANY in segs or ACTION in segs:
        # the router's own markers are never names in a URL: /x/_ANY would run
        # x/_ANY/_action with ${args-0} unset (rm -r ~/x/${args-0} on the parent)
        raise RouteError("e.regapi.noexists", "no such API", kind=NOT_FOUND)
    return usr, segs


def api_root(usr: str) -> str:
    return f"/home/{usr}/.regapi/api"


@dataclass
class Route:
    usr: str
    api: Any                    # the API object (WnObj, a FILE)
    args: list[str]             # segments matched by _ANY, in order
    rel: str                    # API path below .regapi/api, e.g. "pay", "x/_ANY/_action"
    checked: float = field(default=0.0)   # monotonic time of the last validity check


class Router:
    """Resolve API paths against one store; thread-safe; per-worker cache."""

    def __init__(self, store, ttl: float = 1.0, max_entries: int = 4096):
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[tuple[str, tuple[str, ...]], Route] = {}
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------
    def resolve_path(self, path: str) -> Route | None:
        """``resolve(*split_api_path(path))``, with the checked path itself cached (a
        path seen within ``ttl`` skips the checks and the walk)."""
        hit = self._cache.get(path)
        if hit is not None and time.monotonic() - hit.checked < self.ttl:
            return hit
        usr, segs = split_api_path(path)
        route = self.resolve(usr, segs)
        if route is not None:
            with self._lock:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[path] = route
        return route

    def resolve(self, usr: str, segs: list[str]) -> Route | None:
        key = (usr, tuple(segs))
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit.checked < self.ttl:
            return hit
        route = self.walk(usr, segs)
        with self._lock:
            if route is None:
                self._cache.pop(key, None)
            else:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                route.checked = now
                self._cache[key] = route
        return route

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- the walk -------------------------------------------------------------
    def walk(self, usr: str, segs: list[str]) -> Route | None:
        root = api_root(usr)
        budget = [MAX_LOOKUPS]

        def fetch(path):
            if budget[0] <= 0:
                raise RouteError("e.regapi.path.toocomplex", "too many lookups", kind=BAD_INPUT)
            budget[0] -= 1
            try:
                return self.store.fetch(path)
            except WnError:
                return None

        # fast path: every segment an exact name (the walk would try this first anyway)
        found = fetch(root + "/" + "/".join(segs))
        if found is not None:
            if not found.is_dir:
                return Route(usr, found, [], "/".join(segs))
            act = fetch(found["ph"] + "/" + ACTION)
            if act is not None and not act.is_dir:
                return Route(usr, act, [], "/".join(segs + [ACTION]))

        def step(dir_ph: str, i: int, args: list[str], rel: list[str]):
            """Match segs[i:] below dir_ph; depth-first, exact name before _ANY."""
            if i == len(segs):
                act = fetch(dir_ph + "/" + ACTION)
                if act is not None and not act.is_dir:
                    return Route(usr, act, list(args), "/".join(rel + [ACTION]))
                return None
            seg = segs[i]
            child = None if seg == ANY else fetch(dir_ph + "/" + seg)
            if child is not None:
                if child.is_dir:
                    r = step(child["ph"], i + 1, args, rel + [seg])
                    if r is not None:
                        return r
                elif i == len(segs) - 1:
                    return Route(usr, child, list(args), "/".join(rel + [seg]))
            anyo = fetch(dir_ph + "/" + ANY)
            if anyo is None:
                return None
            if anyo.is_dir:
                return step(anyo["ph"], i + 1, args + [seg], rel + [ANY])
            return Route(usr, anyo, list(args) + segs[i:], "/".join(rel + [ANY]))

        return step(root, 0, [], [])
