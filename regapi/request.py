"""The request object's metadata (walnut.md §3), built from a WSGI environ.

``build_meta`` returns the metadata dict; ``template_vars`` flattens it to the string
values a template may use (``${http-qs-id}``, ``${args}``, ``${args-0}`` …), each marked
as coming from the request (``wnshell.provenance.from_request``: such a value can only
add names below the path the template wrote) except ``http-usr``, ``http-home`` and
``http-api``, which the server itself decides.

The request object (only templates that use ``${id}`` need one) is held in memory by
the request's own session: ``request_object`` makes it (a FILE object's fields, the
body as content) -- when a command first looks at it (``HeldRequest``) --, nothing is
written to the store and no other request can find it.
An API that asks to keep it (metadata ``regapi-reqobj-keep``) gets it stored by
``keep_request_object`` under ``/home/<usr>/.regapi/tmp/`` -- a tree no request's
session can see -- with an expiry.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from urllib.parse import unquote

from objstore import common as C
from objstore.base import WnObj
from objstore.errors import BAD_INPUT, WnError
from objstore.paths import new_id
from wnshell.provenance import from_request

MAX_BODY = 1 << 20          # 1 MiB
MAX_QS_FIELDS = 256
MAX_NAME_LEN = 128
REQ_TTL_MS = 60_000

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")

# granian (and some other servers) merge the server's own os.environ into every WSGI
# environ.  A server environment variable such as HTTP_PROXY must never pass for a
# request header ("httpoxy"), so remember them and skip them.
_SERVER_ENV = {k: v for k, v in os.environ.items() if k.startswith(("HTTP_", "CONTENT_"))}
# every name of the server's environment: a request's own headers are among the other
# names of an environ, found by one set difference (granian's environ holds the whole
# server environment, ~50 names, beside a dozen of the request's)
_SERVER_NAMES = frozenset(os.environ)
_SERVER_HEADERS = {k: v for k, v in _SERVER_ENV.items() if k[:5] == "HTTP_"}


def _header_keys(environ: dict) -> list[str]:
    """The environ's ``HTTP_*`` names that are the request's (sorted): those the
    server's environment does not have, and those it has with another value."""
    keys = [k for k in environ.keys() - _SERVER_NAMES if k[:5] == "HTTP_"]
    for k, v in _SERVER_HEADERS.items():
        if environ.get(k, v) != v:
            keys.append(k)
    keys.sort()
    return keys


class HttpError(WnError):
    """An error the app answers directly with HTTP status ``http_code`` (413, 400 …)."""

    def __init__(self, http_code: int, key: str, reason: str = "", kind: str = BAD_INPUT):
        super().__init__(key, reason, kind)
        self.http_code = http_code


def _text(s: str) -> str:
    """WSGI strings are latin-1 code points of the raw bytes; read them as UTF-8 when
    they are (else keep them as they are)."""
    if s.isascii():
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def _ok_name(name: str) -> bool:
    # (a printable name has no control character: the regex is asked only otherwise)
    return bool(name) and len(name) <= MAX_NAME_LEN and (
        name.isprintable() or not _BAD_NAME.search(name))


def content_length(environ: dict) -> int | None:
    cl = environ.get("CONTENT_LENGTH") or ""
    if not cl:
        return None
    # (isdigit alone takes "²"; and int() of thousands of digits raises: 18 digits
    # are far more than any body we take)
    if not (cl.isascii() and cl.isdigit()) or len(cl) > 18:
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


_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def check_body(body: bytes) -> None:
    """Refuse XML bodies that carry a DTD (XXE, billion laughs): no API here needs one,
    whatever the command behind it does with the body.  XML may come in UTF-8, UTF-16 or
    UTF-32, with or without a byte-order mark: for the check, NUL bytes (the padding of
    ASCII characters in the wider encodings) and marks are dropped."""
    probe = body.lstrip()
    if b"\x00" in probe[:8]:
        probe = body.replace(b"\x00", b"").lstrip()
    while probe.startswith(_BOMS):
        probe = probe[3 if probe[:1] == b"\xef" else 2:].lstrip()
    if probe[:1] == b"<" and _DTD.search(probe):
        raise HttpError(400, "e.regapi.req.dtd", "XML with a DTD is refused")


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


