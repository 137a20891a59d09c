"""QA: a server that trickles its reply (one byte every 0.2 s, each read well within
the read timeout) must not hold httpc or the WeChat Pay client for ever."""
from __future__ import annotations

import socket
import threading
import time

import pytest

import objstore
from wnshell.session import Session
from wxpay.account import Account
from wxpay.client import Client
from wxpay.errors import TransportError


@pytest.fixture()
def dripping():
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


def _within(seconds, fn):
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


def test_httpc_gives_up_on_a_trickling_reply(dripping):
    sh = Session(objstore.open_store("memory://"), user="demo")
    box = _within(8, lambda: sh.run(f"httpc GET {dripping}/x @timeout 1"))
    status, out, err = box["value"]
    assert status == 1 and err.startswith("e.httpc.timeout : "), err


def test_wxpay_client_gives_up_on_a_trickling_reply(dripping):
    acc = Account(appid="wx1", mch_id="1", key="k" * 32, api_base=dripping)
    client = Client(acc, timeout=(1, 1))
    box = _within(8, lambda: client.post_xml("/pay/orderquery", "<xml></xml>"))
    assert isinstance(box.get("error"), TransportError), box
    assert box["error"].kind == "timeout"
