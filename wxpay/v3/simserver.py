"""The HTTP shell of the v3 simulator: :class:`V3Server` serves a
:class:`~wxpay.v3.simulator.V3Simulator` alone over loopback, :func:`wsgi_app` mounts
it in any WSGI server, and :func:`main` is ``python -m wxpay.v3.simulator``.

Console::

    python -m wxpay.v3.simulator --merchants merchants.json --export DIR

``merchants.json`` is a list of ``{"mchid", "appids": [...], "serial_no",
"public_key_file" (the merchant's API public key or certificate, PEM),
"sign_with": "certificate"|"pubkey"}``; the APIv3 keys come from the environment
(``WXPAY_V3_SIM_APIV3_KEYS="MCHID:KEY,..."``) so they stay out of files and ``ps``.
``--export DIR`` writes WeChat's side (``platform_cert.pem``, ``wechatpay_pubkey.pem``,
``wechatpay_pubkey_id.txt``) for the merchant to trust.  It prints
``wxpay-v3-sim listening on http://127.0.0.1:PORT`` once ready.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from ..errors import WxPayError
from ..simrun import is_loopback_host, retry_schedule, run_until_signalled
from .simulator import MAX_BODY, V3Simulator

__all__ = ["V3Server", "wsgi_app", "main"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    sim: V3Simulator = None
    server_version = "wxpay-v3-sim/1"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    verbose = False

    def log_message(self, fmt, *args):          # never bodies or headers
        if self.verbose:
            sys.stderr.write("wxpay-v3-sim: %s\n" % (fmt % args))

    def _body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY * 2:
            return None
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 204:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 204 and self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self) -> None:
        body = self._body()
        if body is None:
            self.close_connection = True
            return self._send(400, {"Content-Type": "application/json"},
                              b'{"code":"PARAM_ERROR","message":"bad body framing"}')
        path = urlsplit(self.path).path
        if path.startswith("/v3/"):
            status, headers, out = self.sim.handle(self.command, self.path,
                                                   dict(self.headers.items()), body)
            return self._send(status, headers, out)
        if path.startswith("/sim/v3/"):
            status, doc = self.sim.control(self.command, path,
                                           parse_qs(urlsplit(self.path).query), body)
            return self._send(status, {"Content-Type": "application/json; charset=utf-8"},
                              json.dumps(doc, ensure_ascii=False).encode("utf-8"))
        self._send(404, {"Content-Type": "application/json"}, b'{"error":"not found"}')

    def _safe(self):
        try:
            self._route()
        except Exception as e:           # one line, never a traceback or a body
            sys.stderr.write(f"wxpay-v3-sim: {self.command} {urlsplit(self.path).path}: "
                             f"{type(e).__name__}\n")
            self.close_connection = True
            try:
                self._send(500, {"Content-Type": "application/json"},
                           b'{"code":"SYSTEM_ERROR","message":"internal error"}')
            except Exception:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _safe


class V3Server:
    """``with V3Server(V3Simulator(...)) as srv: srv.url, srv.sim``; port 0 = free."""

    def __init__(self, sim: V3Simulator | None = None, host: str = "127.0.0.1",
                 port: int = 0, verbose: bool = False):
        if not is_loopback_host(host) and not (sim and sim.allow_remote):
            raise WxPayError("e.weixin.sim.remote",
                             f"refusing to listen on non-loopback host {host}")
        self.sim = sim or V3Simulator()
        self.host, self.port, self.verbose = host, port, verbose
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise WxPayError("e.weixin.sim.stopped", "the simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def start(self) -> "V3Server":
        if self._server is None:
            handler = type("Handler", (_Handler,), {"sim": self.sim, "verbose": self.verbose})
            self._server = _Server((self.host, self.port), handler)
            self.sim.base_url = self.url
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.02},
                                            name="wxpay-v3-sim", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self.sim.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _raw_target(environ) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    target = quote(environ.get("PATH_INFO", ""), safe="/-_.~*!$&'()+,;=:@")
    return target + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")


def wsgi_app(sim: V3Simulator):
    """A WSGI application answering ``/v3/`` and ``/sim/v3/`` (mount it under ``/``).
    The signed request-target is the server's raw URI when it tells it (``RAW_URI``
    or ``REQUEST_URI``), else PATH_INFO re-encoded."""
    reasons = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
               403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
               500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

    def app(environ, start_response):
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            n = 0
        body = environ["wsgi.input"].read(min(max(n, 0), MAX_BODY * 2)) if n else b""
        method = environ.get("REQUEST_METHOD", "GET")
        target = _raw_target(environ)
        path = urlsplit(target).path
        if path.startswith("/v3/"):
            headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                       if k.startswith("HTTP_")}
            if environ.get("CONTENT_TYPE"):
                headers["Content-Type"] = environ["CONTENT_TYPE"]
            status, hdrs, out = sim.handle(method, target, headers, body)
        else:
            status, doc = sim.control(method, path, parse_qs(urlsplit(target).query), body)
            hdrs = {"Content-Type": "application/json; charset=utf-8"}
            out = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        start_response(f"{status} {reasons.get(status, 'Status')}", list(hdrs.items()))
        return [out]

    return app


def apiv3_keys_from_env() -> dict:
    """``WXPAY_V3_SIM_APIV3_KEYS="MCHID:KEY,..."`` (keys stay out of files and ``ps``)."""
    keys = {}
    for item in re.split(r"[\s,]+", os.environ.get("WXPAY_V3_SIM_APIV3_KEYS", "").strip()):
        if item:
            mchid, _, key = item.partition(":")
            keys[mchid] = key
    return keys


def _read_merchants(sim: V3Simulator, path: str, keys: dict) -> list[str]:
    with open(path, encoding="utf-8") as f:
        items = json.load(f)
    if not isinstance(items, list):
        raise ValueError("the merchants file must hold a JSON list")
    names = []
    base = os.path.dirname(os.path.abspath(path))
    for it in items:
        mchid = str(it["mchid"])
        if mchid not in keys:
            raise ValueError(f"no APIv3 key for merchant {mchid} in WXPAY_V3_SIM_APIV3_KEYS")
        with open(os.path.join(base, it["public_key_file"]), encoding="ascii") as f:
            pem = f.read()
        sim.add_merchant(mchid, it["appids"], pem, it["serial_no"], keys[mchid],
                         it.get("sign_with", "certificate"))
        names.append(mchid)
    return names


def load_merchants(sim: V3Simulator, path: str, keys: dict) -> list[str]:
    """The merchants of ``path`` (see the module docstring) added to ``sim``; their
    mchids.  ValueError with a one-line reason (never a key) when that fails."""
    try:
        return _read_merchants(sim, path, keys)
    except (OSError, ValueError, KeyError, WxPayError) as e:
        raise ValueError(e.line() if isinstance(e, WxPayError) else type(e).__name__
                         + (f": {e}" if isinstance(e, ValueError) else "")) from None


def export_public_side(sim: V3Simulator, folder: str) -> None:
    """Write WeChat's public side (``platform_cert.pem``, ``wechatpay_pubkey.pem``,
    ``wechatpay_pubkey_id.txt``) into ``folder`` for the merchant to trust."""
    os.makedirs(folder, exist_ok=True)
    for name, text in (("platform_cert.pem", sim.platform_certificate_pem()),
                       ("wechatpay_pubkey.pem", sim.public_key_pem()),
                       ("wechatpay_pubkey_id.txt", sim.public_key_id + "\n")):
        with open(os.path.join(folder, name), "w", encoding="ascii") as f:
            f.write(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wxpay.v3.simulator",
                                 description="Loopback simulator of the WeChat Pay v3 API.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--merchants", metavar="FILE", help="JSON list of v3 merchants")
    ap.add_argument("--export", metavar="DIR",
                    help="write platform_cert.pem, wechatpay_pubkey.pem and its id here")
    ap.add_argument("--retry-schedule", type=retry_schedule, default=(0.2, 0.2, 0.5, 1, 2))
    ap.add_argument("--allow-remote", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="log requests (no bodies)")
    args = ap.parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        ap.error(f"refusing non-loopback host {args.host} without --allow-remote")
    sim = V3Simulator(retry_schedule=args.retry_schedule, allow_remote=args.allow_remote)
    names = []
    if args.merchants:
        try:
            names = load_merchants(sim, args.merchants, apiv3_keys_from_env())
        except ValueError as e:
            print(f"wxpay-v3-sim: cannot load merchants: {e}", file=sys.stderr)
            return 2
    if args.export:
        export_public_side(sim, args.export)
    srv = V3Server(sim, args.host, args.port, verbose=args.verbose)
    try:
        srv.start()
    except OSError as e:
        print(f"wxpay-v3-sim: cannot listen on {args.host}:{args.port}: {e.strerror}",
              file=sys.stderr)
        return 1
    return run_until_signalled(
        srv.stop, f"wxpay-v3-sim listening on {srv.url} merchants: "
        f"{', '.join(names) or '-'} platform serial {sim.platform_serial()}")


if __name__ == "__main__":
    sys.exit(main())
