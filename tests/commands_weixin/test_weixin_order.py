"""weixin xxx order -submit / -result / -query against the simulator."""
from __future__ import annotations

import json
import time

import pytest
import requests

from wxpay.api import SUCCESS_XML
from wxpay.sign import verify
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import APPID, MCH_ID, OPENID, PAY_KEY, make_order, run, write_file

PAY_FIELDS = ("pay_send", "pay_rexml", "pay_remap", "pay_jsobj", "pay_jsobj_choose",
              "pay_out_trade_no", "pay_prepay_time")


def submit(sh, order, openid=OPENID, extra=""):
    return run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                   f"-openid {openid}{extra}")


def check_jsobj(jsobj):
    assert set(jsobj) == {"appId", "timeStamp", "nonceStr", "package", "signType",
                          "paySign"}
    assert jsobj["appId"] == APPID and jsobj["signType"] == "MD5"
    ts = int(jsobj["timeStamp"])
    assert abs(ts - time.time()) < 60                      # seconds, not ms
    assert jsobj["package"].startswith("prepay_id=")
    assert verify(dict(jsobj, sign=jsobj["paySign"], paySign=None), PAY_KEY)


def test_submit_builds_and_stores_pay_state(sh, store, sim, receiver):
    order = make_order(store)
    status, out, err = submit(sh, order)
    assert status == 0, err
    jsobj = json.loads(out)
    check_jsobj(jsobj)
    # printed as Walnut prints JSON: indented by two, UTF-8 as it is
    assert out == json.dumps(jsobj, ensure_ascii=False, indent=2) + "\n"
    o = store.get(order.id)
    assert o["pay_type"] == "weixin" and o["pay_seq"] == 1
    assert o["pay_out_trade_no"] == f"{order.id}_1"
    assert o["pay_send"]["out_trade_no"] == f"{order.id}_1"
    assert o["pay_send"]["total_fee"] == "888" and "sign" not in o["pay_send"]
    assert o["pay_send"]["body"] == "测试订单" and o["pay_send"]["openid"] == OPENID
    assert o["pay_remap"]["result_code"] == "SUCCESS"
    assert jsobj["package"] == "prepay_id=" + o["pay_remap"]["prepay_id"]
    assert from_xml(o["pay_rexml"])["prepay_id"] == o["pay_remap"]["prepay_id"]
    assert o["pay_jsobj"] == jsobj
    choose = o["pay_jsobj_choose"]
    assert choose["timestamp"] == jsobj["timeStamp"] and choose["paySign"] == jsobj["paySign"]
    assert "pay_error" not in o and o["or_status"] == 0
    assert sim.order(f"{order.id}_1")["total_fee"] == 888


WRITES = ("create", "set_meta", "cas", "incr", "write", "append", "move", "delete")


def test_an_accepted_submit_writes_the_order_once(sh, store, sim, monkeypatch):
    """The attempt number (pay_seq) is recorded by the compare-and-set that stores the
    accepted attempt: one synced write per submit, not an increment before the call
    and a second write after it."""
    order = make_order(store)
    writes = []
    for name in WRITES:
        real = getattr(store, name)

        def counted(*a, _real=real, _name=name, **kw):
            writes.append(_name)
            return _real(*a, **kw)
        monkeypatch.setattr(store, name, counted)
    status, out, err = submit(sh, order)
    assert status == 0, err
    assert writes == ["cas"]
    o = store.get(order.id)
    assert o["pay_seq"] == 1 and o["pay_out_trade_no"] == f"{order.id}_1"
    assert json.loads(out) == o["pay_jsobj"]


