"""``wnshell demo``: the seed's WeChat JSAPI pay flow, end to end, over real HTTP.

On a fresh store (SQLite in a temp folder unless ``--store``): start the WeChat Pay
simulator and ``wnshell serve`` (a subprocess) on free loopback ports; write user
``demo``'s ``~/.weixin/xxx/wxconf`` with the seed's fields (random test keys, never
printed), the seed's two ``.regapi`` files exactly as it writes them, and an order;
then walk the flow, checking every step:

1. client -> ``GET /api/demo/pay?id=…&openid=…`` -> the signed JSON for the JS-SDK
2. the user pays (simulator ``POST /sim/pay``)
3. WeChat -> ``POST /api/demo/payresult`` -> SUCCESS (seen at ``/sim/orders/<no>``)
4. the order now has ``or_status`` 2, ``pay_result`` and ``pay_time``
5. refund a part: ``GET /api/demo/refund?id=…&fee=300`` -> ``/secapi/pay/refund`` with
   the merchant certificate; it gives money back, so its metadata holds an
   ``api-access-token`` (random, never printed) the demo sends as ``Authorization:
   Bearer``; anyone else gets 403 (the certificate: issued by the simulator's test
   CA, kept in the store)
6. WeChat -> ``POST /api/demo/refundresult``: the encrypted refund notification,
   applied once; the order stays paid (2), 300 fen refunded
7. refund the rest (588 fen) and its notification: ``or_status`` 5 (refunded)
8. the day's bill (downloadbill) reconciled with the store: no difference

``--api v3`` runs the same flow, the same four ``.regapi`` files unchanged, on a WeChat
Pay v3 account: a merchant RSA key and certificate serial generated at start (the key
lives in the store as ``apiclient_key.pem``), the APIv3 key random, the simulator's v3
side mounted on the same port; ``paySign`` is RSA, notifications are AES-256-GCM
encrypted and RSA signed and answered 204, refunds need no client certificate, and
step 8 lists the bill of a past day (v3 has bills for past days only; the simulator
moves the order one day back).

Exit status 0 only when every step checked out.  ``--keep`` leaves it all running and
prints the URLs until Ctrl-C / SIGTERM.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

USER = "demo"
CONF = "xxx"

# the seed's .regapi files, byte for byte (its trailing blanks included)
PAY_API = ("# 提交订单支付信息\n"
           "weixin xxx order -submit ${http-qs-id} \n"
           "           -client_ip ${http-remote-host} \n"
           "           -openid ${http-qs-openid} \n")
PAYRESULT_API = ("# 处理订单支付的返回\n"
                 "weixin xxx order -result id:${id}\n")
REFUND_API = ("# 退款 (商户证书)\n"
              "weixin xxx refund ${http-qs-id} -fee ${http-qs-fee}\n")
REFUNDRESULT_API = ("# 处理退款结果通知\n"
                    "weixin xxx refund -result id:${id}\n")

WXCONF = """\
appID      : '{appid}',   # 公众号 API 的 ID 号
appsecret  : '{appsecret}',     # 公众号 API 秘钥
pay_mch_id : "{mch_id}"        # 商户号
pay_key    : "{pay_key}"        # 支付秘钥
pay_time_expire : 10       # 订单过期时间(分钟)，默认10
pay_notify_url : "{notify_url}" # 支付成功的回调
pay_api_base : "{api_base}"  # the local WeChat Pay simulator
"""
# where refunds go (the simulator's TLS listener) and their notifications come back
WXCONF_REFUND = """\
pay_secapi_base : "{secapi_base}"
pay_refund_notify_url : "{refund_notify_url}"
"""


class DemoFailed(Exception):
    pass


class Out:
    """Readable step-by-step output."""

    def __init__(self, stream=None):
        self.s = stream or sys.stdout

    def line(self, text: str = "") -> None:
        self.s.write(text + "\n")
        self.s.flush()

    def ok(self, text: str) -> None:
        self.line(f"   [ok] {text}")

    def block(self, text: str, indent: str = "        ") -> None:
        for ln in text.rstrip("\n").splitlines():
            self.line(indent + ln)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, fn, timeout: float, interval: float = 0.05):
    """Call ``fn`` until it returns a truthy value; DemoFailed after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except DemoFailed:          # final (the server exited): no use waiting
            raise
        except Exception as e:  # noqa: BLE001 - keep polling; say why at the end
            last = e
        if time.monotonic() >= deadline:
            why = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise DemoFailed(f"timed out after {timeout:g}s waiting for {what}{why}")
        time.sleep(interval)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise DemoFailed(what)


