"""``tinydb:///path.json``: the whole store in one JSON file, through TinyDB.

TinyDB rewrites its whole file on every change, so this backend is for small stores
(hundreds to a few thousand objects): see objstore/README.md.  What it guarantees:

* **Atomic writes.**  ``AtomicJSONStorage`` (TinyDB's ``Storage`` extension point)
  writes to a temporary file in the same directory, fsyncs it, ``os.replace``-s it over
  the store and fsyncs the directory: a crash leaves the old file or the new one,
  never half of one.
* **One writer at a time, across processes.**  Every write operation holds a
  ``filelock.FileLock`` on ``<file>.lock`` and, under it, re-reads the file if another
  process replaced it (inode, size, mtime differ), so no process writes from a stale
  copy.  Reads reload the same way (no lock needed: the file is only ever replaced
  whole).
* **Transactions.**  Inside one store operation the storage defers its writes and
  flushes once at the end; an operation that fails drops its changes (the cached copy is
  discarded and the file, untouched, is read again).
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import filelock
from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from .docstore import DocStore, DocView
from .errors import INTERNAL, TIMEOUT, StoreError

OBJ_TABLE = "obj"
CONTENT_TABLE = "content"


def _corrupt(path: str, why: str) -> StoreError:
    return StoreError("e.io.store.corrupt", f"{path}: {why}", INTERNAL)


class AtomicJSONStorage(Storage):
    """A TinyDB storage: JSON file replaced atomically; cached while unchanged on disk.

    ``begin()``/``commit()``/``abort()`` bracket a transaction: inside it ``write`` only
    keeps the data in memory; ``commit`` writes the file once.
    """

    def __init__(self, path: str, **_ignored: Any):
        self.path = path
        self._data: dict | None = None
        self._sig: tuple | None = None
        self.generation = 0          # bumped whenever the cached data is replaced
        self._in_txn = False
        self._dirty = False

    # ---- freshness --------------------------------------------------------------------
    def _stat_sig(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def refresh(self) -> None:
        """Reload the file if it is not the one we last read or wrote."""
        sig = self._stat_sig()
        if self._data is not None and sig == self._sig:
            return
        if sig is None:
            data: dict = {}
        else:
            try:
                with open(self.path, "rb") as fh:
                    raw = fh.read()
                    st = os.fstat(fh.fileno())      # the inode we read: never rewritten
                    sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            except OSError as exc:
                raise StoreError("e.io.store.open", f"cannot read {self.path}: "
                                 f"{exc.strerror}", INTERNAL) from None
            try:
                data = json.loads(raw) if raw.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                raise _corrupt(self.path, f"not JSON ({exc})") from None
            if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
                raise _corrupt(self.path, "not a TinyDB document")
        self._data, self._sig = data, sig
        self.generation += 1

    def invalidate(self) -> None:
        self._data, self._sig = None, None
        self._dirty = False

    # ---- transactions ---------------------------------------------------------------------
    def begin(self) -> None:
        self.refresh()
        self._in_txn, self._dirty = True, False

    def commit(self) -> None:
        try:
            if self._dirty:
                self._flush(self._data or {})
        except BaseException:
            self.invalidate()
            raise
        finally:
            self._in_txn, self._dirty = False, False

    def abort(self) -> None:
        self._in_txn = False
        self.invalidate()

    # ---- Storage API ----------------------------------------------------------------------
    def read(self) -> dict | None:
        if self._data is None:
            self.refresh()
        return self._data

    def write(self, data: dict) -> None:
        self._data = data
        if self._in_txn:
            self._dirty = True
        else:
            self._flush(data)

    def _flush(self, data: dict) -> None:
        folder = os.path.dirname(self.path) or "."
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
        try:
            try:       # keep the mode of the file we replace (new files stay 0600)
                os.fchmod(fd, os.stat(self.path).st_mode & 0o7777)
            except FileNotFoundError:
                pass
            with os.fdopen(fd, "wb") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        self._sig = self._stat_sig()

    def close(self) -> None:
        self.invalidate()


_STR_FIELDS = ("id", "pid", "nm", "ph")


def _bad_record(key: str, doc: Any) -> str | None:
    """Why an object record cannot be served (None when it is fine)."""
    if not isinstance(doc, dict):
        return "not an object"
    for k in _STR_FIELDS:
        if not isinstance(doc.get(k), str):
            return f"{k} missing or not a string"
    if doc["id"] != key:
        return "id differs from its key"
    if doc.get("race") not in ("FILE", "DIR"):
        return "race is neither FILE nor DIR"
    for k in ("ct", "lm", "expi"):
        v = doc.get(k)
        if (v is not None or k != "expi") and (type(v) is not int):
            return f"{k} is not an integer"
    return None


class _StrIdTable(Table):
    """Documents keyed by our string object ids (TinyDB's default is int)."""
    document_id_class = str


class _Uncached:
    """A TinyDB query from a plain predicate, never cached (the file may change under us)."""

    def __init__(self, pred):
        self.pred = pred

    def __call__(self, doc) -> bool:
        return self.pred(doc)

    def is_cacheable(self) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)


