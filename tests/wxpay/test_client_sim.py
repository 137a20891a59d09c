import socket
import time

import pytest
import requests

from wnerrors import WnError
from wxpay.account import Account
from wxpay.api import build_unifiedorder
from wxpay.client import Client
from wxpay.errors import ResultFail, ReturnFail, SignError, TransportError
from wxpay.sign import sign, verify
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import (APPID, KEY, MCH_ID, OTHER_KEY, OTHER_MCH,
                       SECOND_APPID, order)


def test_unifiedorder_query_close(client, sim):
    r = client.unifiedorder(build_unifiedorder(client.account, order()))
    assert r["result_code"] == "SUCCESS" and r["prepay_id"].startswith("wx")
    assert r["trade_type"] == "JSAPI"
    assert verify(r, KEY)
    q = client.orderquery("o_1")
    assert q["trade_state"] == "NOTPAY" and q["total_fee"] == "888"
    c = client.closeorder("o_1")
    assert c["result_code"] == "SUCCESS"
    assert client.orderquery("o_1")["trade_state"] == "CLOSED"
    with pytest.raises(ResultFail) as e:
        client.closeorder("o_1")
    assert e.value.key == "e.weixin.err.ORDERCLOSED"
    # an unsigned seed-style order is built and signed by the client
    assert client.unifiedorder(order(out_trade_no="o_2"))["result_code"] == "SUCCESS"


def test_hmac_account_gets_hmac_replies(sim):
    acc = Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n",
                  api_base=sim.url, sign_type="HMAC-SHA256")
    with Client(acc) as c:
        r = c.unifiedorder(order())
        assert len(r["sign"]) == 64 and verify(r, KEY, "HMAC-SHA256")
        assert c.orderquery("o_1")["trade_state"] == "NOTPAY"


def test_reentry_rules(client, sim):
    first_req = build_unifiedorder(client.account, order())
    first = client.unifiedorder(first_req)
    # identical business parameters (new nonce, same time_expire) -> same prepay
    time.sleep(1.05)
    again = client.unifiedorder(order(spbill_create_ip="10.0.0.2",
                                      time_expire=first_req["time_expire"]))
    assert again["prepay_id"] == first["prepay_id"]
    # a time_expire that differs from the first call's (a new default) is refused:
    # WeChat takes time_expire on the first order only
    with pytest.raises(ResultFail) as e:
        client.unifiedorder(order())
    assert e.value.err_code == "INVALID_REQUEST"
    with pytest.raises(ResultFail) as e:
        client.unifiedorder(order(total_fee=889))
    assert e.value.err_code == "INVALID_REQUEST"
    with pytest.raises(ResultFail) as e:
        client.unifiedorder(order(body="other"))
    assert e.value.err_code == "INVALID_REQUEST"
    # the same out_trade_no from another app of the same merchant
    second = Client(client.account.replace(appid=SECOND_APPID))
    with pytest.raises(ResultFail) as e:
        second.unifiedorder(order())
    assert e.value.err_code == "OUT_TRADE_NO_USED"
    sim.pay(first["prepay_id"])
    with pytest.raises(ResultFail) as e:
        client.unifiedorder(order())
    assert e.value.key == "e.weixin.err.ORDERPAID"
    with pytest.raises(ResultFail) as e:
        client.closeorder("o_1")
    assert e.value.err_code == "ORDERPAID"
    client.unifiedorder(order(out_trade_no="o_3"))
    client.closeorder("o_3")
    with pytest.raises(ResultFail) as e:
        client.unifiedorder(order(out_trade_no="o_3"))
    assert e.value.err_code == "ORDERCLOSED"


def test_expiry(client, sim):
    r = client.unifiedorder(order())
    sim.advance(11 * 60)
    assert client.orderquery("o_1")["trade_state"] == "CLOSED"
    with pytest.raises(ResultFail) as e:
        client.unifiedorder(order())
    assert e.value.err_code == "ORDERCLOSED"
    resp = requests.post(sim.url + "/sim/pay", json={"prepay_id": r["prepay_id"]})
    assert resp.status_code == 409


