"""Fixtures for the weixin command tests: a real wxpay Simulator on loopback, a
notification receiver that runs ``weixin xxx order -result`` through Session.run, and
stores holding the seed's wxconf snippet with test values.

Every shell run and every log record of a test is also kept in that test's own
``records`` (an autouse fixture); after each test's body ``pytest_runtest_call`` checks
that the pay_key and the appsecret appear in none of them, nor in what the test stored
below /home/demo/orders and /home/demo/.regapi -- whatever order the tests run in.
test_weixin_secrets.py runs every weixin flow itself and checks the process's own
output too."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import objstore
from wnshell.session import Session
from wxpay.simulator import Simulator

APPID = "wxd930ea5d5a258f4f"
MCH_ID = "1900000109"
PAY_KEY = "Qz7vX2mZ9tR4wB8nL1pH6sD3fG5jKeyA"      # 32 chars, test only
APPSECRET = "S3cr3tAppS3cretV4lue0011223344ab"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"

# The seed's snippet (weixin_pay.md, 公众号的配置) with its values replaced by test
# values; comments, quoting and layout as the seed writes them.  One line is added:
# where the simulator listens (the real API's address is the default).
SEED_WXCONF = """appID      : '{appid}',   # 公众号 API 的 ID 号
appsecret  : '{appsecret}',     # 公众号 API 秘钥
pay_mch_id : "{mch_id}"        # 商户号
pay_key    : "{pay_key}"        # 支付秘钥
pay_time_expire : 10       # 订单过期时间(分钟)，默认10
pay_notify_url : "{notify_url}" # 支付成功的回调
pay_api_base : "{api_base}"  # 测试: 本地模拟器
{extra}"""

# the seed's template for the notification API (weixin_pay.md, .regapi 的写法)
RESULT_TEMPLATE = """# 处理订单支付的返回
weixin xxx order -result id:${id}
"""

SECRETS = (PAY_KEY, APPSECRET)

# what the running test recorded: (kind, text); a fresh list for every test (``records``)
_records: list[tuple[str, str]] = []
_rec_lock = threading.Lock()


def record(kind: str, text: str) -> None:
    with _rec_lock:
        _records.append((kind, text))


class _RecordAll(logging.Handler):
    def emit(self, rec):
        try:
            record("log", self.format(rec))
            record("log-args", repr(rec.args))
        except Exception:  # pragma: no cover
            pass


_handler = _RecordAll(level=logging.DEBUG)
_handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))


@pytest.fixture(autouse=True)
def records():
    """What this test recorded, as ``(kind, text)``: every ``run`` (cmd, stdin, stdout,
    stderr), every reply of the receiver, and every log record of every logger (DEBUG
    and up for wnshell.*) while the test runs."""
    global _records
    mine: list[tuple[str, str]] = []
    with _rec_lock:
        _records = mine
    root, wn = logging.getLogger(), logging.getLogger("wnshell")
    old_level = wn.level
    wn.setLevel(logging.DEBUG)
    root.addHandler(_handler)
    try:
        yield mine
    finally:
        root.removeHandler(_handler)
        wn.setLevel(old_level)


def stored_texts(store) -> list[str]:
    """Every object below /home/demo/orders and /home/demo/.regapi (metadata and
    content): what the weixin flows store, except the wxconf objects themselves."""
    texts = []
    for obj in store.query({"ph": "^/home/demo/(orders|\\.regapi)/"}):
        texts.append(json.dumps(obj, ensure_ascii=False))
        if not obj.is_dir:
            texts.append(store.read(obj.id).decode("utf-8", "replace"))
    return texts


def leaked(texts) -> list[str]:
    """The names of the secrets (pay_key, appsecret) found in ``texts``, in any case."""
    blob = "\n".join(texts).lower()
    return [name for name, secret in zip(("pay_key", "appsecret"), SECRETS)
            if secret.lower() in blob]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After the body of each test of this folder (its store still open): no secret in
    what it recorded, nor in what it stored."""
    result = yield
    mine = item.funcargs.get("records") or []
    for kind in sorted({k for k, _ in mine}):
        found = leaked(t for k, t in mine if k == kind)
        assert not found, f"{' and '.join(found)} in the {kind} of {item.nodeid}"
    store = item.funcargs.get("store")
    if store is not None:
        found = leaked(stored_texts(store))
        assert not found, f"{' and '.join(found)} stored by {item.nodeid}"
    return result