def parse_query(qs_raw: str) -> dict[str, str]:
    """``a=1&b=x%20y&a=2`` -> {"a": "2", "b": "x y"} (URL-decoded as UTF-8, ``+`` is a
    space, the last value wins).  Bad encoding or too many fields -> 400."""
    out: dict[str, str] = {}
    if not qs_raw:
        return out
    qs = _text(qs_raw)
    parts = qs.split("&")
    if len(parts) > MAX_QS_FIELDS:
        raise HttpError(400, "e.regapi.req.badquery", "too many query parameters")
    try:
        for part in parts:
            if not part:
                continue
            name, _, value = part.partition("=")
            if "%" in name or "+" in name:
                name = unquote(name.replace("+", " "), "utf-8", "strict")
            if "%" in value or "+" in value:
                value = unquote(value.replace("+", " "), "utf-8", "strict")
            if _ok_name(name):
                out[name] = value
    except UnicodeDecodeError:
        raise HttpError(400, "e.regapi.req.badquery", "query string is not UTF-8") from None
    return out


def _basic(environ: dict, usr: str, path: str, api_rel: str) -> dict:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or "%s:%s" % (environ.get("SERVER_NAME", ""),
                                                  environ.get("SERVER_PORT", ""))
    addr = environ.get("REMOTE_ADDR", "") or ""
    return {
        "http-method": environ.get("REQUEST_METHOD", "GET"),
        "http-uri": path,
        "http-url": f"{scheme}://{_text(host)}{path}",
        "http-protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "http-remote-host": addr,
        "http-remote-addr": addr,
        "http-remote-port": str(environ.get("REMOTE_PORT", "") or ""),
        "http-qs": _text(environ.get("QUERY_STRING", "") or ""),
        "http-usr": usr,
        "http-home": f"/home/{usr}",
        "http-api": api_rel,
    }


BASIC_NAMES = frozenset(_basic({}, "u", "/", "").keys())


def _header(environ: dict, name: str) -> str | None:
    """``USER-AGENT`` -> the request's User-Agent header (None when absent)."""
    if name in ("CONTENT-TYPE", "CONTENT-LENGTH"):
        key = name.replace("-", "_")
        value = environ.get(key)
        if not value:
            return None
    else:
        key = "HTTP_" + name.replace("-", "_")
        value = environ.get(key)
        if value is None:
            return None
    if _SERVER_ENV and _SERVER_ENV.get(key) == value:
        return None
    return _text(value)


def _cookies(environ: dict) -> dict[str, str]:
    cookie = environ.get("HTTP_COOKIE")
    if not cookie or (_SERVER_ENV and _SERVER_ENV.get("HTTP_COOKIE") == cookie):
        return {}
    return parse_cookies(_text(cookie))


def build_meta(environ: dict, usr: str, path: str, api_rel: str,
               args: list[str], query: dict | None = None) -> dict:
    """All the metadata of the request object, per walnut.md §3."""
    if query is None:
        query = parse_query(environ.get("QUERY_STRING", "") or "")
    meta = _basic(environ, usr, path, api_rel)
    meta["args"] = list(args)
    for name, value in query.items():
        meta["http-qs-" + name] = value
    skip = _SERVER_ENV
    for key in _header_keys(environ):
        meta["http-header-" + key[5:].replace("_", "-")] = _text(environ[key])
    for key, name in (("CONTENT_TYPE", "CONTENT-TYPE"), ("CONTENT_LENGTH", "CONTENT-LENGTH")):
        value = environ.get(key)
        if value and not (skip and skip.get(key) == value):
            meta["http-header-" + name] = _text(value)
    for name, value in _cookies(environ).items():
        meta["http-cookie-" + name] = value
    return meta


# the variables whose values the server decides (the route's user and API): every
# other one is the request's data, marked as such
TRUSTED_NAMES = frozenset({"http-usr", "http-home", "http-api"})


def template_vars(meta: dict) -> dict[str, str]:
    """String values for the template: the metadata, ``args`` joined with "/", and
    each matched segment as ``args-0``, ``args-1`` …; request values marked."""
    out = {k: (v if k in TRUSTED_NAMES else from_request(v))
           for k, v in meta.items() if isinstance(v, str)}
    _add_args(out, meta.get("args") or [])
    return out


def _add_args(out: dict, args: list[str]) -> None:
    out["args"] = from_request("/".join(args))
    for i, a in enumerate(args):
        out[f"args-{i}"] = from_request(a)


def query_keys(names) -> tuple | None:
    """``((name, key), ...)`` when every name is a ``http-qs-KEY`` (a template that reads
    only the query string, the common case), else None: then ``select_query`` gives
    what ``select_vars`` would, without asking each name what it is per request."""
    if not all(n.startswith("http-qs-") for n in names):
        return None
    return tuple((n, n[8:]) for n in sorted(names))


