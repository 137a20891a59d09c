"""The tree's rules, written once for every backend.

What ``create``, ``move``, ``delete``, ``children``, ``read``/``write`` and the
read-check-write forms of ``set_meta``/``cas``/``incr`` mean -- an ``id:`` anchor, the
parent that must be a live DIR, "an expired DIR hides its subtree from paths and is no
parent", an expired name being free again, "``/`` cannot move or go", the subtree that
follows a move -- lives here and nowhere else.  A backend hands each function a
``TreeView``: the storage primitives of *one* transaction it has opened (a document
store's dicts, an SQL connection).  The function decides; the view only reads and
writes what it is told.

Two kinds of backend implement ``TreeView``: ``docstore.DocView`` (documents as Python
dicts: memory, TinyDB) and ``sqlstore.SQLView`` (a table: SQLite, PostgreSQL).  The
value rules these functions apply (metadata checks, cas equality, incr range, the
computed fields) are in ``common``.

Documents a view returns may be its stored objects themselves: nothing here changes
one in place; a changed document is a copy handed back to the view (``save``,
``insert``...).

``TreeStore`` at the end is the ``Store`` methods these rules answer, written once;
``DocStore`` and ``SQLStore`` are each a ``TreeStore``.
"""
from __future__ import annotations

import abc

from . import common as C
from . import paths
from .base import Store, WnObj
from .errors import StoreError

TYPE_CHECKING = False   # typing costs start-up time: every shell opens a store
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping


class TreeView(abc.ABC):
    """The primitives of one transaction.  ``now`` is the operation's clock (epoch ms):
    an object whose ``expi`` is below it is expired."""

    # ---- reads --------------------------------------------------------------------------
    @abc.abstractmethod
    def live(self, oid: str, now: int, lock: bool = False) -> dict | None:
        """The object with id ``oid`` unless it has expired itself (an expired DIR
        above does not hide an object from its id).  ``lock``: the decision that
        follows depends on the row (a backend with row locks takes one)."""

    @abc.abstractmethod
    def at(self, ph: str, now: int) -> dict | None:
        """The object at absolute path ``ph``, or None when there is none, it has
        expired, or a DIR above it has (an expired DIR hides its whole subtree from
        paths)."""

    @abc.abstractmethod
    def live_children(self, oid: str, now: int, pattern: Any = None) -> list[dict]:
        """The unexpired children of ``oid`` in name order; ``pattern`` is the name
        glob as the backend prepared it (``TreeStore._glob``), or None for all."""

    @abc.abstractmethod
    def has_live_children(self, oid: str, now: int) -> bool: ...

    @abc.abstractmethod
    def get_content(self, oid: str) -> bytes:
        """The content of a FILE (b"" when never written)."""

    @abc.abstractmethod
    def longest_below(self, doc: dict) -> int:
        """Bytes (UTF-8) of the longest path in ``doc``'s subtree, ``doc`` included."""

    # ---- writes -------------------------------------------------------------------------
    @abc.abstractmethod
    def clear(self, ph: str, now: int) -> None:
        """Make way at ``ph``: an expired object there goes, with its subtree.  A live
        one is ``e.io.obj.exists``, raised here or by the ``insert``/``move_tree`` that
        follows in the same transaction (a unique index)."""

    @abc.abstractmethod
    def insert(self, doc: dict, data: bytes | None) -> None:
        """Store a new object (``len``/``sha1`` already match ``data``; None: no
        content written)."""

    def insert_dir(self, doc: dict, now: int) -> dict:
        """Store a DIR made on the way (``create`` with ``parents``); returns the DIR
        now at its path (a backend where another writer may have made it at the same
        moment returns that one)."""
        self.insert(doc, None)
        return doc

    @abc.abstractmethod
    def save(self, doc: dict) -> None:
        """Write back a changed object (metadata, ``lm``, ``expi``)."""

    @abc.abstractmethod
    def set_content(self, doc: dict, data: bytes) -> None:
        """Store ``data`` as the content of ``doc`` and save ``doc`` (its ``len``,
        ``sha1``, ``lm`` already set)."""

    @abc.abstractmethod
    def remove_tree(self, doc: dict) -> int:
        """Delete ``doc``, its subtree and their content; return how many objects."""

    @abc.abstractmethod
    def move_tree(self, src: dict, moved: dict) -> None:
        """Write ``moved`` (``src`` after the move: new ``pid``, ``nm``, ``ph``...) and
        give every descendant of ``src`` the path below ``moved["ph"]``, with its
        ``d0``/``d1``.  A live object at the new path is ``e.io.obj.exists``."""


