"""httpc against a local http.server (loopback only)."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

import objstore
from wnshell.session import Session

from .conftest import within


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # keep the test output clean
        pass

    def _send(self, code, body: bytes, ctype="text/plain; charset=utf-8", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test", "yes")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        parts = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if parts.path == "/echo":
            data = {"method": self.command, "path": parts.path,
                    "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8")}
            self._send(200, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                       "application/json; charset=utf-8")
        elif parts.path.startswith("/status/"):
            code = int(parts.path.rsplit("/", 1)[1])
            self._send(code, f"status body {code}".encode())
        elif parts.path == "/redirect":
            self._send(302, b"moved", extra=[("Location", "/echo?from=redirect")])
        elif parts.path == "/slow":
            time.sleep(float(dict(parse_qsl(parts.query)).get("s", "2")))
            self._send(200, b"slow done")
        elif parts.path == "/chinese":
            self._send(200, "签名错误".encode("gbk"), "text/plain; charset=gbk")
        elif parts.path == "/nocharset":
            self._send(200, "<xml>支付</xml>".encode("utf-8"), "text/xml")
        else:
            self._send(404, b"no such page")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def sh():
    store = objstore.open_store("memory://")
    session = Session(store, user="demo")
    yield session
    store.close()


def test_get_prints_body(sh, server):
    status, out, err = sh.run(f"httpc {server}/echo")
    assert status == 0, err
    data = json.loads(out)
    assert data["method"] == "GET" and data["body"] == ""


def test_method_defaults_to_post_with_body_and_query_and_header(sh, server):
    status, out, err = sh.run(
        f"httpc {server}/echo @body 'a b  c' @query x=1 @query 'y=hello world' "
        f"@header X-Token=abc @header 'X-Other: v'")
    assert status == 0, err
    data = json.loads(out)
    assert data["method"] == "POST"
    assert data["body"] == "a b  c"
    assert data["query"] == {"x": "1", "y": "hello world"}
    assert data["headers"]["x-token"] == "abc"
    assert data["headers"]["x-other"] == "v"
    assert data["headers"]["content-type"].startswith("text/plain")


def test_piped_stdin_is_the_body(sh, server):
    status, out, err = sh.run(f"echo '<xml><a>1</a></xml>' | httpc POST {server}/echo")
    assert status == 0, err
    data = json.loads(out)
    assert data["method"] == "POST"
    assert data["body"] == "<xml><a>1</a></xml>\n"
    assert data["headers"]["content-type"].startswith("text/xml")


def test_explicit_method_and_lowercase(sh, server):
    status, out, _ = sh.run(f"httpc put {server}/echo @body x")
    assert status == 0 and json.loads(out)["method"] == "PUT"
    status, out, _ = sh.run(f"httpc DELETE {server}/echo")
    assert status == 0 and json.loads(out)["method"] == "DELETE"


def test_dash_h_prints_status_headers_then_body(sh, server):
    status, out, err = sh.run(f"httpc -h {server}/echo")
    assert status == 0, err
    head, _, body = out.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "X-Test: yes" in lines
    assert json.loads(body)["method"] == "GET"


def test_dash_H_prints_headers_only(sh, server):
    status, out, err = sh.run(f"httpc {server}/echo -H")
    assert status == 0, err
    assert out.startswith("HTTP/1.1 200 OK\n")
    assert "X-Test: yes" in out
    assert '"method"' not in out


def test_help_is_the_man_page(sh, server):
    status, out, _ = sh.run("httpc --help")
    assert status == 0
    assert "EXIT STATUS" in out and "@timeout" in out


def test_redirects_not_followed_by_default(sh, server):
    status, out, err = sh.run(f"httpc -h {server}/redirect")
    assert status == 0, err
    assert out.startswith("HTTP/1.1 302")
    assert "Location: /echo?from=redirect" in out
    assert out.endswith("moved")


def test_dash_r_follows_redirects(sh, server):
    status, out, err = sh.run(f"httpc -r {server}/redirect")
    assert status == 0, err
    assert json.loads(out)["query"] == {"from": "redirect"}


@pytest.mark.parametrize("code", [400, 404, 500, 503])
def test_error_status_prints_body_and_fails(sh, server, code):
    status, out, err = sh.run(f"httpc {server}/status/{code}")
    assert status == 1
    assert out == f"status body {code}"
    assert err.startswith(f"e.httpc.status : HTTP {code}")
    assert err.count("\n") == 1
    assert sh.last_error.kind == "upstream"


def test_connection_refused(sh):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    status, out, err = sh.run(f"httpc POST http://127.0.0.1:{port}/x @body secret-body "
                              f"@header Authorization=secret-header")
    assert status == 1
    assert out == ""
    assert err == f"e.httpc.connect : cannot connect to http://127.0.0.1:{port}\n"
    assert "secret" not in err


def test_timeout(sh, server):
    t0 = time.monotonic()
    status, out, err = sh.run(f"httpc {server}/slow?s=3 @timeout 0.5 @body secret-body")
    assert time.monotonic() - t0 < 2.5
    assert status == 1
    assert err.startswith("e.httpc.timeout : no reply within 0.5s from http://127.0.0.1:")
    assert err.count("\n") == 1 and "secret" not in err
    assert sh.last_error.kind == "timeout"


def test_timeout_long_enough(sh, server):
    status, out, err = sh.run(f"httpc {server}/slow?s=0.2 @timeout 2")
    assert (status, out) == (0, "slow done"), err


def test_charset_decoding(sh, server):
    status, out, _ = sh.run(f"httpc {server}/chinese")
    assert (status, out) == (0, "签名错误")
    status, out, _ = sh.run(f"httpc {server}/nocharset")
    assert (status, out) == (0, "<xml>支付</xml>")


@pytest.mark.parametrize("cmd", [
    "httpc ftp://127.0.0.1/x",
    "httpc file:///etc/passwd",
    "httpc",
    "httpc GET",
    "httpc http://127.0.0.1/x @timeout abc",
    "httpc http://127.0.0.1/x @timeout 0",
    "httpc http://127.0.0.1/x @header novalue",
    "httpc http://127.0.0.1/x -z",
    "httpc http://127.0.0.1/x @body",
    "httpc GET POST http://127.0.0.1/x",
    "httpc GET http://[::1",                 # QA: was e.cmd.internal (ValueError)
    "httpc http://127.0.0.1:99999/x",
    "httpc http://127.0.0.1:port/x",
])
def test_usage_errors(sh, cmd):
    status, out, err = sh.run(cmd)
    assert status == 2, (cmd, status, err)
    assert out == ""
    assert err.startswith("e.httpc.usage : ") and err.count("\n") == 1


def test_httpc_gives_up_on_a_trickling_reply(sh, dripping):
    # one byte every 0.2 s, each read well within the read timeout: it held httpc for ever
    box = within(8, lambda: sh.run(f"httpc GET {dripping}/x @timeout 1"))
    status, out, err = box["value"]
    assert status == 1 and err.startswith("e.httpc.timeout : "), err