def run(session: Session, text: str, stdin: str = ""):
    """session.run, recorded."""
    status, out, err = session.run(text, stdin)
    record("cmd", text)
    record("stdin", stdin)
    record("stdout", out)
    record("stderr", err)
    return status, out, err


def write_file(store, path: str, text: str | bytes, meta: dict | None = None):
    data = text.encode("utf-8") if isinstance(text, str) else text
    obj = store.fetch(path)
    if obj is None:
        obj = store.create(path, "FILE", meta or {}, parents=True, content=data)
    else:
        obj = store.write(obj.id, data)
        if meta:
            obj = store.set_meta(obj.id, meta)
    return obj


def install_wxconf(store, api_base: str, notify_url: str, name: str = "xxx",
                   user: str = "demo", extra: str = "", key: str = PAY_KEY):
    text = SEED_WXCONF.format(appid=APPID, appsecret=APPSECRET, mch_id=MCH_ID,
                              pay_key=key, notify_url=notify_url, api_base=api_base,
                              extra=extra)
    return write_file(store, f"/home/{user}/.weixin/{name}/wxconf", text)


class Receiver:
    """The merchant's notify_url: stores each body as a request object (like regapi)
    and answers with the stdout of ``weixin xxx order -result id:<id>``."""

    def __init__(self, store_factory, conf: str = "xxx", template: str = RESULT_TEMPLATE):
        self.store_factory = store_factory
        self.conf = conf
        self.template = template
        self.replies: list[tuple[int, str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                status, out, err = outer.handle(body)
                data = out.encode("utf-8")
                self.send_response(200 if status == 0 else 500)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
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

    def handle(self, body: bytes):
        store = self.store_factory()
        session = Session(store, user="demo")
        req = store.create("/home/demo/.regapi/tmp/" + objstore_new_id(), "FILE",
                           {"http-method": "POST"}, parents=True, content=body)
        # the seed's .regapi template, rendered the way regapi does
        text = self.template.replace("xxx", self.conf)
        status, out, err = session.run(text, "", template_vars={"id": req.id})
        for kind, t in (("cmd", text), ("stdout", out), ("stderr", err)):
            record(kind, t)
        result = (status, out, err)
        with self.lock:
            self.replies.append(result)
        return result

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def objstore_new_id() -> str:
    from objstore.paths import new_id
    return new_id()


@pytest.fixture(scope="session")
def sim():
    s = Simulator("127.0.0.1", 0, merchants=[(APPID, MCH_ID, PAY_KEY)],
                  retry_schedule=(0.2, 0.3, 0.5))
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _clear_faults(request):
    yield
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").clear_faults()


@pytest.fixture()
def store():
    st = objstore.open_store("memory://")
    yield st
    st.close()


@pytest.fixture()
def receiver(store):
    r = Receiver(lambda: store)
    yield r
    r.close()


@pytest.fixture()
def sh(store, sim, receiver):
    """A demo session whose account ``xxx`` talks to the simulator and whose
    notify_url is the receiver."""
    install_wxconf(store, sim.url, receiver.url)
    return Session(store, user="demo")


def make_order(store, name: str = "o1", **meta):
    fields = {"openid": OPENID, "or_status": 0, "total_fee": 888, "title": "测试订单"}
    fields.update(meta)
    fields = {k: v for k, v in fields.items() if v is not None}
    return store.create(f"/home/demo/orders/{name}", "FILE", fields, parents=True)


@pytest.fixture()
def dripping():
    """A server that trickles its reply: one byte every 0.2 s, each read well within
    any read timeout, the whole never."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve(conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                             b"Content-Length: 100000\r\n\r\n<xml>")
                while not stop.is_set():
                    conn.sendall(b"x")
                    time.sleep(0.2)
            except OSError:
                pass

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    srv.close()


def within(seconds, fn):
    """fn() in a thread; its result, or a failure (not a hung suite) after seconds."""
    box = {}

    def call():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e
    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds}s"
    return box