# ---- lookups ----------------------------------------------------------------------------
def absolute(v: TreeView, sp: str, now: int) -> str:
    """Store path -> absolute path: an ``id:`` anchor must be a live object (else
    ``e.io.obj.noexists``)."""
    if not sp.startswith("id:"):
        return sp
    oid, _, sub = sp[3:].partition("/")
    anchor = v.live(oid, now)
    if anchor is None:
        raise C.noexists(f"id:{oid}")
    return paths.anchor_join(anchor["ph"], sub)


def need(v: TreeView, oid: str, now: int, lock: bool = False) -> dict:
    """The live object ``oid``, or ``e.io.obj.noexists`` (a malformed id too)."""
    doc = v.live(C.check_oid(oid), now, lock)
    if doc is None:
        raise C.noexists(f"id:{oid}")
    return doc


def fetch(v: TreeView, sp: str, now: int) -> dict | None:
    """``Store.fetch`` of a resolved store path (``id:`` forms included)."""
    try:
        ph = absolute(v, sp, now)
    except StoreError:
        return None
    return v.at(ph, now)


def parent_dir(v: TreeView, ph: str, parents: bool, now: int) -> dict:
    """The DIR at ``ph`` that something is created or moved into.  It must be visible
    by its path: a DIR hidden by an expired DIR above it is no parent (what went in
    there could never be reached by path, and the next purge would delete it).  A
    missing one is made only with ``parents`` (an expired one on the way is replaced
    by a fresh DIR)."""
    doc = C.found_dir(v.at(ph, now), ph, parents)
    if doc is not None:
        return doc
    up, nm = paths.parent_and_name(ph)
    parent = parent_dir(v, up, True, now)
    v.clear(ph, now)
    return v.insert_dir(C.new_doc(paths.new_id(), parent["id"], nm, ph, "DIR", {}, now), now)


# ---- create / change --------------------------------------------------------------------
def create(v: TreeView, sp: str, race: str, meta: dict, data: bytes | None,
           parents: bool, now: int) -> dict:
    """``Store.create`` after ``common.create_args``."""
    ph = absolute(v, sp, now)
    if ph == "/":
        raise C.exists("/")
    up, nm = paths.parent_and_name(ph)
    parent = parent_dir(v, up, parents, now)
    v.clear(ph, now)
    doc = C.new_doc(paths.new_id(), parent["id"], nm, ph, race, meta, now)
    if data is not None:            # len and sha1 known before the object is stored
        stamp_content(doc, data, now)
    v.insert(doc, data)
    return doc


def stamp_content(doc: dict, data: bytes, now: int) -> None:
    """``len``, ``sha1`` and ``lm`` of ``doc`` for new content ``data``."""
    import hashlib                  # not at import: start-up time
    doc["len"] = len(data)
    doc["sha1"] = hashlib.sha1(data).hexdigest()
    doc["lm"] = max(now, doc.get("lm", 0))


def set_meta(v: TreeView, oid: str, clean: Mapping[str, Any], now: int) -> dict:
    """``Store.set_meta`` as read, change, write (``clean``: ``common.clean_meta``)."""
    doc = dict(need(v, oid, now, lock=True))
    C.apply_changes(doc, clean, now)
    v.save(doc)
    return doc


def cas(v: TreeView, oid: str, want: Mapping[str, Any], clean: Mapping[str, Any],
        now: int) -> dict | None:
    """``Store.cas`` as read, check, write: None when an expectation fails
    (``common.matches_expect``)."""
    doc = need(v, oid, now, lock=True)
    if not C.matches_expect(doc, want):
        return None
    doc = dict(doc)
    C.apply_changes(doc, clean, now)
    v.save(doc)
    return doc


