"""Store logic for backends that keep objects as rows of one SQL table (SQLite,
PostgreSQL), written once over a small ``Dialect``.

What each operation means is ``objstore.rules``'s (shared with the document
backends); this module adds what is the same for every SQL database:

* the statements a ``rules.TreeView`` needs that read the table (``SQLView``: an
  object by id, by path with "an expired DIR above hides it", the live children, the
  longest path of a subtree), spelled through the ``Dialect``;
* every ``Store`` method: lookups as one statement, tree changes as one transaction
  running the rule, ``query``/``count`` through the dialect's compiler of
  ``objstore.query``'s ``Cond`` trees;
* ``set_meta``/``cas``/``incr`` as the backend's one-statement fast path (an
  ``UPDATE ... RETURNING``) with the read-check-write rule as the fallback, and what
  "no row came back" means (gone, or the expectation failed).

A backend supplies a ``Dialect`` (placeholders, the select list and how a row becomes
a document, ``FOR UPDATE``, the regex operator, codepoint-order comparison of paths,
``LIMIT``), an ``SQLView`` subclass with the writes (``insert``, ``save``,
``remove_tree``, ``move_tree``...: their SQL depends on its layout), and the hooks of
``SQLStore`` (how a statement or a transaction is run on its connections, the fast
paths, the purge).  See objstore/README.md, "How to add a backend".
"""
from __future__ import annotations

import abc

from . import common as C
from . import paths, query as Q, rules
from .base import WnObj

TYPE_CHECKING = False   # typing costs start-up time: every shell opens a store
if TYPE_CHECKING:
    from typing import Any, Mapping


class Dialect:
    """How one SQL database spells the statements written once here.  Class
    attributes are the spelling; ``__init__`` builds the statements from them."""

    P = "?"                 # a parameter placeholder
    TABLE = "obj"           # the objects' table: columns id, pid, nm, ph, race, expi
    COLS = ""               # the select list ``row_doc`` reads
    ROW_LOCK = ""           # appended to a SELECT whose row a decision depends on
    REGEX = "REGEXP"        # ``nm <REGEX> <P>``: a regex search (pattern from ``glob``)
    PH_BYTES = "length(CAST(ph AS BLOB))"   # bytes of ph (UTF-8)
    GE, LT = ">=", "<"      # ph compared in codepoint order
    compiler: Any = None    # where(ors) -> (sql, params); order_by(sort) -> (sql, params)

    def __init__(self) -> None:
        P, T, cols = self.P, self.TABLE, self.COLS
        self.live = f"(expi IS NULL OR expi >= {P})"
        self.by_id = f"SELECT {cols} FROM {T} WHERE id = {P} AND {self.live}"
        self.by_ph = f"SELECT {cols} FROM {T} WHERE ph = {P} AND {self.live}"
        self.hidden = f" AND NOT EXISTS (SELECT 1 FROM {T} WHERE expi < {P} AND ph "
        self.kids = f"SELECT {cols} FROM {T} WHERE pid = {P} AND {self.live}"
        self.kids_like = f"{self.kids} AND nm {self.REGEX} {P} ORDER BY nm"
        self.kids += " ORDER BY nm"
        self.any_kid = f"SELECT 1 FROM {T} WHERE pid = {P} AND {self.live} LIMIT 1"
        self.subtree = f"ph {self.GE} {P} AND ph {self.LT} {P}"
        self.longest = f"SELECT max({self.PH_BYTES}) FROM {T} WHERE {self.subtree}"

    # ---- spelling ---------------------------------------------------------------------
    def row_doc(self, row) -> dict:
        """A row of ``COLS`` -> the object's document (a fresh dict)."""
        raise NotImplementedError

    def row_obj(self, row) -> WnObj:
        """A row of ``COLS`` -> the ``WnObj`` handed to the caller (a dialect that can
        make one directly need not copy a dict into it)."""
        return WnObj(self.row_doc(row))

    def among(self, values: list) -> tuple[str, list]:
        """``ph`` is one of ``values``: (SQL after ``ph ``, parameters)."""
        return "IN (" + ",".join(self.P * len(values)) + ")", values

    def glob(self, glob: Any) -> Any:
        """A ``children()`` name glob (checked) -> the parameter of ``REGEX``."""
        return C.glob_regex(glob)

    def window(self, skip: int, limit: int | None, params: list) -> str:
        """``skip``/``limit`` of ``query`` (parameters appended)."""
        params += [-1 if limit is None else limit, skip]
        return f" LIMIT {self.P} OFFSET {self.P}"

    # ---- statements -------------------------------------------------------------------
    def at(self, ph: str, now: int) -> tuple[str, list]:
        """The object at ``ph`` unless it or a DIR above it has expired: one
        statement."""
        ups = paths.ancestors(ph)
        if not ups:
            return self.by_ph, [ph, now]
        among, params = self.among(ups)
        return self.by_ph + self.hidden + among + ")", [ph, now, now, *params]


