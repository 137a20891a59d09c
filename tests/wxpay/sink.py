"""A merchant's notify_url on 127.0.0.1 for the wxpay tests: it keeps every POST
(path, headers, body) and answers what ``respond(path, headers, body)`` says,
``(status, content_type, bytes)`` (no body for a 204).  v2 tests answer XML, v3 tests
a status; the serving is the same."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NotifySink:
    def __init__(self, respond, path: str = "/notify"):
        self.respond, self.path = respond, path
        self.got: list[tuple[str, dict, bytes]] = []
        self.lock = threading.Lock()
        sink = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                with sink.lock:
                    sink.got.append((self.path, headers, body))
                    n = len(sink.got) - 1
                status, ctype, out = sink.respond(self.path, headers, body, n)
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(out)

        class S(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.server = S(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base + self.path

    @property
    def bodies(self) -> list[bytes]:
        with self.lock:
            return [b for _p, _h, b in self.got]

    def start(self) -> "NotifySink":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
