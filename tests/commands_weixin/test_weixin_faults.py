"""Every simulator fault on unifiedorder: a clear one-line error, nothing poisoned,
and the next submit (faults cleared) succeeds."""
from __future__ import annotations

import json
import time

import pytest

from wnshell.session import Session
from wxpay.account import Account
from wxpay.client import Client
from wxpay.errors import TransportError

from .conftest import OPENID, install_wxconf, make_order, run, within

FAULTS = [
    # (faults, expected error key, kind)
    ({"latency": 0.3}, None, None),                   # slow but within the timeout
    ({"timeout": True, "hold": 3}, "e.weixin.transport", "timeout"),
    ({"http_status": 503}, "e.weixin.transport", "upstream"),
    ({"http_status": 404}, "e.weixin.transport", "upstream"),
    ({"html": True}, "e.weixin.transport", "upstream"),
    ({"garbage": True}, "e.weixin.transport", "upstream"),
    ({"fail_without_sign": True}, "e.weixin.sign.invalid", "upstream"),
    ({"success_without_sign": True}, "e.weixin.sign.invalid", "upstream"),
    ({"bad_sign": True}, "e.weixin.sign.invalid", "upstream"),
    ({"return_fail": True}, "e.weixin.return.fail", "upstream"),
    ({"systemerror": True}, "e.weixin.err.SYSTEMERROR", "upstream"),
    ({"err_code": "NOAUTH"}, "e.weixin.err.NOAUTH", "upstream"),
]


@pytest.fixture()
def fsh(store, sim, receiver):
    # the seed's wxconf plus a short reply timeout, so the timeout fault is quick
    install_wxconf(store, sim.url, receiver.url, extra="pay_timeout : 1.5\n")
    return Session(store, user="demo")


@pytest.mark.parametrize("faults,key,kind", FAULTS,
                         ids=[next(iter(f)) for f, _, _ in FAULTS])
def test_fault_gives_clear_error_and_retryable_order(fsh, store, sim, faults, key, kind):
    order = make_order(store)
    cmd = f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 -openid {OPENID}"
    sim.set_faults(faults)
    t0 = time.monotonic()
    status, out, err = run(fsh, cmd)
    assert time.monotonic() - t0 < 5
    o = store.get(order.id)
    if key is None:
        assert status == 0, err
        assert json.loads(out)["package"].startswith("prepay_id=")
        return
    assert status == 1 and out == "", err
    assert err.startswith(key) and err.count("\n") == 1, err
    assert fsh.last_error.kind == kind
    # nothing poisoned: no reply or jsobj stored, the failure kept apart
    for field in ("pay_rexml", "pay_remap", "pay_jsobj", "pay_send"):
        assert field not in o, field
    assert o["pay_error"]["out_trade_no"] == f"{order.id}_1"
    assert o["pay_error"]["key"] == err.split(" : ")[0]
    assert o["or_status"] == 0
    # a second failing try also leaves it clean, with a fresh out_trade_no
    status, _, _ = run(fsh, cmd)
    assert status == 1
    assert store.get(order.id)["pay_error"]["out_trade_no"] == f"{order.id}_2"
    sim.clear_faults()
    status, out, err = run(fsh, cmd)
    assert status == 0, err
    o = store.get(order.id)
    assert o["pay_out_trade_no"] == f"{order.id}_3"
    assert o["pay_remap"]["result_code"] == "SUCCESS" and "pay_error" not in o
    assert json.loads(out) == o["pay_jsobj"]


def test_unreachable_api_is_a_transport_error(store, receiver):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    install_wxconf(store, f"http://127.0.0.1:{port}", receiver.url)
    sh = Session(store, user="demo")
    order = make_order(store)
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                               f"-openid {OPENID}")
    assert status == 1 and err.startswith("e.weixin.transport : cannot reach")
    assert sh.last_error.kind == "upstream"
    assert "pay_remap" not in store.get(order.id)


def test_query_fault_is_an_error_and_changes_nothing(fsh, store, sim):
    order = make_order(store)
    assert run(fsh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                    f"-openid {OPENID}")[0] == 0
    before = store.get(order.id)
    sim.set_faults({"html": True})
    status, out, err = run(fsh, f"weixin xxx order -query {order.id}")
    assert status == 1 and err.startswith("e.weixin.transport")
    assert store.get(order.id) == before


def test_wxpay_client_gives_up_on_a_trickling_reply(dripping):
    # one byte every 0.2 s, each read well within the read timeout: it held the WeChat
    # Pay client for ever
    acc = Account(appid="wx1", mch_id="1", key="k" * 32, api_base=dripping)
    client = Client(acc, timeout=(1, 1))
    box = within(8, lambda: client.post_xml("/pay/orderquery", "<xml></xml>"))
    assert isinstance(box.get("error"), TransportError), box
    assert box["error"].kind == "timeout"
