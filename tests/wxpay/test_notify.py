import threading
import time

import pytest
import requests

from wxpay.account import Account
from wxpay.api import SUCCESS_XML, parse_notification, reply_xml
from wxpay.client import Client
from wxpay.errors import WxPayError
from wxpay.sign import verify
from wxpay.xmlcodec import from_xml

from .conftest import APPID, KEY, MCH_ID, Receiver, order

FAIL = reply_xml(False, "busy")


def _checked(account, replies):
    """A reply function: verify the notification like a merchant, then answer."""
    def answer(body):
        parse_notification(account, body)
        return replies.pop(0) if replies else SUCCESS_XML
    return answer


def _prepay(sim, notify_url, sign_type="MD5", **kw):
    acc = Account(APPID, MCH_ID, KEY, notify_url=notify_url, api_base=sim.url,
                  sign_type=sign_type)
    with Client(acc) as c:
        return acc, c.unifiedorder(order(**kw))["prepay_id"]


def test_retries_until_success(sim):
    with Receiver([FAIL, "<xml><return_code>FAIL</return_code></xml>", SUCCESS_XML]) as rec:
        acc, prepay = _prepay(sim, rec.url)
        resp = requests.post(sim.url + "/sim/pay", json={"prepay_id": prepay})
        assert resp.status_code == 200
        paid = resp.json()
        state = sim.wait_notified("o_1", timeout=5)
    assert state["notify"]["status"] == "delivered"
    assert state["notify"]["attempts"] == 3
    assert [a["ok"] for a in state["notify"]["log"]] == [False, False, True]
    assert state["notify"]["last_reply"] == SUCCESS_XML
    assert len(rec.bodies) == 3 and len(set(rec.bodies)) == 1     # the same notification
    n = parse_notification(acc, rec.bodies[0])
    assert n["out_trade_no"] == "o_1" and n["total_fee"] == "888"
    assert n["transaction_id"] == paid["transaction_id"] and n["result_code"] == "SUCCESS"
    assert n["cash_fee"] == "888" and len(n["time_end"]) == 14 and "sign_type" not in n
    # the JSON view says the same
    view = requests.get(sim.url + "/sim/orders/o_1").json()
    assert view["notify"]["status"] == "delivered" and view["notify"]["attempts"] == 3


@pytest.mark.parametrize("bad", ["success", "SUCCESS", "<html>ok</html>", "",
                                 "<xml><return_code>success</return_code></xml>"])
def test_anything_but_success_xml_is_retried(sim, bad):
    with Receiver([bad, SUCCESS_XML]) as rec:
        _, prepay = _prepay(sim, rec.url)
        sim.pay(prepay)
        state = sim.wait_notified("o_1", timeout=5)
    assert state["notify"]["attempts"] == 2 and state["notify"]["status"] == "delivered"


def test_gives_up_after_the_schedule(sim):
    with Receiver([FAIL]) as rec:
        _, prepay = _prepay(sim, rec.url)
        sim.pay(prepay)
        state = sim.wait_notified("o_1", timeout=5)
    assert state["notify"]["status"] == "failed"
    assert state["notify"]["attempts"] == 1 + len(sim.retry_schedule) == len(rec.bodies)


def test_unreachable_receiver_is_retried(sim):
    _, prepay = _prepay(sim, "http://127.0.0.1:9/n")
    sim.pay(prepay)
    state = sim.wait_notified("o_1", timeout=5)
    assert state["notify"]["status"] == "failed"
    assert all(a["status"] is None for a in state["notify"]["log"])


def test_hmac_notification(sim):
    with Receiver([SUCCESS_XML]) as rec:
        acc, prepay = _prepay(sim, rec.url, sign_type="HMAC-SHA256")
        sim.pay(prepay)
        sim.wait_notified("o_1", timeout=5)
    n = parse_notification(acc, rec.bodies[0])
    # as WeChat sends them: HMAC-signed, no sign_type field; the account decides
    assert "sign_type" not in n and len(n["sign"]) == 64
    assert verify(n, KEY, "HMAC-SHA256") and not verify(n, KEY, "MD5")


def test_duplicate_notifications(sim):
    sim.set_faults({"duplicate_notify": 3, "count": 1})
    with Receiver([SUCCESS_XML]) as rec:
        acc, prepay = _prepay(sim, rec.url)
        assert sim.pay(prepay)["notify_copies"] == 3
        state = sim.wait_notified("o_1", timeout=5)
    assert len(rec.bodies) == 3 and len(set(rec.bodies)) == 1
    assert state["notify"]["successes"] == 3
    assert sim.faults() == {}


def test_concurrent_notifications(sim):
    inflight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow_success(body):
        with lock:
            inflight["now"] += 1
            inflight["max"] = max(inflight["max"], inflight["now"])
        time.sleep(0.2)
        with lock:
            inflight["now"] -= 1
        return SUCCESS_XML

    requests.post(sim.url + "/sim/faults", json={"concurrent_notify": 50, "count": 1})
    with Receiver([slow_success]) as rec:
        acc, prepay = _prepay(sim, rec.url)
        t0 = time.monotonic()
        sim.pay(prepay)
        state = sim.wait_notified("o_1", timeout=10)
        elapsed = time.monotonic() - t0
    assert len(rec.bodies) == 50 and len(set(rec.bodies)) == 1
    assert state["notify"]["successes"] == 50 and state["notify"]["status"] == "delivered"
    assert inflight["max"] >= 10          # really at the same time
    assert elapsed < 5                    # not 50 x 0.2 s one after the other
    assert parse_notification(acc, rec.bodies[0])["out_trade_no"] == "o_1"


def test_notify_latency(sim):
    sim.set_faults({"notify_latency": 0.3, "count": 1})
    with Receiver([SUCCESS_XML]) as rec:
        _, prepay = _prepay(sim, rec.url)
        t0 = time.monotonic()
        sim.pay(prepay)
        sim.wait_notified("o_1", timeout=5)
        assert time.monotonic() - t0 >= 0.3
        assert len(rec.bodies) == 1


def test_notifications_only_to_loopback(sim):
    _, prepay = _prepay(sim, "http://192.0.2.10/notify")     # TEST-NET, never contacted
    sim.pay(prepay)
    state = sim.wait_notified("o_1", timeout=5)
    assert state["notify"]["status"] == "refused"
    assert "loopback" in state["notify"]["last_reply"]
    assert state["notify"]["log"][0]["status"] is None


def test_verifying_receiver_rejects_a_forgery_and_the_simulator_retries(sim):
    """A receiver holding the wrong key answers FAIL every time: WeChat keeps trying."""
    wrong = Account(APPID, MCH_ID, "f" * 32)

    def answer(body):
        try:
            parse_notification(wrong, body)
            return SUCCESS_XML
        except WxPayError as e:
            return reply_xml(False, e.key)

    with Receiver([answer]) as rec:
        _, prepay = _prepay(sim, rec.url)
        sim.pay(prepay)
        state = sim.wait_notified("o_1", timeout=5)
    assert state["notify"]["status"] == "failed"
    assert from_xml(state["notify"]["last_reply"])["return_msg"] == "e.weixin.sign.invalid"