def test_orderquery_unknown(client):
    with pytest.raises(ResultFail) as e:
        client.orderquery("nope")
    assert e.value.key == "e.weixin.err.ORDERNOTEXIST"


FAULTS = [
    ({"http_status": 503}, TransportError, "e.weixin.transport", "upstream", "503"),
    ({"http_status": 500}, TransportError, "e.weixin.transport", "upstream", "500"),
    ({"http_status": 404}, TransportError, "e.weixin.transport", "upstream", "404"),
    ({"html": True}, TransportError, "e.weixin.transport", "upstream", "HTML"),
    ({"html": True, "http_status": 502}, TransportError, "e.weixin.transport", "upstream",
     "502"),
    ({"garbage": True}, TransportError, "e.weixin.transport", "upstream", "not"),
    ({"timeout": True}, TransportError, "e.weixin.transport", "timeout", "timeout"),
    ({"fail_without_sign": True}, SignError, "e.weixin.sign.invalid", "upstream", "sign"),
    ({"success_without_sign": True}, SignError, "e.weixin.sign.invalid", "upstream", "sign"),
    ({"bad_sign": True}, SignError, "e.weixin.sign.invalid", "upstream", "signature"),
    ({"return_fail": True}, ReturnFail, "e.weixin.return.fail", "upstream", "FAIL"),
    ({"systemerror": True}, ResultFail, "e.weixin.err.SYSTEMERROR", "upstream",
     "SYSTEMERROR"),
    ({"err_code": "NOTENOUGH"}, ResultFail, "e.weixin.err.NOTENOUGH", "upstream",
     "NOTENOUGH"),
]


@pytest.mark.parametrize("fault,cls,key,kind,word", FAULTS,
                         ids=[",".join(f[0]) for f in FAULTS])
def test_every_fault_is_a_clear_error_then_retry_works(sim, sim_account, fault, cls, key,
                                                       kind, word):
    sim.set_faults(dict(fault, count=1, hold=1.0))
    with Client(sim_account, timeout=(1, 0.3)) as c:
        params = build_unifiedorder(sim_account, order())
        with pytest.raises(cls) as e:
            c.unifiedorder(params)
        assert e.value.key == key and e.value.kind == kind
        assert word in e.value.reason
        assert KEY not in e.value.line()
        assert sim.faults() == {}
        # the fault is gone: the same request (same parameters) now works
        r = c.unifiedorder(params)
        assert r["result_code"] == "SUCCESS"


def test_latency_and_count(sim, client):
    sim.set_faults({"latency": 0.3, "count": 2})
    t0 = time.monotonic()
    client.unifiedorder(order())
    client.orderquery("o_1")
    assert time.monotonic() - t0 >= 0.6
    assert sim.faults() == {}
    t0 = time.monotonic()
    client.orderquery("o_1")
    assert time.monotonic() - t0 < 0.3


def test_fault_until_cleared(sim, client):
    r = requests.post(sim.url + "/sim/faults", json={"http_status": 503})
    assert r.status_code == 200 and r.json()["faults"] == {"http_status": 503}
    for _ in range(3):
        with pytest.raises(TransportError):
            client.orderquery("o_1")
    assert requests.post(sim.url + "/sim/faults", json={}).json()["faults"] == {}
    with pytest.raises(ResultFail):
        client.orderquery("o_1")


@pytest.mark.parametrize("body", [{"nope": True}, {"latency": "x"}, {"http_status": 200},
                                  {"count": 0}, {"err_code": "bad code"}, [1]])
def test_fault_switch_validation(sim, body):
    r = requests.post(sim.url + "/sim/faults", json=body)
    assert r.status_code == 400 and "error" in r.json()
    r = requests.post(sim.url + "/sim/faults", data=b"{not json")
    assert r.status_code == 400


