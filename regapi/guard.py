"""Walnut's security metadata of an API object, honoured before its template runs.

* ``api-access-token``: a string of at least ``MIN_TOKEN`` characters.  A request must
  carry it, in the header ``Authorization: Bearer <token>`` or in the query parameter
  ``access_token`` (header first), else 403 ``e.regapi.token.invalid`` -- missing and
  wrong tokens get the same answer.  The comparison is constant-time
  (``hmac.compare_digest`` over the UTF-8 bytes).  A token that is not a usable string
  (empty, too short, not text) refuses every request: a security key is never ignored.
* ``http-cross-origin``: CORS.  ``"*"``, one origin (``"https://shop.example.com"``) or
  a list of origins.  An ``OPTIONS`` request is answered from the metadata alone (204,
  ``Access-Control-Allow-Methods``/``-Headers``/``-Max-Age``; 403 for an origin not
  allowed) without running the template or asking for the token (browsers send
  preflights without credentials); every other answer to an allowed ``Origin`` carries
  ``Access-Control-Allow-Origin`` (the origin itself, with ``Vary: Origin``, unless the
  policy is ``"*"``).  Cookies are never allowed cross-origin (no
  ``Access-Control-Allow-Credentials``).

``check_meta`` says what ``wnshell sync`` must refuse; the app uses the rest.
"""
from __future__ import annotations

import hmac
import re

from objstore.errors import FORBIDDEN

TOKEN_META = "api-access-token"
CORS_META = "http-cross-origin"
TOKEN_QUERY = "access_token"
MIN_TOKEN = 16
MAX_TOKEN = 512

CORS_METHODS = "GET, POST, HEAD, OPTIONS"
CORS_HEADERS = "Content-Type, Authorization"
CORS_MAX_AGE = "600"

_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")        # printable ASCII, no space
_NEVER = object()       # a token that matches nothing (the metadata is unusable)


# ---- api-access-token ---------------------------------------------------------------
def token_problem(value) -> str | None:
    """Why ``value`` is no usable access token (None when it is one)."""
    if not isinstance(value, str):
        return "must be a string"
    if not MIN_TOKEN <= len(value) <= MAX_TOKEN:
        return f"must be {MIN_TOKEN} to {MAX_TOKEN} characters"
    if not _TOKEN_CHARS.fullmatch(value):
        return "must be printable ASCII without spaces"
    return None


def near_miss(key) -> bool:
    """Is ``key`` another spelling (case, ``_`` for ``-``, blanks) of an ``http-*``,
    ``api-*`` or ``regapi-*`` key?  Metadata keys are case-sensitive, so such a key
    would be ignored (a header name after ``http-header-`` may have any case)."""
    if not isinstance(key, str):
        return False
    norm = key.strip().lower().replace("_", "-")
    if not norm.startswith(_PREFIXES):
        return False
    if norm.startswith("http-header-"):
        return not key.startswith("http-header-")
    return norm != key


_PREFIXES = ("http-", "api-", "regapi-")


def token_of(api):
    """The API's token as bytes; None when it has none; a never-matching marker when
    its metadata holds something unusable (every request is then refused) -- or a near
    miss of the key (``API-Access-Token``, ``api_access_token``): it was meant to
    guard the API, and metadata set without ``wnshell sync`` was never checked."""
    value = api.get(TOKEN_META)
    if value is None:
        if any(isinstance(k, str) and k.strip().lower().replace("_", "-") == TOKEN_META
               for k in api if k != TOKEN_META):
            return _NEVER
        return None
    if token_problem(value) is not None:
        return _NEVER
    return value.encode("utf-8")


def token_ok(environ: dict, query: dict, want) -> bool:
    """Does the request carry the token ``want`` (from ``token_of``)?"""
    if want is _NEVER:
        return False
    given = None
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    if auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    if not given:
        given = query.get(TOKEN_QUERY)
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), want)


def token_refused():
    from regapi.request import HttpError
    return HttpError(403, "e.regapi.token.invalid", "missing or wrong access token",
                     kind=FORBIDDEN)


# ---- http-cross-origin ------------------------------------------------------------------
def cors_problem(value) -> str | None:
    """Why ``value`` is no usable CORS policy (None when it is one)."""
    origins = [value] if isinstance(value, str) else value
    if not isinstance(origins, list) or not origins:
        return 'must be "*", an origin, or a list of origins'
    for o in origins:
        if o == "*" and len(origins) == 1:
            continue
        if not isinstance(o, str) or not _ORIGIN_RE.fullmatch(o):
            return (f"{str(o)[:80]!r} is not an origin (scheme://host[:port], http or "
                    "https, no path)")
    return None


def cors_of(api):
    """The API's allowed origins: None (no CORS), "*", or a frozenset of origins
    (empty when the metadata is unusable: no origin is allowed)."""
    value = api.get(CORS_META)
    if value is None:
        return None
    if cors_problem(value) is not None:
        return frozenset()
    if value == "*" or value == ["*"]:
        return "*"
    return frozenset([value] if isinstance(value, str) else value)


def _origin(environ: dict) -> str | None:
    return environ.get("HTTP_ORIGIN") or None


def allowed_origin(policy, environ: dict) -> str | None:
    """The value of Access-Control-Allow-Origin for this request, or None."""
    origin = _origin(environ)
    if policy is None or origin is None:
        return None
    if policy == "*":
        return "*"
    return origin if origin in policy else None


def cors_headers(policy, environ: dict) -> list[tuple[str, str]]:
    allow = allowed_origin(policy, environ)
    if allow is None:
        return [("Vary", "Origin")] if policy not in (None, "*") else []
    if allow == "*":
        return [("Access-Control-Allow-Origin", "*")]
    return [("Access-Control-Allow-Origin", allow), ("Vary", "Origin")]


def preflight(policy, environ: dict):
    """The answer to an OPTIONS request for an API with a CORS policy:
    (status, headers, body), the template never runs."""
    headers = [("Allow", CORS_METHODS)]
    if _origin(environ) is not None:
        allow = allowed_origin(policy, environ)
        if allow is None:
            return 403, headers + cors_headers(policy, environ), \
                b"e.regapi.cors.origin : origin not allowed\n"
        headers += cors_headers(policy, environ)
        headers += [("Access-Control-Allow-Methods", CORS_METHODS),
                    ("Access-Control-Allow-Headers", CORS_HEADERS),
                    ("Access-Control-Max-Age", CORS_MAX_AGE)]
    return 204, headers, b""


# ---- what sync refuses ------------------------------------------------------------------
# the http-*/api-* metadata keys wnshell implements (plus every http-header-*)
KNOWN_KEYS = frozenset({"http-resp-code", TOKEN_META, CORS_META})


def meta_problem(key: str, value) -> str | None:
    """Why sync must refuse API metadata ``key: value`` (None when it is fine): an
    ``http-*``/``api-*`` key wnshell does not implement, or an unusable token/policy."""
    if near_miss(key):
        return (f"unknown key {key!r} (metadata keys are case-sensitive, with '-' not "
                "'_': it would be ignored)")
    if key == TOKEN_META:
        p = token_problem(value)
        return None if p is None else f"{TOKEN_META} {p}"
    if key == CORS_META:
        p = cors_problem(value)
        return None if p is None else f"{CORS_META} {p}"
    if key.startswith(("http-", "api-")) and not key.startswith("http-header-") \
            and key not in KNOWN_KEYS:
        return f"unknown key {key!r} (wnshell does not implement it, so it would be ignored)"
    return None
