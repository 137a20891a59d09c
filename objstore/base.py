"""The store contract: WnObj documents in a tree.  Every backend implements ``Store``.

This file is the shared contract between the store and everything above it (shell,
commands, regapi).  Semantics: ../shared/docs/walnut.md §1.

Conventions
-----------
* A WnObj is a ``dict`` (subclass ``WnObj``) holding the reserved fields
  ``id, pid, nm, ph, race, d0, d1, c, m, g, ct, lm, tp, mime, len, sha1, expi`` plus
  free JSON metadata.  Returned objects are copies: mutating them changes nothing.
* ``race`` is ``"DIR"`` or ``"FILE"``; times are epoch milliseconds (int).
* Paths given to the store are *store paths*: absolute (``/a/b``), or ``id:ID`` or
  ``id:ID/sub/path``.  ``~``, ``.``/``..`` and relative paths are resolved before, by
  ``objstore.paths.resolve(path, cwd=..., home=...)``; the convenience methods that take
  ``cwd``/``home`` keywords call it for you.
* Errors are ``objstore.errors.StoreError`` with keys such as ``e.io.obj.noexists``,
  ``e.io.obj.exists``, ``e.io.path.invalid``, ``e.io.obj.notdir``, ``e.io.obj.notfile``,
  ``e.io.meta.invalid`` -- never a raw backend exception.
* Every method is one atomic operation, safe from several threads and (for SQLite and
  PostgreSQL) several processes.
"""
from __future__ import annotations

import abc

TYPE_CHECKING = False   # as typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:       # (annotations are strings here, never evaluated)
    from typing import Any, Mapping, Sequence

    Match = Mapping[str, Any] | Sequence[Mapping[str, Any]]

RESERVED = ("id", "pid", "nm", "ph", "race", "d0", "d1", "c", "m", "g", "ct", "lm",
            "tp", "mime", "len", "sha1", "expi")
# fields the store computes; set_meta refuses to change them (expi, c, m, g, tp, mime
# may be set by callers)
READONLY = ("id", "pid", "nm", "ph", "race", "d0", "d1", "ct", "lm", "len", "sha1")


class WnObj(dict):
    """One object's metadata. ``obj.id``, ``obj.ph``, ``obj.nm``, ``obj.is_dir``."""

    @property
    def id(self) -> str:
        return self["id"]

    @property
    def ph(self) -> str:
        return self["ph"]

    @property
    def nm(self) -> str:
        return self["nm"]

    @property
    def is_dir(self) -> bool:
        return self.get("race") == "DIR"


class Store(abc.ABC):
    """Abstract store.  ``objstore.open_store(url)`` returns one of these."""

    url: str = ""

    # ---- lookup ---------------------------------------------------------------
    @abc.abstractmethod
    def get(self, oid: str) -> WnObj | None:
        """Object by id, or None (also None when expired)."""

    @abc.abstractmethod
    def fetch(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj | None:
        """Object by path (any form ``objstore.paths.resolve`` accepts), or None."""

    def check(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj:
        """Like ``fetch`` but raises ``e.io.obj.noexists`` (kind not_found)."""
        obj = self.fetch(path, cwd=cwd, home=home)
        if obj is None:
            from .errors import NOT_FOUND, StoreError
            raise StoreError("e.io.obj.noexists", path, NOT_FOUND)
        return obj

    def check_id(self, oid: str) -> WnObj:
        """Like ``get`` but raises ``e.io.obj.noexists``."""
        obj = self.get(oid)
        if obj is None:
            from .errors import NOT_FOUND, StoreError
            raise StoreError("e.io.obj.noexists", f"id:{oid}", NOT_FOUND)
        return obj

    # ---- create / change ------------------------------------------------------
    @abc.abstractmethod
    def create(self, path: str, race: str = "FILE", meta: Mapping[str, Any] | None = None,
               *, parents: bool = False, content: bytes | None = None,
               cwd: str = "/", home: str | None = None) -> WnObj:
        """Create a FILE or DIR.  ``parents`` creates missing DIRs on the way.
        Raises ``e.io.obj.exists`` if the name is taken."""

    @abc.abstractmethod
    def set_meta(self, oid: str, changes: Mapping[str, Any]) -> WnObj:
        """Write only the given keys; a value of None deletes the key.  Returns the
        updated object.  Bumps ``lm``."""

    @abc.abstractmethod
    def cas(self, oid: str, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> WnObj | None:
        """Atomically: if every ``expect`` key currently has that value (None = absent),
        apply ``changes`` as ``set_meta`` does and return the new object; otherwise
        change nothing and return None."""

    def cas_applied(self, oid: str, expect: Mapping[str, Any],
                    changes: Mapping[str, Any]) -> bool:
        """``cas`` for a caller that needs only to know whether it applied: True when
        it did (a backend may then spare building the changed object)."""
        return self.cas(oid, expect, changes) is not None

    @abc.abstractmethod
    def incr(self, oid: str, key: str, delta: int = 1) -> int:
        """Atomically add ``delta`` to integer metadata ``key`` (absent = 0); return the
        new value."""

    # ---- content --------------------------------------------------------------
    @abc.abstractmethod
    def read(self, oid: str) -> bytes:
        """Content of a FILE (b"" when never written).  DIR -> ``e.io.obj.notfile``."""

    @abc.abstractmethod
    def write(self, oid: str, data: bytes) -> WnObj:
        """Replace the content; keeps ``len``, ``sha1``, ``lm`` true."""

    @abc.abstractmethod
    def append(self, oid: str, data: bytes) -> WnObj:
        """Append to the content; keeps ``len``, ``sha1``, ``lm`` true."""

    # ---- tree -----------------------------------------------------------------
    @abc.abstractmethod
    def children(self, oid: str, glob: str | None = None) -> list[WnObj]:
        """Direct children of a DIR, sorted by name, optionally filtered by a glob."""

    @abc.abstractmethod
    def move(self, oid: str, new_path: str, *, cwd: str = "/", home: str | None = None) -> WnObj:
        """Move/rename (the subtree's ``ph``, ``d0``, ``d1`` follow)."""

    @abc.abstractmethod
    def delete(self, oid: str, *, recursive: bool = False) -> None:
        """Delete; a non-empty DIR needs ``recursive``."""

    # ---- query ----------------------------------------------------------------
    @abc.abstractmethod
    def query(self, match: Match, *, sort: Mapping[str, int] | None = None,
              skip: int = 0, limit: int | None = None) -> list[WnObj]:
        """``match`` is an AND-map or a list of them (OR).  Values use Walnut syntax:
        ``"^regex"``, ``*`` globs, ``"!x"`` negation, ranges ``"[a,b)"``/``"(a,b]"``,
        ``None`` = absent; other values compare equal.  ``sort`` is ``{"key": 1|-1}``."""

    @abc.abstractmethod
    def count(self, match: Match) -> int:
        """Number of objects ``query`` would return without skip/limit."""

    # ---- housekeeping ---------------------------------------------------------
    @abc.abstractmethod
    def purge_expired(self) -> int:
        """Delete objects whose ``expi`` has passed; return how many."""

    def dot_generation(self) -> int | None:
        """A number that changes after every committed write that may have changed an
        object in a dot-folder (a path with a segment starting with "."; the accounts
        in ``~/.weixin``, the APIs in ``~/.regapi``), read without asking the database
        anything: a cache of such an object can be checked on every use.  None when
        this backend cannot tell (the caller then reads what it needs)."""
        return None

    def close(self) -> None:
        """Release connections/files."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
