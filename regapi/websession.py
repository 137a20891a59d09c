"""A browser session for ``.regapi`` templates: verified values as ``${http-se-<name>}``.

Walnut's templates read the signed-in user as ``http-se-*``; here that is a cookie
signed (``itsdangerous``, HMAC-SHA1 with a key derived from the secret and a salt) with
a server secret kept in the store at ``/sys/regapi/websession`` -- outside every home,
so no template (confined to ``/home/<usr>``) can read it.  A cookie that is missing,
forged, tampered, expired or made for another user simply gives no value: never an
error page.

An API object turns a template into one of the two OAuth2 steps with its metadata
``regapi-websession``:

* ``oauth2`` -- a redirect API (``http-resp-code: 302``) whose stdout is the authorize
  URL from ``weixin <conf> oauth2``.  Its ``state`` is also put in a short-lived signed
  cookie, so the callback must come back to the browser that started the sign-in
  (login CSRF: an attacker cannot hand a victim his own callback link).
* ``login`` -- the callback (``weixin <conf> user -code ${http-qs-code} -state
  ${http-qs-state}``).  Before the template runs, ``state`` must equal the state cookie
  (else 403, nothing runs).  On exit status 0 its stdout (JSON) gives the session:
  ``openid`` (required), ``unionid``, ``scope``, ``nickname`` become ``http-se-*``; the
  browser gets the cookie (HttpOnly, SameSite=Lax, Secure over HTTPS, Path
  ``/api/<usr>/``) and a 302 to ``state_data`` when that is a path on this server (else
  to ``/api/<usr>/``).
"""
from __future__ import annotations

import json
import secrets
import threading
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from objstore.errors import FORBIDDEN, WnError

from regapi import request as rq
from regapi import response as rs

META = "regapi-websession"
MODES = ("oauth2", "login")
SECRET_PATH = "/sys/regapi/websession"
COOKIE = "wnse"
STATE_COOKIE = "wnst"
SESSION_TTL = 2 * 3600
STATE_TTL = 600
KEPT = ("openid", "unionid", "scope", "nickname")
PREFIX = "http-se-"
MAX_VALUE = 256

_lock = threading.Lock()
_ATTR = "_regapi_websession_secret"     # cached on the store object itself


def mode(api) -> str | None:
    m = (api or {}).get(META)
    return m if m in MODES else None


@lru_cache(maxsize=4096)
def wanted(names: frozenset) -> bool:
    """Does a template with these variable names read a session value?"""
    return any(n.startswith(PREFIX) for n in names)


def server_secret(store) -> bytes:
    """The signing secret (made once per store, kept at SECRET_PATH)."""
    s = getattr(store, _ATTR, None)
    if s is not None:
        return s
    with _lock:
        obj = store.fetch(SECRET_PATH)
        if obj is None:
            try:
                obj = store.create(SECRET_PATH, "FILE", {"ws_secret": secrets.token_hex(32)},
                                   parents=True)
            except WnError as e:
                if e.key != "e.io.obj.exists":
                    raise
                obj = store.fetch(SECRET_PATH)
        value = obj.get("ws_secret") if obj is not None else None
        if not isinstance(value, str) or len(value) < 32:
            raise WnError("e.regapi.session.secret", "the session secret is missing",
                          "internal")
        s = value.encode("ascii")
        try:
            setattr(store, _ATTR, s)
        except AttributeError:      # a store type with __slots__: read it every time
            pass
        return s


def _serializer(store, salt: str):
    from itsdangerous import URLSafeTimedSerializer
    return URLSafeTimedSerializer(server_secret(store), salt=salt)


def _load(store, token: str | None, salt: str, max_age: int):
    if not token or len(token) > 4096:
        return None
    from itsdangerous import BadData
    try:
        return _serializer(store, salt).loads(token, max_age=max_age)
    except BadData:
        return None
    except Exception:   # noqa: BLE001 - a cookie never turns into an error page
        return None


def _cookies(environ) -> dict:
    return rq.parse_cookies(environ.get("HTTP_COOKIE") or "")


