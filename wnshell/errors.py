"""Errors raised by the shell layer.

``WnError`` (from ``wnerrors``, the package below every layer) is re-exported so
command authors import one place.
The runner turns any ``WnError`` into the one line ``e.key : reason`` on stderr and an
exit status: ``err.status`` when the error carries one (usage and syntax errors: 2),
else 1.
"""
from __future__ import annotations

from objstore.errors import StoreError  # noqa: F401
from wnerrors import (BAD_INPUT, CONFLICT, FORBIDDEN, INTERNAL, NOT_FOUND,  # noqa: F401
                      TIMEOUT, UPSTREAM, WnError)

__all__ = ["WnError", "StoreError", "UsageError", "ShellSyntaxError", "status_of",
           "BAD_INPUT", "NOT_FOUND", "FORBIDDEN", "CONFLICT", "UPSTREAM", "TIMEOUT",
           "INTERNAL"]


class UsageError(WnError):
    """Bad command-line usage: ``UsageError("e.cmd.echo.badopt", "-x")`` -> status 2."""

    status = 2

    def __init__(self, key: str, reason: str = ""):
        super().__init__(key, reason, BAD_INPUT)


class ShellSyntaxError(WnError):
    """``e.cmd.syntax``.  ``incomplete`` is True when more input could complete the text
    (unterminated quote, trailing backslash or operator, unclosed ``$(``): the REPL then
    asks for another line instead of reporting the error."""

    status = 2

    def __init__(self, reason: str, incomplete: bool = False):
        super().__init__("e.cmd.syntax", reason, BAD_INPUT)
        self.incomplete = incomplete


def status_of(err: WnError) -> int:
    """Exit status for an error: its ``status`` attribute, else 1."""
    return int(getattr(err, "status", 1) or 1)