def test_submit_skips_a_number_wechat_holds_with_other_parameters(sh, store, sim):
    """An attempt that reached WeChat but was never recorded (a crash between the call
    and the write) leaves WeChat holding ``<id>_1`` with other parameters; the next
    submit is answered OUT_TRADE_NO_USED for it and takes the next number."""
    from wxpay.account import Account
    from wxpay.api import build_unifiedorder
    order = make_order(store)
    acct = Account(APPID, MCH_ID, PAY_KEY, notify_url="http://127.0.0.1:9/elsewhere")
    held = build_unifiedorder(acct, {"body": "测试订单", "out_trade_no": f"{order.id}_1",
                                     "total_fee": 1, "openid": OPENID,
                                     "spbill_create_ip": "127.0.0.1"})
    r = requests.post(sim.url + "/pay/unifiedorder", data=to_xml(held).encode(), timeout=5)
    assert "prepay_id" in r.text
    status, out, err = submit(sh, order)
    assert status == 0, err
    o = store.get(order.id)
    assert o["pay_seq"] == 2 and o["pay_out_trade_no"] == f"{order.id}_2"
    assert sim.order(f"{order.id}_2")["total_fee"] == 888
    assert json.loads(out)["package"] == "prepay_id=" + o["pay_remap"]["prepay_id"]
    assert "pay_error" not in o


def test_submit_reuses_jsobj_until_the_order_changes(sh, store, sim):
    order = make_order(store)
    first = json.loads(submit(sh, order)[1])
    again = json.loads(submit(sh, order)[1])
    assert again == first
    assert store.get(order.id)["pay_seq"] == 1
    # the amount changes: a new out_trade_no, a new prepay
    store.set_meta(order.id, {"total_fee": 999})
    status, out, err = submit(sh, order)
    assert status == 0, err
    third = json.loads(out)
    assert third["package"] != first["package"]
    o = store.get(order.id)
    assert o["pay_seq"] == 2 and o["pay_send"]["total_fee"] == "999"
    assert sim.order(f"{order.id}_2")["total_fee"] == 999
    # an old prepay (stale timestamp) is not reused
    store.set_meta(order.id, {"pay_prepay_time": o["pay_prepay_time"] - 3 * 3600_000})
    fourth = json.loads(submit(sh, order)[1])
    assert fourth["package"] != third["package"] and store.get(order.id)["pay_seq"] == 3


def test_submit_pay_val_yuan_and_openid_key(sh, store, sim):
    order = make_order(store, "o2", total_fee=None, openid=None, pay_val="12.30",
                       buyer="oBuyer123")
    status, out, err = submit(sh, order, openid="oBuyer123", extra=" -openid_key buyer")
    assert status == 0, err
    assert store.get(order.id)["pay_send"]["total_fee"] == "1230"


def test_submit_refuses_other_user(sh, store):
    order = make_order(store)
    status, out, err = submit(sh, order, openid="oSomeoneElse")
    assert status == 1 and out == ""
    assert err.startswith("e.cmd.weixin.order.user.nosame")
    assert sh.last_error.kind == "forbidden"
    assert "pay_seq" not in store.get(order.id)


@pytest.mark.parametrize("status_value,key", [(2, "paid"), (3, "cancelled"),
                                              (5, "refunded"), (4, "fulfilled")])
def test_submit_refuses_paid_cancelled_fulfilled(sh, store, status_value, key):
    order = make_order(store, or_status=status_value)
    before = store.get(order.id)
    status, out, err = submit(sh, order)
    assert status == 1 and err.startswith(f"e.cmd.weixin.order.{key}")
    assert sh.last_error.kind == "conflict"
    assert store.get(order.id) == before


@pytest.mark.parametrize("meta", [{"total_fee": 0}, {"total_fee": -100},
                                  {"total_fee": 1.5}, {"total_fee": "12.5"},
                                  {"total_fee": None, "pay_val": "0.001"},
                                  {"total_fee": None, "pay_val": 0},
                                  {"total_fee": None, "pay_val": "-1"},
                                  {"total_fee": None}])
def test_submit_refuses_bad_amounts(sh, store, meta):
    order = make_order(store, **meta)
    before = store.get(order.id)
    status, out, err = submit(sh, order)
    assert status == 1 and out == ""
    assert err.startswith("e.cmd.weixin.order.amount.invalid"), err
    assert store.get(order.id) == before


