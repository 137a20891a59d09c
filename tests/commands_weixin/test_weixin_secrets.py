"""pay_key and appsecret appear in no output, error, log line or stored order.

Runs every weixin flow itself (``_flows``), in any order with the other tests, while
capturing stdout/stderr of every command, every log record of every logger, the
process's own file descriptors, and the store.  Every other test of this folder gets
the same check of what it recorded and stored from conftest.py (``records`` and
``pytest_runtest_call``)."""
from __future__ import annotations

import logging

import requests

from wxpay.sign import sign
from wxpay.xmlcodec import to_xml

from .conftest import (APPID, APPSECRET, MCH_ID, OPENID, PAY_KEY, make_order, run,
                       stored_texts, write_file)


def _flows(sh, store, sim, receiver):
    run(sh, "weixin xxx info")
    run(sh, "weixin --help")
    pay = ('{"body":"x","out_trade_no":"S1","total_fee":1,"openid":"' + OPENID
           + '","spbill_create_ip":"127.0.0.1"}')
    run(sh, "weixin xxx pay", pay)
    run(sh, "weixin xxx pay -json", pay)
    sh.env["JSON"] = pay
    run(sh, f"echo $JSON | weixin xxx pay | httpc POST {sim.url}/pay/unifiedorder "
            f"| weixin xxx payre")
    run(sh, f"echo $JSON | weixin xxx pay | httpc -h POST {sim.url}/pay/unifiedorder")
    # submit, pay, notification, query
    order = make_order(store, "s1")
    run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 -openid {OPENID}")
    run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 -openid {OPENID}")
    o = store.get(order.id)
    requests.post(sim.url + "/sim/pay", json={"prepay_id": o["pay_remap"]["prepay_id"]},
                  timeout=5).raise_for_status()
    sim.wait_notified(o["pay_out_trade_no"], timeout=10)
    run(sh, f"weixin xxx order -query {order.id}")
    run(sh, f"weixin xxx order -submit {order.id} -client_ip 127.0.0.1 -openid {OPENID}")
    # forged notifications
    n = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH_ID, "nonce_str": "n",
         "result_code": "SUCCESS", "out_trade_no": o["pay_out_trade_no"],
         "transaction_id": "42", "total_fee": "1"}
    for body in (to_xml(n), to_xml(dict(n, sign="BAD")),
                 to_xml(dict(n, sign=sign(n, PAY_KEY))),
                 "<!DOCTYPE x><xml/>", "garbage"):
        req = write_file(store, "/home/demo/.regapi/tmp/forged", body)
        run(sh, f"weixin xxx order -result id:{req.id}")
        requests.post(receiver.url, data=body.encode(), timeout=10)
    # upstream faults
    order2 = make_order(store, "s2")
    for faults in ({"html": True}, {"bad_sign": True}, {"return_fail": True},
                   {"systemerror": True}, {"http_status": 500}, {"garbage": True}):
        sim.set_faults(faults)
        run(sh, f"weixin xxx order -submit {order2.id} -client_ip 127.0.0.1 "
                f"-openid {OPENID}")
    sim.clear_faults()
    run(sh, f"weixin xxx order -submit {order2.id} -client_ip 127.0.0.1 -openid other")
    # broken wxconf variants that hold the secrets
    for text in ("{pay_key: '" + PAY_KEY + "', appsecret: '" + APPSECRET + "'",
                 "pay_key " + PAY_KEY + " appsecret " + APPSECRET,
                 "appID: x y\npay_mch_id: 1\npay_key: '" + PAY_KEY
                 + "'\npay_time_expire: -1\nappsecret: '" + APPSECRET + "'\n",
                 "appID: wx1\npay_mch_id: 1\npay_key: '" + PAY_KEY
                 + "'\npay_sign_type: RSA\n"):
        write_file(store, "/home/demo/.weixin/bad/wxconf", text)
        run(sh, "weixin bad info")
        run(sh, "weixin bad pay", pay)


def test_secrets_never_leak(sh, store, sim, receiver, records, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    _flows(sh, store, sim, receiver)
    texts = [t for _, t in records]
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    texts += stored_texts(store)       # what the flows stored, except the wxconf objects
    blob = "\n".join(texts)
    assert len(blob) > 10_000          # the flows really produced output
    assert "prepay_id" in blob and "SUCCESS" in blob
    for secret in (PAY_KEY, APPSECRET):
        assert secret not in blob
        assert secret.lower() not in blob.lower()
