"""Fixtures for the shell tests: a Session on a fresh memory store, and a helper to run
the ``wnshell`` console script in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    def _run(text, stdin="", **kw):
        return sh.run(text, stdin, **kw)
    return _run


@pytest.fixture
def cli(tmp_path):
    """``cli(*args, input=None, env=None) -> CompletedProcess`` running ``wnshell`` in a
    subprocess with a private XDG data dir (so the default SQLite store is throwaway)."""
    def _cli(*args, input=None, env=None, store=None):
        e = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
        e.pop("WNSHELL_STORE", None)
        e.update(env or {})
        argv = [sys.executable, "-m", "wnshell.cli"]
        if store:
            argv += ["--store", store]
        return subprocess.run(argv + list(args), input=input, capture_output=True,
                              text=True, env=e, cwd=str(tmp_path), timeout=60)
    return _cli


class _Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli_inproc(tmp_path):
    """As ``cli``, but in this process: ``wnshell.cli.main`` with an injected
    ``Environment`` (streams, env vars, the data dir ``tmp_path/xdg``).  ``.returncode``
    is the ``ExitStatus`` main returned."""
    import io

    def _cli(*args, input=None, env=None, store=None):
        from wnshell.cli import main
        from wnshell.environment import Environment
        out, err = io.StringIO(), io.StringIO()
        argv = (["--store", store] if store else []) + list(args)
        e = Environment(stdin=io.StringIO(input or ""), stdout=out, stderr=err,
                        vars=dict(env or {}), data_dir=str(tmp_path / "xdg"))
        status = main(argv, e)
        return _Ran(status, out.getvalue(), err.getvalue())
    return _cli
