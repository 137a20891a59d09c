"""End to end on a WeChat Pay **v3** account: ``wnshell serve`` (2 workers, SQLite, its
sweeper) runs the seed's ``.regapi`` templates unchanged; the combined ``wxpay-sim``
(its v3 side) stands in for WeChat in this process.  Forged notifications are built
here with WeChat's own platform key (the simulator's), so each one fails for exactly
the reason its name says -- the same builder, unforged, pays an order."""
from __future__ import annotations

import json
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from objstore import open_store
from regapi.demo import free_port, setup_store_v3
from tests.e2e import served
from tests.e2e.served import wait_for
from wxpay.simulator import Simulator
from wxpay.v3.auth import signature_headers
from wxpay.v3.crypto import aes_gcm_encrypt, private_pem, public_pem, serial_hex
from wxpay.v3.simkeys import new_certificate, new_key

USER = "demo"
JSON = {"http-header-Content-Type": "application/json"}
EXTRA_APIS = {
    "close": "weixin xxx order -close ${http-qs-id}\n",
    "query": "weixin xxx order -query ${http-qs-id}\n",
    "refundquery": "weixin xxx refund -query ${http-qs-id}\n",
}


class V3Served:
    pass


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("v3")
    s = V3Served()
    s.appid, s.mchid = "wx" + secrets.token_hex(8), "1900000733"
    s.apiv3_key = secrets.token_hex(16)
    s.refund_token = secrets.token_urlsafe(24)      # the refund API is staff only
    s.key = new_key()
    s.key_pem = private_pem(s.key)
    s.serial = serial_hex(new_certificate(s.key, common_name="merchant"))
    s.sim = Simulator(tls=False, retry_schedule=(0.1, 0.2, 0.5))
    s.sim.add_v3_merchant(s.mchid, [s.appid], public_pem(s.key), s.serial, s.apiv3_key)
    s.sim.v3.refund_delay = 0.05
    s.sim.start()
    s.port = free_port()
    s.base = f"http://127.0.0.1:{s.port}"
    s.store_url = f"sqlite://{tmp / 'store.db'}"
    s.store = open_store(s.store_url)
    s.o1 = setup_store_v3(s.store, {
        "appid": s.appid, "mch_id": s.mchid, "apiv3_key": s.apiv3_key, "serial": s.serial,
        "notify_url": f"{s.base}/api/{USER}/payresult",
        "refund_notify_url": f"{s.base}/api/{USER}/refundresult", "api_base": s.sim.url},
        s.key_pem, "o" + secrets.token_hex(8), refund_token=s.refund_token)
    for name, text in EXTRA_APIS.items():
        s.store.create(f"/home/{USER}/.regapi/api/{name}", "FILE", JSON, parents=True,
                       content=text.encode())
    s.tmp = tmp
    served.spawn(s, ("--workers", "2", "--sweep", "0.5"))
    s.answers = []                      # every response body this module saw
    yield s
    s.http.close()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=20) == 0
    s.sim.stop()
    s.store.close()


def _get(s, path, **params):
    staff = {"Authorization": f"Bearer {s.refund_token}"} if path.endswith("/refund") else {}
    r = s.http.get(s.base + path, params=params, headers=staff, timeout=30)
    s.answers.append(r.content)
    return r


def _order(s, name, fee=888):
    openid = "o" + secrets.token_hex(8)
    o = s.store.create(f"/home/{USER}/orders/{name}", "FILE",
                       {"openid": openid, "total_fee": fee, "or_status": 0, "title": name},
                       parents=True)
    return o, openid


def _submit(s, name, fee=888):
    o, openid = _order(s, name, fee)
    r = _get(s, f"/api/{USER}/pay", id=o["id"], openid=openid)
    assert r.status_code == 200, r.text
    return o, r.json()