def select_query(query: dict, keys: tuple) -> dict[str, str]:
    """``select_vars`` for the names of ``query_keys``: the query's values, marked."""
    out: dict[str, str] = {}
    for name, key in keys:
        v = query.get(key)
        if v is not None:
            out[name] = from_request(v)
    return out


def select_vars(environ: dict, usr: str, path: str, api_rel: str, args: list[str],
                query: dict, names) -> dict[str, str]:
    """Exactly the entries of ``template_vars(build_meta(...))`` whose names are in
    ``names`` (the variables a template references): a template can only observe
    those, so a request that needs no request object computes no more than that."""
    out: dict[str, str] = {}
    basic = cookies = None
    for name in names:
        if name.startswith("http-qs-"):
            v = query.get(name[8:])
        elif name.startswith("http-header-"):
            v = _header(environ, name[12:])
        elif name.startswith("http-cookie-"):
            if cookies is None:
                cookies = _cookies(environ)
            v = cookies.get(name[12:])
        elif name in BASIC_NAMES:
            if basic is None:
                basic = _basic(environ, usr, path, api_rel)
            v = basic[name]
        elif name == "args":
            v = "/".join(args)
        elif name.startswith("args-") and name[5:].isascii() and name[5:].isdigit():
            i = int(name[5:])
            v = args[i] if i < len(args) and name[5:] == str(i) else None
        else:
            continue
        if v is not None:
            out[name] = v if name in TRUSTED_NAMES else from_request(v)
    return out


def tmp_dir(usr: str) -> str:
    return f"/home/{usr}/.regapi/tmp"


def request_object(usr: str, meta: dict, body: bytes, oid: str, now: int):
    """The request object in memory (no store write): the fields a FILE under
    ``tmp_dir(usr)`` would have, with ``meta`` (handed over: ``build_meta``'s own
    dict, not copied), the id ``oid`` and the time ``now`` (epoch ms) the request was
    given when it came; to be held by the request's session (``HeldRequest``)."""
    doc = C.new_doc(oid, "", oid, f"{tmp_dir(usr)}/{oid}", "FILE", _own_meta(meta), now)
    doc["len"] = len(body)
    doc["sha1"] = hashlib.sha1(body).hexdigest()
    return WnObj(doc)


class HeldRequest:
    """The request object for the request's session to hold (``ScopedStore``'s
    ``held``), its fields made when a command first looks at them: its id (the
    template's ``${id}``) and time are the request's own, taken now; its metadata
    (``build_meta``) and fields (``request_object``) are built from the request on
    first use -- never, for a command that only reads the body (a notification's
    ``weixin ... -result id:${id}``)."""

    __slots__ = ("id", "_args")

    def __init__(self, environ: dict, usr: str, path: str, api_rel: str, args: list,
                 query: dict, body: bytes):
        self.id = new_id()
        self._args = (environ, usr, path, api_rel, args, query, body,
                      int(time.time() * 1000))

    def __call__(self):
        environ, usr, path, api_rel, args, query, body, now = self._args
        meta = build_meta(environ, usr, path, api_rel, args, query)
        return request_object(usr, meta, body, self.id, now)


def _own_meta(meta: dict) -> dict:
    """``meta`` as ``build_meta`` makes it, checked as ``clean_meta`` would check it,
    without its JSON round trip or a copy: every key ``http-…`` or ``args`` (never a
    read-only or typed field, objstore.base.READONLY / common.SETTABLE_TYPES), every
    value text or a list of text, all of it UTF-8 encodable.  Anything else goes
    through ``clean_meta`` (and its error).  The caller hands ``meta`` over."""
    texts = []
    for k, v in meta.items():
        if type(v) is str:
            texts.append(v)
        elif type(v) is list and all(type(x) is str for x in v):
            texts.extend(v)
        else:
            return C.clean_meta(meta)
        if k[:5] != "http-" and k != "args":
            return C.clean_meta(meta)
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return C.clean_meta(meta)
    return meta


def keep_request_object(store, usr: str, meta: dict, body: bytes,
                        ttl_ms: int = REQ_TTL_MS):
    """One store write: the FILE with its metadata, content and expiry at once, below
    ``tmp_dir(usr)`` (hidden from every request's session but the one granted it)."""
    now = int(time.time() * 1000)
    name = "r%x%s" % (now, secrets.token_hex(6))
    m = dict(meta)
    m["expi"] = now + ttl_ms
    return store.create(f"{tmp_dir(usr)}/{name}", "FILE", m, parents=True, content=body)