def test_timeout_fault_still_created_the_order(sim, sim_account):
    sim.set_faults({"timeout": True, "hold": 1.0, "count": 1})
    with Client(sim_account, timeout=(1, 0.3)) as c:
        req = build_unifiedorder(sim_account, order())
        with pytest.raises(TransportError) as e:
            c.unifiedorder(req)
        assert e.value.kind == "timeout"
        prepay = sim.order("o_1")["prepay_id"]
        # the retry sends the same request (same time_expire) and gets the same prepay
        assert c.unifiedorder(req)["prepay_id"] == prepay


def test_connection_refused(sim_account):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with Client(sim_account.replace(api_base=f"http://127.0.0.1:{port}")) as c:
        with pytest.raises(TransportError) as e:
            c.orderquery("o_1")
    assert e.value.key == "e.weixin.transport" and "cannot reach" in e.value.reason


def _raw(sim, path, data, method="POST"):
    r = requests.request(method, sim.url + path, data=data)
    assert r.status_code == 200
    return from_xml(r.content)


def _req(appid=APPID, mch_id=MCH_ID, key=KEY, st="MD5", **kw):
    p = {"appid": appid, "mch_id": mch_id, "nonce_str": "n1", "body": "b",
         "out_trade_no": "r_1", "total_fee": "1", "spbill_create_ip": "127.0.0.1",
         "notify_url": "http://127.0.0.1:9/n", "trade_type": "JSAPI", "openid": "o"}
    p.update(kw)
    p = {k: v for k, v in p.items() if v is not None}
    if st != "MD5":
        p["sign_type"] = st
    p["sign"] = sign(p, key, st)
    return to_xml(p).encode()


@pytest.mark.parametrize("data,method,code,msg", [
    (b"", "GET", "REQUIRE_POST_METHOD", "post"),
    (b"", "POST", "POST_DATA_EMPTY", "post数据为空"),
    ("<xml><a>中</a></xml>".encode("gbk"), "POST", "NOT_UTF8", "编码格式错误"),
    (b"<xml><a>1</a>", "POST", "XML_FORMAT_ERROR", "XML格式错误"),
    (b'<!DOCTYPE x [<!ENTITY e "x">]><xml><a>&e;</a></xml>', "POST", "XML_FORMAT_ERROR",
     "XML"),
    (_req(appid="wxnobody"), "POST", "APPID_NOT_EXIST", "appid不存在"),
    (_req(appid=None), "POST", "LACK_PARAMS", "appid"),
    (_req(mch_id="42"), "POST", "MCHID_NOT_EXIST", "mch_id不存在"),
    (_req(mch_id=OTHER_MCH), "POST", "APPID_MCHID_NOT_MATCH", "不匹配"),
    (_req(key=OTHER_KEY), "POST", "SIGNERROR", "签名错误"),
    (_req(st="HMAC-SHA256").replace(b"HMAC-SHA256]", b"MD5]"), "POST", "SIGNERROR",
     "签名错误"),
    (_req(st="HMAC-SHA256").replace(b"HMAC-SHA256]", b"RSA]"), "POST", "INVALID_REQUEST",
     "sign_type"),
])
def test_return_fail_replies_have_no_sign(sim, data, method, code, msg):
    r = _raw(sim, "/pay/unifiedorder", data, method)
    # WeChat's FAIL replies: return_code and return_msg, nothing else (code names the
    # case only)
    assert set(r) == {"return_code", "return_msg"} and r["return_code"] == "FAIL"
    assert msg in r["return_msg"]


