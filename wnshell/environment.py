"""What the ``wnshell`` command line gets from its process, passed in (as httpie's
``Environment``), so the CLI and the REPL run in-process in tests:

    env = Environment(stdin=io.StringIO("echo hi\\n"), stdout=out, stderr=err,
                      vars={"XDG_DATA_HOME": str(tmp)})
    status = wnshell.cli.main(["--store", "memory://"], env)   # ExitStatus.SUCCESS

``Environment()`` is the real process: ``sys`` streams, ``os.environ``, and whether each
stream is a terminal.  ``data_dir`` is ``$XDG_DATA_HOME`` (default
``~/.local/share``): the default store and the REPL's history live in
``data_dir/wnshell/``.  ``prompt_input``/``prompt_output`` (prompt_toolkit objects)
let a test drive the REPL without a terminal.
"""
from __future__ import annotations

import os
import sys
from enum import IntEnum


class ExitStatus(IntEnum):
    """The statuses the command line gives itself; any other status a script ends with
    (``exit 7``, a command's own status) is an ``ExitStatus`` too, named
    ``STATUS_<n>``."""

    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 127          # unknown command, missing script file
    INTERRUPTED = 130        # Ctrl-C
    BROKEN_PIPE = 141        # the reader of stdout went away

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"STATUS_{value}"
            member._value_ = value
            return member
        return None


def _isatty(stream) -> bool:
    try:
        return stream is not None and bool(stream.isatty())
    except Exception:  # closed or odd streams are not terminals
        return False


class Environment:
    """The process as the CLI sees it; every attribute may be given."""

    def __init__(self, *, stdin=None, stdout=None, stderr=None, vars=None,
                 stdin_isatty: bool | None = None, stdout_isatty: bool | None = None,
                 stderr_isatty: bool | None = None, data_dir: str | None = None,
                 prompt_input=None, prompt_output=None):
        self.is_process = stdin is None and stdout is None and stderr is None
        self.stdin = sys.stdin if stdin is None else stdin
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.vars = os.environ if vars is None else vars
        self.stdin_isatty = _isatty(self.stdin) if stdin_isatty is None else stdin_isatty
        self.stdout_isatty = _isatty(self.stdout) if stdout_isatty is None else stdout_isatty
        self.stderr_isatty = _isatty(self.stderr) if stderr_isatty is None else stderr_isatty
        if data_dir is None:
            data_dir = self.vars.get("XDG_DATA_HOME") or os.path.join(
                os.path.expanduser("~"), ".local", "share")
        self.data_dir = os.path.abspath(data_dir)
        self.prompt_input = prompt_input
        self.prompt_output = prompt_output

    def default_store_url(self) -> str:
        """``$WNSHELL_STORE``, else SQLite in ``data_dir/wnshell/store.db``."""
        return self.vars.get("WNSHELL_STORE") or "sqlite://" + os.path.join(
            self.data_dir, "wnshell", "store.db")

    def history_path(self) -> str:
        return os.path.join(self.data_dir, "wnshell", "history")

    def err(self, msg: str) -> None:
        try:
            self.stderr.write(msg.rstrip("\n") + "\n")
            self.stderr.flush()
        except Exception:  # pragma: no cover - stderr gone
            pass
