"""WeChat Official Account (公众号) web features, sans-IO, plus a thin client
(wechat-mp.md §1-§4).

No I/O in the builders and parsers:

* :func:`authorize_url` -- OAuth2 step 1 (``open.weixin.qq.com/connect/oauth2/authorize``,
  parameters in WeChat's strict order, ``#wechat_redirect``);
* ``*_request`` -> ``(path, params)`` for ``/cgi-bin/token``, ``/cgi-bin/ticket/getticket``,
  ``/sns/oauth2/access_token``, ``/sns/userinfo``; :func:`parse_reply` turns a body into
  a dict or raises :class:`MpError` (errcode != 0) / :class:`~wxpay.errors.TransportError`
  (not JSON); :func:`parse_token`, :func:`parse_ticket`, :func:`parse_code`,
  :func:`parse_userinfo` check the fields;
* :func:`jsapi_signature` / :func:`jssdk_config` -- the ``wx.config`` object (timestamp in
  **seconds**, the page URL cut at ``#``).

:class:`MpClient` is the I/O shell: GET with a deadline on one pooled
``requests.Session``.  URLs carry the appsecret or a token in their query string, so no
URL, query or body ever goes into an error or a log line: errors name the path and the
errcode only, and anything WeChat echoes is scrubbed of the secrets the client knows.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping
from urllib.parse import quote, urlsplit

from wnerrors import BAD_INPUT, UPSTREAM, WnError

from .errors import TransportError, WxPayError
from .sign import new_nonce as sign_nonce

__all__ = ["API_BASE", "OPEN_BASE", "MpError", "Token", "authorize_url", "token_request",
           "ticket_request", "code_request", "userinfo_request", "parse_reply",
           "parse_token", "parse_ticket", "parse_code", "parse_userinfo",
           "jsapi_signature", "jssdk_config", "page_url", "new_nonce", "MpClient",
           "TOKEN_INVALID", "SCOPES"]

API_BASE = "https://api.weixin.qq.com"
OPEN_BASE = "https://open.weixin.qq.com"
SCOPES = ("snsapi_base", "snsapi_userinfo")
# errcodes that mean "this access_token is no good any more": refresh once, retry once
TOKEN_INVALID = frozenset((40001, 42001))
MEANING = {
    -1: "system busy",
    40001: "access_token invalid or not the latest (or a bad appsecret)",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code already used",
    40164: "caller IP not in the whitelist",
    42001: "access_token expired",
    45009: "daily API quota reached",
    48001: "api unauthorized",
    48006: "clear_quota limit reached",
    89503: "caller IP needs an admin's confirmation",
}
_STATE = re.compile(r"^[A-Za-z0-9]{0,128}$")
_APPID = re.compile(r"^[!-~]{1,64}$")
_API = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_REPLY = 64 * 1024


class MpError(WxPayError):
    """WeChat answered ``errcode`` != 0: key ``e.weixin.mp.<errcode>`` (kind upstream).

    ``errmsg`` is kept (its `` rid:``/`` hint:`` tail dropped) for diagnostics; the
    reason holds the path, the code and a short meaning, never a secret."""

    def __init__(self, path: str, errcode: int, errmsg: str = ""):
        self.errcode = errcode
        self.errmsg = re.split(r"\s(?:rid|hint):", str(errmsg or ""), maxsplit=1)[0][:120]
        self.path = path
        meaning = MEANING.get(errcode, "error")
        super().__init__(f"e.weixin.mp.{errcode}".replace(".-", ".minus"),
                         f"WeChat {path} errcode {errcode}: {meaning}", UPSTREAM)

    @property
    def token_invalid(self) -> bool:
        return self.errcode in TOKEN_INVALID


def _bad(what: str) -> WnError:
    return WnError("e.weixin.mp.param.invalid", what, BAD_INPUT)


def new_nonce(length: int = 16) -> str:
    return sign_nonce(length)


# ---- OAuth2 (§4) -----------------------------------------------------------------------
def check_url(url: str, what: str = "URL") -> str:
    if not isinstance(url, str) or len(url) > 2048 or any(c in url for c in "\r\n\t\0 "):
        raise _bad(f"{what} must be one http(s) URL line")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(f"{what} must be an absolute http(s) URL")
    return url


def authorize_url(appid: str, redirect_uri: str, scope: str = "snsapi_base",
                  state: str = "", base: str = OPEN_BASE) -> str:
    """Step 1: where the browser goes.  ``redirect_uri`` is encoded once, the fragment
    is cut (WeChat puts ``#wechat_redirect`` last)."""
    if not isinstance(appid, str) or not _APPID.match(appid):
        raise _bad("appid is missing or malformed")
    check_url(redirect_uri, "redirect URL")
    if scope not in SCOPES:
        raise _bad(f"scope must be one of {', '.join(SCOPES)}")
    if not isinstance(state, str) or not _STATE.match(state):
        raise _bad("state must be at most 128 letters and digits")
    uri = redirect_uri.split("#", 1)[0]
    return (f"{base.rstrip('/')}/connect/oauth2/authorize?appid={quote(appid, safe='')}"
            f"&redirect_uri={quote(uri, safe='')}&response_type=code&scope={scope}"
            f"&state={state}#wechat_redirect")


def code_request(appid: str, secret: str, code: str) -> tuple[str, dict]:
    if not isinstance(code, str) or not code or len(code) > 256 \
            or not all(c.isascii() and c.isprintable() and c != " " for c in code):
        raise _bad("code must be the printable value WeChat sent back")
    if not secret:
        raise WnError("e.weixin.mp.conf.incomplete", "wxconf lacks appsecret", BAD_INPUT)
    return "/sns/oauth2/access_token", {"appid": appid, "secret": secret, "code": code,
                                        "grant_type": "authorization_code"}


def parse_code(reply: Mapping) -> dict:
    """The code exchange's answer: openid, scope, the user-level access_token ..."""
    openid = reply.get("openid")
    if not isinstance(openid, str) or not openid:
        raise TransportError("WeChat /sns/oauth2/access_token answered no openid")
    out = {"openid": openid, "scope": str(reply.get("scope") or "")}
    for k in ("access_token", "refresh_token", "unionid"):
        if isinstance(reply.get(k), str) and reply[k]:
            out[k] = reply[k]
    if isinstance(reply.get("expires_in"), int):
        out["expires_in"] = reply["expires_in"]
    out["is_snapshotuser"] = reply.get("is_snapshotuser") == 1
    return out


def userinfo_request(access_token: str, openid: str, lang: str = "zh_CN") -> tuple[str, dict]:
    return "/sns/userinfo", {"access_token": access_token, "openid": openid, "lang": lang}


USERINFO_FIELDS = ("openid", "nickname", "sex", "province", "city", "country",
                   "headimgurl", "privilege", "unionid")


def parse_userinfo(reply: Mapping, openid: str) -> dict:
    if reply.get("openid") != openid:
        raise TransportError("WeChat /sns/userinfo answered another user")
    return {k: reply[k] for k in USERINFO_FIELDS if k in reply}


# ---- access_token and jsapi_ticket (§1, §2) -------------------------------------------
@dataclass(frozen=True)
class Token:
    """A credential and its expiry (epoch seconds).  repr never shows the value."""
    value: str = field(repr=False)
    expires_at: int

    def __repr__(self) -> str:
        return f"Token(****({len(self.value)} chars), expires_at={self.expires_at})"


def token_request(appid: str, secret: str) -> tuple[str, dict]:
    if not secret:
        raise WnError("e.weixin.mp.conf.incomplete", "wxconf lacks appsecret", BAD_INPUT)
    return "/cgi-bin/token", {"grant_type": "client_credential", "appid": appid,
                              "secret": secret}


def ticket_request(access_token: str, kind: str = "jsapi") -> tuple[str, dict]:
    return "/cgi-bin/ticket/getticket", {"access_token": access_token, "type": kind}


def _expiry(reply: Mapping, path: str, now: float) -> int:
    exp = reply.get("expires_in")
    if isinstance(exp, bool) or not isinstance(exp, int) or not 0 < exp <= 86400:
        raise TransportError(f"WeChat {path} answered no valid expires_in")
    return int(now) + exp


def parse_token(reply: Mapping, now: float | None = None) -> Token:
    value = reply.get("access_token")
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise TransportError("WeChat /cgi-bin/token answered no access_token")
    return Token(value, _expiry(reply, "/cgi-bin/token", time.time() if now is None else now))


def parse_ticket(reply: Mapping, now: float | None = None) -> Token:
    value = reply.get("ticket")
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise TransportError("WeChat /cgi-bin/ticket/getticket answered no ticket")
    return Token(value, _expiry(reply, "/cgi-bin/ticket/getticket",
                                time.time() if now is None else now))


def parse_reply(path: str, body: bytes | str) -> dict:
    """WeChat's HTTP-200 JSON answer as a dict; errcode != 0 -> MpError."""
    if isinstance(body, bytes):
        if len(body) > MAX_REPLY:
            raise TransportError(f"WeChat {path} answered more than {MAX_REPLY} bytes")
        try:
            body = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TransportError(f"WeChat {path} answered a body that is not UTF-8") from None
    if body.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
        raise TransportError(f"WeChat {path} answered an HTML page, not JSON")
    try:
        value = json.loads(body)
    except ValueError:
        raise TransportError(f"WeChat {path} answered a body that is not JSON") from None
    if not isinstance(value, dict):
        raise TransportError(f"WeChat {path} answered JSON that is not an object")
    code = value.get("errcode", 0)
    if code not in (0, None):
        if isinstance(code, bool) or not isinstance(code, int):
            raise TransportError(f"WeChat {path} answered a malformed errcode")
        raise MpError(path, code, value.get("errmsg") or "")
    return value


# ---- JS-SDK (§3) ------------------------------------------------------------------------
def page_url(url: str) -> str:
    """The URL WeChat signs: the page's, with scheme and query, cut at ``#``."""
    check_url(url, "page URL")
    return url.split("#", 1)[0]


def jsapi_signature(ticket: str, noncestr: str, timestamp, url: str) -> str:
    """Lowercase hex SHA1 of ``jsapi_ticket=T&noncestr=N&timestamp=S&url=U`` (keys in
    ASCII order, raw values)."""
    string1 = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(string1.encode("utf-8")).hexdigest()


DEFAULT_APIS = ("chooseWXPay",)


def api_list(text: str | Iterable[str] | None) -> list[str]:
    if text is None or text == "":
        return list(DEFAULT_APIS)
    names = [x.strip() for x in (text.split(",") if isinstance(text, str) else text)]
    names = [x for x in names if x]
    if not names or len(names) > 64 or not all(_API.match(x) for x in names):
        raise _bad("-apilist is a comma-separated list of JS-SDK API names")
    return list(dict.fromkeys(names))


def jssdk_config(appid: str, ticket: str, url: str, apis=None, *, nonce: str | None = None,
                 timestamp: int | None = None) -> dict:
    """``{appId, timestamp, nonceStr, signature, jsApiList}`` for ``wx.config``."""
    u = page_url(url)
    ts = int(time.time()) if timestamp is None else int(timestamp)
    n = nonce or new_nonce()
    return {"appId": appid, "timestamp": ts, "nonceStr": n,
            "signature": jsapi_signature(ticket, n, ts, u), "jsApiList": api_list(apis)}


# ---- the I/O shell ---------------------------------------------------------------------
_CREDENTIAL_QS = re.compile(r"((?:secret|access_token|refresh_token|code|ticket)=)[^&\s\"']+")


class _Redact:
    """A logging filter for urllib3's connection pool, which logs every request line
    (query string included) at DEBUG: WeChat puts the appsecret and tokens there."""

    def filter(self, record) -> bool:
        try:
            msg = record.getMessage()
        except Exception:       # noqa: BLE001 - a broken record is not ours to fix
            return True
        if "=" in msg:
            clean = _CREDENTIAL_QS.sub(r"\1****", msg)
            if clean != msg:
                record.msg, record.args = clean, ()
        return True


def _install_redaction() -> None:
    import logging
    lg = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _Redact) for f in lg.filters):
        lg.addFilter(_Redact())


