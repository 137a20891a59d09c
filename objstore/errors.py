"""Errors of the object store: ``StoreError`` (keys ``e.io.*``), plus the shared
``WnError`` and its kinds, re-exported from ``wnerrors`` (their home) so existing
imports keep working."""
from __future__ import annotations

from wnerrors import (BAD_INPUT, CONFLICT, FORBIDDEN, HTTP_STATUS, INTERNAL,  # noqa: F401
                      NOT_FOUND, TIMEOUT, UPSTREAM, WnError)


class StoreError(WnError):
    """Errors raised by objstore (keys ``e.io.*``)."""
