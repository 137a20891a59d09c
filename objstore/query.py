"""Walnut match syntax, backend-neutral: parsed once into ``Cond`` trees, then evaluated
by the Python predicate here (the document backends: memory, TinyDB) or compiled to
SQL by each SQL backend's own compiler, next to it (``sqlite_query.SqliteCompiler``,
``postgres_query.PgCompiler``), with the semantics of ``_eval`` below.

A *match* is an AND-map ``{"key": value, ...}`` or a list of them (OR).  ``{}`` and
``[]`` match everything.  Values:

=================  ==============================================================
``None``           the key is absent (the store never keeps JSON null)
``"^regex"``       a regex search of the whole value (the ``^`` anchors it), in RE2's
                   linear-time syntax (no lookaround or backreferences);
                   applies to strings and numbers (numbers as ``str(n)``)
``"a*b"``          a glob: ``*`` matches any run of characters, nothing else is special;
                   the whole value must match (strings and numbers)
``"!<value>"``     negation of ``<value>`` (any of these forms); absent keys match;
                   ``"!2"``/``"!true"`` also exclude the number/boolean,
                   ``"!null"`` means "present"
``"[1,5)"``        numeric range; ``[``/``]`` inclusive, ``(``/``)`` exclusive; a bound
                   may be empty (``"[10,]"`` = at least 10); numbers only
``[v1, v2, ...]``  any of the values (each in this same syntax)
other              equality; numbers compare numerically (1 == 1.0), booleans only
                   equal booleans, strings equal strings
=================  ==============================================================

``sort`` is ``{"key": 1 | -1, ...}`` (first key first).  Order across types: absent <
numbers (booleans count as 0/1) < strings < anything else; ties are broken by ``ph``.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from .errors import BAD_INPUT, StoreError

TYPE_CHECKING = False   # typing and dataclasses cost start-up time (every shell opens a
if TYPE_CHECKING:       # store, which imports this module): annotations only
    from typing import Any, Callable

# compiled by the first query, not at import (every shell start imports this module)
_RANGE = r"^\s*([\[(])\s*([^,\s]*)\s*,\s*([^,\s]*)\s*([\])])\s*$"
_KEY_BAD = r'[\x00-\x1f\x7f"\\]'
_RX: dict = {}


def _rx(pattern: str) -> re.Pattern:
    rx = _RX.get(pattern)
    if rx is None:
        rx = _RX[pattern] = re.compile(pattern)
    return rx


def query_error(reason: str) -> StoreError:
    return StoreError("e.io.query.invalid", reason, BAD_INPUT)


# ---- parsed form ------------------------------------------------------------------
class Cond:
    """One condition on one key (immutable; equal when all fields but ``compiled`` are).

    ``op`` is one of ``absent``, ``eq``, ``regex``, ``range``, ``any``, ``not``.
    ``eq``: ``value``; ``regex``: ``value`` (pattern text) and ``compiled``;
    ``range``: ``lo``, ``lo_incl``, ``hi``, ``hi_incl`` (None = unbounded);
    ``any``: ``subs`` (tuple of Cond); ``not``: ``subs`` (one Cond).

    A plain class rather than a frozen dataclass: ``dataclasses`` pulls in ``inspect``,
    about 10 ms of start-up time for every shell.
    """
    __slots__ = ("key", "op", "value", "lo", "lo_incl", "hi", "hi_incl", "subs", "compiled")
    _COMPARED = __slots__[:-1]

    def __init__(self, key: str, op: str, value: Any = None, lo: float | int | None = None,
                 lo_incl: bool = True, hi: float | int | None = None, hi_incl: bool = True,
                 subs: tuple = (), compiled: Any = None):
        put = object.__setattr__
        put(self, "key", key)
        put(self, "op", op)
        put(self, "value", value)
        put(self, "lo", lo)
        put(self, "lo_incl", lo_incl)
        put(self, "hi", hi)
        put(self, "hi_incl", hi_incl)
        put(self, "subs", subs)
        put(self, "compiled", compiled)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} (Cond is immutable)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} (Cond is immutable)")

    def _fields(self) -> tuple:
        return tuple(getattr(self, n) for n in self._COMPARED)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "Cond(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        val = float(text)
    except ValueError:
        return None
    return val if math.isfinite(val) else None


def glob_to_regex(glob: str) -> str:
    """``a*b`` -> ``^a.*b$`` (only ``*`` is special)."""
    return "^" + ".*".join(re.escape(part) for part in glob.split("*")) + "$"


_RE2_OPTIONS = None


def linear_regex(pattern: str):
    """``pattern`` compiled for a linear-time engine (RE2, package google-re2): no
    pattern -- one a request carries included (``^(a+)+$``) -- can make a search
    backtrack for ever and hold a worker.  RE2 has no lookaround and no
    backreferences: such a pattern raises ``ValueError``.  Only where google-re2 is not
    installed does this fall back to Python's ``re``."""
    global _RE2_OPTIONS
    try:
        import re2
    except ImportError:         # pragma: no cover - google-re2 is a dependency
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise ValueError(str(exc)) from None
    if _RE2_OPTIONS is None:
        opts = re2.Options()
        opts.log_errors = False         # errors are ours to report, not RE2's stderr
        _RE2_OPTIONS = opts
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except Exception as exc:  # noqa: BLE001 - re2.error, with bytes for a message
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"{reason} (linear-time regex: no lookaround, no "
                         "backreferences)") from None


