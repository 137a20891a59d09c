"""objstore: WnObj documents in a tree (see base.py for the contract).

``open_store(url)`` picks a backend by URL scheme:

* ``sqlite:///abs/path.db`` -- the default (``$XDG_DATA_HOME/wnshell/store.db``)
* ``tinydb:///abs/path.json`` -- small stores, one JSON file
* ``memory://`` -- a fresh in-process store (tests)
* ``postgresql://...`` -- a server database (``objstore.postgres``)

With ``url=None`` the URL comes from env ``WNSHELL_STORE``, else the default file.
"""
from __future__ import annotations

import os
import stat
import sys

from .base import READONLY, RESERVED, Store, WnObj
from .errors import BAD_INPUT, INTERNAL, StoreError, WnError

__all__ = ["open_store", "default_url", "Store", "WnObj", "StoreError", "WnError",
           "RESERVED", "READONLY", "BACKENDS"]

# scheme -> "module:factory"; the factory is called with the whole URL.  A new backend
# is one line here.
BACKENDS = {
    "memory": "objstore.memory:MemoryStore",
    "sqlite": "objstore.sqlite_backend:SQLiteStore",
    "tinydb": "objstore.tinydb_backend:TinyDBStore",
    "postgresql": "objstore.postgres:PostgresStore",
    "postgres": "objstore.postgres:PostgresStore",
}


def default_url() -> str:
    """``sqlite:///`` + ``$XDG_DATA_HOME/wnshell/store.db`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return "sqlite://" + os.path.join(os.path.abspath(base), "wnshell", "store.db")


def url_path(url: str) -> str:
    """File path of ``scheme:///abs/path`` (or ``scheme://rel/path``, ``~`` expanded)."""
    rest = url.split("://", 1)[1] if "://" in url else url.split(":", 1)[1]
    if not rest:
        raise StoreError("e.io.store.url.invalid", f"no file path in {url}", BAD_INPUT)
    if "\x00" in rest:
        raise StoreError("e.io.store.url.invalid", "NUL character in the file path", BAD_INPUT)
    path = os.path.abspath(os.path.expanduser(rest))
    try:
        mode = os.stat(path).st_mode
    except OSError:         # missing (created later) or unreachable (the open says why)
        return path
    if not stat.S_ISREG(mode):
        # a store replaces or grows files beside its own: never a device (/dev/null), a
        # FIFO (an open would block) or a folder
        raise StoreError("e.io.store.open", f"{path} is not a regular file", INTERNAL)
    return path


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")


def _scheme(url: str) -> str:
    """The URL's scheme, lower-cased.  A plain ``letters:`` prefix (every URL the module
    doc lists) is read by hand: ``urllib.parse`` costs more start-up time than the
    whole shell, so it is imported only for anything unusual."""
    head = url.split(":", 1)[0]
    if head and head[0].isascii() and head[0].isalpha() and _SCHEME_CHARS.issuperset(head):
        return head.lower()
    from urllib.parse import urlsplit
    return urlsplit(url).scheme.lower() or head.lower()


def open_store(url: str | None = None) -> Store:
    """Open the store named by ``url`` (see module doc)."""
    if url is None:
        url = os.environ.get("WNSHELL_STORE") or default_url()
    if not isinstance(url, str) or ":" not in url:
        raise StoreError("e.io.store.url.invalid", f"not a store URL: {url!r}", BAD_INPUT)
    scheme = _scheme(url)
    target = BACKENDS.get(scheme)
    if target is None:
        raise StoreError("e.io.store.url.invalid",
                         f"unknown store scheme {scheme!r} (use {', '.join(sorted(BACKENDS))})",
                         BAD_INPUT)
    mod_name, _, attr = target.partition(":")
    try:
        __import__(mod_name)            # as importlib.import_module, without importing
        module = sys.modules[mod_name]  # importlib (start-up time)
    except ImportError as exc:
        raise StoreError("e.io.store.unavailable", f"backend {scheme}: {exc}") from None
    return getattr(module, attr)(url)
