"""Fixtures for the core-command tests: a Session on a fresh in-memory store."""
from __future__ import annotations

import pytest


@pytest.fixture
def sh():
    from objstore import open_store
    from wnshell.session import Session

    store = open_store("memory://")
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