def incr(v: TreeView, oid: str, key: str, delta: int, now: int) -> int:
    """``Store.incr`` as read, add, write (``common.incr_value``'s rules)."""
    doc = dict(need(v, oid, now, lock=True))
    val = C.incr_value(doc.get(key), key, delta)
    doc[key] = val
    doc["lm"] = max(now, doc.get("lm", 0))
    v.save(doc)
    return val


# ---- content ----------------------------------------------------------------------------
def read(v: TreeView, oid: str, now: int) -> bytes:
    doc = need(v, oid, now)
    if doc["race"] != "FILE":
        raise C.notfile(doc["ph"])
    return v.get_content(oid)


def put_content(v: TreeView, oid: str, data: bytes, append: bool, now: int) -> dict:
    """``Store.write`` / ``Store.append``: a FILE's content, its ``len``/``sha1``/``lm``."""
    doc = need(v, oid, now, lock=True)
    if doc["race"] != "FILE":
        raise C.notfile(doc["ph"])
    if append:
        data = v.get_content(oid) + data
    doc = dict(doc)
    stamp_content(doc, data, now)
    v.set_content(doc, data)
    return doc


# ---- tree -------------------------------------------------------------------------------
def children(v: TreeView, oid: str, pattern: Any, now: int) -> list[dict]:
    doc = need(v, oid, now)
    if doc["race"] != "DIR":
        raise C.notdir(doc["ph"])
    return v.live_children(oid, now, pattern)


def move(v: TreeView, oid: str, sp: str, now: int) -> dict:
    """``Store.move``: into a DIR at ``sp`` when there is one, else to ``sp``; the new
    parent must be a DIR visible by its path; never ``/``, never into itself, never a
    path longer than ``paths.MAX_PATH`` for any object of the subtree."""
    src = need(v, oid, now, lock=True)
    if src["ph"] == "/":
        raise paths.invalid("cannot move '/'")
    dest = absolute(v, sp, now)
    dest = C.move_dest(src, dest, v.at(dest, now))
    if dest is None:
        return src
    up, nm = paths.parent_and_name(dest)
    parent = parent_dir(v, up, False, now)
    v.clear(dest, now)
    paths.check_moved(dest, src["ph"], v.longest_below(src))
    moved = dict(src)
    C.moved(moved, parent["id"], nm, dest, now)
    v.move_tree(src, moved)
    return moved


def delete(v: TreeView, oid: str, recursive: bool, now: int) -> None:
    """``Store.delete``: never ``/``; a DIR with live children needs ``recursive``
    (expired children do not count)."""
    doc = need(v, oid, now, lock=True)
    if doc["ph"] == "/":
        raise paths.invalid("cannot delete '/'")
    if doc["race"] == "DIR" and not recursive and v.has_live_children(oid, now):
        raise C.dir_notempty(doc["ph"])
    v.remove_tree(doc)


# ---- housekeeping -----------------------------------------------------------------------
PURGE_EVERY_MS = 60_000


def purge_due(store: Any, now: int) -> bool:
    """True (and the clock reset) when ``store`` last purged a minute or more ago: the
    opportunistic purge every backend runs while writing."""
    if now - store._last_purge < PURGE_EVERY_MS:
        return False
    store._last_purge = now
    return True