def test_the_seeds_templates_pay_an_order_on_v3(srv):
    from wxpay.v3.crypto import rsa_verify
    o = srv.o1
    r = _get(srv, f"/api/{USER}/pay", id=o["id"], openid=o["openid"])
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    js = r.json()
    assert js["signType"] == "RSA" and js["appId"] == srv.appid
    msg = f"{js['appId']}\n{js['timeStamp']}\n{js['nonceStr']}\n{js['package']}\n"
    assert rsa_verify(srv.key.public_key(), msg, js["paySign"])
    paid = srv.sim.v3.pay(prepay_id=js["package"][len("prepay_id="):])
    snap = srv.sim.v3.wait_notified(paid["out_trade_no"], timeout=20)
    assert snap["status"] == "delivered" and [a["status"] for a in snap["log"]] == [204]
    fresh = srv.store.get(o["id"])
    assert fresh["or_status"] == 2
    assert fresh["pay_result"]["transaction_id"] == paid["transaction_id"]
    # the platform certificates the server fetched are cached beside the wxconf
    cache = srv.store.fetch(f"/home/{USER}/.weixin/xxx/platform_certs.json")
    assert cache is not None and b"BEGIN CERTIFICATE" in srv.store.read(cache["id"])
    r = _get(srv, f"/api/{USER}/query", id=o["id"])
    assert r.status_code == 200 and r.json()["trade_state"] == "SUCCESS"


# ---- forged notifications ------------------------------------------------------------------
def _plain(s, o, prepay_total=888, **over):
    t = {"appid": s.appid, "mchid": s.mchid, "out_trade_no": f"{o['id']}_1",
         "transaction_id": "4200" + "".join(secrets.choice("0123456789") for _ in range(24)),
         "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
         "bank_type": "OTHERS", "success_time": "2026-01-01T10:00:00+08:00",
         "payer": {"openid": o["openid"]},
         "amount": {"total": prepay_total, "payer_total": prepay_total, "currency": "CNY",
                    "payer_currency": "CNY"}}
    t.update(over)
    return t


def _forge(s, plain, *, sign_key=None, serial=None, ts=None, tamper=False,
           event="TRANSACTION.SUCCESS", original="transaction"):
    key, cert = s.sim.v3._platform[-1]           # WeChat's own platform key
    nonce = secrets.token_hex(6)
    ct = aes_gcm_encrypt(s.apiv3_key, nonce, json.dumps(plain).encode(), original)
    if tamper:
        ct = ct[:10] + ("A" if ct[10] != "A" else "B") + ct[11:]
    body = json.dumps({"id": "EV-" + secrets.token_hex(8),
                       "create_time": "2026-01-01T10:00:00+08:00",
                       "resource_type": "encrypt-resource", "event_type": event,
                       "summary": "支付成功",
                       "resource": {"original_type": original,
                                    "algorithm": "AEAD_AES_256_GCM", "ciphertext": ct,
                                    "associated_data": original, "nonce": nonce}},
                      ensure_ascii=False).encode()
    headers = signature_headers(sign_key or key, serial or serial_hex(cert), body,
                                timestamp=int(ts if ts is not None else time.time()))
    return headers, body


def _post_notification(s, headers, body, api="payresult"):
    r = s.http.post(f"{s.base}/api/{USER}/{api}", data=body,
                    headers=dict(headers, **{"Content-Type": "application/json"}), timeout=30)
    s.answers.append(r.content)
    return r


def test_forged_notifications_are_4xx_and_change_nothing(srv):
    o, _js = _submit(srv, "forged")
    o = srv.store.get(o["id"])
    before = dict(o)
    stranger = new_key()
    cases = {
        "bad signature": _forge(srv, _plain(srv, o), sign_key=stranger),
        "unknown serial": _forge(srv, _plain(srv, o), sign_key=stranger,
                                 serial=format(secrets.randbits(159) | (1 << 158), "X")),
        "stale timestamp": _forge(srv, _plain(srv, o), ts=time.time() - 400),
        "future timestamp": _forge(srv, _plain(srv, o), ts=time.time() + 400),
        "tampered ciphertext": _forge(srv, _plain(srv, o), tamper=True),
        "wrong mchid": _forge(srv, _plain(srv, o, mchid="1900000999")),
        "wrong appid": _forge(srv, _plain(srv, o, appid="wx0000000000000bad")),
        "wrong amount": _forge(srv, _plain(srv, o, prepay_total=1)),
        "wrong out_trade_no": _forge(srv, _plain(srv, o, out_trade_no=f"{o['id']}_9")),
    }
    for name, (headers, body) in cases.items():
        r = _post_notification(srv, headers, body)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        doc = r.json()
        assert doc["code"] == "FAIL" and doc["message"], name
        fresh = srv.store.get(o["id"])
        assert fresh["or_status"] == 0 and "pay_result" not in fresh, name
        assert {k: fresh.get(k) for k in before} == before, name
    # the same builder, unforged: pays the order (so each refusal above was for its
    # reason, not for a broken builder)
    headers, body = _forge(srv, _plain(srv, o))
    r = _post_notification(srv, headers, body)
    assert r.status_code == 204 and r.content == b""
    assert srv.store.get(o["id"])["or_status"] == 2
    # and again: a duplicate, 204, nothing changes
    paid = srv.store.get(o["id"])
    r = _post_notification(srv, headers, body)
    assert r.status_code == 204
    assert srv.store.get(o["id"])["pay_time"] == paid["pay_time"]