@pytest.mark.parametrize("kw,code", [
    ({"body": None}, "LACK_PARAMS"), ({"out_trade_no": None}, "LACK_PARAMS"),
    ({"total_fee": None}, "LACK_PARAMS"), ({"notify_url": None}, "LACK_PARAMS"),
    ({"spbill_create_ip": None}, "LACK_PARAMS"), ({"nonce_str": None}, "LACK_PARAMS"),
    ({"openid": None}, "LACK_PARAMS"), ({"total_fee": "0"}, "INVALID_REQUEST"),
    ({"total_fee": "8.8"}, "INVALID_REQUEST"), ({"total_fee": "-1"}, "INVALID_REQUEST"),
    ({"out_trade_no": "a b"}, "INVALID_REQUEST"), ({"trade_type": "APP"}, "INVALID_REQUEST"),
    ({"time_expire": "tomorrow"}, "INVALID_REQUEST"), ({"nonce_str": "n" * 33}, "INVALID_REQUEST"),
    ({"spbill_create_ip": "nope"}, "INVALID_REQUEST"),
    ({"device_info": "d" * 33}, "INVALID_REQUEST"), ({"limit_pay": "credit"}, "INVALID_REQUEST"),
    ({"time_start": "2026-01-01"}, "INVALID_REQUEST"),
    ({"time_start": "20261340000000"}, "INVALID_REQUEST"),
    ({"trade_type": "NATIVE", "openid": None}, "LACK_PARAMS"),
    ({"trade_type": "MWEB", "openid": None}, "LACK_PARAMS"),
])
def test_result_fail_replies_are_signed(sim, kw, code):
    r = _raw(sim, "/pay/unifiedorder", _req(**kw))
    assert r["return_code"] == "SUCCESS" and r["result_code"] == "FAIL"
    assert r["err_code"] == code and verify(r, KEY)


def test_hmac_request_gets_hmac_reply(sim):
    r = _raw(sim, "/pay/unifiedorder", _req(st="HMAC-SHA256"))
    assert r["result_code"] == "SUCCESS" and verify(r, KEY, "HMAC-SHA256")
    assert not verify(r, KEY, "MD5")


def test_sim_pay_errors_and_order_view(sim, client):
    assert requests.post(sim.url + "/sim/pay", json={"prepay_id": "wxnone"}).status_code == 404
    assert requests.post(sim.url + "/sim/pay", data=b"[").status_code == 400
    assert requests.get(sim.url + "/sim/orders/none").status_code == 404
    r = client.unifiedorder(order(attach="a"))
    paid = requests.post(sim.url + "/sim/pay", json={"prepay_id": r["prepay_id"]}).json()
    assert paid["out_trade_no"] == "o_1" and len(paid["transaction_id"]) == 28
    assert requests.post(sim.url + "/sim/pay",
                         json={"prepay_id": r["prepay_id"]}).status_code == 409
    view = requests.get(sim.url + "/sim/orders/o_1")
    assert view.status_code == 200 and KEY not in view.text
    data = view.json()
    assert data["state"] == "SUCCESS" and data["transaction_id"] == paid["transaction_id"]
    q = client.orderquery("o_1")
    assert q["trade_state"] == "SUCCESS" and q["transaction_id"] == paid["transaction_id"]
    assert q["cash_fee"] == "888" and len(q["time_end"]) == 14 and q["attach"] == "a"
    unknown = requests.get(sim.url + "/nothing")
    assert unknown.status_code == 404


def test_refuses_non_loopback_listen():
    from wxpay.errors import WxPayError
    from wxpay.simulator import Simulator
    with pytest.raises(WxPayError):
        Simulator(host="0.0.0.0", merchants=[(APPID, MCH_ID, KEY)])