def test_submit_missing_order_and_usage(sh, store):
    status, _, err = run(sh, "weixin xxx order -submit nosuchid -client_ip 1.2.3.4 "
                             "-openid x")
    assert status == 1 and err.startswith("e.cmd.weixin.order.noexists")
    assert sh.last_error.kind == "not_found"
    order = make_order(store)
    status, _, err = run(sh, f"weixin xxx order -submit {order.id} -openid {OPENID}")
    assert status == 2 and err.startswith("e.cmd.weixin.order.usage")
    status, _, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip notanip "
                             f"-openid {OPENID}")
    assert status == 1 and err.startswith("e.weixin.param.invalid")
    assert "pay_seq" not in store.get(order.id)
    status, _, err = run(sh, "weixin xxx order")
    assert status == 2


def pay_and_wait(sim, store, order, receiver=None):
    o = store.get(order.id)
    prepay = o["pay_remap"]["prepay_id"]
    r = requests.post(sim.url + "/sim/pay", json={"prepay_id": prepay}, timeout=5)
    assert r.status_code == 200, r.text
    snap = sim.wait_notified(o["pay_out_trade_no"], timeout=10)
    return r.json(), snap


def test_full_flow_submit_pay_notify(sh, store, sim, receiver):
    order = make_order(store)
    assert submit(sh, order)[0] == 0
    paid, snap = pay_and_wait(sim, store, order)
    assert snap["notify"]["status"] == "delivered", snap["notify"]
    assert snap["notify"]["last_reply"] == SUCCESS_XML
    o = store.get(order.id)
    assert o["or_status"] == 2
    assert o["pay_result"]["transaction_id"] == paid["transaction_id"]
    assert o["pay_result"]["out_trade_no"] == f"{order.id}_1"
    assert abs(o["pay_time"] - time.time() * 1000) < 60_000
    assert [r[1] for r in receiver.replies] == [SUCCESS_XML]
    # paid: a new submit is refused
    status, _, err = submit(sh, order)
    assert status == 1 and err.startswith("e.cmd.weixin.order.paid")
    # orderquery agrees and changes nothing
    before = store.get(order.id)
    status, out, err = run(sh, f"weixin xxx order -query {order.id}")
    assert status == 0, err
    state = json.loads(out)
    assert state["or_status"] == 2 and state["trade_state"] == "SUCCESS"
    assert state["transaction_id"] == paid["transaction_id"]
    assert store.get(order.id) == before


def test_duplicate_notifications_change_nothing(sh, store, sim, receiver):
    order = make_order(store)
    assert submit(sh, order)[0] == 0
    sim.set_faults({"duplicate_notify": 3})
    pay_and_wait(sim, store, order)
    assert [r[1] for r in receiver.replies] == [SUCCESS_XML] * 3
    o = store.get(order.id)
    assert o["or_status"] == 2
    first_time = o["pay_time"]
    # replaying the stored notification again: SUCCESS, nothing changes
    req = write_file(store, "/home/demo/.regapi/tmp/replay", to_xml(o["pay_result"]))
    status, out, err = run(sh, f"weixin xxx order -result id:{req.id}")
    assert (status, out) == (0, SUCCESS_XML), err
    after = store.get(order.id)
    assert after["pay_time"] == first_time and after["lm"] == o["lm"]


def test_query_marks_paid_when_no_notification_came(sh, store, sim, receiver):
    order = make_order(store)
    assert submit(sh, order)[0] == 0
    status, out, err = run(sh, f"weixin xxx order -query {order.id}")
    assert status == 0, err
    assert json.loads(out)["trade_state"] == "NOTPAY"
    assert store.get(order.id)["or_status"] == 0
    sim.set_faults({"notify_latency": 1.0})
    o = store.get(order.id)
    requests.post(sim.url + "/sim/pay", json={"prepay_id": o["pay_remap"]["prepay_id"]},
                  timeout=5).raise_for_status()
    status, out, err = run(sh, f"weixin xxx order -query id:{order.id}")
    assert status == 0, err
    state = json.loads(out)
    assert state["trade_state"] == "SUCCESS" and state["or_status"] == 2
    paid = store.get(order.id)
    assert paid["or_status"] == 2 and paid["pay_result"]["trade_state"] == "SUCCESS"
    # the late notification is then a duplicate: SUCCESS, nothing changed
    snap = sim.wait_notified(f"{order.id}_1", timeout=10)
    assert snap["notify"]["status"] == "delivered"
    assert receiver.replies[-1][1] == SUCCESS_XML
    assert store.get(order.id)["pay_time"] == paid["pay_time"]