# ---- the Store methods these rules answer -----------------------------------------------
class TreeStore(Store):
    """The ``Store`` methods the rules above answer, written once for both kinds of
    backend (``docstore.DocStore``, ``sqlstore.SQLStore``).  A kind supplies
    ``_run_read``/``_run_write`` (one transaction on a ``TreeView``), ``get``,
    ``query``, ``count``, and may answer ``fetch``/``set_meta``/``cas``/``incr`` faster
    (one statement) before falling back on the rule."""

    _last_purge = 0

    @abc.abstractmethod
    def _run_read(self, fn: Callable[[TreeView], Any]) -> Any:
        """``fn(view)`` in one read transaction."""

    @abc.abstractmethod
    def _run_write(self, fn: Callable[[TreeView], Any]) -> Any:
        """``fn(view)`` in one write transaction, committed (and synced, where the
        backend syncs) when this returns; an exception rolls it back."""

    @staticmethod
    def _out(doc: dict) -> WnObj:
        """The object handed to the caller (a view that returns documents it shares
        with nothing need not copy them)."""
        return WnObj(doc)

    def _glob(self, glob: Any) -> Any:
        """A ``children()`` glob, checked, as the view's ``live_children`` takes it."""
        return C.glob_regex(glob)

    def _purge(self, v: TreeView, now: int) -> int:
        """Delete the expired objects and their subtrees inside ``v``'s transaction."""
        raise NotImplementedError

    def _purge_within(self, v: TreeView, now: int) -> None:
        """Inside every ``create``'s transaction: the opportunistic purge."""
        if purge_due(self, now):
            self._purge(v, now)

    def _purge_after(self, now: int) -> None:
        """After every ``create`` has committed (a backend that purges on its own)."""

    # ---- lookup -----------------------------------------------------------------------
    def fetch(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj | None:
        """By path; an expired DIR hides its whole subtree from path lookups."""
        sp = paths.resolve(path, cwd, home)
        now = C.now_ms()
        doc = self._run_read(lambda v: fetch(v, sp, now))
        return self._out(doc) if doc is not None else None

    # ---- create / change --------------------------------------------------------------
    def create(self, path: str, race: str = "FILE", meta: Mapping[str, Any] | None = None,
               *, parents: bool = False, content: bytes | None = None,
               cwd: str = "/", home: str | None = None) -> WnObj:
        race, sp, clean, data = C.create_args(path, race, meta, content, cwd, home)
        now = C.now_ms()

        def tx(v):
            doc = create(v, sp, race, clean, data, parents, now)
            self._purge_within(v, now)
            return doc
        doc = self._run_write(tx)
        self._purge_after(now)
        return self._out(doc)

    def set_meta(self, oid: str, changes: Mapping[str, Any]) -> WnObj:
        clean = C.clean_meta(changes)
        now = C.now_ms()
        return self._out(self._run_write(lambda v: set_meta(v, oid, clean, now)))

    def cas(self, oid: str, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> WnObj | None:
        want = C.clean_expect(expect)
        clean = C.clean_meta(changes)
        return self._cas(oid, want, clean, C.now_ms())

    def _cas(self, oid: str, want: dict, clean: dict, now: int) -> WnObj | None:
        doc = self._run_write(lambda v: cas(v, oid, want, clean, now))
        return None if doc is None else self._out(doc)

    def incr(self, oid: str, key: str, delta: int = 1) -> int:
        C.check_delta(key, delta)
        now = C.now_ms()
        return self._run_write(lambda v: incr(v, oid, key, delta, now))

    # ---- content ----------------------------------------------------------------------
    def read(self, oid: str) -> bytes:
        now = C.now_ms()
        return self._run_read(lambda v: read(v, oid, now))

    def write(self, oid: str, data: bytes) -> WnObj:
        return self._put(oid, data, append=False)

    def append(self, oid: str, data: bytes) -> WnObj:
        return self._put(oid, data, append=True)

    def _put(self, oid: str, data: bytes, append: bool) -> WnObj:
        data = C.as_bytes(data)
        now = C.now_ms()
        return self._out(self._run_write(lambda v: put_content(v, oid, data, append, now)))

    # ---- tree -------------------------------------------------------------------------
    def children(self, oid: str, glob: str | None = None) -> list[WnObj]:
        pattern = None if glob is None else self._glob(glob)
        now = C.now_ms()
        out = self._out
        return [out(d) for d in self._run_read(lambda v: children(v, oid, pattern, now))]

    def move(self, oid: str, new_path: str, *, cwd: str = "/", home: str | None = None) -> WnObj:
        sp = paths.resolve(new_path, cwd, home)
        now = C.now_ms()
        return self._out(self._run_write(lambda v: move(v, oid, sp, now)))

    def delete(self, oid: str, *, recursive: bool = False) -> None:
        now = C.now_ms()
        self._run_write(lambda v: delete(v, oid, recursive, now))

    # ---- housekeeping -----------------------------------------------------------------
    def purge_expired(self) -> int:
        now = C.now_ms()

        def tx(v):
            self._last_purge = now
            return self._purge(v, now)
        return self._run_write(tx)
