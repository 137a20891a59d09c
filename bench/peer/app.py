"""The seed's two WeChat JSAPI pay APIs as a small Flask + wechatpy 1.8.18 + SQLite app.

This is the alternative a Python developer would write instead of wnshell, kept honest
so that ``bench/pay_vs_peer.py`` compares like with like:

* ``GET /pay?id=ORDER&openid=OPENID`` -- the order must exist and belong to ``openid``
  (403 otherwise) and be payable (409 when paid); a stored, still valid set of JSAPI
  parameters is returned again without calling WeChat; otherwise unifiedorder is called
  with out_trade_no ``<id>_<attempt>``, its reply's signature is checked, and the JSAPI
  parameters (``appId timeStamp nonceStr package signType paySign``) are stored with
  the attempt number in one compare-and-set UPDATE and returned as JSON.
* ``POST /payresult`` -- WeChat's notification: signature (wechatpy), return_code,
  appid, mch_id, the order and its amount are checked (FAIL XML when any is wrong);
  a successful payment moves ``or_status`` 0/1 -> 2 in one ``UPDATE ... WHERE
  or_status IN (0, 1)`` (so duplicates, even concurrent ones, change the order once);
  the answer is SUCCESS XML.

Storage: one SQLite file in WAL mode with ``synchronous=FULL`` (a payment acknowledged to
WeChat survives a power loss, as in wnshell), one connection per thread.

Configuration (environment): ``PEER_DB`` (SQLite file), ``PEER_APPID``,
``PEER_MCH_ID``, ``PEER_KEY``, ``PEER_NOTIFY_URL``, ``PEER_API_BASE`` (the WeChat Pay
base URL, e.g. the stand-in's).  ``python -m bench.peer.app --init DB`` creates the
schema.  Served by ``granian --interface wsgi bench.peer.app:app``.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from flask import Flask, Response, jsonify, request
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException
from wechatpy.pay import WeChatPay

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id           TEXT PRIMARY KEY,
    openid       TEXT NOT NULL,
    total_fee    INTEGER NOT NULL,
    body         TEXT NOT NULL,
    or_status    INTEGER NOT NULL DEFAULT 0,
    pay_seq      INTEGER NOT NULL DEFAULT 0,
    out_trade_no TEXT,
    jsapi        TEXT,          -- the JSAPI parameters (JSON), reused on a repeat
    prepay_time  INTEGER,       -- epoch ms of the prepay_id
    pay_result   TEXT,          -- the verified notification (JSON)
    pay_time     INTEGER
);
"""
REUSE_MS = 110 * 60 * 1000          # WeChat keeps a prepay_id for 2 hours
EXPIRE_MINUTES = 10
BEIJING = timezone(timedelta(hours=8))
SUCCESS = ("<xml><return_code><![CDATA[SUCCESS]]></return_code>"
           "<return_msg><![CDATA[OK]]></return_msg></xml>")

log = logging.getLogger("peer")


def fail_xml(msg: str) -> str:
    return (f"<xml><return_code><![CDATA[FAIL]]></return_code>"
            f"<return_msg><![CDATA[{msg}]]></return_msg></xml>")


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def init_db(path: str) -> None:
    conn = connect(path)
    conn.executescript(SCHEMA)
    conn.close()


class Store:
    """One SQLite connection per thread."""

    def __init__(self, path: str):
        self.path = path
        self.local = threading.local()

    def conn(self) -> sqlite3.Connection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = connect(self.path)
        return c


