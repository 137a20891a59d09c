"""weixin pay / payre, and the seed's pipeline against the simulator."""
from __future__ import annotations

import json
import time

import pytest

from wxpay.api import beijing_stamp
from wxpay.sign import sign, verify
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import APPID, MCH_ID, OPENID, PAY_KEY, make_order, run, write_file

PAY_JSON = ('{"body":"测试商品","out_trade_no":"T%s","total_fee":888,'
            '"openid":"' + OPENID + '","spbill_create_ip":"127.0.0.1"}')


def _pay_json(tag=None):
    return PAY_JSON % (tag or str(time.time_ns())[-12:])


def test_pay_prints_signed_xml(sh, receiver):
    status, out, err = run(sh, "weixin xxx pay", _pay_json("1"))
    assert status == 0, err
    fields = from_xml(out.strip())
    assert verify(fields, PAY_KEY)
    assert fields["appid"] == APPID and fields["mch_id"] == MCH_ID
    assert fields["trade_type"] == "JSAPI" and fields["device_info"] == "WEB"
    assert fields["notify_url"] == receiver.url
    assert fields["total_fee"] == "888" and fields["body"] == "测试商品"
    assert fields["out_trade_no"] == "T1"
    # time_expire = now + pay_time_expire (10 min), Beijing time
    now = time.time()
    assert beijing_stamp(now + 9 * 60) <= fields["time_expire"] <= beijing_stamp(now + 11 * 60)
    assert len(fields["nonce_str"]) <= 32


def test_pay_json_output_argument_and_lenient_input(sh):
    lenient = ("{body: 'x', out_trade_no: 'T2', total_fee: 100, openid: '" + OPENID
               + "', spbill_create_ip: '10.0.0.1', time_expire: '20991231235959'}")
    status, out, err = run(sh, f"weixin xxx pay -json \"{lenient}\"")
    assert status == 0, err
    data = json.loads(out)
    assert data["time_expire"] == "20991231235959" and verify(data, PAY_KEY)
    status, out2, err = run(sh, f"weixin xxx pay \"{lenient}\" -json")
    assert status == 0, err
    assert json.loads(out2)["out_trade_no"] == "T2"


def test_pay_input_from_object_and_order_expi(sh, store):
    write_file(store, "/home/demo/pay.json", _pay_json("3"))
    expi = int(time.time() * 1000) + 3600_000
    order = make_order(store, "expi", order_expi=expi)
    status, out, err = run(sh, f"weixin xxx pay ~/pay.json -order id:{order.id}")
    assert status == 0, err
    fields = from_xml(out.strip())
    assert fields["out_trade_no"] == "T3"
    assert fields["time_expire"] == beijing_stamp(expi / 1000)


def test_pay_order_expiring_within_a_minute_is_refused_like_submit(sh, store):
    """`pay -order` and `order -submit` share one rule: WeChat wants time_expire at
    least a minute away, so an order expiring sooner is expired (409) for both."""
    write_file(store, "/home/demo/pay.json", _pay_json("5"))
    order = make_order(store, "soon", order_expi=int(time.time() * 1000) + 20_000)
    status, out, err = run(sh, f"weixin xxx pay ~/pay.json -order id:{order.id}")
    assert (status, out) == (1, "") and err.startswith("e.cmd.weixin.order.expired : ")
    assert sh.last_error.kind == "conflict"


def test_pay_refuses_bad_amounts_and_input(sh):
    for fee in ("0", "-5", "1.5", "\"abc\""):
        text = PAY_JSON.replace("888", fee) % "4"
        status, out, err = run(sh, "weixin xxx pay", text)
        assert status == 1 and out == "", (fee, err)
        assert err.startswith("e.weixin.money.invalid"), err
    status, out, err = run(sh, "weixin xxx pay", "not json at all {")
    assert status == 1 and err.startswith("e.cmd.weixin.input.invalid")
    status, out, err = run(sh, "weixin xxx pay", "")
    assert status == 1 and err.startswith("e.cmd.weixin.input.invalid")


def test_seed_pipeline(sh, sim):
    sh.env["JSON"] = _pay_json("5")
    status, out, err = run(
        sh, f"echo $JSON | weixin xxx pay | httpc POST {sim.url}/pay/unifiedorder "
            f"| weixin xxx payre")
    assert status == 0, err
    data = json.loads(out)
    assert data["return_code"] == "SUCCESS" and data["result_code"] == "SUCCESS"
    assert data["prepay_id"] and data["appid"] == APPID
    assert sim.order("T5")["state"] == "NOTPAY"