def _compile_regex(key: str, pattern: str):
    try:
        return linear_regex(pattern)
    except ValueError as exc:
        raise query_error(f"bad regex for {key}: {exc}") from None


def _negated(key: str, text: str) -> Cond:
    """What ``"!<text>"`` negates.  The text came from a string, so a literal that looks
    like a number, ``true``/``false`` or ``null`` also stands for that JSON value:
    ``"!2"`` excludes 2 and "2"; ``"!null"`` means "present"."""
    inner = parse_value(key, text)
    if inner.op != "eq":
        return inner
    if text == "null":
        return Cond(key, "absent")
    typed: Any = {"true": True, "false": False}.get(text)
    if typed is None:
        typed = _number(text)
    if typed is None or (isinstance(typed, int) and not -INT64 <= typed < INT64):
        return inner
    return Cond(key, "any", subs=(inner, Cond(key, "eq", typed)))


def parse_value(key: str, value: Any) -> Cond:
    """One match value (Walnut syntax) -> Cond."""
    if value is None:
        return Cond(key, "absent")
    if isinstance(value, bool):
        return Cond(key, "eq", value)
    if isinstance(value, (int, float)):
        return Cond(key, "eq", _check_num(key, value))
    if isinstance(value, str):
        _check_text(key, value)
        if value.startswith("!"):
            return Cond(key, "not", subs=(_negated(key, value[1:]),))
        if value.startswith("^"):
            return Cond(key, "regex", value, compiled=_compile_regex(key, value))
        m = _rx(_RANGE).match(value)
        if m:
            lo_t, hi_t = m.group(2), m.group(3)
            lo = _number(lo_t) if lo_t else None
            hi = _number(hi_t) if hi_t else None
            if (lo_t and lo is None) or (hi_t and hi is None):
                raise query_error(f"bad range for {key}: {value}")
            lo, hi = (None if x is None else _check_num(key, x) for x in (lo, hi))
            return Cond(key, "range", lo=lo, lo_incl=m.group(1) == "[",
                        hi=hi, hi_incl=m.group(4) == "]")
        if "*" in value:
            rx = glob_to_regex(value)
            return Cond(key, "regex", rx, compiled=_compile_regex(key, rx))
        return Cond(key, "eq", value)
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple)) for v in value):
            raise query_error(f"{key}: a list of values cannot hold lists")
        return Cond(key, "any", subs=tuple(parse_value(key, v) for v in value))
    raise query_error(f"{key}: unsupported match value of type {type(value).__name__}")


INT64 = 2 ** 63


def _check_num(key: str, n: int | float) -> int | float:
    if isinstance(n, float) and not math.isfinite(n):
        raise query_error(f"{key}: numbers must be finite")
    if isinstance(n, int) and not -INT64 <= n < INT64:
        raise query_error(f"{key}: integer out of range")
    return n