def _raw_http(sim, request: bytes) -> bytes:
    port = int(sim.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(request)
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_chunked_bodies(sim):
    bad = _raw_http(sim, b"POST /pay/unifiedorder HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert bad.startswith(b"HTTP/1.0 400") and b"malformed chunked body" in bad
    xml = _req()
    good = _raw_http(sim, b"POST /pay/unifiedorder HTTP/1.1\r\nHost: x\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n"
                          + f"{len(xml):x}".encode() + b"\r\n" + xml + b"\r\n0\r\n\r\n")
    assert good.startswith(b"HTTP/1.0 200")
    reply = from_xml(good.split(b"\r\n\r\n", 1)[1])
    assert reply["result_code"] == "SUCCESS" and verify(reply, KEY)


def _stamp(seconds_from_now: float) -> str:
    from wxpay.api import beijing_stamp
    return beijing_stamp(time.time() + seconds_from_now)


@pytest.mark.parametrize("kw,msg", [
    ({"body": "x" * 128}, "body参数长度有误"),
    ({"body": "测" * 43}, "body参数长度有误"),            # 43 chars, 129 UTF-8 bytes
    ({"attach": "é" * 64}, "attach参数长度有误"),          # 128 bytes
    ({"detail": "测" * 2001}, "detail参数长度有误"),
    ({"time_expire": "20200101000000"}, "time_expire时间过短，刷卡至少1分钟，其他5分钟"),
    ({"time_expire": None}, None),                          # filled below: now + 4 min
])
def test_what_wechat_refuses_with_return_fail(sim, kw, msg):
    if msg is None:
        kw, msg = {"time_expire": _stamp(4 * 60)}, "time_expire时间过短"
    r = _raw(sim, "/pay/unifiedorder", _req(**kw))
    assert set(r) == {"return_code", "return_msg"} and r["return_code"] == "FAIL"
    assert msg in r["return_msg"]


def test_byte_limits_and_five_minutes_accepted_at_the_edge(sim):
    r = _raw(sim, "/pay/unifiedorder", _req(body="测" * 42, attach="é" * 63,
                                             time_expire=_stamp(5 * 60 + 2),
                                             limit_pay="no_credit", device_info="WEB",
                                             time_start=_stamp(0)))
    assert r["result_code"] == "SUCCESS", r


def test_native_and_mweb_replies(sim):
    r = _raw(sim, "/pay/unifiedorder", _req(trade_type="NATIVE", openid=None,
                                             product_id="p1", out_trade_no="n_1"))
    assert r["result_code"] == "SUCCESS" and r["trade_type"] == "NATIVE"
    assert r["code_url"].startswith("weixin://wxpay/bizpayurl?pr=") and verify(r, KEY)
    r = _raw(sim, "/pay/unifiedorder", _req(
        trade_type="MWEB", openid=None, out_trade_no="m_1",
        scene_info='{"h5_info":{"type":"Wap","wap_url":"https://m.example.com","wap_name":"m"}}'))
    assert r["result_code"] == "SUCCESS" and r["trade_type"] == "MWEB"
    assert r["mweb_url"].startswith("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?")
    assert "prepay_id=" + r["prepay_id"] in r["mweb_url"] and verify(r, KEY)


def test_clients_of_two_hosts_keep_working_when_one_closes(sim):
    """Each client has its own connections: closing one leaves the other working."""
    from wxpay.simulator import Simulator
    with Simulator(merchants=[(APPID, MCH_ID, KEY)]) as other:
        a = Client(Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n",
                           api_base=sim.url), timeout=(2, 2))
        b = Client(Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n",
                           api_base=other.url + "/"), timeout=(2, 2))
        for i in range(3):
            assert a.unifiedorder(order(out_trade_no=f"a_{i}"))["result_code"] == "SUCCESS"
            assert b.unifiedorder(order(out_trade_no=f"b_{i}"))["result_code"] == "SUCCESS"
        assert a.orderquery("a_2")["trade_state"] == "NOTPAY"
        b.close()
        assert a.orderquery("a_1")["trade_state"] == "NOTPAY"
        a.close()


@pytest.fixture()
def scripted():
    """A server that answers every request on a connection with ``srv.reply`` (bytes,
    sent as they are), then closes the connection -- without saying so in the reply --
    when ``srv.close_after`` was set as it sent; ``srv.reset``: it resets every
    connection it accepts.  ``srv.accepted`` counts the connections."""
    import struct
    import threading
    import types
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    srv = types.SimpleNamespace(reply=b"", close_after=True, reset=False, accepted=0,
                                url=f"http://127.0.0.1:{listener.getsockname()[1]}")

    def read_request(conn) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            part = conn.recv(65536)
            if not part:
                return False
            data += part
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += conn.recv(65536)
        return True

    def serve(conn):
        with conn:
            try:
                while read_request(conn):
                    close = srv.close_after
                    conn.sendall(srv.reply)
                    if close:
                        return
            except OSError:
                pass

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            srv.accepted += 1
            if srv.reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()                    # RST
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield srv
    listener.close()


def _scripted_client(srv, **kw):
    return Client(Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n",
                          api_base=srv.url), timeout=(2, 2), **kw)


_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 13\r\n\r\n<xml>ok</xml>"


