"""The one error type of wnshell: a Walnut-style key, a one-line reason, and a kind.

Every layer (store, shell, commands, WeChat Pay, regapi) raises ``WnError`` (or a
subclass).  The shell prints it as ``e.<key> : <reason>``; regapi maps ``kind`` to an
HTTP status.  ``reason`` must never contain secrets.

It lives in its own package, below every layer, so that a layer that does not use the
store (``wxpay``) can raise it without importing ``objstore``; ``objstore.errors`` and
``wnshell.errors`` re-export it.
"""
from __future__ import annotations

# kinds, and the HTTP status regapi answers for each
BAD_INPUT = "bad_input"      # 400
NOT_FOUND = "not_found"      # 404
FORBIDDEN = "forbidden"      # 403
CONFLICT = "conflict"        # 409
UPSTREAM = "upstream"        # 502 (WeChat / remote HTTP failure)
TIMEOUT = "timeout"          # 504
INTERNAL = "internal"        # 500

HTTP_STATUS = {BAD_INPUT: 400, NOT_FOUND: 404, FORBIDDEN: 403, CONFLICT: 409,
               UPSTREAM: 502, TIMEOUT: 504, INTERNAL: 500}


class WnError(Exception):
    """``WnError("e.io.obj.noexists", "/home/x/y", kind=NOT_FOUND)``.

    ``key`` always starts with ``e.``; ``reason`` is one line (newlines are folded).
    """

    def __init__(self, key: str, reason: str = "", kind: str = BAD_INPUT):
        if not key.startswith("e."):
            key = "e." + key
        self.key = key
        self.reason = " ".join(str(reason).split())
        self.kind = kind
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.key} : {self.reason}" if self.reason else self.key

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.kind, 500)


__all__ = ["WnError", "HTTP_STATUS", "BAD_INPUT", "NOT_FOUND", "FORBIDDEN", "CONFLICT",
           "UPSTREAM", "TIMEOUT", "INTERNAL"]
