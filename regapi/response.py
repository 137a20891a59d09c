"""From a template's outcome (exit status, stdout, last error) to an HTTP response.

* Content-Type: the API object's metadata ``http-header-Content-Type``, else
  ``text/html``; text and JSON types get ``charset=utf-8``.  The query parameter
  ``mime`` (``?mime=json``) is honoured only when the API opts in with the metadata
  ``regapi-qs-mime: true``, and then only for a passive type (``PASSIVE_MIME``: plain
  text, CSV, JSON) -- a client never chooses HTML, XHTML, SVG, XML or JavaScript, which
  a browser would run (reflected XSS).  A value that is not a plain ``type/subtype`` is
  ignored.
* Other ``http-header-*`` metadata of the API object become response headers (names
  must be HTTP tokens, values one line; framing headers are never taken).
* ``http-resp-code`` 301/302: stdout (trimmed) is the Location -- a relative path or an
  http(s) URL, one line.
* Otherwise the exit status decides: 0 -> 200 with stdout (or the status and type a
  command chose with ``session.set_response``; 204 without a body); else the last error's kind
  (bad input 400, not found 404, forbidden 403, conflict 409, upstream 502, timeout
  504, anything else 500) with the one-line error as body -- JSON
  ``{"ok":false,"errCode":KEY,"msg":REASON}`` when the API's type is JSON.
"""
from __future__ import annotations

import json
import re

from objstore.errors import HTTP_STATUS, WnError

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
           401: "Unauthorized", 429: "Too Many Requests", 301: "Moved Permanently", 302: "Found", 400: "Bad Request",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

SHORT_MIME = {"json": "application/json", "html": "text/html", "text": "text/plain",
              "txt": "text/plain", "xml": "text/xml", "js": "application/javascript",
              "css": "text/css", "csv": "text/csv"}

_MIME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,127}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_CTL_RE = re.compile(r"[\x00-\x1f\x7f]")
# headers a template's metadata may not set: framing and hop-by-hop ones
_FORBIDDEN_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive",
                      "upgrade", "te", "trailer", "proxy-connection", "content-type",
                      "location"}


QS_MIME_META = "regapi-qs-mime"     # API metadata: true lets ?mime= pick a passive type
# the only types a query's ``mime`` may choose: nothing a browser renders or runs
PASSIVE_MIME = frozenset({"text/plain", "text/csv", "application/json",
                          "application/octet-stream"})


def status_line(code: int) -> str:
    return f"{code} {REASONS.get(code, 'Status')}"


def clean_mime(value) -> str | None:
    if not isinstance(value, str):
        return None
    v = value.strip()
    v = SHORT_MIME.get(v.lower(), v)
    base = v.split(";", 1)[0].strip()
    if not _MIME_RE.match(base):
        return None
    return base.lower()


_CHARSET: dict[str, str] = {}


def with_charset(mime: str) -> str:
    v = _CHARSET.get(mime)
    if v is None:
        v = mime
        if mime.startswith("text/") or mime.endswith(("json", "javascript", "xml")):
            v = mime + "; charset=utf-8"
        if len(_CHARSET) < 256:
            _CHARSET[mime] = v
    return v


def content_type(api) -> str:
    """The API's own MIME type (without charset): its ``http-header-Content-Type``, else
    ``text/html`` (walnut.md §3)."""
    return clean_mime((api or {}).get("http-header-Content-Type")) or "text/html"


def is_passive(mime: str) -> bool:
    """A type no browser renders as a document or runs (see ``PASSIVE_MIME``)."""
    return mime in PASSIVE_MIME or (mime.startswith("application/") and mime.endswith("+json"))


def query_mime(value) -> str | None:
    """The type a query's ``mime`` asks for, when it is a passive one (else None: the
    API's own type stays).  Only for APIs whose metadata has ``regapi-qs-mime: true``."""
    m = clean_mime(value)
    return m if m is not None and is_passive(m) else None


def is_json(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json") or mime.endswith("/json")


def api_headers(api) -> list[tuple[str, str]]:
    out = []
    for key, value in (api or {}).items():
        if not key.startswith("http-header-"):
            continue
        name = key[len("http-header-"):]
        if not _TOKEN_RE.match(name) or name.lower() in _FORBIDDEN_HEADERS:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if (not isinstance(value, str) or not value.isascii() or _CTL_RE.search(value)
                or len(value) > 4096):
            continue        # one ASCII line: what every server and client reads alike
        out.append((name, value))
    return out


def redirect_code(api) -> int | None:
    code = (api or {}).get("http-resp-code")
    try:
        code = int(code)
    except (TypeError, ValueError):
        return None
    return code if code in (301, 302) else None


# characters a URI may hold as they are; everything else (non-ASCII text, spaces,
# quotes, <>) is percent-encoded as UTF-8, and "%" is kept so escapes stay as they are
_URI_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


def check_location(text: str) -> str | None:
    """The Location for a redirect's stdout (trimmed): a path starting with one "/", or
    an http(s) URL, on one line; returned as an ASCII URI (None when refused)."""
    loc = text.strip()
    if not loc or len(loc) > 4096 or _CTL_RE.search(loc):
        return None
    if loc.startswith("/") and not loc.startswith("//") and "\\" not in loc:
        return _as_uri(loc)
    low = loc.lower()
    if (low.startswith("http://") or low.startswith("https://")) and " " not in loc:
        return _as_uri(loc)
    return None


def _as_uri(loc: str) -> str:
    if loc.isascii() and not _UNSAFE_RE.search(loc):
        return loc
    from urllib.parse import quote
    return quote(loc, safe=_URI_SAFE)


_UNSAFE_RE = re.compile(r"[^A-Za-z0-9" + re.escape(_URI_SAFE) + "]")


def error_status(err: WnError | None) -> int:
    if err is None:
        return 500
    return getattr(err, "http_code", None) or HTTP_STATUS.get(err.kind, 500)


def error_body(key: str, reason: str, as_json: bool) -> bytes:
    if as_json:
        return json.dumps({"ok": False, "errCode": key, "msg": reason},
                          ensure_ascii=False).encode("utf-8")
    line = f"{key} : {reason}" if reason else key
    return (line + "\n").encode("utf-8")