def start_server(port: int, store_url: str, log_path: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "regapi", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1", "--store", store_url]
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)          # graceful shutdown
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def refund_meta(token: str) -> dict:
    """The refund API's metadata: it gives money back, so it is the merchant's staff's
    only (``man weixin``): every request must carry ``Authorization: Bearer <token>``."""
    return {"http-header-Content-Type": "application/json", "api-access-token": token}


def seed_apis(store, refund_token: str) -> None:
    """The seed's four ``.regapi`` files (the refund API behind ``refund_token``)."""
    api = f"/home/{USER}/.regapi/api"
    json_type = {"http-header-Content-Type": "application/json"}
    xml_type = {"http-header-Content-Type": "text/xml"}
    for name, text, meta in (("pay", PAY_API, json_type), ("payresult", PAYRESULT_API, xml_type),
                             ("refund", REFUND_API, refund_meta(refund_token)),
                             ("refundresult", REFUNDRESULT_API, xml_type)):
        store.create(f"{api}/{name}", "FILE", meta, parents=True,
                     content=text.encode("utf-8"))


def demo_order(store, openid: str):
    return store.create(f"/home/{USER}/orders/o1", "FILE",
                        {"title": "wnshell demo: one bowl of noodles", "openid": openid,
                         "total_fee": 888, "or_status": 0}, parents=True)


def setup_store(store, conf: dict, openid: str, sim=None, *, refund_token: str):
    """wxconf, the APIs, the merchant certificate and an order, through the store API."""
    text = WXCONF.format(**conf)
    if sim is not None:
        text += WXCONF_REFUND.format(**conf)
        store.create(f"/home/{USER}/.weixin/{CONF}/apiclient_cert.p12", "FILE",
                     parents=True, content=sim.merchant_p12(conf["mch_id"]))
        store.create(f"/home/{USER}/.weixin/{CONF}/wxpay_ca.pem", "FILE",
                     content=sim.ca_pem)
    store.create(f"/home/{USER}/.weixin/{CONF}/wxconf", "FILE", parents=True,
                 content=text.encode("utf-8"))
    seed_apis(store, refund_token)
    return demo_order(store, openid)


WXCONF_V3 = """\
appID          : '{appid}',   # 公众号 API 的 ID 号
pay_api_version: 3             # WeChat Pay API v3
pay_mch_id     : "{mch_id}"        # 商户号
pay_apiv3_key  : "{apiv3_key}"     # APIv3 密钥
pay_cert_serial: "{serial}"        # 商户 API 证书序列号
pay_time_expire : 10       # 订单过期时间(分钟)，默认10
pay_notify_url : "{notify_url}" # 支付成功的回调
pay_refund_notify_url : "{refund_notify_url}"
pay_api_base : "{api_base}"  # the local WeChat Pay simulator
"""


def run_demo(keep: bool = False, port: int = 0, store_url: str | None = None,
             timeout: float = 20.0, out: Out | None = None, api: int = 2) -> int:
    if api == 3:
        return run_demo_v3(keep=keep, port=port, store_url=store_url, timeout=timeout,
                           out=out)
    return _run(out, store_url, lambda run: _flow_v2(run, keep, port, timeout))


