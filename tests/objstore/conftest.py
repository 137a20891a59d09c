"""Backends under test.

``store_factory`` is parametrized over every backend in ``BACKENDS``; a test calls
``store_factory()`` for a fresh, empty store (only "/" in it) and
``store_factory.new_url()`` for the URL of another fresh store (to hand to a child
process).  ``store_factory.backend`` is the backend's name; ``store_factory.shared``
tells whether several processes may open the same URL.

ADDING A BACKEND is one entry in ``BACKENDS``: ``name -> (url_maker, shared)`` where
``url_maker(tmp_path)`` returns the URL of a fresh, empty store (it may call
``pytest.skip`` when the backend's server is not available).
"""
from __future__ import annotations

import importlib.util
import itertools

import pytest

import objstore

_n = itertools.count()


def _sqlite_url(tmp_path):
    return f"sqlite://{tmp_path}/store-{next(_n)}.db"


def _tinydb_url(tmp_path):
    return f"tinydb://{tmp_path}/store-{next(_n)}.json"


def _pg_url(tmp_path):
    from . import pg_backend            # the PostgreSQL helper's throwaway server
    return pg_backend.fresh_url()


BACKENDS = {
    "memory": (lambda tmp_path: "memory://", False),
    "sqlite": (_sqlite_url, True),
    "tinydb": (_tinydb_url, True),
}
if importlib.util.find_spec("objstore.postgres") is not None:
    BACKENDS["postgresql"] = (_pg_url, True)


class StoreFactory:
    def __init__(self, backend: str, tmp_path):
        self.backend = backend
        self._make_url, self.shared = BACKENDS[backend]
        self._tmp = tmp_path
        self._open: list = []

    def new_url(self) -> str:
        return self._make_url(self._tmp)

    def __call__(self, url: str | None = None):
        store = objstore.open_store(url or self.new_url())
        self._open.append(store)
        return store

    def close(self):
        for s in self._open:
            s.close()


@pytest.fixture(params=list(BACKENDS))
def store_factory(request, tmp_path):
    factory = StoreFactory(request.param, tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def store(store_factory):
    return store_factory()