def test_query_unsubmitted_order(sh, store, sim):
    order = make_order(store)
    status, out, err = run(sh, f"weixin xxx order -query {order.id}")
    assert status == 0, err
    assert json.loads(out)["trade_state"] == "NOTPAY"


def test_hmac_sha256_account_full_flow(store, sim, receiver):
    from wnshell.session import Session

    from .conftest import install_wxconf
    install_wxconf(store, sim.url, receiver.url, extra="pay_sign_type : 'HMAC-SHA256'\n")
    sh = Session(store, user="demo")
    order = make_order(store)
    status, out, err = submit(sh, order)
    assert status == 0, err
    jsobj = json.loads(out)
    assert jsobj["signType"] == "HMAC-SHA256"
    fields = dict(jsobj, sign=jsobj["paySign"], paySign=None)
    assert verify(fields, PAY_KEY, "HMAC-SHA256")
    assert store.get(order.id)["pay_send"]["sign_type"] == "HMAC-SHA256"
    _, snap = pay_and_wait(sim, store, order)
    assert snap["notify"]["status"] == "delivered"
    assert store.get(order.id)["or_status"] == 2


def test_order_expi_sets_time_expire_and_expired_orders_are_refused(sh, store, sim):
    from wxpay.api import beijing_stamp
    expi = int(time.time() * 1000) + 30 * 60_000
    order = make_order(store, order_expi=expi)
    status, out, err = submit(sh, order)
    assert status == 0, err
    assert store.get(order.id)["pay_send"]["time_expire"] == beijing_stamp(expi / 1000)
    old = make_order(store, "old", order_expi=int(time.time() * 1000) - 1000)
    before = store.get(old.id)
    status, out, err = submit(sh, old)
    assert status == 1 and err.startswith("e.cmd.weixin.order.expired")
    assert store.get(old.id) == before


def test_help_pages(sh):
    status, out, _ = run(sh, "weixin --help")
    assert status == 0 and "order -result id:REQ" in out and "exit status" in out.lower()
    status, out, _ = run(sh, "httpc --help")
    assert status == 0 and "EXIT STATUS" in out


# ---- the order's life: expi, body bytes, time_expire, NATIVE (issue 11) -------------
def _pay_and_wait(sim, otn):
    sim.pay(out_trade_no=otn)
    return sim.wait_notified(otn, timeout=10)


def test_a_paid_temporary_order_never_expires(sh, store, sim, receiver):
    """Walnut's temporary orders carry expi; payment sets it to null (kept forever)."""
    order = make_order(store, "tmp1")
    store.set_meta(order.id, {"expi": int(time.time() * 1000) + 3 * 3600_000})
    status, out, err = submit(sh, order)
    assert status == 0, err
    snap = _pay_and_wait(sim, f"{order.id}_1")
    assert snap["notify"]["status"] == "delivered"
    o = store.get(order.id)
    assert o["or_status"] == 2 and "expi" not in o


def test_query_clears_expi_too(sh, store, sim):
    order = make_order(store, "tmp2")
    store.set_meta(order.id, {"expi": int(time.time() * 1000) + 3 * 3600_000})
    assert submit(sh, order)[0] == 0
    sim.pay(out_trade_no=f"{order.id}_1")        # notify_url answers: no matter
    status, out, err = run(sh, f"weixin xxx order -query {order.id}")
    assert status == 0, err
    o = store.get(order.id)
    assert o["or_status"] == 2 and "expi" not in o


def test_submit_keeps_expi_beyond_the_time_expire_it_sent(sh, store, sim):
    from commands.weixin.common import EXPI_AFTER_PAY_WINDOW_MS, from_beijing
    order = make_order(store, "tmp3")
    soon = int(time.time() * 1000) + 60_000          # would vanish before time_expire
    store.set_meta(order.id, {"expi": soon})
    status, out, err = submit(sh, order)
    assert status == 0, err
    o = store.get(order.id)
    sent = from_beijing(o["pay_send"]["time_expire"])
    assert o["expi"] >= sent + EXPI_AFTER_PAY_WINDOW_MS
    # an order without expi gets none
    plain = make_order(store, "tmp4")
    assert submit(sh, plain)[0] == 0
    assert "expi" not in store.get(plain.id)