def session_values(store, environ, usr: str) -> dict[str, str]:
    """The verified ``http-se-*`` values of this request ({} without a good cookie)."""
    data = _load(store, _cookies(environ).get(COOKIE), "wnshell-websession", SESSION_TTL)
    if not isinstance(data, dict) or data.get("u") != usr or not isinstance(data.get("v"), dict):
        return {}
    return {PREFIX + k: v for k, v in data["v"].items()
            if k in KEPT and isinstance(v, str) and v}


def bind(store, environ, usr: str, tvars: dict, ws_mode: str | None, query: dict) -> None:
    """Add the session's values to the template variables (a request value of the same
    name is replaced: only the cookie's verified values are ever ``http-se-*``); for a
    ``login`` API, check the state cookie first."""
    for k in [k for k in tvars if k.startswith(PREFIX)]:
        del tvars[k]
    tvars.update(session_values(store, environ, usr))
    if ws_mode == "login":
        want = _load(store, _cookies(environ).get(STATE_COOKIE), "wnshell-oauth2-state",
                     STATE_TTL)
        got = query.get("state")
        if not isinstance(want, dict) or want.get("u") != usr or not got \
                or not secrets.compare_digest(str(want.get("s")), got):
            raise rq.HttpError(403, "e.regapi.session.state",
                               "this sign-in was not started here: start again", FORBIDDEN)


def _cookie(name: str, value: str, usr: str, max_age: int, secure: bool) -> str:
    c = (f"{name}={value}; Path=/api/{usr}/; Max-Age={max_age}; HttpOnly; "
         "SameSite=Lax")
    return c + "; Secure" if secure else c


def _is_https(environ) -> bool:
    return (environ.get("wsgi.url_scheme") == "https"
            or (environ.get("HTTP_X_FORWARDED_PROTO") or "").lower() == "https")


def _local_path(text, usr: str) -> str:
    """``text`` when it is a path on this server (never another host), else the
    user's API root."""
    if isinstance(text, str) and text.startswith("/") and not text.startswith("//") \
            and "\\" not in text:
        loc = rs.check_location(text)
        if loc is not None and not loc.startswith("//"):
            return loc
    return f"/api/{usr}/"


def respond(store, environ, usr: str, ws_mode: str, out: str, as_json: bool):
    """The response of a successful ``oauth2`` or ``login`` API."""
    secure = _is_https(environ)
    if ws_mode == "oauth2":
        loc = rs.check_location(out)
        state = (parse_qs(urlsplit(loc.split("#", 1)[0]).query).get("state") or [""])[0] \
            if loc else ""
        if not loc or not state:
            return 500, [("Content-Type", "text/plain; charset=utf-8")], \
                rs.error_body("e.regapi.session.oauth2", "no authorize URL", as_json)
        token = _serializer(store, "wnshell-oauth2-state").dumps({"u": usr, "s": state})
        return 302, [("Location", loc), ("Cache-Control", "no-store"),
                     ("Set-Cookie", _cookie(STATE_COOKIE, token, usr, STATE_TTL, secure))], b""
    try:
        data = json.loads(out)
    except ValueError:
        data = None
    openid = data.get("openid") if isinstance(data, dict) else None
    if not isinstance(openid, str) or not openid:
        return 500, [("Content-Type", "text/plain; charset=utf-8")], \
            rs.error_body("e.regapi.session.login", "the sign-in gave no openid", as_json)
    values = {k: data[k] for k in KEPT
              if isinstance(data.get(k), str) and data[k] and len(data[k]) <= MAX_VALUE}
    token = _serializer(store, "wnshell-websession").dumps({"u": usr, "v": values})
    return 302, [("Location", _local_path(data.get("state_data"), usr)),
                 ("Cache-Control", "no-store"),
                 ("Set-Cookie", _cookie(COOKIE, token, usr, SESSION_TTL, secure)),
                 ("Set-Cookie", _cookie(STATE_COOKIE, "", usr, 0, secure))], b""