class MpClient:
    """``MpClient(appid, secret, api_base=API_BASE, timeout=(5, 10))``: GETs JSON from
    WeChat with a whole-reply deadline.  Never logs; errors carry no URL."""

    def __init__(self, appid: str, secret: str | None, api_base: str = API_BASE,
                 timeout: tuple[float, float] = (5.0, 10.0), http=None):
        self.appid = appid
        self._secret = secret or ""
        self.api_base = (api_base or API_BASE).rstrip("/")
        self.timeout = timeout
        self._owns = http is None
        if http is None:
            import requests
            from requests.adapters import HTTPAdapter
            http = requests.Session()
            http.trust_env = False
            ad = HTTPAdapter(pool_connections=2, pool_maxsize=8, max_retries=0)
            http.mount("http://", ad)
            http.mount("https://", ad)
        self.http = http
        _install_redaction()

    def __repr__(self) -> str:
        return f"MpClient(appid={self.appid!r}, api_base={self.api_base!r})"

    def close(self) -> None:
        if self._owns:
            self.http.close()

    def get(self, path: str, params: Mapping) -> dict:
        from .httpread import exchange
        deadline = time.monotonic() + float(sum(self.timeout))
        resp, body = exchange(self.http, "GET", self.api_base + path, f"WeChat {path}",
                              deadline, MAX_REPLY, 8192, params=params, timeout=self.timeout)
        if resp.status_code != 200:
            raise TransportError(f"WeChat {path} answered HTTP {resp.status_code}")
        return parse_reply(path, body)

    def fetch_token(self, now: float | None = None) -> Token:
        return parse_token(self.get(*token_request(self.appid, self._secret)), now)

    def fetch_ticket(self, access_token: str, now: float | None = None) -> Token:
        return parse_ticket(self.get(*ticket_request(access_token)), now)

    def exchange_code(self, code: str) -> dict:
        return parse_code(self.get(*code_request(self.appid, self._secret, code)))

    def userinfo(self, access_token: str, openid: str, lang: str = "zh_CN") -> dict:
        return parse_userinfo(self.get(*userinfo_request(access_token, openid, lang)), openid)
