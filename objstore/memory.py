"""``memory://``: a store held in this process's memory (tests, scratch sessions).

One lock serializes every operation; a failed operation is rolled back from an undo log,
so it is as atomic as the persistent backends.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterable, Iterator

from .docstore import DocStore, DocView

_MISSING = object()


class _MemView(DocView):
    def __init__(self, store: "MemoryStore", write: bool):
        self.s = store
        self.write = write
        self.undo: list[tuple[str, str, object]] = []   # (table, id, previous value)

    def get(self, oid):
        return self.s.docs.get(oid)

    def by_path(self, ph):
        oid = self.s.by_ph.get(ph)
        return None if oid is None else self.s.docs.get(oid)

    def child_docs(self, pid) -> Iterable[dict]:
        kids = self.s.kids.get(pid)
        return [self.s.docs[i] for i in kids.values()] if kids else []

    def scan(self, pred) -> Iterable[dict]:
        return [d for d in self.s.docs.values() if pred(d)]

    def _unindex(self, doc):
        self.s.by_ph.pop(doc["ph"], None)
        kids = self.s.kids.get(doc["pid"])
        if kids is not None:
            kids.pop(doc["nm"], None)
            if not kids:
                del self.s.kids[doc["pid"]]

    def _index(self, doc):
        self.s.by_ph[doc["ph"]] = doc["id"]
        self.s.kids.setdefault(doc["pid"], {})[doc["nm"]] = doc["id"]

    def put(self, doc):
        assert self.write
        old = self.s.docs.get(doc["id"])
        self.undo.append(("doc", doc["id"], _MISSING if old is None else old))
        if old is not None:
            self._unindex(old)
        self.s.docs[doc["id"]] = doc
        self._index(doc)

    def remove(self, oid):
        assert self.write
        old = self.s.docs.pop(oid, None)
        if old is not None:
            self.undo.append(("doc", oid, old))
            self._unindex(old)

    def get_content(self, oid):
        return self.s.content.get(oid, b"")

    def put_content(self, oid, data):
        assert self.write
        self.undo.append(("content", oid, self.s.content.get(oid, _MISSING)))
        self.s.content[oid] = data

    def remove_content(self, oid):
        assert self.write
        if oid in self.s.content:
            self.undo.append(("content", oid, self.s.content.pop(oid)))

    def rollback(self):
        for table, oid, old in reversed(self.undo):
            if table == "content":
                if old is _MISSING:
                    self.s.content.pop(oid, None)
                else:
                    self.s.content[oid] = old
                continue
            cur = self.s.docs.pop(oid, None)
            if cur is not None:
                self._unindex(cur)
            if old is not _MISSING:
                self.s.docs[oid] = old
                self._index(old)


class MemoryStore(DocStore):
    """``memory://`` -- every instance is a separate, empty store (with ``/``)."""

    def __init__(self, url: str = "memory://"):
        self.url = url
        self.lock = threading.RLock()
        self.docs: dict[str, dict] = {}
        self.by_ph: dict[str, str] = {}
        self.kids: dict[str, dict[str, str]] = {}
        self.content: dict[str, bytes] = {}
        self._init_root()

    @contextmanager
    def _txn(self, write: bool) -> Iterator[DocView]:
        with self.lock:
            view = _MemView(self, write)
            try:
                yield view
            except BaseException:
                view.rollback()
                raise
