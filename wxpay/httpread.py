"""Reading a ``requests`` reply body against a deadline.

``requests``' read timeout bounds each socket read, and ``iter_content`` waits for
whole chunks, so a server trickling its reply one byte at a time could hold a caller
for ever.  ``body_chunks`` reads one socket read at a time and checks a deadline
between reads.  Used by the WeChat Pay client and by the ``httpc`` command.
"""
from __future__ import annotations

import time

import requests


def body_chunks(resp, deadline: float | None, size: int = 65536):
    """Yield the body of ``resp`` (opened with ``stream=True``) as it arrives.

    Raises ``requests.exceptions.ReadTimeout`` once ``time.monotonic()`` passes
    ``deadline`` (None: no deadline) or a read times out, and
    ``requests.exceptions.ConnectionError`` when the connection breaks."""
    import urllib3.exceptions as u3
    if getattr(resp, "_content_consumed", False):   # requests read it already
        if resp.content:                            # (e.g. a redirect not followed)
            yield resp.content
        return
    raw = resp.raw
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise requests.exceptions.ReadTimeout()
        try:
            chunk = raw.read1(size, decode_content=True)
        except (u3.ReadTimeoutError, TimeoutError):
            raise requests.exceptions.ReadTimeout() from None
        except (u3.HTTPError, OSError) as e:
            raise requests.exceptions.ConnectionError(type(e).__name__) from None
        if not chunk:
            return
        yield chunk