def test_fifty_concurrent_duplicates_one_transition(srv):
    o, js = _submit(srv, "dup50")
    srv.sim.v3.set_faults({"concurrent_notify": 50, "count": 1})
    paid = srv.sim.v3.pay(prepay_id=js["package"][len("prepay_id="):])
    assert paid["notify_copies"] == 50
    snap = srv.sim.v3.wait_notified(paid["out_trade_no"], timeout=60)
    firsts = [a for a in snap["log"] if a["n"] == 1]
    assert len(firsts) == 50 and all(a["ok"] and a["status"] == 204 for a in firsts)
    fresh = srv.store.get(o["id"])
    assert fresh["or_status"] == 2 and "pay_result_extra" not in fresh
    assert served.log_count(srv, f"order {o['id']} paid") == 1


def test_fifty_concurrent_forged_duplicates_in_parallel_one_transition(srv):
    o, _js = _submit(srv, "dup50b")
    o = srv.store.get(o["id"])
    headers, body = _forge(srv, _plain(srv, o))

    def one(_):
        with requests.Session() as h:
            h.trust_env = False
            return h.post(f"{srv.base}/api/{USER}/payresult", data=body,
                          headers=headers, timeout=60).status_code
    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(one, range(50)))
    assert codes == [204] * 50
    assert served.log_count(srv, f"order {o['id']} paid") == 1


def test_refunds_close_and_the_sweeper_on_v3(srv):
    o, js = _submit(srv, "life")
    srv.sim.v3.pay(prepay_id=js["package"][len("prepay_id="):])
    wait_for(lambda: srv.store.get(o["id"]).get("or_status") == 2)
    r = _get(srv, f"/api/{USER}/refund", id=o["id"], fee=300)
    assert r.status_code == 200, r.text
    assert r.json()["out_refund_no"] == f"{o['id']}_r1"
    wait_for(lambda: (srv.store.get(o["id"]).get("pay_refunded") or 0) == 300)
    r = _get(srv, f"/api/{USER}/refund", id=o["id"], fee=600)
    assert r.status_code == 409 and "e.cmd.weixin.refund.exceeds" in r.text
    r = _get(srv, f"/api/{USER}/refund", id=o["id"], fee=588)
    assert r.status_code == 200, r.text
    wait_for(lambda: srv.store.get(o["id"]).get("or_status") == 5)
    r = _get(srv, f"/api/{USER}/refundquery", id=o["id"])
    assert r.status_code == 200 and r.json()["pay_refunded"] == 888
    # close over HTTP; ORDERPAID for a paid one
    c, _ = _submit(srv, "toclose")
    r = _get(srv, f"/api/{USER}/close", id=c["id"])
    assert r.status_code == 200 and r.json()["closed"] == [f"{c['id']}_1"]
    r = _get(srv, f"/api/{USER}/close", id=o["id"])
    assert r.status_code == 409 and "ORDERPAID" in r.text
    # the server's sweeper: a lost notification applied, an expired order closed
    late, ljs = _submit(srv, "late")
    unpaid, _ = _submit(srv, "unpaid")
    srv.sim.v3.set_faults({"notify_latency": 600, "count": 1})
    srv.sim.v3.pay(prepay_id=ljs["package"][len("prepay_id="):])
    past = int(time.time() * 1000) - 1000
    for x in (late, unpaid):
        srv.store.set_meta(x["id"], {"pay_expire_at": past})
    wait_for(lambda: srv.store.get(late["id"]).get("or_status") == 2)
    wait_for(lambda: srv.store.get(unpaid["id"]).get("pay_closed"))
    assert srv.sim.v3.order(f"{unpaid['id']}_1")["trade_state"] == "CLOSED"