def test_long_body_is_cut_to_127_utf8_bytes(sh, store, sim):
    order = make_order(store, "long", title="订" * 60)     # 180 bytes
    status, out, err = submit(sh, order)
    assert status == 0, err
    body = store.get(order.id)["pay_send"]["body"]
    assert body == "订" * 42 and len(body.encode("utf-8")) == 126
    assert sim.order(f"{order.id}_1")["state"] == "NOTPAY"


def test_order_expi_less_than_five_minutes_is_refused_with_wechats_reason(sh, store, sim):
    order = make_order(store, "short", order_expi=int(time.time() * 1000) + 3 * 60_000)
    status, out, err = submit(sh, order)
    assert status != 0 and err.startswith("e.cmd.weixin.order.expired")
    assert "time_expire时间过短，刷卡至少1分钟，其他5分钟" in err and err.count("\n") == 1
    assert "pay_seq" not in store.get(order.id)


def test_native_submit_prints_code_url(sh, store, sim):
    """For a checkout page's QR code: {trade_type, code_url, out_trade_no, prepay_id,
    time_expire, total_fee}, stored as pay_native; no openid needed."""
    order = make_order(store, "qr", openid=None, product_id="sku-1")
    status, out, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                               "-trade_type NATIVE")
    assert status == 0, err
    native = json.loads(out)
    assert native["trade_type"] == "NATIVE" and native["total_fee"] == 888
    assert native["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert native["out_trade_no"] == f"{order.id}_1"
    o = store.get(order.id)
    assert o["pay_native"] == native and o["pay_send"]["product_id"] == "sku-1"
    assert "openid" not in o["pay_send"] and "pay_jsobj" not in o
    # reused while valid
    again = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                    "-trade_type NATIVE")
    assert json.loads(again[1]) == native and store.get(order.id)["pay_seq"] == 1
    bad = run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 "
                  "-trade_type APP")
    assert bad[0] == 2 and "-trade_type" in bad[2]


# ---- -client_ip must be an IP address, also when a stored pay_jsobj is reused ----------
@pytest.mark.parametrize("ip", ["not-an-ip", "1.2.3.4; rm -rf ~", "1.2.3.4\n", "1" * 100])
def test_bad_client_ip_is_refused_even_on_reuse(sh, store, ip):
    order = make_order(store)
    submit = "weixin xxx order -submit $O -client_ip $IP -openid $U"
    ok = sh.run(submit, "", template_vars={"O": order.id, "IP": "127.0.0.1", "U": OPENID})
    assert ok[0] == 0, ok
    before = store.get(order.id)
    status, out, err = sh.run(submit, "", template_vars={"O": order.id, "IP": ip,
                                                          "U": OPENID})
    assert status == 1 and out == ""
    assert err.startswith("e.weixin.param.invalid : "), err
    assert err.count("\n") == 1
    assert store.get(order.id) == before


@pytest.mark.parametrize("ip", ["::1", "2001:db8::1", "10.0.0.7"])
def test_ipv4_and_ipv6_client_ips_are_fine(sh, store, ip):
    order = make_order(store)
    status, _, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip {ip} "
                             f"-openid {OPENID}")
    assert status == 0, err


@pytest.mark.parametrize("value", [
    {"a": "x", "n": 5}, {"q": 'say "hi"\\ \n\t\u2028中文', "neg": -1}, {},
    {"a": True}, {"a": None}, {"a": 1.5}, {"a": [1, {"b": "c"}]}, {1: "x"}, [1, "2"], "s"])
def test_json_is_printed_as_json_dumps_indents_it(value):
    import io

    from commands.weixin.common import write_json
    buf = io.StringIO()
    write_json(buf, value)
    assert buf.getvalue() == json.dumps(value, ensure_ascii=False, indent=2) + "\n"
