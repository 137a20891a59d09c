"""Fixtures for the core-command tests: a Session on a fresh store of each backend."""
from __future__ import annotations

import pytest


@pytest.fixture(params=["memory", "sqlite", "tinydb"])
def sh(request, tmp_path):
    """A Session for user demo on a fresh store: the memory backend, SQLite (the
    default store) and TinyDB: the commands rely on the Store contract only."""
    from objstore import open_store
    from wnshell.session import Session

    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/store.db",
           "tinydb": f"tinydb:///{tmp_path}/store.json"}[request.param]
    store = open_store(url)
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
