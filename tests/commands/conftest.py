"""Fixtures for the core-command tests: a Session on a fresh store of each backend."""
from __future__ import annotations

import importlib.util

import pytest

BACKENDS = ["memory", "sqlite", "tinydb"]
if importlib.util.find_spec("objstore.postgres") is not None:
    BACKENDS.append("postgresql")   # the throwaway server of tests/objstore/pg_backend.py


def _url(backend, tmp_path):
    if backend == "postgresql":
        from tests.objstore import pg_backend
        return pg_backend.fresh_url()
    return {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/store.db",
            "tinydb": f"tinydb:///{tmp_path}/store.json"}[backend]


@pytest.fixture(params=BACKENDS)
def sh(request, tmp_path):
    """A Session for user demo on a fresh store of each backend (memory, SQLite -- the
    default --, TinyDB, and PostgreSQL once its backend exists): the commands rely on
    the Store contract only."""
    from objstore import open_store
    from wnshell.session import Session

    store = open_store(_url(request.param, tmp_path))
    session = Session(store, user="demo")
    yield session
    store.close()


@pytest.fixture
def run(sh):
    """``run(text, stdin="") -> (status, stdout, stderr)`` on the ``sh`` session."""
    def _run(text, stdin=""):
        return sh.run(text, stdin=stdin)
    return _run


def one_error_line(err: str, key: str) -> bool:
    """stderr is exactly one ``e.key : reason`` line (no traceback)."""
    lines = err.strip("\n").splitlines()
    return len(lines) == 1 and lines[0].startswith(key) and "Traceback" not in err