def create_app() -> Flask:
    app = Flask(__name__)
    store = Store(os.environ["PEER_DB"])
    appid, mch_id = os.environ["PEER_APPID"], os.environ["PEER_MCH_ID"]
    notify_url = os.environ["PEER_NOTIFY_URL"]
    pay = WeChatPay(appid, os.environ["PEER_KEY"], mch_id, timeout=(5, 10))
    pay.API_BASE_URL = os.environ.get("PEER_API_BASE", WeChatPay.API_BASE_URL).rstrip("/") + "/"
    pay._http.trust_env = False

    @app.get("/pay")
    def submit():
        oid, openid = request.args.get("id", ""), request.args.get("openid", "")
        if not oid or not openid:
            return jsonify(error="id and openid are required"), 400
        row = store.conn().execute(
            "SELECT openid, total_fee, body, or_status, pay_seq, jsapi, prepay_time "
            "FROM orders WHERE id = ?", (oid,)).fetchone()
        if row is None:
            return jsonify(error="no such order"), 404
        owner, total_fee, body, status, seq, jsapi, made = row
        if owner != openid:
            return jsonify(error="not this user's order"), 403
        if status not in (0, 1):
            return jsonify(error="order is not payable"), 409
        now = int(time.time() * 1000)
        if jsapi and made and now - made < REUSE_MS:
            return Response(jsapi, mimetype="application/json")
        out_trade_no = f"{oid}_{seq + 1}"
        expire = datetime.now(BEIJING) + timedelta(minutes=EXPIRE_MINUTES)
        try:
            reply = pay.order.create("JSAPI", body, total_fee, notify_url,
                                     client_ip=request.remote_addr, user_id=openid,
                                     out_trade_no=out_trade_no, time_expire=expire)
        except WeChatPayException as e:
            log.warning("unifiedorder for %s failed: %s", out_trade_no, e.errmsg or e)
            return jsonify(error="WeChat Pay refused the order"), 502
        except Exception as e:  # noqa: BLE001 - network errors
            log.warning("unifiedorder for %s: %s", out_trade_no, type(e).__name__)
            return jsonify(error="WeChat Pay unreachable"), 502
        # wechatpy does not check the reply's signature itself
        if not isinstance(reply, dict) or not pay.check_signature(dict(reply)) \
                or reply.get("appid") != appid or reply.get("mch_id") != mch_id \
                or not reply.get("prepay_id"):
            return jsonify(error="WeChat Pay reply failed verification"), 502
        params = pay.jsapi.get_jsapi_params(reply["prepay_id"])
        text = json.dumps(params, separators=(",", ":"))
        cur = store.conn().execute(
            "UPDATE orders SET pay_seq = ?, out_trade_no = ?, jsapi = ?, prepay_time = ? "
            "WHERE id = ? AND pay_seq = ? AND or_status IN (0, 1)",
            (seq + 1, out_trade_no, text, now, oid, seq))
        if cur.rowcount != 1:
            return jsonify(error="order changed meanwhile, submit again"), 409
        return Response(text, mimetype="application/json")

    @app.post("/payresult")
    def payresult():
        xml = request.get_data()
        try:
            data = pay.parse_payment_result(xml)
        except InvalidSignatureException:
            return Response(fail_xml("sign error"), mimetype="text/xml")
        if data.get("return_code") != "SUCCESS":
            return Response(fail_xml("return_code is not SUCCESS"), mimetype="text/xml")
        if data.get("appid") != appid or data.get("mch_id") != mch_id:
            return Response(fail_xml("merchant mismatch"), mimetype="text/xml")
        oid, _, n = str(data.get("out_trade_no", "")).rpartition("_")
        row = store.conn().execute("SELECT total_fee, or_status, pay_seq FROM orders "
                                   "WHERE id = ?", (oid,)).fetchone()
        if row is None or not n.isdigit() or not 1 <= int(n) <= row[2]:
            return Response(fail_xml("unknown order"), mimetype="text/xml")
        if data.get("total_fee") != row[0]:
            return Response(fail_xml("amount mismatch"), mimetype="text/xml")
        if data.get("result_code") != "SUCCESS" or row[1] == 2:
            return Response(SUCCESS, mimetype="text/xml")     # failed payment, duplicate
        store.conn().execute(
            "UPDATE orders SET or_status = 2, pay_result = ?, pay_time = ? "
            "WHERE id = ? AND or_status IN (0, 1)",
            (json.dumps(data), int(time.time() * 1000), oid))
        return Response(SUCCESS, mimetype="text/xml")

    return app


app = None
if os.environ.get("PEER_DB"):
    app = create_app()

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--init":
        init_db(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.peer.app --init DB")