def test_payre_rejects_forged_and_failed_replies(sh, sim):
    good = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID,
            "mch_id": MCH_ID, "nonce_str": "abc", "result_code": "SUCCESS",
            "trade_type": "JSAPI", "prepay_id": "wx201410272009395522657a690389285100"}
    signed = dict(good, sign=sign(good, PAY_KEY))
    status, out, err = run(sh, "weixin xxx payre", to_xml(signed))
    assert status == 0, err
    assert json.loads(out)["prepay_id"] == good["prepay_id"]
    cases = {
        "bad sign": (dict(signed, prepay_id="wx_other"), "e.weixin.sign.invalid"),
        "no sign": (good, "e.weixin.sign.invalid"),
        "other key": (dict(good, sign=sign(good, "0" * 32)), "e.weixin.sign.invalid"),
        "FAIL": ({"return_code": "FAIL", "return_msg": "签名错误"}, "e.weixin.return.fail"),
    }
    other_app = dict(good, appid="wx_someone_else")
    cases["appid"] = (dict(other_app, sign=sign(other_app, PAY_KEY)),
                      "e.weixin.reply.appid_mismatch")
    failed = dict(good, result_code="FAIL", err_code="ORDERPAID", err_code_des="paid")
    failed.pop("prepay_id")
    cases["result FAIL"] = (dict(failed, sign=sign(failed, PAY_KEY)),
                            "e.weixin.err.ORDERPAID")
    for name, (fields, key) in cases.items():
        status, out, err = run(sh, "weixin xxx payre", to_xml(fields))
        assert status == 1 and out == "", name
        assert err.startswith(key + " : "), (name, err)
        assert err.count("\n") == 1
    xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           '<xml><return_code>&e;</return_code></xml>')
    status, out, err = run(sh, "weixin xxx payre", xxe)
    assert status == 1 and err.startswith("e.weixin.xml.invalid")


def test_payre_reads_request_object(sh, store):
    n = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID, "nonce_str": "n1",
         "result_code": "SUCCESS", "out_trade_no": "abc_1", "transaction_id": "4200001",
         "total_fee": "1", "openid": OPENID}
    req = write_file(store, "/home/demo/.regapi/tmp/r1", to_xml(dict(n, sign=sign(n, PAY_KEY))))
    status, out, err = run(sh, f"weixin xxx payre id:{req.id} -SUCCESS")
    assert status == 0, err
    assert json.loads(out)["transaction_id"] == "4200001"


def test_pay_refuses_what_wechat_refuses_with_wechats_reason(sh):
    data = json.loads(_pay_json("b1"))
    status, out, err = run(sh, "weixin xxx pay", json.dumps(dict(data, body="测" * 43)))
    assert status != 0 and "body参数长度有误" in err and err.count("\n") == 1
    soon = beijing_stamp(time.time() + 4 * 60)
    status, out, err = run(sh, "weixin xxx pay", json.dumps(dict(data, time_expire=soon)))
    assert status != 0 and "time_expire时间过短，刷卡至少1分钟，其他5分钟" in err


def test_pay_trade_type_native_and_mweb(sh):
    data = json.loads(_pay_json("n1"))
    del data["openid"]
    status, out, err = run(sh, "weixin xxx pay -trade_type NATIVE", json.dumps(data))
    assert status != 0 and "product_id" in err
    status, out, err = run(sh, "weixin xxx pay -trade_type NATIVE -json",
                           json.dumps(dict(data, product_id="p1")))
    assert status == 0, err
    fields = json.loads(out)
    assert fields["trade_type"] == "NATIVE" and fields["product_id"] == "p1"
    scene = '{"h5_info":{"type":"Wap","wap_url":"https://m.example.com","wap_name":"m"}}'
    status, out, err = run(sh, "weixin xxx pay -trade_type MWEB",
                           json.dumps(dict(data, scene_info=scene)))
    assert status == 0, err
    assert from_xml(out.strip())["trade_type"] == "MWEB"
    status, out, err = run(sh, "weixin xxx pay -trade_type APP", json.dumps(data))
    assert status != 0


@pytest.mark.parametrize("stdin", ["[" * 100_000, '{"body":' + "[" * 100_000])
def test_deeply_nested_pay_input_is_bad_input(sh, stdin):
    status, out, err = run(sh, "weixin xxx pay", stdin)
    assert status == 1 and out == ""
    assert err.startswith("e.cmd.weixin.input.invalid : "), err
    assert err.count("\n") == 1