def _check_text(key: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise query_error(f"{key}: value is not valid Unicode text") from None


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise query_error(f"match keys must be non-empty strings: {key!r}")
    _check_text("key", key)
    if _rx(_KEY_BAD).search(key):
        raise query_error(f"match key contains a quote, backslash or control character: {key!r}")
    return key


def parse_match(match: Any) -> list[list[Cond]]:
    """A match (AND-map or list of them) -> OR-list of AND-lists of Cond.
    An empty result list means "match everything"."""
    if match is None:
        return []
    if isinstance(match, Mapping):
        maps = [match]
    elif isinstance(match, (list, tuple)):
        maps = list(match)
    else:
        raise query_error(f"match must be a map or a list of maps, not {type(match).__name__}")
    out = []
    for one in maps:
        if not isinstance(one, Mapping):
            raise query_error("match list items must be maps")
        out.append([parse_value(check_key(k), v) for k, v in one.items()])
    if any(not conds for conds in out):
        return []          # one empty AND-map matches everything
    return out


def parse_sort(sort: Any) -> list[tuple[str, int]]:
    if not sort:
        return []
    if not isinstance(sort, Mapping):
        raise query_error("sort must be a map {key: 1|-1}")
    out = []
    for k, d in sort.items():
        check_key(k)
        if isinstance(d, bool) or d not in (1, -1):
            raise query_error(f"sort direction for {k} must be 1 or -1")
        out.append((k, int(d)))
    return out


def check_window(skip: Any, limit: Any) -> tuple[int, int | None]:
    if isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip < INT64:
        raise query_error("skip must be an integer >= 0")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or not 0 <= limit < INT64):
        raise query_error("limit must be an integer >= 0")
    return skip, limit


# ---- Python predicate --------------------------------------------------------------
def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eval(c: Cond, doc: Mapping[str, Any]) -> bool:
    v = doc.get(c.key)
    op = c.op
    if op == "eq":
        if v is None:
            return False
        if isinstance(c.value, bool) or isinstance(v, bool):
            return isinstance(v, bool) and isinstance(c.value, bool) and v == c.value
        if isinstance(c.value, str):
            return isinstance(v, str) and v == c.value
        return _is_num(v) and v == c.value
    if op == "absent":
        return v is None
    if op == "regex":
        if isinstance(v, str):
            return c.compiled.search(v) is not None
        if _is_num(v):
            return c.compiled.search(str(v)) is not None
        return False
    if op == "range":
        if not _is_num(v):
            return False
        if c.lo is not None and (v < c.lo if c.lo_incl else v <= c.lo):
            return False
        if c.hi is not None and (v > c.hi if c.hi_incl else v >= c.hi):
            return False
        return True
    if op == "any":
        return any(_eval(s, doc) for s in c.subs)
    if op == "not":
        return not _eval(c.subs[0], doc)
    raise AssertionError(op)


def compile_predicate(match: Any) -> Callable[[Mapping[str, Any]], bool]:
    """Match -> ``pred(doc) -> bool`` for plain-dict documents."""
    ors = parse_match(match)
    if not ors:
        return lambda doc: True

    def pred(doc: Mapping[str, Any]) -> bool:
        return any(all(_eval(c, doc) for c in ands) for ands in ors)
    return pred


def sort_value(v: Any) -> tuple:
    """Sort key matching SQLite's order of json_extract values."""
    if v is None:
        return (0, 0)
    if isinstance(v, (bool, int, float)):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    return (2, json.dumps(v, separators=(",", ":"), ensure_ascii=False))


def sort_docs(docs: list, sort: list[tuple[str, int]]) -> list:
    """Sort plain-dict docs in place by ``parse_sort`` output (ties by ``ph``)."""
    docs.sort(key=lambda d: d.get("ph", ""))
    for key, direction in reversed(sort):
        docs.sort(key=lambda d, k=key: sort_value(d.get(k)), reverse=direction < 0)
    return docs
