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


def exchange(http, method: str, url: str, what: str, deadline: float, max_bytes: int,
             size: int = 65536, **kw) -> tuple[object, bytes]:
    """``(response, body)`` of one request (``stream=True``, no redirects followed),
    the body read against ``deadline`` and at most ``max_bytes``; every failure to
    get it is a :class:`wxpay.errors.TransportError` naming ``what`` (kind TIMEOUT
    for a timeout).  The status is the caller's to judge."""
    from wnerrors import TIMEOUT

    from .errors import TransportError
    try:
        resp = http.request(method, url, stream=True, allow_redirects=False, **kw)
    except requests.exceptions.Timeout:
        raise TransportError(f"timeout calling {what}", TIMEOUT) from None
    except requests.exceptions.RequestException as e:
        raise TransportError(f"cannot reach {what} ({type(e).__name__})") from None
    try:
        chunks, got = [], 0
        for chunk in body_chunks(resp, deadline, size):
            got += len(chunk)
            if got > max_bytes:
                raise TransportError(f"{what} answered more than {max_bytes} bytes")
            chunks.append(chunk)
    except requests.exceptions.Timeout:
        raise TransportError(f"timeout reading {what}", TIMEOUT) from None
    except requests.exceptions.RequestException as e:
        raise TransportError(f"connection lost reading {what} ({type(e).__name__})") \
            from None
    finally:
        resp.close()
    return resp, b"".join(chunks)
