"""Helpers of the v3 ``weixin`` command tests: a merchant's key pair, a v3 wxconf with
its key objects in the store, a V3 simulator on loopback, and a notification receiver
that hands the headers to the template as regapi does (``http-header-*`` metadata)
and answers with the status the command chose (``session.response_status``)."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wnshell.session import Session
from wxpay.v3.crypto import private_pem, public_pem, serial_hex
from wxpay.v3.simkeys import new_certificate, new_key

from .conftest import RESULT_TEMPLATE, objstore_new_id, record, write_file

V3_APPID = "wxd678efh567hg6787"
V3_MCHID = "1900000001"
V3_APIV3_KEY = "TESTONLYapiv3key0123456789abcdef"


class V3Merchant:
    def __init__(self):
        self.key = new_key()
        self.cert = new_certificate(self.key, common_name="merchant")
        self.serial = serial_hex(self.cert)
        self.pem = private_pem(self.key)
        self.public = public_pem(self.key)


V3_WXCONF = """appID          : '{appid}'
pay_api_version: 3
pay_mch_id     : "{mchid}"
pay_apiv3_key  : "{apiv3}"
pay_cert_serial: "{serial}"
pay_time_expire: 10
pay_notify_url : "{notify_url}"
pay_refund_notify_url: "{refund_url}"
pay_api_base   : "{api_base}"
{extra}"""


def install_v3(store, merchant: V3Merchant, api_base: str, notify_url: str,
               refund_url: str | None = None, name: str = "v3", user: str = "demo",
               extra: str = ""):
    folder = f"/home/{user}/.weixin/{name}"
    write_file(store, f"{folder}/apiclient_key.pem", merchant.pem)
    text = V3_WXCONF.format(appid=V3_APPID, mchid=V3_MCHID, apiv3=V3_APIV3_KEY,
                            serial=merchant.serial, notify_url=notify_url,
                            refund_url=refund_url or notify_url.replace("payresult",
                                                                        "refundresult"),
                            api_base=api_base, extra=extra)
    return write_file(store, f"{folder}/wxconf", text)


class V3Receiver:
    """The merchant's notify_url for v3: each notification becomes a request object
    whose metadata holds the request headers (``http-header-<Name>``); the seed's
    template runs on it; the answer is the status and body the command chose."""

    def __init__(self, store, conf: str = "v3", template: str = RESULT_TEMPLATE):
        self.store, self.conf, self.template = store, conf, template
        self.replies: list[tuple[int, int, str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                code, out = outer.handle(dict(self.headers.items()), body, self.path)
                data = out.encode("utf-8") if code != 204 else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/demo/payresult"

    def handle(self, headers: dict, body: bytes, path: str = "/api/demo/payresult"):
        meta = {"http-method": "POST"}
        meta.update({"http-header-" + k.upper(): v for k, v in headers.items()})
        req = self.store.create("/home/demo/.regapi/tmp/" + objstore_new_id(), "FILE",
                                meta, parents=True, content=body)
        session = Session(self.store, user="demo")
        template = self.template
        if path.endswith("refundresult"):
            template = "weixin xxx refund -result id:${id}\n"
        text = template.replace("xxx", self.conf)
        status, out, err = session.run(text, "", template_vars={"id": req.id})
        for kind, t in (("cmd", text), ("stdout", out), ("stderr", err)):
            record(kind, t)
        code = session.response_status or (200 if status == 0 else 500)
        with self.lock:
            self.replies.append((code, status, out, err))
        return code, out

    def close(self):
        self.server.shutdown()
        self.server.server_close()
