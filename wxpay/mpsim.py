"""A loopback simulator of WeChat's Official Account platform (wechat-mp.md §6).

Plays api.weixin.qq.com and open.weixin.qq.com on one port::

    with MpSimulator(apps={"wx_app": SECRET}, users=[{"openid": "o1", "nickname": "A"}]) as sim:
        MpClient("wx_app", SECRET, api_base=sim.url).fetch_token()
        sim.calls["/cgi-bin/token"]            # per-endpoint call counters

Console: ``python -m wxpay.mpsim --app APPID --user OPENID`` (the secret comes from
``WXMP_SIM_SECRET`` so it stays out of ``ps``; loopback only).

The core, :class:`MpPlatform`, is sans-IO (``handle(method, path, query, body)`` ->
``(status, headers, body)``) so a combined simulator can mount it beside WeChat Pay's
endpoints.  Endpoints (HTTP 200 + JSON as WeChat answers, errors
``{"errcode": N, "errmsg": "... rid: <random>"}``):

* ``GET /cgi-bin/token`` -- a new token each call; the previous one of the app stays
  valid 300 s, then 40001; past its expiry 42001.  Bad appid 40013, bad secret 40125.
* ``GET /cgi-bin/ticket/getticket?access_token=&type=jsapi`` -- a ticket tied to the
  token's app.
* ``GET /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state`` --
  302 to ``redirect_uri?code=C&state=S`` for the current test user (``deny`` switch:
  ``state`` only, for snsapi_userinfo); a host outside ``oauth_domains`` -> error page
  10003.
* ``GET /sns/oauth2/access_token`` -- codes are single use (40163), live 300 s and are
  bound to the app (else 40029).  ``GET /sns/userinfo`` -- 48001 for snsapi_base.

Test controls (not WeChat APIs): ``POST /sim/mp/faults`` ``{"endpoint": "/cgi-bin/token",
"errcode": 45009, "count": 1}`` (``{}`` clears; ``count`` 0 = for ever), ``GET
/sim/mp/calls``, ``POST /sim/mp/user`` ``{"openid": …}`` (the user who approves next),
``POST /sim/mp/expire`` (every token and ticket expires now), ``POST /sim/mp/check``
(a ``wx.config`` object plus ``url`` -> ``config:ok`` / ``config:invalid signature``),
``POST /sim/mp/latency`` ``{"/cgi-bin/token": 0.5}``, ``POST /sim/mp/deny``.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

from .mp import jsapi_signature, page_url

__all__ = ["MpPlatform", "MpSimulator", "main"]

OLD_TOKEN_GRACE = 300
CODE_TTL = 300
ENDPOINTS = ("/cgi-bin/token", "/cgi-bin/ticket/getticket", "/connect/oauth2/authorize",
             "/sns/oauth2/access_token", "/sns/userinfo", "/sns/auth")


def _err(code: int, msg: str) -> dict:
    return {"errcode": code, "errmsg": f"{msg} rid: {secrets.token_hex(6)}"}


class MpPlatform:
    """The state and the rules; no sockets.  Thread-safe."""

    def __init__(self, apps: dict | None = None, users=(), expires_in: int = 7200,
                 oauth_domains=None):
        self.apps = dict(apps or {})                    # appid -> secret
        self.users = {u["openid"]: dict(u) for u in users}
        self.current_user = next(iter(self.users), None)
        self.expires_in = expires_in
        self.oauth_domains = set(oauth_domains) if oauth_domains else None  # None: loopback
        self.deny = False
        self.latency: dict[str, float] = {}             # endpoint -> seconds
        self.offset = 0.0
        self.calls: Counter = Counter()
        self.faults: list[dict] = []
        self._lock = threading.Lock()
        self._tokens: dict[str, dict] = {}              # token -> {appid, exp, dies}
        self._latest: dict[str, str] = {}               # appid -> newest token
        self._tickets: dict[str, dict] = {}             # ticket -> {appid, exp}
        self._codes: dict[str, dict] = {}
        self._user_tokens: dict[str, dict] = {}

    # -- clock and controls -------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += seconds

    def set_user(self, openid: str, **profile) -> None:
        with self._lock:
            self.users.setdefault(openid, {"openid": openid}).update(profile)
            self.current_user = openid

    def set_fault(self, endpoint: str, errcode: int, count: int = 1, after: int = 0) -> None:
        """The next ``count`` calls (0: all) of ``endpoint`` answer ``errcode``, once
        ``after`` more calls have gone through normally."""
        with self._lock:
            self.faults.append({"endpoint": endpoint, "errcode": int(errcode),
                                "count": int(count), "after": int(after)})

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.deny = False

    def expire_all(self) -> None:
        """Every token and ticket expires now (WeChat's 42001 at the next use)."""
        with self._lock:
            t = self.now() - 1
            for rec in list(self._tokens.values()) + list(self._tickets.values()):
                rec["exp"] = t

    def invalidate_tokens(self) -> None:
        """Every token is no longer the latest and past its grace (40001)."""
        with self._lock:
            t = self.now() - 1
            for rec in self._tokens.values():
                rec["dies"] = t

    def snapshot_calls(self) -> dict:
        with self._lock:
            return dict(self.calls)

    def _fault(self, endpoint: str):
        for f in self.faults:
            if f["endpoint"] != endpoint:
                continue
            if f["after"] > 0:
                f["after"] -= 1
                return None
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    self.faults.remove(f)
            return f["errcode"]
        return None

    # -- the endpoints -------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, body: bytes = b""):
        """-> (status, headers, body bytes)."""
        if path not in ENDPOINTS:
            return 404, [("Content-Type", "text/plain")], b"not found"
        delay = self.latency.get(path)
        if delay:
            time.sleep(delay)
        with self._lock:
            self.calls[path] += 1
            code = self._fault(path)
            if code is not None:
                if path == "/connect/oauth2/authorize":
                    return self._page(code)
                return self._json(_err(code, "injected fault"))
            fn = getattr(self, "_" + path.strip("/").replace("/", "_").replace("-", "_"))
            return fn(query)

    @staticmethod
    def _json(obj, status: int = 200):
        return status, [("Content-Type", "application/json; encoding=utf-8")], \
            json.dumps(obj).encode("utf-8")

    @staticmethod
    def _page(code: int):
        return 200, [("Content-Type", "text/html; charset=utf-8")], (
            f"<!DOCTYPE html><html><body><p>oauth2 error {code}</p></body></html>").encode()

    def _cgi_bin_token(self, q):
        appid = q.get("appid", "")
        if q.get("grant_type") != "client_credential":
            return self._json(_err(40002, "invalid grant_type"))
        if appid not in self.apps:
            return self._json(_err(40013, "invalid appid"))
        if q.get("secret") != self.apps[appid]:
            return self._json(_err(40125, "invalid appsecret"))
        now = self.now()
        old = self._latest.get(appid)
        if old and old in self._tokens:
            rec = self._tokens[old]
            rec["dies"] = min(rec["dies"], now + OLD_TOKEN_GRACE)
        token = "AT_" + secrets.token_urlsafe(96)
        self._tokens[token] = {"appid": appid, "exp": now + self.expires_in,
                               "dies": now + self.expires_in}
        self._latest[appid] = token
        return self._json({"access_token": token, "expires_in": self.expires_in})

    def _check_token(self, token: str):
        rec = self._tokens.get(token or "")
        now = self.now()
        if rec is None or now > rec["dies"]:
            return None, _err(40001, "invalid credential, access_token is invalid or not latest")
        if now > rec["exp"]:
            return None, _err(42001, "access_token expired")
        return rec, None

    def _cgi_bin_ticket_getticket(self, q):
        rec, err = self._check_token(q.get("access_token", ""))
        if err:
            return self._json(err)
        if q.get("type") != "jsapi":
            return self._json(_err(40097, "invalid args"))
        ticket = "JT_" + secrets.token_urlsafe(64)
        self._tickets[ticket] = {"appid": rec["appid"], "exp": self.now() + self.expires_in}
        return self._json({"errcode": 0, "errmsg": "ok", "ticket": ticket,
                           "expires_in": self.expires_in})

    def _connect_oauth2_authorize(self, q):
        appid, uri = q.get("appid", ""), q.get("redirect_uri", "")
        scope, state = q.get("scope", ""), q.get("state", "")
        if appid not in self.apps:
            return self._page(10003)
        parts = urlsplit(uri)
        host = parts.hostname or ""
        allowed = (host in self.oauth_domains if self.oauth_domains is not None
                   else host in ("127.0.0.1", "localhost", "::1"))
        if parts.scheme not in ("http", "https") or not allowed:
            return self._page(10003)
        if scope not in ("snsapi_base", "snsapi_userinfo") or q.get("response_type") != "code":
            return self._page(10005)
        sep = "&" if parts.query else "?"
        if self.deny and scope == "snsapi_userinfo":
            return 302, [("Location", f"{uri}{sep}{urlencode({'state': state})}")], b""
        if self.current_user is None:
            return self._page(10003)
        code = secrets.token_hex(16)
        self._codes[code] = {"appid": appid, "scope": scope, "openid": self.current_user,
                             "made": self.now(), "used": False}
        return 302, [("Location", f"{uri}{sep}{urlencode({'code': code, 'state': state})}")], b""

    def _sns_oauth2_access_token(self, q):
        appid = q.get("appid", "")
        if appid not in self.apps:
            return self._json(_err(40013, "invalid appid"))
        if q.get("secret") != self.apps[appid]:
            return self._json(_err(40125, "invalid appsecret"))
        rec = self._codes.get(q.get("code", ""))
        if rec is None or rec["appid"] != appid or self.now() - rec["made"] > CODE_TTL:
            return self._json(_err(40029, "invalid code"))
        if rec["used"]:
            return self._json(_err(40163, "code been used"))
        rec["used"] = True
        at = "UAT_" + secrets.token_urlsafe(48)
        self._user_tokens[at] = {"appid": appid, "openid": rec["openid"],
                                 "scope": rec["scope"], "exp": self.now() + 7200}
        return self._json({"access_token": at, "expires_in": 7200,
                           "refresh_token": "RT_" + secrets.token_urlsafe(48),
                           "openid": rec["openid"], "scope": rec["scope"]})

    def _sns_userinfo(self, q):
        rec = self._user_tokens.get(q.get("access_token", ""))
        if rec is None:
            return self._json(_err(40001, "invalid credential"))
        if self.now() > rec["exp"]:
            return self._json(_err(42001, "access_token expired"))
        if rec["openid"] != q.get("openid"):
            return self._json(_err(40003, "invalid openid"))
        if rec["scope"] != "snsapi_userinfo":
            return self._json(_err(48001, "api unauthorized"))
        user = self.users.get(rec["openid"], {"openid": rec["openid"]})
        out = {"openid": rec["openid"], "nickname": "", "sex": 0, "province": "",
               "city": "", "country": "", "headimgurl": "", "privilege": []}
        out.update(user)
        return self._json(out)

    def _sns_auth(self, q):
        rec = self._user_tokens.get(q.get("access_token", ""))
        if rec is None or rec["openid"] != q.get("openid"):
            return self._json(_err(40003, "invalid openid"))
        return self._json({"errcode": 0, "errmsg": "ok"})

    # -- test helper -----------------------------------------------------------------------
    def check_config(self, config: dict, url: str) -> str:
        """What WeChat's ``wx.config`` would say for ``config`` on page ``url``."""
        with self._lock:
            try:
                u = page_url(url)
            except Exception:   # noqa: BLE001 - any bad URL is a bad signature
                return "config:invalid signature"
            for ticket, rec in self._tickets.items():
                if rec["appid"] != config.get("appId") or self.now() > rec["exp"]:
                    continue
                if jsapi_signature(ticket, config.get("nonceStr"), config.get("timestamp"),
                                   u) == config.get("signature"):
                    return "config:ok"
            return "config:invalid signature"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class MpSimulator:
    """The platform on a loopback port: ``start()``, ``url``, ``stop()``; attributes
    and controls of :class:`MpPlatform` are reachable through ``sim.platform`` (and
    ``sim.calls``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kw):
        self.platform = MpPlatform(**kw)
        self.host, self.port = host, port
        self._server = None
        self._thread = None

    @property
    def calls(self) -> Counter:
        return self.platform.calls

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> "MpSimulator":
        platform = self.platform

        class Handler(_Handler):
            pass
        Handler.platform = platform
        self._server = _Server((self.host, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="wxmp-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    platform: MpPlatform
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):      # query strings hold secrets: never logged
        pass

    def _send(self, status, headers, body: bytes):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(n, 1 << 20)) if n > 0 else b""

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def _route(self, method):
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        p = self.platform
        try:
            if parts.path.startswith("/sim/mp/"):
                return self._control(method, parts.path, self._body())
            self._send(*p.handle(method, parts.path, query, self._body()))
        except Exception as e:  # noqa: BLE001 - one line, never a traceback
            sys.stderr.write(f"wxmp-sim: {method} {parts.path}: {type(e).__name__}\n")
            self._send(500, [("Content-Type", "text/plain")], b"internal error")

    def _control(self, method, path, raw):
        p = self.platform
        try:
            data = json.loads(raw.decode("utf-8") or "{}") if raw else {}
        except ValueError:
            return self._send(400, [], b"body is not JSON")
        ok = (200, [("Content-Type", "application/json")])
        if path == "/sim/mp/calls":
            return self._send(*ok, json.dumps(p.snapshot_calls()).encode())
        if path == "/sim/mp/faults" and method == "POST":
            if not data:
                p.clear()
            else:
                try:
                    p.set_fault(str(data["endpoint"]), int(data["errcode"]),
                                int(data.get("count", 1)), int(data.get("after", 0)))
                except (KeyError, TypeError, ValueError):
                    return self._send(400, [], b"give endpoint, errcode[, count, after]")
            return self._send(*ok, b"{}")
        if path == "/sim/mp/user" and method == "POST":
            p.set_user(**data)
            return self._send(*ok, b"{}")
        if path == "/sim/mp/deny" and method == "POST":
            p.deny = bool(data.get("deny", True))
            return self._send(*ok, b"{}")
        if path == "/sim/mp/latency" and method == "POST":
            p.latency = {k: float(v) for k, v in data.items()}
            return self._send(*ok, b"{}")
        if path == "/sim/mp/expire" and method == "POST":
            p.expire_all()
            return self._send(*ok, b"{}")
        if path == "/sim/mp/check" and method == "POST":
            verdict = p.check_config(data.get("config") or {}, data.get("url") or "")
            return self._send(*ok, json.dumps({"errMsg": verdict}).encode())
        self._send(404, [], b"not found")


def main(argv=None) -> int:
    import argparse

    from .simrun import is_loopback_host, run_until_signalled
    ap = argparse.ArgumentParser(prog="wxmp-sim",
                                 description="Loopback simulator of WeChat's MP platform")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--app", action="append", default=[], help="APPID (secret: WXMP_SIM_SECRET)")
    ap.add_argument("--user", action="append", default=[], help="OPENID of a test user")
    args = ap.parse_args(argv)
    if not is_loopback_host(args.host):
        ap.error("loopback hosts only")
    secret = os.environ.get("WXMP_SIM_SECRET") or ""
    if not args.app or not secret:
        ap.error("give --app APPID and the secret in WXMP_SIM_SECRET")
    sim = MpSimulator(args.host, args.port, apps={a: secret for a in args.app},
                      users=[{"openid": u} for u in args.user or ["o_test_user"]]).start()
    return run_until_signalled(sim.stop,
                               f"wxmp-sim listening on {sim.url} apps: {', '.join(args.app)}")


if __name__ == "__main__":
    sys.exit(main())
