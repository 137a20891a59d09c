"""``ScopedStore``: a view of a store confined to one subtree (a user's home).

    view = ScopedStore(open_store(url), "/home/demo")

Everything a confined ``Session`` (``Session(store, user, confine=True)``, as every
``.regapi`` request runs) does to the store goes through such a view, so no value a
request carries -- ``?id=/home/other/x``, ``?id=id:<someone else's id>``, a query --
can reach an object outside ``/home/<user>``, whatever command it is handed to.

Rules (root = the subtree's top, e.g. ``/home/demo``; "inside" = root or below it):

* Reads answer as if objects outside did not exist: ``get``/``fetch`` return None,
  ``check``/``check_id`` raise ``e.io.obj.noexists`` (kind not_found) -- the same answer
  as for a missing object, so the view is no oracle of what exists elsewhere.
* Operations on an object by id (``set_meta``, ``cas``, ``incr``, ``read``, ``write``,
  ``append``, ``children``, ``move``, ``delete``) first make sure the object is inside;
  an outside id is ``e.io.obj.noexists`` too.
* A path that is outside by its text alone (``create``/``move`` to ``/home/other/x``,
  or ``id:ID/../..`` climbing out) is refused with ``e.io.forbidden`` (kind forbidden,
  HTTP 403): that is decided without any store read, so it reveals nothing.  An ``id:``
  anchor must itself be inside (else ``e.io.obj.noexists``).
* ``query``/``count`` only ever see inside objects: every OR branch of the match gets
  ``d0 == "home"``-style equalities on the first two path segments (``d0``/``d1``, kept
  by every backend) and, when the branch has no ``ph`` condition of its own, an anchored
  ``ph`` regex with the root as literal prefix (PostgreSQL turns that into a range scan
  of its ``ph`` index).  A branch's own ``d0``/``d1`` conditions are decided once against
  the root's constant values.  Results are checked again before they are returned.
* ``purge_expired`` is passed through: it only removes objects that are already
  invisible to every reader (expired), so it neither reveals nor changes anything
  visible.
* ``close`` closes the underlying store (the view owns no other resource).

Two more things a request's view does (``ScopedStore(store, root, hide=..., held=...)``):

* ``hide``: names of subtrees of the root (``.weixin``, ``.regapi``) that the view treats
  exactly like the outside -- invisible to reads, children and queries, refused to
  creates and moves -- so a request's session can neither read the merchant's keys nor
  install an API.  The commands that own such a tree reach it through ``unhidden`` (the
  same root, nothing hidden), e.g. ``weixin`` reading ``~/.weixin/<conf>/wxconf``.
  ``grant(oid)`` lets the view see one object of a hidden tree (a request object this
  request asked to keep, stored in ``~/.regapi/tmp``).
* ``held``: ``(obj, content)`` pairs of FILE objects that exist only in this view, in
  memory (a request's own object: its metadata and body).  They are found by id
  (``get``, ``id:ID``) and can be read, written and have their metadata changed like
  any FILE; they are never in the store, never in a query or a listing, and no other
  view can see them.  ``obj`` may also be a callable with an ``id`` that makes the
  object's fields when something first looks at them (``is_held`` and ``read`` do
  not): a request's metadata is then never built for a command that only reads its
  body.

The root is given as an absolute path of at least two segments (``/home/<user>``);
whether it exists is not checked here.  The view remembers ids it has seen inside
(returned by its own reads, creates and queries) so that a command's follow-up writes
on the object it just fetched cost no extra read; an object moved out of the subtree by
someone else while a view is alive can thus still be written through that view until
the view is dropped (a ``Session`` lives for one request).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from . import common as C
from . import paths
from . import query as Q
from .base import Store
from .errors import FORBIDDEN, NOT_FOUND, StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .base import Match, WnObj


class ScopedStore(Store):
    """``store`` seen through the subtree ``root`` (see the module docstring)."""

    # root as given -> (normalized root, d0, d1, ph regex): a view is made per request,
    # so the checks and the regex are computed once per root, not per view
    _ROOTS: dict = {}
    # (root, hide names) -> (absolute paths of the hidden subtrees, each + "/")
    _HIDDEN: dict = {}

    def __init__(self, store: Store, root: str, *, hide=(), held=()):
        known = self._ROOTS.get(root)
        if known is None:
            known = self._root_info(root)
            if len(self._ROOTS) > 4096:
                self._ROOTS.clear()
            self._ROOTS[root] = known
        self.root, self._d0, self._d1, self._scope_ph, self._below = known
        self._store = store
        self.url = getattr(store, "url", "")
        self._inside: set[str] = set()
        # absolute paths of the hidden subtrees (computed once per root and names);
        # ids granted inside them
        self._hidden = self._hidden_below = ()
        if hide:
            key = (self.root, hide if type(hide) is tuple else tuple(hide))
            hidden = self._HIDDEN.get(key)
            if hidden is None:
                subtrees = tuple(paths.join(self.root, paths.check_name(h)) for h in hide)
                hidden = (subtrees, tuple(h + "/" for h in subtrees))
                if len(self._HIDDEN) > 4096:
                    self._HIDDEN.clear()
                self._HIDDEN[key] = hidden
            self._hidden, self._hidden_below = hidden
        self._granted: set[str] = set()
        self._unhidden = None
        # id -> [doc, content] of the objects only this view holds
        self._held: dict = {}
        for obj, content in held:
            if callable(obj):       # its fields made on first use (_held_doc)
                self._held[obj.id] = [None, bytes(content), obj]
            else:
                self._held[obj["id"]] = [dict(obj), bytes(content)]

    @staticmethod
    def _root_info(root: str) -> tuple:
        norm = paths.resolve(root)
        segs = paths.split(norm)
        if norm.startswith("id:") or len(segs) < 2:
            raise paths.invalid(f"a scope root needs two or more segments: {root}")
        # the subtree as query conditions: exact (d0, d1) and, where it can help an
        # index, a ph regex whose literal prefix is the root (no alternation in it)
        return norm, segs[0], segs[1], "^" + re.escape(norm) + "(?:/.*)?$", norm + "/"

    # ---- helpers ----------------------------------------------------------------
    @property
    def inner(self) -> Store:
        """The unconfined store behind this view."""
        return self._store

    def contains(self, path: str) -> bool:
        """True when the absolute store path ``path`` is the root or below it, and not
        in a hidden subtree."""
        return self._in_root(path) and not (
            path in self._hidden or path.startswith(self._hidden_below))

    def _in_root(self, path: str) -> bool:
        """``paths.is_within(path, root)``, as a prefix test."""
        return path.startswith(self._below) or path == self.root

    @property
    def unhidden(self) -> "ScopedStore":
        """The same root with nothing hidden: for the commands that own a hidden tree
        (``weixin`` and its account).  This view itself when nothing is hidden."""
        if not self._hidden:
            return self
        if self._unhidden is None:
            self._unhidden = ScopedStore(self._store, self.root)
        return self._unhidden

    def grant(self, oid: str) -> None:
        """Let this view see object ``oid`` even in a hidden subtree (it must still be
        below the root)."""
        self._granted.add(oid)

    def _seen(self, obj):
        """``obj`` if it is inside (remembering its id), else None."""
        if obj is None:
            return None
        ph = obj.get("ph", "")
        if not self.contains(ph) and not (obj.get("id") in self._granted
                                          and self._in_root(ph)):
            return None             # outside the root, or hidden and not granted
        self._inside.add(obj["id"])
        return obj

    def _need(self, oid: str) -> None:
        """Raise ``e.io.obj.noexists`` unless object ``oid`` is inside."""
        if oid in self._inside:
            return
        obj = self._store.get(oid) if isinstance(oid, str) else None
        if self._seen(obj) is None:
            raise StoreError("e.io.obj.noexists",
                             f"id:{oid}" if isinstance(oid, str) else f"bad id {oid!r}",
                             NOT_FOUND)

    def _forbidden(self, path: str) -> StoreError:
        return StoreError("e.io.forbidden", f"{paths._show(path)} is outside {self.root}",
                          FORBIDDEN)

    def _absolute(self, path: str, cwd: str, home: str | None) -> str | None:
        """``path`` as an absolute store path; an ``id:`` anchor is looked up through
        this view (None when it is not inside or does not exist)."""
        sp = paths.resolve(path, cwd, home)
        if not sp.startswith("id:"):
            return sp
        oid, segs = paths._split_id(sp)
        anchor = self.get(oid)
        if anchor is None:
            return None
        return paths.anchor_join(anchor["ph"], "/".join(segs))

    # ---- lookup -----------------------------------------------------------------
    def get(self, oid: str) -> WnObj | None:
        if self._held and isinstance(oid, str) and oid in self._held:
            return C.copy_out(self._held_doc(oid)[0])
        return self._seen(self._store.get(oid))

    # ---- objects only this view holds (in memory) -------------------------------
    def is_held(self, oid) -> bool:
        """Is ``oid`` an object this view holds in memory (a request's own)?"""
        return self._held_entry(oid) is not None

    def _held_entry(self, oid) -> list | None:
        """A held object's entry as it is (its fields may not be made yet), or None."""
        return self._held.get(oid) if self._held and isinstance(oid, str) else None

    def _held_doc(self, oid) -> list | None:
        """``[fields, content]`` of a held object (its fields made now if they were
        left for their first use), or None."""
        held = self._held_entry(oid)
        if held is not None and held[0] is None:
            held[0] = dict(held[2]())
        return held

    @staticmethod
    def _held_put(entry: list, data, append: bool) -> WnObj:
        import hashlib
        data = C.as_bytes(data)
        if append:
            data = entry[1] + data
        entry[1] = data
        doc = entry[0]
        doc["len"] = len(data)
        doc["sha1"] = hashlib.sha1(data).hexdigest()
        doc["lm"] = max(C.now_ms(), doc.get("lm", 0))
        return C.copy_out(doc)

    @staticmethod
    def _held_changes(changes) -> dict:
        return C.clean_meta(changes)        # which refuses the read-only fields

    def fetch(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj | None:
        sp = paths.resolve(path, cwd, home)
        if sp.startswith("id:"):
            if "/" not in sp:               # id:ID alone (resolve checked the id)
                return self.get(sp[3:])
            oid, segs = paths._split_id(sp)
            anchor = self.get(oid)
            if anchor is None or not segs:
                return anchor
            sp = paths.anchor_join(anchor["ph"], "/".join(segs))
        if not self.contains(sp):
            return None
        return self._seen(self._store.fetch(sp))

    # ---- create / change --------------------------------------------------------
    def create(self, path: str, race: str = "FILE", meta: Mapping[str, Any] | None = None,
               *, parents: bool = False, content: bytes | None = None,
               cwd: str = "/", home: str | None = None) -> WnObj:
        sp = self._absolute(path, cwd, home)
        if sp is None:
            raise StoreError("e.io.obj.noexists", path, NOT_FOUND)
        if not self.contains(sp):
            raise self._forbidden(sp)
        obj = self._store.create(sp, race, meta, parents=parents, content=content)
        return self._seen(obj) or obj

    def set_meta(self, oid: str, changes: Mapping[str, Any]) -> WnObj:
        held = self._held_doc(oid)
        if held is not None:
            C.apply_changes(held[0], self._held_changes(changes), C.now_ms())
            return C.copy_out(held[0])
        self._need(oid)
        return self._store.set_meta(oid, changes)

    def cas(self, oid: str, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> WnObj | None:
        held = self._held_doc(oid)
        if held is not None:
            want, clean = C.clean_expect(expect), self._held_changes(changes)
            if not C.matches_expect(held[0], want):
                return None
            C.apply_changes(held[0], clean, C.now_ms())
            return C.copy_out(held[0])
        self._need(oid)
        return self._store.cas(oid, expect, changes)

    def cas_applied(self, oid: str, expect: Mapping[str, Any],
                    changes: Mapping[str, Any]) -> bool:
        if self._held_doc(oid) is not None:
            return self.cas(oid, expect, changes) is not None
        self._need(oid)
        return self._store.cas_applied(oid, expect, changes)

    def incr(self, oid: str, key: str, delta: int = 1) -> int:
        held = self._held_doc(oid)
        if held is not None:
            C.check_delta(key, delta)
            held[0][key] = C.incr_value(held[0].get(key), key, delta)
            return held[0][key]
        self._need(oid)
        return self._store.incr(oid, key, delta)

    # ---- content ----------------------------------------------------------------
    def read(self, oid: str) -> bytes:
        held = self._held_entry(oid)
        if held is not None:            # the content alone: no fields made for it
            return held[1]
        self._need(oid)
        return self._store.read(oid)

    def write(self, oid: str, data: bytes) -> WnObj:
        held = self._held_doc(oid)
        if held is not None:
            return self._held_put(held, data, append=False)
        self._need(oid)
        return self._store.write(oid, data)

    def append(self, oid: str, data: bytes) -> WnObj:
        held = self._held_doc(oid)
        if held is not None:
            return self._held_put(held, data, append=True)
        self._need(oid)
        return self._store.append(oid, data)

    # ---- tree -------------------------------------------------------------------
    def children(self, oid: str, glob: str | None = None) -> list[WnObj]:
        held = self._held_doc(oid)
        if held is not None:
            raise C.notdir(held[0]["ph"])
        self._need(oid)
        kids = self._store.children(oid, glob)
        return [k for k in kids if self._seen(k) is not None]

    def move(self, oid: str, new_path: str, *, cwd: str = "/", home: str | None = None) -> WnObj:
        if self._held_doc(oid) is not None:     # it lives in memory: it has no place
            raise StoreError("e.io.forbidden", f"id:{oid} is held in memory", FORBIDDEN)
        self._need(oid)
        sp = self._absolute(new_path, cwd, home)
        if sp is None:
            raise StoreError("e.io.obj.noexists", new_path, NOT_FOUND)
        if not self.contains(sp):
            raise self._forbidden(sp)
        # an existing DIR at sp receives the object below it: still inside
        return self._store.move(oid, sp)

    def delete(self, oid: str, *, recursive: bool = False) -> None:
        if self._held_doc(oid) is not None:
            del self._held[oid]
            return
        self._need(oid)
        self._store.delete(oid, recursive=recursive)
        self._inside.discard(oid)

    # ---- query ------------------------------------------------------------------
    def _scoped_match(self, match: Match) -> list[dict] | None:
        """The caller's match restricted to the subtree, or None when no object inside
        can match it (every branch contradicts the root's d0/d1)."""
        ors = Q.parse_match(match)     # validates; [] = "everything"
        if not ors:
            branches: list = [{}]
        elif isinstance(match, Mapping):
            branches = [match]
        else:
            branches = list(match)
        consts = {"d0": self._d0, "d1": self._d1}
        out = []
        for b in branches:
            b = dict(b)
            # inside the subtree d0/d1 are constants: the branch's own conditions on
            # them are either always or never true there
            own = {k: b.pop(k) for k in ("d0", "d1") if k in b}
            if own and not Q.compile_predicate(own)(consts):
                continue
            scoped = {"d0": self._d0, "d1": self._d1}
            if "ph" not in b:
                scoped["ph"] = self._scope_ph
            scoped.update(b)
            out.append(scoped)
        return out or None

    def query(self, match: Match, *, sort: Mapping[str, int] | None = None,
              skip: int = 0, limit: int | None = None) -> list[WnObj]:
        scoped = self._scoped_match(match)
        if scoped is None:
            Q.parse_sort(sort)
            Q.check_window(skip, limit)
            return []
        m = scoped if len(scoped) > 1 else scoped[0]
        if not self._hidden:
            found = self._store.query(m, sort=sort, skip=skip, limit=limit)
            return [o for o in found if self._seen(o) is not None]
        # hidden subtrees: skip and limit count the visible objects only
        Q.check_window(skip, limit)
        if limit is None:
            return [o for o in self._store.query(m, sort=sort)
                    if self._seen(o) is not None][skip:]
        out: list = []
        page, start, passed = max(64, skip + limit), 0, 0
        while True:
            batch = self._store.query(m, sort=sort, skip=start, limit=page)
            for o in batch:
                if self._seen(o) is None:
                    continue
                if passed < skip:
                    passed += 1
                    continue
                out.append(o)
                if len(out) >= limit:
                    return out
            if len(batch) < page:
                return out
            start += page

    def count(self, match: Match) -> int:
        scoped = self._scoped_match(match)
        if scoped is None:
            return 0
        if self._hidden:
            return len(self.query(match))
        return self._store.count(scoped if len(scoped) > 1 else scoped[0])

    # ---- housekeeping -----------------------------------------------------------
    def dot_generation(self) -> int | None:
        return self._store.dot_generation()

    def purge_expired(self) -> int:
        return self._store.purge_expired()

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return f"<ScopedStore {self.root} of {self._store!r}>"