def _flow_v2(run: "_Run", keep: bool, port: int, timeout: float) -> None:
    from objstore import open_store
    from wxpay.simulator import Simulator
    from wxpay.sign import sign as wxsign

    out, http, store_url, log_path = run.out, run.http, run.store_url, run.log_path
    appid, mch_id, openid, refund_token = _ids()
    pay_key = secrets.token_hex(16)       # 32 chars, generated now, never printed
    appsecret = secrets.token_hex(16)
    sim = run.started(Simulator(merchants=[(appid, mch_id, pay_key)]).start())
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    conf = {"appid": appid, "appsecret": appsecret, "mch_id": mch_id,
            "pay_key": pay_key, "notify_url": f"{base}/api/{USER}/payresult",
            "api_base": sim.url, "secapi_base": sim.secure_url,
            "refund_notify_url": f"{base}/api/{USER}/refundresult"}
    sim.set_refund_outcome("SUCCESS", 0.1)

    store = run.started(open_store(store_url), "close")
    order = setup_store(store, conf, openid, sim, refund_token=refund_token)
    from regapi import checkout      # the checkout page and the MP simulator
    mp, checkout_order = checkout.start_demo(store, USER, CONF, appid, appsecret, openid)
    run.started(mp)

    out.line("wnshell demo: WeChat JSAPI pay, the seed's flow over real HTTP")
    out.line(f"  store      {store_url} (fresh)")
    out.line(f"  simulator  {sim.url}  (WeChat Pay v2, merchant {mch_id})")
    out.line(f"  wxconf     /home/{USER}/.weixin/{CONF}/wxconf "
             "(test keys generated now; pay_key and appsecret never shown)")
    out.block(WXCONF.format(**dict(conf, pay_key="*" * 8, appsecret="*" * 8))
              + WXCONF_REFUND.format(**conf), "      ")
    out.line(f"  API pay        /home/{USER}/.regapi/api/pay")
    out.block(PAY_API, "      ")
    out.line(f"  API payresult  /home/{USER}/.regapi/api/payresult")
    out.block(PAYRESULT_API, "      ")
    out.line(f"  API refund     /home/{USER}/.regapi/api/refund")
    out.block(REFUND_API, "      ")
    _show_refund_meta(out)
    out.line(f"  API refundresult  /home/{USER}/.regapi/api/refundresult")
    out.block(REFUNDRESULT_API, "      ")
    out.line(f"  certificate /home/{USER}/.weixin/{CONF}/apiclient_cert.p12 "
             "(issued by the simulator's test CA; password = pay_mch_id)")
    out.line(f"  order      /home/{USER}/orders/o1  id={order['id']}  total_fee=888 fen"
             f"  or_status=0")

    run.serve(port, base, timeout)

    # 1. C -> W : the pay API, answered with the JS-SDK's JSON
    url = f"{base}/api/{USER}/pay"
    out.line(f"1. client -> W   GET /api/{USER}/pay?id={order['id']}&openid={openid}")
    r = http.get(url, params={"id": order["id"], "openid": openid}, timeout=timeout)
    out.line(f"   <- {r.status_code} {r.headers.get('Content-Type')}")
    check(r.status_code == 200, f"pay answered {r.status_code}: {r.text.strip()[:300]}")
    js = r.json()
    out.block(json.dumps(js, indent=2, ensure_ascii=False))
    for k in ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign"):
        check(isinstance(js.get(k), str) and js[k], f"JS-SDK JSON lacks {k}")
    check(js["appId"] == appid, "appId is not the account's")
    check(js["timeStamp"].isdigit() and abs(int(js["timeStamp"]) - time.time()) < 600,
          "timeStamp is not Unix seconds")
    check(js["package"].startswith("prepay_id="), "package is not prepay_id=…")
    signed = {k: js[k] for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
    check(wxsign(signed, pay_key, js["signType"]) == js["paySign"], "paySign does not verify")
    prepay_id = js["package"][len("prepay_id="):]
    out.ok("the JSON WeixinJSBridge / wx.chooseWXPay needs; paySign verifies")

    # 2. the user pays on the phone (the simulator stands in for WeChat)
    out.line(f"2. user pays     POST {sim.url}/sim/pay  prepay_id={prepay_id}")
    r = http.post(f"{sim.url}/sim/pay", json={"prepay_id": prepay_id}, timeout=timeout)
    check(r.status_code == 200, f"simulator refused the payment: {r.status_code} "
                                f"{r.text.strip()[:300]}")
    paid = r.json()
    otn, txid = paid.get("out_trade_no"), paid.get("transaction_id")
    check(bool(otn and txid), "simulator answered no out_trade_no/transaction_id")
    out.ok(f"paid: out_trade_no {otn}, transaction_id {txid}")

    # 3. S -> W : the signed notification, answered SUCCESS
    out.line(f"3. WeChat -> W   POST /api/{USER}/payresult  (signed notification XML)")

    def delivered():
        o = http.get(f"{sim.url}/sim/orders/{otn}", timeout=timeout).json()
        st = (o.get("notify") or {}).get("status")
        if st == "failed" or st == "refused":
            raise DemoFailed(f"notification {st}: {o['notify'].get('last_reply')}")
        return o if st == "delivered" else None

    sim_order = wait_until("WeChat's notification to be answered SUCCESS", delivered, timeout)
    note = sim_order["notify"]
    out.line(f"   <- {note.get('last_reply')}")
    check("SUCCESS" in (note.get("last_reply") or ""), "payresult did not answer SUCCESS")
    out.ok(f"WeChat got SUCCESS (attempts: {note.get('attempts')}); "
           f"simulator trade_state {sim_order.get('trade_state')}")

    # 4. W : the order is paid
    _order_paid(out, store, order, txid, ("out_trade_no", "transaction_id", "total_fee",
                                          "result_code", "time_end"))
    out.ok("or_status 2 (paid), pay_result and pay_time recorded")

    _refund_steps(out, http, base, sim, store, order, refund_token, timeout)
    _bill_step(out, store, timeout)
    out.line()
    out.line("OK: every step checked out.")
    if keep:
        out.line(f"  checkout   {base}/api/{USER}/checkout?id={checkout_order['id']}"
                 "   (a browser shows the QR path; WeChat's OAuth2 is simulated)")
        _keep_running(out, base, sim.url, order, openid, store_url, log_path)




def _order_paid(out, store, order, txid: str, shown: tuple) -> dict:
    """Step 4: the order is paid (2) with the transaction and the time it was paid."""
    fresh = store.get(order["id"])
    check(fresh is not None, "the order vanished")
    pr = fresh.get("pay_result") or {}
    out.line(f"4. order         /home/{USER}/orders/o1")
    out.block(json.dumps({"or_status": fresh.get("or_status"),
                          "pay_time": fresh.get("pay_time"),
                          "pay_result": {k: pr.get(k) for k in shown}},
                         indent=2, ensure_ascii=False))
    check(fresh.get("or_status") == 2, f"or_status is {fresh.get('or_status')!r}, not 2")
    check(isinstance(pr, dict) and pr.get("transaction_id") == txid,
          "pay_result does not hold the transaction")
    check(isinstance(fresh.get("pay_time"), int), "pay_time is not epoch ms")
    return fresh


def _show_refund_meta(out) -> None:
    out.block(json.dumps(refund_meta("*" * 8), ensure_ascii=False), "      meta ")
    out.line("      (it gives money back: staff only, with Authorization: Bearer <token>)")


def _refund(out, http, base, token, store, order, fee: int, n: int, timeout: float):
    oid = order["id"]
    r = http.get(f"{base}/api/{USER}/refund", params={"id": oid, "fee": fee},
                 headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    check(r.status_code == 200, f"refund answered {r.status_code}: {r.text.strip()[:300]}")
    got = r.json()
    out.line(f"   <- {r.status_code} " + json.dumps(
        {k: got.get(k) for k in ("out_refund_no", "refund_fee", "status", "or_status")},
        ensure_ascii=False))
    orn = got.get("out_refund_no")
    check(orn == f"{oid}_r{n}", f"the refund number is {orn!r}, not {oid}_r{n}")
    return orn


def _refund_notified(out, http, sim, store, order, orn, timeout: float) -> dict:
    def delivered():
        snap = http.get(f"{sim.url}/sim/refunds/{orn}", timeout=timeout).json()
        st = (snap.get("notify") or {}).get("status")
        if st in ("failed", "refused"):
            raise DemoFailed(f"refund notification {st}: {snap['notify'].get('last_reply')}")
        return snap if st == "delivered" else None
    snap = wait_until(f"the refund notification of {orn}", delivered, timeout)
    out.line(f"   <- {snap['notify'].get('last_reply')}")
    fresh = store.get(order["id"])
    entry = next((r for r in fresh.get("pay_refunds") or ()
                  if r.get("out_refund_no") == orn), {})
    check(entry.get("status") == "SUCCESS", f"refund {orn} is {entry.get('status')!r}")
    return fresh


def _refund_steps(out, http, base, sim, store, order, token, timeout: float) -> None:
    oid = order["id"]
    out.line(f"5. client -> W   GET /api/{USER}/refund?id={oid}&fee=300  (part of it)")
    orn = _refund(out, http, base, token, store, order, 300, 1, timeout)
    out.ok(f"refund {orn} accepted by /secapi/pay/refund (client certificate checked)")
    out.line(f"6. WeChat -> W   POST /api/{USER}/refundresult  (req_info: AES-256-ECB)")
    fresh = _refund_notified(out, http, sim, store, order, orn, timeout)
    check(fresh.get("or_status") == 2, f"or_status is {fresh.get('or_status')!r}, not 2")
    check(fresh.get("pay_refunded") == 300, "pay_refunded is not 300")
    out.ok("decrypted, matched and applied once: 300 fen refunded, the order still paid (2)")
    out.line(f"7. client -> W   GET /api/{USER}/refund?id={oid}&fee=588  (the rest)")
    orn = _refund(out, http, base, token, store, order, 588, 2, timeout)
    fresh = _refund_notified(out, http, sim, store, order, orn, timeout)
    out.block(json.dumps({"or_status": fresh.get("or_status"),
                          "pay_refunded": fresh.get("pay_refunded"),
                          "pay_refunds": [{k: r.get(k) for k in
                                           ("out_refund_no", "refund_fee", "status")}
                                          for r in fresh.get("pay_refunds") or ()]},
                         indent=2, ensure_ascii=False))
    check(fresh.get("or_status") == 5, f"or_status is {fresh.get('or_status')!r}, not 5")
    out.ok("888 of 888 fen refunded: or_status 5 (refunded)")


def _bill_step(out, store, timeout: float) -> None:
    from wnshell.session import Session
    from wxpay.api import beijing_stamp
    date = beijing_stamp()[:8]
    cmd = f"weixin {CONF} bill -date {date} -reconcile"
    out.line(f"8. the day's bill  {cmd}")
    status, stdout, stderr = Session(store, user=USER).run(cmd, "")
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    out.block("\n".join(lines[-3:]) or stderr.strip())
    check(status == 0, f"reconcile exited {status}: {(stderr or stdout).strip()[:300]}")
    summary = json.loads(lines[-1])["reconcile"]
    check(summary["bill_payments"] == 1 and summary["bill_refunds"] == 2,
          "the bill does not hold the payment and its two refunds")
    out.ok("downloadbill parsed (fen); the store and WeChat agree: no difference")


def setup_store_v3(store, conf: dict, key_pem: str, openid: str, *, refund_token: str):
    """The v3 wxconf, the merchant private key beside it, the seed's APIs, an order."""
    folder = f"/home/{USER}/.weixin/{CONF}"
    store.create(f"{folder}/apiclient_key.pem", "FILE", parents=True,
                 content=key_pem.encode("ascii"))
    store.create(f"{folder}/wxconf", "FILE", content=WXCONF_V3.format(**conf).encode("utf-8"))
    seed_apis(store, refund_token)
    return demo_order(store, openid)


def run_demo_v3(keep: bool = False, port: int = 0, store_url: str | None = None,
                timeout: float = 20.0, out: Out | None = None) -> int:
    """The seed's flow on a WeChat Pay v3 account (see the module docstring)."""
    return _run(out, store_url, lambda run: _flow_v3(run, keep, port, timeout))


def _flow_v3(run: "_Run", keep: bool, port: int, timeout: float) -> None:
    from objstore import open_store
    from wxpay.simulator import Simulator
    from wxpay.v3.crypto import private_pem, public_pem, rsa_verify, serial_hex
    from wxpay.v3.simkeys import new_certificate, new_key

    out, http, store_url, log_path = run.out, run.http, run.store_url, run.log_path
    appid, mch_id, openid, refund_token = _ids()
    apiv3_key = secrets.token_hex(16)       # 32 chars, generated now, never printed
    key = new_key()                         # the merchant's API key pair, made now
    serial = serial_hex(new_certificate(key, common_name=f"merchant {mch_id}"))
    sim = Simulator(tls=False)
    sim.add_v3_merchant(mch_id, [appid], public_pem(key), serial, apiv3_key)
    sim.v3.refund_delay = 0.1
    run.started(sim).start()
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    conf = {"appid": appid, "mch_id": mch_id, "apiv3_key": apiv3_key, "serial": serial,
            "notify_url": f"{base}/api/{USER}/payresult",
            "refund_notify_url": f"{base}/api/{USER}/refundresult",
            "api_base": sim.url}
    store = run.started(open_store(store_url), "close")
    order = setup_store_v3(store, conf, private_pem(key), openid,
                           refund_token=refund_token)

    out.line("wnshell demo --api v3: WeChat JSAPI pay on API v3, the seed's flow over "
             "real HTTP")
    out.line(f"  store      {store_url} (fresh)")
    out.line(f"  simulator  {sim.url}  (WeChat Pay v3, merchant {mch_id}; platform "
             f"certificate {sim.v3.platform_serial()})")
    out.line(f"  wxconf     /home/{USER}/.weixin/{CONF}/wxconf "
             "(keys generated now; the APIv3 key and the private key never shown)")
    out.block(WXCONF_V3.format(**dict(conf, apiv3_key="*" * 8)), "      ")
    out.line(f"  key        /home/{USER}/.weixin/{CONF}/apiclient_key.pem "
             "(RSA 2048, made now)")
    for name, text in (("pay", PAY_API), ("payresult", PAYRESULT_API),
                       ("refund", REFUND_API), ("refundresult", REFUNDRESULT_API)):
        out.line(f"  API {name:<12} /home/{USER}/.regapi/api/{name}  (the seed's, "
                 "unchanged)")
        out.block(text, "      ")
        if name == "refund":
            _show_refund_meta(out)
    out.line(f"  order      /home/{USER}/orders/o1  id={order['id']}  total_fee=888 fen"
             f"  or_status=0")
    run.serve(port, base, timeout)

    out.line(f"1. client -> W   GET /api/{USER}/pay?id={order['id']}&openid={openid}")
    r = http.get(f"{base}/api/{USER}/pay", params={"id": order["id"], "openid": openid},
                 timeout=timeout)
    out.line(f"   <- {r.status_code} {r.headers.get('Content-Type')}")
    check(r.status_code == 200, f"pay answered {r.status_code}: {r.text.strip()[:300]}")
    js = r.json()
    out.block(json.dumps(js, indent=2, ensure_ascii=False))
    check(js.get("signType") == "RSA" and js.get("appId") == appid,
          "signType is not RSA or appId is not the account's")
    msg = f"{js['appId']}\n{js['timeStamp']}\n{js['nonceStr']}\n{js['package']}\n"
    check(rsa_verify(key.public_key(), msg, js.get("paySign")),
          "paySign does not verify with the merchant's public key")
    prepay_id = js["package"][len("prepay_id="):]
    out.ok("POST /v3/pay/transactions/jsapi signed and verified; paySign is "
           "SHA256withRSA over appId\\ntimeStamp\\nnonceStr\\npackage\\n")

    out.line(f"2. user pays     POST {sim.url}/sim/v3/pay  prepay_id={prepay_id}")
    r = http.post(f"{sim.url}/sim/v3/pay", json={"prepay_id": prepay_id}, timeout=timeout)
    check(r.status_code == 200, f"simulator refused the payment: {r.status_code}")
    paid = r.json()
    otn, txid = paid.get("out_trade_no"), paid.get("transaction_id")
    out.ok(f"paid: out_trade_no {otn}, transaction_id {txid}")

    out.line(f"3. WeChat -> W   POST /api/{USER}/payresult  (signed, AES-256-GCM "
             "encrypted resource)")

    def delivered(path):
        def f():
            o = http.get(f"{sim.url}/sim/v3/{path}", timeout=timeout).json()
            n = o.get("notify") or {}
            if n.get("status") in ("failed", "refused"):
                raise DemoFailed(f"notification {n['status']}: {n.get('last_reply')}")
            return o if n.get("status") == "delivered" else None
        return f
    note = wait_until("WeChat's notification to be answered 2xx",
                      delivered(f"orders/{otn}"), timeout)["notify"]
    codes = [a.get("status") for a in note.get("log") or ()]
    out.line(f"   <- HTTP {codes[-1] if codes else '?'} (no body)")
    check(bool(codes) and codes[-1] == 204, "payresult did not answer 204")
    out.ok("signature, timestamp and serial verified, resource decrypted, mchid, "
           "appid, out_trade_no and amount checked; answered 204")

    _order_paid(out, store, order, txid, ("out_trade_no", "transaction_id", "trade_state",
                                          "amount", "success_time"))
    out.ok("or_status 2 (paid), pay_result (the v3 transaction) and pay_time recorded")

    oid = order["id"]
    for n, fee, step in ((1, 300, 5), (2, 588, 7)):
        out.line(f"{step}. client -> W   GET /api/{USER}/refund?id={oid}&fee={fee}")
        orn = _refund(out, http, base, refund_token, store, order, fee, n, timeout)
        out.ok(f"refund {orn}: POST /v3/refund/domestic/refunds accepted (PROCESSING)")
        out.line(f"{step + 1}. WeChat -> W   POST /api/{USER}/refundresult  "
                 "(REFUND.SUCCESS, encrypted)")
        wait_until(f"the refund notification of {orn}", delivered(f"refunds/{orn}"),
                   timeout)
        fresh = store.get(oid)
        entry = next((r for r in fresh.get("pay_refunds") or ()
                      if r.get("out_refund_no") == orn), {})
        check(entry.get("status") == "SUCCESS", f"refund {orn} is {entry.get('status')!r}")
        out.ok(f"applied once: {fresh.get('pay_refunded')} fen refunded, or_status "
               f"{fresh.get('or_status')}")
    check(fresh.get("or_status") == 5, f"or_status is {fresh.get('or_status')!r}, not 5")

    from datetime import datetime, timedelta

    from wnshell.session import Session
    from wxpay.v3.api import BEIJING
    sim.v3.backdate(otn, 86400)
    day = (datetime.now(BEIJING) - timedelta(days=1)).strftime("%Y%m%d")
    cmd = f"weixin {CONF} bill -date {day}"
    out.line(f"9. a past day's bill  {cmd}  (the simulator moved the order one day back)")
    st, stdout, stderr = Session(store, user=USER).run(cmd, "")
    lines = [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]
    check(st == 0, f"bill exited {st}: {stderr.strip()[:300]}")
    rows = [x for x in lines if "summary" not in x]
    out.block("\n".join(json.dumps({k: r.get(k) for k in
                                    ("trade_state", "out_trade_no", "total_fee",
                                     "out_refund_no", "refund_fee")},
                                   ensure_ascii=False) for r in rows))
    check([r.get("trade_state") for r in rows].count("SUCCESS") == 1
          and [r.get("trade_state") for r in rows].count("REFUND") == 2,
          "the bill does not hold the payment and its two refunds")
    out.ok("GET /v3/bill/tradebill (signed) + the file (SHA-1 checked), in fen")
    out.line()
    out.line("OK: every step checked out.")
    if keep:
        _keep_running(out, base, sim.url, order, openid, store_url, log_path)




class _Run:
    """What one demo run started, and the frame both flows share: a temp folder (the
    store, unless ``--store``), the server's log, an HTTP session (loopback only)."""

    def __init__(self, out: Out, store_url: str | None):
        self.out = out
        self.tmp = tempfile.mkdtemp(prefix="wnshell-demo-")
        self.store_url = store_url or f"sqlite://{os.path.join(self.tmp, 'store.db')}"
        self.log_path = os.path.join(self.tmp, "server.log")
        self.http = requests_session()
        self._stops: list = []

    def started(self, thing, stop: str = "stop"):
        """``thing``, to be stopped (``thing.<stop>()``) when the run ends, last first."""
        self._stops.append(getattr(thing, stop))
        return thing

    def serve(self, port: int, base: str, timeout: float) -> None:
        """``wnshell serve`` on ``port``, waited for until it answers."""
        server = start_server(port, self.store_url, self.log_path)
        self._stops.append(lambda: stop_server(server))
        # the answer must come from this server: it logs that it serves only once it
        # could bind the port (another server already there, which answers 404 too,
        # must not pass for it: the demo's server exits, and the failure says why)
        serving = f"serving {base}/"
        wait_until("the server to answer",
                   lambda: _alive(server, self.log_path)
                   and serving in _text_of(self.log_path)
                   and self.http.get(base + "/", timeout=1).status_code == 404, timeout)
        self.out.line(f"  server     {base}  (wnshell serve, pid {server.pid})")
        self.out.line()

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self.http.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def requests_session():
    import requests
    http = requests.Session()
    http.trust_env = False                  # loopback only, never a proxy
    return http


def _ids() -> tuple[str, str, str, str]:
    """A fresh appid, mch_id, buyer openid and refund API token (never printed)."""
    return ("wx" + secrets.token_hex(8), str(1900000000 + secrets.randbelow(99999999)),
            "o" + secrets.token_urlsafe(20), secrets.token_urlsafe(24))


def _run(out: Out | None, store_url: str | None, flow) -> int:
    """Run ``flow(run)``: 0 when every step checked out, 1 (one ``[FAIL]`` line and the
    server log's tail) when one did not, 130 on Ctrl-C; everything started is stopped."""
    out = out or Out()
    if store_url and store_url.split(":", 1)[0].lower() == "memory":
        out.line("e.regapi.demo.store : the server runs in its own process; "
                 "give a sqlite://, tinydb:// or postgresql:// store")
        return 2
    run = _Run(out, store_url)
    try:
        flow(run)
        return 0
    except DemoFailed as e:
        out.line(f"   [FAIL] {e}")
        _tail(out, run.log_path)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a demo says what broke, in one line
        msg = e.line() if hasattr(e, "line") else f"{type(e).__name__}: {e}"
        out.line(f"   [FAIL] {msg}")
        _tail(out, run.log_path)
        return 1
    finally:
        run.close()


def _alive(proc: subprocess.Popen, log_path: str) -> bool:
    """True while ``proc`` runs; DemoFailed once it exited, with the error line it
    logged last (``e.regapi.serve.bind : cannot listen on …``), if any."""
    if proc.poll() is not None:
        errors = [ln for ln in _text_of(log_path).splitlines() if ln.startswith("e.")]
        why = f": {errors[-1][:200]}" if errors else ""
        raise DemoFailed(f"the server exited with status {proc.returncode}{why}")
    return True


def _text_of(path: str) -> str:
    """The file's text ("" when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _tail(out: Out, log_path: str, n: int = 15) -> None:
    lines = _text_of(log_path).splitlines()[-n:]
    if lines:
        out.line("   server log (last lines):")
        out.block("\n".join(lines), "     | ")


def _keep_running(out, base, sim_url, order, openid, store_url, log_path) -> None:
    # the handler goes in before the URLs are printed: whoever reads them may send
    # SIGTERM at once, and the default action would orphan the server
    stop = threading.Event()
    prev = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out.line()
    out.line("Still running (--keep); Ctrl-C or SIGTERM stops everything:")
    out.line(f"  server     {base}/api/{USER}/<api>   (log: {log_path})")
    out.line(f"  pay        {base}/api/{USER}/pay?id={order['id']}&openid={openid}")
    out.line(f"  refund     {base}/api/{USER}/refund?id={order['id']}&fee=FEN   (staff only: "
             "Authorization: Bearer <its api-access-token>)")
    out.line(f"  simulator  {sim_url}/sim/orders/<out_trade_no>")
    out.line(f"  store      {store_url}")
    out.line(f"  shell      WNSHELL_STORE={store_url} wnshell -c 'obj id:{order['id']}'")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, prev)