def subtree_range(ph: str) -> tuple[str, str]:
    """Descendants of ``ph`` are exactly the paths in [ph + '/', ph + '0')."""
    return ph + "/", ph + "0"


class SQLView(rules.TreeView):
    """``rules.TreeView`` on one connection inside a transaction.  The reads are
    written here; a backend subclass adds the writes and ``get_content`` and sets
    ``d``, its ``Dialect``."""

    __slots__ = ("conn",)
    d: Dialect

    def __init__(self, conn) -> None:
        self.conn = conn

    def live(self, oid: str, now: int, lock: bool = False) -> dict | None:
        d = self.d
        row = self.conn.execute(d.by_id + d.ROW_LOCK if lock else d.by_id,
                                (oid, now)).fetchone()
        return d.row_doc(row) if row is not None else None

    def at(self, ph: str, now: int) -> dict | None:
        d = self.d
        row = self.conn.execute(*d.at(ph, now)).fetchone()
        return d.row_doc(row) if row is not None else None

    def live_children(self, oid: str, now: int, pattern: Any = None) -> list[dict]:
        d = self.d
        if pattern is None:
            rows = self.conn.execute(d.kids, (oid, now)).fetchall()
        else:
            rows = self.conn.execute(d.kids_like, (oid, now, pattern)).fetchall()
        return [d.row_doc(r) for r in rows]

    def has_live_children(self, oid: str, now: int) -> bool:
        return self.conn.execute(self.d.any_kid, (oid, now)).fetchone() is not None

    def longest_below(self, doc: dict) -> int:
        longest = len(doc["ph"].encode("utf-8"))
        if doc["race"] == "DIR":
            below = self.conn.execute(self.d.longest, subtree_range(doc["ph"])).fetchone()[0]
            longest = max(longest, below or 0)
        return longest