def test_calls_reuse_one_kept_alive_connection(scripted):
    scripted.reply, scripted.close_after = _OK, False
    with _scripted_client(scripted) as c:
        for _ in range(5):
            assert c.post_raw("/pay/orderquery", "<xml></xml>") == b"<xml>ok</xml>"
    assert scripted.accepted == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused(scripted):
    """The server may close a kept-alive connection between calls: the next call
    notices before sending and connects again, instead of failing."""
    scripted.reply = _OK
    with _scripted_client(scripted) as c:
        assert c.post_raw("/pay/orderquery", "<xml></xml>") == b"<xml>ok</xml>"
        scripted.close_after = False
        time.sleep(0.2)                          # the server's close has arrived
        assert c.post_raw("/pay/orderquery", "<xml></xml>") == b"<xml>ok</xml>"
        assert c.post_raw("/pay/orderquery", "<xml></xml>") == b"<xml>ok</xml>"
    assert scripted.accepted == 2


def test_reply_bodies_framed_every_way_http_allows(scripted):
    body = b"<xml><a>1</a></xml>"
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<xml>\r\n"
        b"e\r\n<a>1</a></xml>\r\n0\r\n\r\n",
        # no length, no chunks: the body ends when the server closes (HTTP/1.0 style)
        b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + body,
        # an interim 100 Continue first
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body),
    ]
    for reply in replies:
        scripted.reply = reply
        with _scripted_client(scripted) as c:
            assert c.post_raw("/pay/orderquery", "<xml></xml>") == body, reply[:40]


@pytest.mark.parametrize("reply,word", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200000, "more than"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"y" * 100 + b"\r\n" * 0 + b"\r\n".join(
        b"X-%d: %s" % (i, b"z" * 100) for i in range(2000)) + b"\r\n\r\n", "more than"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "cannot reach"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<xml>", "connection lost"),
    (b"", "cannot reach"),
])
def test_a_reply_that_is_too_big_not_http_or_cut_short_is_a_clear_error(scripted, reply,
                                                                       word):
    scripted.reply = reply
    with _scripted_client(scripted, max_bytes=65536) as c:
        with pytest.raises(TransportError) as e:
            c.post_raw("/pay/orderquery", "<xml></xml>")
    assert e.value.key == "e.weixin.transport" and word in e.value.reason
    assert "OpenSSH" not in e.value.reason and "z" * 20 not in e.value.reason


def test_bytes_after_a_reply_close_its_connection(scripted):
    """Nothing sent what follows the reply: the connection is not reused for the
    next call (whose reply those bytes would otherwise seem to start)."""
    body = b"<xml>ok</xml>"
    scripted.close_after = False
    scripted.reply = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                      + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfake")
    with _scripted_client(scripted) as c:
        for _ in range(3):
            assert c.post_raw("/pay/orderquery", "<xml></xml>") == body
    assert scripted.accepted == 3


@pytest.mark.parametrize("base", ["ftp://127.0.0.1:9", "http://127.0.0.1:99999",
                                  "http://127.0.0.1:9/pa th", "http://exa\u00e9mple.com",
                                  "http:///nohost"])
def test_a_wechat_pay_address_http_cannot_carry_is_a_clear_error(base):
    """Refused by the account (scheme, host) or by the client's first call."""
    with pytest.raises(WnError) as e:
        with Client(Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n",
                            api_base=base), timeout=(1, 1)) as c:
            c.post_raw("/pay/orderquery", "<xml></xml>")
    assert e.value.key == "e.weixin.conf.invalid" and "\n" not in e.value.line()


def test_a_connection_reset_while_sending_is_a_transport_error(scripted):
    """The server resets the connection while the request is still going out (a
    send that fails, not a reply that is missing): a clear error, no traceback."""
    scripted.reset = True
    with _scripted_client(scripted) as c:
        for _ in range(3):
            with pytest.raises(TransportError) as e:
                c.post_raw("/pay/orderquery", "<xml>" + "x" * (8 << 20) + "</xml>")
            assert "cannot reach" in e.value.reason
