"""The request object's metadata (walnut.md §3), built from a WSGI environ.

``build_meta`` returns the metadata dict; ``template_vars`` flattens it to the string
values a template may use (``${http-qs-id}``, ``${args}``, ``${args-0}`` …);
``create_request_object`` stores it, with the body as content, as a FILE under
``/home/<usr>/.regapi/tmp/`` that expires after ``ttl_ms``.  Only templates that use
``${id}`` need that object, so the app creates it only for them.
"""
from __future__ import annotations

import os
import re
import secrets
import time
from urllib.parse import parse_qsl

from objstore.errors import BAD_INPUT, WnError

MAX_BODY = 1 << 20          # 1 MiB
MAX_QS_FIELDS = 256
MAX_NAME_LEN = 128
REQ_TTL_MS = 60_000

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")

# granian (and some other servers) merge the server's own os.environ into every WSGI
# environ.  A server environment variable such as HTTP_PROXY must never pass for a
# request header ("httpoxy"), so remember them and skip them.
_SERVER_ENV = {k: v for k, v in os.environ.items() if k.startswith(("HTTP_", "CONTENT_"))}


class HttpError(WnError):
    """An error the app answers directly with ``status`` (413, 400, 404 …)."""

    def __init__(self, status: int, key: str, reason: str = "", kind: str = BAD_INPUT):
        super().__init__(key, reason, kind)
        self.status = status


def _text(s: str) -> str:
    """WSGI strings are latin-1 code points of the raw bytes; read them as UTF-8 when
    they are (else keep them as they are)."""
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def _ok_name(name: str) -> bool:
    return bool(name) and len(name) <= MAX_NAME_LEN and not _BAD_NAME.search(name)


def content_length(environ: dict) -> int | None:
    cl = environ.get("CONTENT_LENGTH") or ""
    if not cl:
        return None
    if not cl.isdigit():
        raise HttpError(400, "e.regapi.req.badlength", "bad Content-Length")
    return int(cl)


def check_length(environ: dict, limit: int = MAX_BODY) -> None:
    n = content_length(environ)
    if n is not None and n > limit:
        raise HttpError(413, "e.regapi.req.toolarge", f"body over {limit} bytes")


def read_body(environ: dict, limit: int = MAX_BODY) -> bytes:
    """The request body, at most ``limit`` bytes (more -> 413), read in bounded chunks
    whether or not a Content-Length was sent."""
    n = content_length(environ)
    if n is not None and n > limit:
        raise HttpError(413, "e.regapi.req.toolarge", f"body over {limit} bytes")
    stream = environ.get("wsgi.input")
    if stream is None or n == 0:
        return b""
    if n is None and "HTTP_TRANSFER_ENCODING" not in environ:
        return b""
    want = limit + 1 if n is None else n
    chunks, got = [], 0
    while got < want:
        part = stream.read(min(65536, want - got))
        if not part:
            break
        chunks.append(part)
        got += len(part)
    if got > limit:
        raise HttpError(413, "e.regapi.req.toolarge", f"body over {limit} bytes")
    return b"".join(chunks)


def parse_cookies(header: str) -> dict[str, str]:
    """Lenient ``Cookie:`` parsing: ``a=1; b="x"`` -> {"a": "1", "b": "x"}; a malformed
    pair is skipped, never an error; the last duplicate wins."""
    out: dict[str, str] = {}
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        name = name.strip()
        if not eq or not _ok_name(name):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[name] = value
    return out


def build_meta(environ: dict, usr: str, path: str, api_rel: str,
               args: list[str]) -> dict:
    """Metadata of the request object per walnut.md §3."""
    qs_raw = environ.get("QUERY_STRING", "") or ""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or "%s:%s" % (environ.get("SERVER_NAME", ""),
                                                  environ.get("SERVER_PORT", ""))
    addr = environ.get("REMOTE_ADDR", "") or ""
    meta: dict = {
        "http-method": environ.get("REQUEST_METHOD", "GET"),
        "http-uri": path,
        "http-url": f"{scheme}://{_text(host)}{path}",
        "http-protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "http-remote-host": addr,
        "http-remote-addr": addr,
        "http-remote-port": str(environ.get("REMOTE_PORT", "") or ""),
        "http-qs": _text(qs_raw),
        "http-usr": usr,
        "http-home": f"/home/{usr}",
        "http-api": api_rel,
        "args": list(args),
    }
    if qs_raw:
        try:
            pairs = parse_qsl(_text(qs_raw), keep_blank_values=True, encoding="utf-8",
                              errors="strict", max_num_fields=MAX_QS_FIELDS)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "e.regapi.req.badquery", "bad query string") from None
        for name, value in pairs:           # last value wins
            if _ok_name(name):
                meta["http-qs-" + name] = value
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if _SERVER_ENV.get(key) == value:
                continue
            name = key[5:].replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if not value or _SERVER_ENV.get(key) == value:
                continue
            name = key.replace("_", "-")
        else:
            continue
        meta["http-header-" + name.upper()] = _text(value)
    cookie = environ.get("HTTP_COOKIE")
    if cookie and _SERVER_ENV.get("HTTP_COOKIE") != cookie:
        for name, value in parse_cookies(_text(cookie)).items():
            meta["http-cookie-" + name] = value
    return meta


def template_vars(meta: dict) -> dict[str, str]:
    """String values for the template: ``args`` joined with "/", and each matched
    segment as ``args-0``, ``args-1`` …"""
    out = {k: v for k, v in meta.items() if isinstance(v, str)}
    args = meta.get("args") or []
    out["args"] = "/".join(args)
    for i, a in enumerate(args):
        out[f"args-{i}"] = a
    return out


def tmp_dir(usr: str) -> str:
    return f"/home/{usr}/.regapi/tmp"


def create_request_object(store, usr: str, meta: dict, body: bytes,
                          ttl_ms: int = REQ_TTL_MS):
    """One store write: the FILE with its metadata, content and expiry at once."""
    now = int(time.time() * 1000)
    name = "r%x%s" % (now, secrets.token_hex(6))
    m = dict(meta)
    m["expi"] = now + ttl_ms
    return store.create(f"{tmp_dir(usr)}/{name}", "FILE", m, parents=True, content=body)
