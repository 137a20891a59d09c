"""Store logic for backends that hold documents as Python dicts (memory, TinyDB).

A backend supplies ``_txn(write)``: a context manager yielding a ``DocView`` -- a
handful of primitives on raw documents, run under the backend's lock, committed when the
block ends and rolled back when it raises.  Every ``Store`` method below is one such
transaction, so each is atomic.  What each operation means is ``objstore.rules``'s
(shared with the SQL backends); ``DocView`` turns the rules' ``TreeView`` primitives
into its own, and queries are ``objstore.query``'s Python predicate.
"""
from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from typing import Any, Iterable

from . import common as C
from . import paths, query as Q, rules
from .base import WnObj


class DocView(rules.TreeView):
    """Primitives on raw documents inside one transaction.  Raw docs returned may be
    the stored objects themselves: callers copy before changing and ``put`` the copy.

    A backend implements the abstract methods (get, by_path, child_docs, scan, put,
    remove and the three content ones); the ``TreeView`` primitives the rules call are
    written here on top of them."""

    @abc.abstractmethod
    def get(self, oid: str) -> dict | None: ...

    @abc.abstractmethod
    def by_path(self, ph: str) -> dict | None: ...

    @abc.abstractmethod
    def child_docs(self, pid: str) -> Iterable[dict]: ...

    @abc.abstractmethod
    def scan(self, pred) -> Iterable[dict]:
        """Every document ``pred`` accepts."""

    @abc.abstractmethod
    def put(self, doc: dict) -> None:
        """Insert or replace (by ``id``)."""

    @abc.abstractmethod
    def remove(self, oid: str) -> None: ...

    @abc.abstractmethod
    def get_content(self, oid: str) -> bytes: ...

    @abc.abstractmethod
    def put_content(self, oid: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def remove_content(self, oid: str) -> None: ...

    def subtree(self, doc: dict) -> list[dict]:
        """``doc`` and all its descendants (parents before children)."""
        out, todo = [], [doc]
        while todo:
            d = todo.pop()
            out.append(d)
            if d.get("race") == "DIR":
                todo.extend(self.child_docs(d["id"]))
        return out

    # ---- rules.TreeView -----------------------------------------------------------------
    def live(self, oid: str, now: int, lock: bool = False) -> dict | None:
        doc = self.get(oid)
        return None if doc is None or C.is_expired(doc, now) else doc

    def at(self, ph: str, now: int) -> dict | None:
        doc = self.by_path(ph)
        if doc is None or C.is_expired(doc, now):
            return None
        for up in paths.ancestors(ph):
            above = self.by_path(up)
            if above is None or C.is_expired(above, now):
                return None      # an expired DIR hides everything below it from paths
        return doc

    def live_children(self, oid: str, now: int, pattern: Any = None) -> list[dict]:
        kids = [d for d in self.child_docs(oid) if not C.is_expired(d, now)
                and (pattern is None or pattern.match(d["nm"]))]
        kids.sort(key=lambda d: d["nm"])
        return kids

    def has_live_children(self, oid: str, now: int) -> bool:
        return any(not C.is_expired(d, now) for d in self.child_docs(oid))

    def longest_below(self, doc: dict) -> int:
        return max(len(d["ph"].encode("utf-8")) for d in self.subtree(doc))

    def clear(self, ph: str, now: int) -> None:
        old = self.by_path(ph)
        if old is None:
            return
        if not C.is_expired(old, now):
            raise C.exists(ph)
        self.remove_tree(old)

    def insert(self, doc: dict, data: bytes | None) -> None:
        self.put(doc)
        if data is not None:
            self.put_content(doc["id"], data)

    def save(self, doc: dict) -> None:
        self.put(doc)

    def set_content(self, doc: dict, data: bytes) -> None:
        self.put_content(doc["id"], data)
        self.put(doc)

    def remove_tree(self, doc: dict) -> int:
        docs = self.subtree(doc)
        for d in reversed(docs):
            self.remove(d["id"])
            self.remove_content(d["id"])
        return len(docs)

    def move_tree(self, src: dict, moved: dict) -> None:
        old_ph, dest = src["ph"], moved["ph"]
        for d in self.subtree(src):
            if d["id"] == src["id"]:
                self.put(moved)
                continue
            d = dict(d)
            C.relocate(d, dest + d["ph"][len(old_ph):])
            self.put(d)


class DocStore(rules.TreeStore):
    """All of ``Store`` on top of ``DocView``: the rules' methods (``rules.TreeStore``)
    in one ``_txn`` each, ``get`` and the queries with the Python predicate."""

    @abc.abstractmethod
    def _txn(self, write: bool) -> AbstractContextManager[DocView]: ...

    def _init_root(self) -> None:
        with self._txn(True) as v:
            if v.by_path("/") is None:
                now = C.now_ms()
                v.put({"id": paths.new_id(), "pid": "", "nm": "", "ph": "/", "race": "DIR",
                       "ct": now, "lm": now})

    # ---- rules.TreeStore's hooks ------------------------------------------------------
    def _run_read(self, fn):
        with self._txn(False) as v:
            return fn(v)

    def _run_write(self, fn):
        with self._txn(True) as v:
            return fn(v)

    # the documents are the stored ones: every object handed out is a deep copy
    _out = staticmethod(C.copy_out)

    def _glob(self, glob):
        import re
        return re.compile(C.glob_regex(glob))

    def _purge(self, v: DocView, now: int) -> int:
        n = 0
        for d in list(v.scan(lambda d: C.is_expired(d, now))):
            if v.get(d["id"]) is not None:       # not already gone with its parent
                n += v.remove_tree(d)
        return n

    # ---- lookup -----------------------------------------------------------------------
    def get(self, oid: str) -> WnObj | None:
        if not paths.is_id(oid):
            return None
        with self._txn(False) as v:
            doc = v.live(oid, C.now_ms())
            return C.copy_out(doc) if doc else None

    # ---- query -------------------------------------------------------------------------
    def _select(self, v: DocView, match, now: int) -> list[dict]:
        pred = Q.compile_predicate(match)
        return [d for d in v.scan(lambda d: not C.is_expired(d, now) and pred(d))]

    def query(self, match, *, sort=None, skip: int = 0, limit: int | None = None) -> list[WnObj]:
        order = Q.parse_sort(sort)
        skip, limit = Q.check_window(skip, limit)
        Q.parse_match(match)            # validate before taking the lock
        now = C.now_ms()
        with self._txn(False) as v:
            docs = Q.sort_docs(self._select(v, match, now), order)
            docs = docs[skip:] if limit is None else docs[skip:skip + limit]
            return [C.copy_out(d) for d in docs]

    def count(self, match) -> int:
        Q.parse_match(match)
        now = C.now_ms()
        with self._txn(False) as v:
            return len(self._select(v, match, now))