def test_forged_refund_notifications_are_4xx_and_change_nothing(srv):
    o, js = _submit(srv, "rforged")
    srv.sim.v3.pay(prepay_id=js["package"][len("prepay_id="):])
    wait_for(lambda: srv.store.get(o["id"]).get("or_status") == 2)
    srv.sim.v3.refund_delay = 600                # WeChat's own notification comes late
    try:
        r = _get(srv, f"/api/{USER}/refund", id=o["id"], fee=100)
        assert r.status_code == 200, r.text
    finally:
        srv.sim.v3.refund_delay = 0.05
    before = srv.store.get(o["id"])
    pr = before["pay_result"]
    assert before["pay_refunds"][0]["status"] == "PROCESSING"

    def plain(**over):
        r = {"mchid": srv.mchid, "out_trade_no": pr["out_trade_no"],
             "transaction_id": pr["transaction_id"], "out_refund_no": f"{o['id']}_r1",
             "refund_id": "50300000000000000000000001", "refund_status": "SUCCESS",
             "success_time": "2026-01-01T10:00:00+08:00",
             "user_received_account": "支付用户零钱",
             "amount": {"total": 888, "refund": 100, "payer_total": 888,
                        "payer_refund": 100}}
        r.update(over)
        return r
    kw = {"event": "REFUND.SUCCESS", "original": "refund"}
    cases = {
        "bad signature": _forge(srv, plain(), sign_key=new_key(), **kw),
        "stale timestamp": _forge(srv, plain(), ts=time.time() - 400, **kw),
        "tampered ciphertext": _forge(srv, plain(), tamper=True, **kw),
        "wrong mchid": _forge(srv, plain(mchid="1900000999"), **kw),
        "wrong amount": _forge(srv, plain(amount={"total": 888, "refund": 888,
                                                  "payer_total": 888,
                                                  "payer_refund": 888}), **kw),
        "another transaction": _forge(srv, plain(transaction_id="4200000000000000000000000001"),
                                      **kw),
        "a payment event": _forge(srv, _plain(srv, srv.store.get(o["id"]))),
    }
    for name, (headers, body) in cases.items():
        r = _post_notification(srv, headers, body, "refundresult")
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert r.json()["code"] == "FAIL", name
        fresh = srv.store.get(o["id"])
        assert fresh["pay_refunds"] == before["pay_refunds"], name
        assert fresh["or_status"] == before["or_status"] == 3, name
    headers, body = _forge(srv, plain(), **kw)          # unforged: applied once
    assert _post_notification(srv, headers, body, "refundresult").status_code == 204
    assert _post_notification(srv, headers, body, "refundresult").status_code == 204
    fresh = srv.store.get(o["id"])
    assert fresh["pay_refunds"][0]["status"] == "SUCCESS" and fresh["pay_refunded"] == 100
    assert fresh["or_status"] == 2


def test_no_v3_secret_in_any_log_error_or_response(srv):
    # something that fails on the way (a bad refund, a forged notification) first
    _get(srv, f"/api/{USER}/refund", id=srv.o1["id"], fee=999999)
    _post_notification(srv, *_forge(srv, _plain(srv, srv.o1), tamper=True))
    body_lines = [ln for ln in srv.key_pem.splitlines() if ln and "-----" not in ln]
    secrets_ = [srv.apiv3_key, *body_lines[1:4]]
    log = srv.log.read_text(encoding="utf-8", errors="replace")
    seen = b"\n".join(srv.answers).decode("utf-8", "replace")
    for secret in secrets_:
        assert secret not in log and secret not in seen
    assert "PRIVATE KEY" not in log and "PRIVATE KEY" not in seen
    # weixin info, as the merchant runs it on the same store: every key masked
    from wnshell.session import Session
    status, out, err = Session(srv.store, user=USER).run("weixin xxx info", "")
    assert status == 0, err
    assert json.loads(out)["pay_api_version"] == 3
    for secret in secrets_ + [srv.serial]:
        assert secret not in out + err
