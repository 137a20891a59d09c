"""Store logic for backends that hold documents as Python dicts (memory, TinyDB).

A backend supplies ``_txn(write)``: a context manager yielding a ``DocView`` -- a
handful of primitives on raw documents, run under the backend's lock, committed when the
block ends and rolled back when it raises.  Every ``Store`` method below is one such
transaction, so each is atomic.
"""
from __future__ import annotations

import abc
import hashlib
from contextlib import AbstractContextManager
from typing import Any, Iterable, Mapping

from . import common as C
from . import paths, query as Q
from .base import Store, WnObj


class DocView(abc.ABC):
    """Primitives on raw documents inside one transaction.  Raw docs returned may be
    the stored objects themselves: callers copy before changing and ``put`` the copy."""

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


PURGE_EVERY_MS = 60_000


class DocStore(Store):
    """All of ``Store`` on top of ``DocView``."""

    _last_purge = 0

    @abc.abstractmethod
    def _txn(self, write: bool) -> AbstractContextManager[DocView]: ...

    # ---- helpers --------------------------------------------------------------------
    def _init_root(self) -> None:
        with self._txn(True) as v:
            if v.by_path("/") is None:
                now = C.now_ms()
                v.put({"id": paths.new_id(), "pid": "", "nm": "", "ph": "/", "race": "DIR",
                       "ct": now, "lm": now})

    @staticmethod
    def _visible(doc: dict | None, now: int) -> dict | None:
        if doc is None or C.is_expired(doc, now):
            return None
        return doc

    def _abs(self, v: DocView, store_path: str, now: int) -> str:
        """Store path -> absolute path (``id:`` anchors looked up; unknown -> noexists)."""
        if not store_path.startswith("id:"):
            return store_path
        oid, _, sub = store_path[3:].partition("/")
        anchor = self._visible(v.get(oid), now)
        if anchor is None:
            raise C.noexists(f"id:{oid}")
        return paths.anchor_join(anchor["ph"], sub)

    def _need(self, v: DocView, oid: str, now: int) -> dict:
        doc = self._visible(v.get(C.check_oid(oid)), now)
        if doc is None:
            raise C.noexists(f"id:{oid}")
        return doc

    def _clear_expired(self, v: DocView, ph: str, now: int) -> None:
        """Remove an expired object (and subtree) occupying ``ph``; raise if a live one does."""
        old = v.by_path(ph)
        if old is None:
            return
        if not C.is_expired(old, now):
            raise C.exists(ph)
        self._remove_tree(v, old)

    def _remove_tree(self, v: DocView, doc: dict) -> int:
        docs = v.subtree(doc)
        for d in reversed(docs):
            v.remove(d["id"])
            v.remove_content(d["id"])
        return len(docs)

    def _dir(self, v: DocView, ph: str, parents: bool, now: int) -> dict:
        # a DIR hidden by an expired DIR above it is no parent: what went in there could
        # never be reached by path, and the next purge would delete it
        doc = self._visible(v.by_path(ph), now)
        if doc is not None and any(self._visible(v.by_path(a), now) is None
                                   for a in paths.ancestors(ph)):
            doc = None
        if C.found_dir(doc, ph, parents) is not None:
            return doc
        up, nm = paths.parent_and_name(ph)
        parent = self._dir(v, up, True, now)
        self._clear_expired(v, ph, now)
        doc = C.new_doc(paths.new_id(), parent["id"], nm, ph, "DIR", {}, now)
        v.put(doc)
        return doc

    @staticmethod
    def _set_content(v: DocView, doc: dict, data: bytes, now: int) -> dict:
        doc = dict(doc)
        v.put_content(doc["id"], data)
        doc["len"] = len(data)
        doc["sha1"] = hashlib.sha1(data).hexdigest()
        doc["lm"] = max(now, doc.get("lm", 0))
        v.put(doc)
        return doc

    # ---- lookup -----------------------------------------------------------------------
    def get(self, oid: str) -> WnObj | None:
        if not paths.is_id(oid):
            return None
        with self._txn(False) as v:
            doc = self._visible(v.get(oid), C.now_ms())
            return C.copy_out(doc) if doc else None

    def fetch(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj | None:
        sp = paths.resolve(path, cwd, home)
        now = C.now_ms()
        with self._txn(False) as v:
            try:
                ph = self._abs(v, sp, now)
            except C.StoreError:
                return None
            doc = self._visible(v.by_path(ph), now)
            if doc is None or any(self._visible(v.by_path(a), now) is None
                                  for a in paths.ancestors(ph)):
                return None      # an expired DIR hides everything below it from paths
            return C.copy_out(doc)

    # ---- create / change ------------------------------------------------------------
    def create(self, path: str, race: str = "FILE", meta: Mapping[str, Any] | None = None,
               *, parents: bool = False, content: bytes | None = None,
               cwd: str = "/", home: str | None = None) -> WnObj:
        race, sp, clean, data = C.create_args(path, race, meta, content, cwd, home)
        now = C.now_ms()
        with self._txn(True) as v:
            ph = self._abs(v, sp, now)
            if ph == "/":
                raise C.exists("/")
            up, nm = paths.parent_and_name(ph)
            parent = self._dir(v, up, parents, now)
            self._clear_expired(v, ph, now)
            doc = C.new_doc(paths.new_id(), parent["id"], nm, ph, race, clean, now)
            v.put(doc)
            if data is not None:
                doc = self._set_content(v, doc, data, now)
            if now - self._last_purge >= PURGE_EVERY_MS:     # opportunistic, once a minute
                self._last_purge = now
                self._purge(v, now)
            return C.copy_out(doc)

    def set_meta(self, oid: str, changes: Mapping[str, Any]) -> WnObj:
        clean = C.clean_meta(changes)
        now = C.now_ms()
        with self._txn(True) as v:
            doc = dict(self._need(v, oid, now))
            C.apply_changes(doc, clean, now)
            v.put(doc)
            return C.copy_out(doc)

    def cas(self, oid: str, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> WnObj | None:
        want = C.clean_expect(expect)
        clean = C.clean_meta(changes)
        now = C.now_ms()
        with self._txn(True) as v:
            doc = self._need(v, oid, now)
            if not C.matches_expect(doc, want):
                return None
            doc = dict(doc)
            C.apply_changes(doc, clean, now)
            v.put(doc)
            return C.copy_out(doc)

    def incr(self, oid: str, key: str, delta: int = 1) -> int:
        C.check_delta(key, delta)
        now = C.now_ms()
        with self._txn(True) as v:
            doc = dict(self._need(v, oid, now))
            val = C.incr_value(doc.get(key), key, delta)
            doc[key] = val
            doc["lm"] = max(now, doc.get("lm", 0))
            v.put(doc)
            return val

    # ---- content -----------------------------------------------------------------------
    def read(self, oid: str) -> bytes:
        with self._txn(False) as v:
            doc = self._need(v, oid, C.now_ms())
            if doc["race"] != "FILE":
                raise C.notfile(doc["ph"])
            return v.get_content(oid)

    def write(self, oid: str, data: bytes) -> WnObj:
        return self._put(oid, data, append=False)

    def append(self, oid: str, data: bytes) -> WnObj:
        return self._put(oid, data, append=True)

    def _put(self, oid: str, data: bytes, append: bool) -> WnObj:
        data = C.as_bytes(data)
        now = C.now_ms()
        with self._txn(True) as v:
            doc = self._need(v, oid, now)
            if doc["race"] != "FILE":
                raise C.notfile(doc["ph"])
            if append:
                data = v.get_content(oid) + data
            return C.copy_out(self._set_content(v, doc, data, now))

    # ---- tree -------------------------------------------------------------------------
    def children(self, oid: str, glob: str | None = None) -> list[WnObj]:
        rx = None
        if glob is not None:
            import re
            rx = re.compile(C.glob_regex(glob))
        now = C.now_ms()
        with self._txn(False) as v:
            doc = self._need(v, oid, now)
            if doc["race"] != "DIR":
                raise C.notdir(doc["ph"])
            kids = [d for d in v.child_docs(oid) if not C.is_expired(d, now)
                    and (rx is None or rx.match(d["nm"]))]
            kids.sort(key=lambda d: d["nm"])
            return [C.copy_out(d) for d in kids]

    def move(self, oid: str, new_path: str, *, cwd: str = "/", home: str | None = None) -> WnObj:
        sp = paths.resolve(new_path, cwd, home)
        now = C.now_ms()
        with self._txn(True) as v:
            src = self._need(v, oid, now)
            if src["ph"] == "/":
                raise paths.invalid("cannot move '/'")
            dest = self._abs(v, sp, now)
            target = self._visible(v.by_path(dest), now)
            dest = C.move_dest(src, dest, target)
            if dest is None:
                return C.copy_out(src)
            up, nm = paths.parent_and_name(dest)
            parent = self._dir(v, up, False, now)
            self._clear_expired(v, dest, now)
            old_ph = src["ph"]
            tree = v.subtree(src)
            paths.check_moved(dest, old_ph, max(len(d["ph"].encode("utf-8")) for d in tree))
            for d in tree:
                d = dict(d)
                if d["id"] == src["id"]:
                    C.moved(d, parent["id"], nm, dest, now)
                    moved = d
                else:
                    C.relocate(d, dest + d["ph"][len(old_ph):])
                v.put(d)
            return C.copy_out(moved)

    def delete(self, oid: str, *, recursive: bool = False) -> None:
        now = C.now_ms()
        with self._txn(True) as v:
            doc = self._need(v, oid, now)
            if doc["ph"] == "/":
                raise paths.invalid("cannot delete '/'")
            if doc["race"] == "DIR" and not recursive:
                if any(not C.is_expired(d, now) for d in v.child_docs(oid)):
                    raise C.dir_notempty(doc["ph"])
            self._remove_tree(v, doc)

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

    # ---- housekeeping --------------------------------------------------------------------
    def purge_expired(self) -> int:
        now = C.now_ms()
        with self._txn(True) as v:
            self._last_purge = now
            return self._purge(v, now)

    def _purge(self, v: DocView, now: int) -> int:
        n = 0
        for d in list(v.scan(lambda d: C.is_expired(d, now))):
            if v.get(d["id"]) is not None:       # not already gone with its parent
                n += self._remove_tree(v, d)
        return n