class _TinyView(DocView):
    def __init__(self, store: "TinyDBStore"):
        self.s = store
        self.obj = store.obj
        self.content = store.content

    def _raw(self) -> dict:
        return (self.s.storage.read() or {}).get(OBJ_TABLE, {})

    def get(self, oid):
        return self._raw().get(oid)

    def by_path(self, ph):
        oid = self.s.by_ph.get(ph)
        return None if oid is None else self._raw().get(oid)

    def child_docs(self, pid):
        kids = self.s.kids.get(pid)
        if not kids:
            return []
        raw = self._raw()
        return [raw[i] for i in kids.values() if i in raw]

    def scan(self, pred) -> Iterable[dict]:
        return self.obj.search(_Uncached(pred))

    def put(self, doc):
        oid = doc["id"]
        old = self._raw().get(oid)
        if old is None:
            self.obj.insert(Document(doc, doc_id=oid))
        else:
            self.s.unindex(old)         # before: TinyDB updates the stored dict in place
            def replace(stored, new=doc):
                stored.clear()
                stored.update(new)
            self.obj.update(replace, doc_ids=[oid])
        self.s.index(doc)

    def remove(self, oid):
        old = self._raw().get(oid)
        if old is not None:
            self.obj.remove(doc_ids=[oid])
            self.s.unindex(old)

    def get_content(self, oid):
        rec = self.content.get(doc_id=oid)
        if not rec:
            return b""
        try:
            return base64.b64decode(rec["b64"], validate=True)
        except (ValueError, TypeError, KeyError):   # binascii.Error is a ValueError
            raise _corrupt(self.s.path, f"bad content record {oid!r}") from None

    def put_content(self, oid, data):
        rec = {"b64": base64.b64encode(data).decode("ascii")}
        if self.content.contains(doc_id=oid):
            self.content.update(rec, doc_ids=[oid])
        else:
            self.content.insert(Document(rec, doc_id=oid))

    def remove_content(self, oid):
        if self.content.contains(doc_id=oid):
            self.content.remove(doc_ids=[oid])


class TinyDBStore(DocStore):
    def __init__(self, url: str):
        from . import url_path
        self.url = url
        # the file itself, not a symlink to it: every write replaces the file (rename),
        # which would otherwise swap the link for a copy and leave the target stale
        self.path = os.path.realpath(url_path(url))
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        except OSError as exc:
            raise StoreError("e.io.store.open", f"cannot create {os.path.dirname(self.path)}: "
                             f"{exc.strerror}", INTERNAL) from None
        self.lock = threading.RLock()
        self.flock = filelock.FileLock(self.path + ".lock", timeout=30)
        self.db = TinyDB(self.path, storage=AtomicJSONStorage)
        self.storage: AtomicJSONStorage = self.db.storage
        self.obj = _StrIdTable(self.storage, OBJ_TABLE, cache_size=0)
        self.content = _StrIdTable(self.storage, CONTENT_TABLE, cache_size=0)
        self.by_ph: dict[str, str] = {}
        self.kids: dict[str, dict[str, str]] = {}
        self._index_gen = -1
        self._init_root()

    # ---- path/child index over the cached data ------------------------------------------------
    def index(self, doc: dict) -> None:
        self.by_ph[doc["ph"]] = doc["id"]
        self.kids.setdefault(doc["pid"], {})[doc["nm"]] = doc["id"]

    def unindex(self, doc: dict) -> None:
        if self.by_ph.get(doc["ph"]) == doc["id"]:
            del self.by_ph[doc["ph"]]
        kids = self.kids.get(doc["pid"])
        if kids is not None and kids.get(doc["nm"]) == doc["id"]:
            del kids[doc["nm"]]
            if not kids:
                del self.kids[doc["pid"]]

    def _reindex(self) -> None:
        """Rebuild the path/child index from freshly loaded data, checking every record
        on the way (a file edited by hand): a bad one is ``e.io.store.corrupt`` naming
        it, for every operation, and no write can rewrite the file until it is fixed."""
        if self._index_gen == self.storage.generation:
            return
        self.by_ph, self.kids = {}, {}
        data = self.storage.read() or {}
        for key, doc in data.get(OBJ_TABLE, {}).items():
            why = _bad_record(key, doc)
            if why is None and doc["ph"] in self.by_ph:
                why = f"path {doc['ph']!r} used twice"
            if why is not None:
                self.by_ph, self.kids, self._index_gen = {}, {}, -1
                raise _corrupt(self.path, f"bad object record {key!r} ({why})")
            self.index(doc)
        for key, rec in data.get(CONTENT_TABLE, {}).items():
            if not isinstance(rec, dict) or not isinstance(rec.get("b64"), str):
                self.by_ph, self.kids, self._index_gen = {}, {}, -1
                raise _corrupt(self.path, f"bad content record {key!r}")
        self._index_gen = self.storage.generation

    @contextmanager
    def _txn(self, write: bool) -> Iterator[DocView]:
        with self.lock:
            if not write:
                self.storage.refresh()
                self._reindex()
                yield _TinyView(self)
                return
            try:
                self.flock.acquire()
            except filelock.Timeout:
                raise StoreError("e.io.store.busy", f"{self.path} is locked by another "
                                 "process", TIMEOUT) from None
            except OSError as exc:
                raise StoreError("e.io.store.open", f"cannot lock {self.path}.lock: "
                                 f"{exc.strerror}", INTERNAL) from None
            try:
                self.storage.begin()
                self._reindex()
                try:
                    yield _TinyView(self)
                except BaseException:
                    self.storage.abort()
                    self._index_gen = -1
                    raise
                try:
                    self.storage.commit()
                except OSError as exc:
                    self._index_gen = -1
                    raise StoreError("e.io.store.failed", f"cannot write {self.path}: "
                                     f"{exc.strerror}", INTERNAL) from None
                self._index_gen = self.storage.generation
            finally:
                self.flock.release()

    def close(self) -> None:
        with self.lock:
            self.storage.close()
            self._index_gen = -1
