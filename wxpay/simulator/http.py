"""The HTTP front: routes ``/pay/*`` to the protocol and ``/sim/*`` to the test
controls, and ``/v3/*``, ``/sim/v3/*`` to the mounted v3 simulator (``sim.v3``); bodies
are size-capped and never logged."""
from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit, parse_qs

from ..xmlcodec import MAX_BYTES


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128          # concurrent notifications and clients
    secure = False


def _quiet_errors(server, request, client_address):
    """A failed TLS handshake or a client gone mid-request: one line when verbose,
    never a traceback."""
    exc = sys.exc_info()[1]
    sim = getattr(server.RequestHandlerClass, "sim", None)
    if sim is not None and sim.verbose:
        sys.stderr.write(f"wxpay-sim: {client_address[0]}: {type(exc).__name__}\n")


_Server.handle_error = _quiet_errors


class _TLSServer(_Server):
    """The same handler behind TLS; the handshake runs in the request's thread (a slow
    or silent client never blocks accepting others)."""
    secure = True
    context = None

    def get_request(self):
        sock, addr = super().get_request()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr



class _Handler(BaseHTTPRequestHandler):
    sim = None            # set per simulator
    server_version = "wxpay-sim/1"
    sys_version = ""

    def log_message(self, fmt, *args):          # no bodies, so no secrets
        if self.sim.verbose:
            sys.stderr.write("wxpay-sim: %s\n" % (fmt % args))

    def _body(self) -> bytes | None:
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(100)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadFraming("malformed chunked body") from None
                if n == 0:
                    self.rfile.readline(100)
                    break
                size += n
                if size > MAX_BYTES + 1:
                    return b"x" * (MAX_BYTES + 1)
                chunks.append(self.rfile.read(n))
                self.rfile.readline(100)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return b""
        if n > MAX_BYTES:
            return b"x" * (MAX_BYTES + 1)     # too large: refused without reading it
        return self.rfile.read(n)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _client_cn(self) -> str | None:
        """The CN of the client certificate the TLS handshake verified (None without)."""
        getpeercert = getattr(self.connection, "getpeercert", None)
        cert = getpeercert() if getpeercert else None
        for rdn in (cert or {}).get("subject", ()):
            for name, value in rdn:
                if name == "commonName":
                    return value
        return None

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path.startswith(("/v3/", "/sim/v3/")):
            return self._route_v3(method, path)
        if path.startswith("/sandboxnew/"):
            path = path[len("/sandboxnew"):]
        m = re.fullmatch(r"/pay/(unifiedorder|orderquery|closeorder|refundquery|"
                         r"downloadbill)", path)
        if m:
            body = self._body() if method == "POST" else None
            status, out, ctype = self.sim.handle_pay(m.group(1), method, body)
            return self._send(status, out, ctype)
        m = re.fullmatch(r"/secapi/pay/(refund)", path)
        if m:
            body = self._body() if method == "POST" else None
            cn = self._client_cn() if self.server.secure else None
            status, out, ctype = self.sim.handle_pay(m.group(1), method, body, cn)
            return self._send(status, out, ctype)
        try:
            if path == "/sim/pay" and method == "POST":
                data = self._json_body()
                try:
                    res = self.sim.pay(prepay_id=data.get("prepay_id"),
                                       out_trade_no=data.get("out_trade_no"),
                                       bank_type=str(data.get("bank_type") or "OTHERS"))
                except LookupError as e:
                    return self._json(404, {"error": str(e)})
                except ValueError as e:
                    return self._json(409, {"error": str(e)})
                return self._json(200, res)
            if path == "/sim/faults" and method == "POST":
                try:
                    return self._json(200, {"faults": self.sim.set_faults(self._json_body())})
                except ValueError as e:
                    return self._json(400, {"error": str(e)})
            if path == "/sim/faults" and method == "GET":
                return self._json(200, {"faults": self.sim.faults()})
            if path.startswith("/sim/orders/") and method == "GET":
                no = unquote(path[len("/sim/orders/"):])
                q = parse_qs(urlsplit(self.path).query)
                snap = self.sim.order(no, (q.get("mch_id") or [None])[0])
                if snap is None:
                    return self._json(404, {"error": "no such order"})
                return self._json(200, snap)
            if path == "/sim/refunds" and method == "POST":
                data = self._json_body()
                try:
                    return self._json(200, self.sim.set_refund_outcome(
                        data.get("outcome", "SUCCESS"), data.get("delay", 0.1)))
                except ValueError as e:
                    return self._json(400, {"error": str(e)})
            if path == "/sim/refunds/settle" and method == "POST":
                data = self._json_body()
                try:
                    return self._json(200, self.sim.settle_refund(
                        str(data.get("out_refund_no") or ""), data.get("status", "SUCCESS")))
                except LookupError as e:
                    return self._json(404, {"error": str(e)})
                except ValueError as e:
                    return self._json(409, {"error": str(e)})
            if path.startswith("/sim/refunds/") and method == "GET":
                snap = self.sim.refund(unquote(path[len("/sim/refunds/"):]))
                if snap is None:
                    return self._json(404, {"error": "no such refund"})
                return self._json(200, snap)
            if path == "/sim/bills":
                q = parse_qs(urlsplit(self.path).query)
                data = self._json_body() if method == "POST" else {}
                mch = str(data.get("mch_id") or (q.get("mch_id") or [""])[0])
                date = str(data.get("date") or (q.get("date") or [""])[0])
                try:
                    if method == "POST":
                        self.sim.set_bill(mch, date, data.get("trades"))
                    elif not re.fullmatch(r"[0-9]{8}", date):
                        raise ValueError("date must be yyyyMMdd")
                except ValueError as e:
                    return self._json(400, {"error": str(e)})
                return self._json(200, {"mch_id": mch, "date": date,
                                        "trades": self.sim.bill_trades(mch, date)})
            if path == "/sim/health":
                return self._json(200, {"ok": True})
        except _BadJson as e:
            return self._json(400, {"error": str(e)})
        self._json(404, {"error": "not found"})

    def _route_v3(self, method: str, path: str) -> None:
        """The mounted v3 simulator: the raw request-target (as the merchant signed
        it, never a decoded one), the headers and the body, untouched."""
        v3 = self.sim.v3
        if v3 is None:
            return self._json(404, {"code": "NOT_FOUND", "message": "no v3 merchant here"})
        body = self._body()
        if body is not None and len(body) > MAX_BYTES:
            return self._json(413, {"code": "PARAM_ERROR", "message": "body too large"})
        if path.startswith("/v3/"):
            status, headers, out = v3.handle(method, self.path, dict(self.headers.items()),
                                             body or b"")
        else:
            doc_status, doc = v3.control(method, path, parse_qs(urlsplit(self.path).query),
                                         body or b"")
            status, headers = doc_status, {"Content-Type": "application/json; charset=utf-8"}
            out = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 204:
                self.send_header("Content-Length", str(len(out)))
            self.send_header("Connection", "close")
            self.end_headers()
            if status != 204 and method != "HEAD":
                self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _json_body(self) -> dict:
        raw = self._body() or b"{}"
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _BadJson("the body is not JSON") from None
        if not isinstance(data, dict):
            raise _BadJson("the body must be a JSON object")
        return data

    def _safe_route(self, method: str) -> None:
        try:
            self._route(method)
        except _BadFraming as e:
            self._json(400, {"error": str(e)})
        except Exception as e:       # never a traceback on the console; one line instead
            sys.stderr.write(f"wxpay-sim: {method} {urlsplit(self.path).path}: "
                             f"{type(e).__name__}\n")
            try:
                self._json(500, {"error": "internal error"})
            except Exception:
                pass

    def do_POST(self):
        self._safe_route("POST")

    def do_GET(self):
        self._safe_route("GET")

    def do_PUT(self):
        self._safe_route("PUT")

    def do_DELETE(self):
        self._safe_route("DELETE")


class _BadJson(Exception):
    pass


class _BadFraming(Exception):
    pass