class SQLStore(rules.TreeStore):
    """All of ``Store`` for an SQL backend: the rules' methods (``rules.TreeStore``),
    lookups as one statement, the one-statement ``set_meta``/``cas``/``incr`` with the
    rule as their fallback, queries through the dialect's compiler.  A subclass sets
    ``dialect`` and implements the hooks below (``_run_read``/``_run_write`` hand
    ``fn`` its ``SQLView``)."""

    dialect: Dialect

    # ---- hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def _read_one(self, sql: str, params: Any) -> Any:
        """One read statement on its own (autocommit): its first row or None."""

    @abc.abstractmethod
    def _read_all(self, sql: str, params: Any) -> list:
        """One read statement on its own (autocommit): all its rows."""

    @abc.abstractmethod
    def _update_fast(self, oid: str, texts: dict, want: dict | None,
                     changes: Mapping[str, Any], now: int) -> tuple[bool, Any]:
        """``set_meta`` (``want`` None) or ``cas`` as one statement: (True, the
        updated row or None when no row matched), or (False, None) when these changes
        or expectations need the read-check-write transaction."""

    @abc.abstractmethod
    def _incr_fast(self, oid: str, key: str, delta: int, now: int) -> tuple[bool, Any]:
        """``incr`` as one statement: (True, the new value, or None when no row
        matched: gone, or the value is not an integer), or (False, None) for the
        transaction."""

    def _glob(self, glob):
        return self.dialect.glob(glob)

    # ---- lookup: one statement --------------------------------------------------------
    def get(self, oid: str) -> WnObj | None:
        if not paths.is_id(oid):
            return None
        d = self.dialect
        row = self._read_one(d.by_id, (oid, C.now_ms()))
        return d.row_obj(row) if row is not None else None

    def fetch(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj | None:
        """By path; an expired DIR hides its whole subtree from path lookups."""
        sp = paths.resolve(path, cwd, home)
        now = C.now_ms()
        if not sp.startswith("id:"):
            d = self.dialect
            row = self._read_one(*d.at(sp, now))
            return d.row_obj(row) if row is not None else None
        doc = self._run_read(lambda v: rules.fetch(v, sp, now))
        return WnObj(doc) if doc is not None else None

    # ---- change: one statement, else the rule ----------------------------------------
    def set_meta(self, oid: str, changes: Mapping[str, Any]) -> WnObj:
        texts = C.meta_texts(changes)
        C.check_oid(oid)
        now = C.now_ms()
        done, row = self._update_fast(oid, texts, None, changes, now)
        if done:
            if row is None:
                raise C.noexists(f"id:{oid}")
            return self.dialect.row_obj(row)
        clean = C.clean_meta(changes)
        return WnObj(self._run_write(lambda v: rules.set_meta(v, oid, clean, now)))

    def cas(self, oid: str, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> WnObj | None:
        fast, got = self._cas_any(oid, expect, changes)
        return self.dialect.row_obj(got) if fast and got is not None else got

    def _cas_any(self, oid: str, expect, changes, **fast_options) -> tuple[bool, Any]:
        """``(True, the updated row or None)`` when the one statement ran (None: the
        object is there but an expectation failed), ``(False, cas's answer)`` when
        these changes took the rule; ``fast_options`` go to ``_update_fast``."""
        want = C.clean_expect(expect)
        texts = C.meta_texts(changes)
        C.check_oid(oid)
        now = C.now_ms()
        done, row = self._update_fast(oid, texts, want, changes, now, **fast_options)
        if not done:
            return False, self._cas(oid, want, C.clean_meta(changes), now)
        if row is None and self.get(oid) is None:
            raise C.noexists(f"id:{oid}")
        return True, row

    def incr(self, oid: str, key: str, delta: int = 1) -> int:
        C.check_delta(key, delta)
        C.check_oid(oid)
        now = C.now_ms()
        done, val = self._incr_fast(oid, key, delta, now)
        if not done:
            return self._run_write(lambda v: rules.incr(v, oid, key, delta, now))
        if val is not None:
            return val
        if self.get(oid) is None:
            raise C.noexists(f"id:{oid}")
        raise C.meta_invalid(f"'{key}' is not an integer")

    # ---- query ------------------------------------------------------------------------
    def _where(self, match, now: int) -> tuple[str, list]:
        where, params = self.dialect.compiler.where(Q.parse_match(match))
        return f"{self.dialect.live} AND {where}", [now] + params

    def query(self, match, *, sort=None, skip: int = 0, limit: int | None = None) -> list[WnObj]:
        d = self.dialect
        order_sql, order_params = d.compiler.order_by(Q.parse_sort(sort))
        skip, limit = Q.check_window(skip, limit)
        where, params = self._where(match, C.now_ms())
        params += order_params
        sql = f"SELECT {d.COLS} FROM {d.TABLE} WHERE {where} {order_sql}"
        sql += d.window(skip, limit, params)
        row_obj = d.row_obj
        return [row_obj(r) for r in self._read_all(sql, params)]

    def count(self, match) -> int:
        where, params = self._where(match, C.now_ms())
        return int(self._read_one(f"SELECT count(*) FROM {self.dialect.TABLE} WHERE {where}",
                                  params)[0])
