"""The ``/pay/*`` endpoints: WeChat's checks and answers (wechatpy-v2.md §2, §5)."""
from __future__ import annotations

import ipaddress
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from ..api import BEIJING, TIME_EXPIRE_SHORT, beijing_stamp, new_nonce
from ..errors import SignError, WxPayError
from ..sign import normalize_sign_type, sign, verify
from ..xmlcodec import MAX_BYTES, from_xml, to_xml
from .faults import HTML_PAGE
from .state import (SECAPI, BYTE_LIMITS, KEY_FIELDS, MIN_EXPIRE_S, PREPAY_TTL, _FEN,
                    _OUT_TRADE_NO, _Order, _Reject)


class PayProtocolMixin:
    # ----- /pay/* ------------------------------------------------------------------
    def _fail(self, err_code: str, return_msg: str) -> _Reject:
        # WeChat's FAIL replies carry return_code and return_msg only (err_code names
        # the case here, for the reader)
        return _Reject({"return_code": "FAIL", "return_msg": return_msg})

    def handle_pay(self, endpoint: str, method: str, body: bytes | None,
                   client_cn: str | None = None) -> tuple[int, bytes, str]:
        """Process one /pay/* (or /secapi/pay/*) request; returns (status, body,
        content type).  ``client_cn``: the CN of the verified TLS client certificate
        (``/secapi/`` only; None when the caller presented none)."""
        with self._lock:
            self.requests_seen += 1
        faults = self._take_faults(notify=False)
        if faults.get("latency"):
            self._stop.wait(faults["latency"])
        if "http_status" in faults and not faults.get("html"):
            return faults["http_status"], b"Service Unavailable", "text/plain"
        if faults.get("html"):
            return faults.get("http_status", 200), HTML_PAGE, "text/html; charset=utf-8"
        if faults.get("garbage"):
            return 200, secrets.token_bytes(48) + b"\x00\xff<<>", "application/octet-stream"
        if faults.get("return_fail"):
            return 200, to_xml({"return_code": "FAIL",
                                "return_msg": "系统繁忙,请稍后再试"}).encode(), "text/xml"
        key = st = None
        try:
            params, mch_id, key, st = self._authenticate(method, body)
            if endpoint in SECAPI:
                self._check_client_cert(mch_id, client_cn)
            self._fault_reply(faults, params, key, st)
            reply = getattr(self, "_do_" + endpoint)(params)
            if isinstance(reply, tuple):          # downloadbill: the bill itself
                if faults.get("timeout"):
                    self._stop.wait(faults.get("hold", self.hold))
                return 200, reply[0], reply[1]
        except _Reject as r:
            reply = r.reply
            if r.signed_with:
                key, st = r.signed_with
            if r.unsigned:
                key = None
        # a FAIL return_code is never signed; every other reply is, with the
        # merchant key and the request's sign type
        if reply.get("return_code") == "SUCCESS" and key and "sign" not in reply:
            reply = self._sign_reply(reply, key, st)
        if faults.get("bad_sign") and "sign" in reply:
            reply["sign"] = ("0" if reply["sign"][0] != "0" else "1") + reply["sign"][1:]
        if faults.get("timeout"):
            self._stop.wait(faults.get("hold", self.hold))
        return 200, to_xml(reply).encode("utf-8"), "text/xml; charset=utf-8"

    def _check_client_cert(self, mch_id: str, client_cn: str | None) -> None:
        """/secapi/ wants the merchant's API client certificate (issued by the
        simulator's CA, CN = mch_id).  The messages are the simulator's own."""
        if client_cn is None:
            raise _Reject({"return_code": "FAIL",
                           "return_msg": "证书不存在: 请使用商户API证书(apiclient_cert)调用"})
        if client_cn != mch_id:
            raise _Reject({"return_code": "FAIL", "return_msg": "证书与商户号不匹配"})

    def _authenticate(self, method, body):
        if method != "POST":
            raise self._fail("REQUIRE_POST_METHOD", "请使用post方法")
        if not body:
            raise self._fail("POST_DATA_EMPTY", "post数据为空")
        if len(body) > MAX_BYTES:
            raise self._fail("XML_FORMAT_ERROR", "XML格式错误")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("NOT_UTF8", "编码格式错误") from None
        try:
            params = from_xml(body)
        except WxPayError:
            raise self._fail("XML_FORMAT_ERROR", "XML格式错误") from None
        appid, mch_id = params.get("appid"), params.get("mch_id")
        if not appid:
            raise self._fail("LACK_PARAMS", "缺少参数appid")
        if not mch_id:
            raise self._fail("LACK_PARAMS", "缺少参数mch_id")
        if appid not in self._apps:
            raise self._fail("APPID_NOT_EXIST", "appid不存在")
        if mch_id not in self._mchs:
            raise self._fail("MCHID_NOT_EXIST", "商户号mch_id不存在")
        real_mch, key = self._apps[appid]
        if real_mch != mch_id:
            raise self._fail("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        try:
            st = normalize_sign_type(params.get("sign_type"))
        except SignError:
            raise self._fail("INVALID_REQUEST", "sign_type参数错误") from None
        if not params.get("sign") or not verify(params, key, st):
            raise self._fail("SIGNERROR", "签名错误")
        if not params.get("nonce_str"):
            raise _Reject(self._result_fail(params, "LACK_PARAMS", "缺少参数nonce_str"),
                          (key, st))
        if len(params["nonce_str"]) > 32:
            raise _Reject(self._result_fail(params, "INVALID_REQUEST", "nonce_str长度超过32"),
                          (key, st))
        return params, mch_id, key, st

    def _fault_reply(self, faults, params, key, st):
        base = {"return_code": "SUCCESS", "return_msg": "OK", "appid": params["appid"],
                "mch_id": params["mch_id"], "nonce_str": new_nonce()}
        if faults.get("fail_without_sign"):
            raise _Reject(dict(base, result_code="FAIL", err_code="SYSTEMERROR",
                               err_code_des="系统错误"), unsigned=True)
        if faults.get("success_without_sign"):
            raise _Reject(dict(base, result_code="SUCCESS", trade_type="JSAPI",
                               prepay_id="wx" + beijing_stamp(self.now()) + secrets.token_hex(10)),
                          unsigned=True)
        code = "SYSTEMERROR" if faults.get("systemerror") else faults.get("err_code")
        if code:
            reply = dict(base, result_code="FAIL", err_code=code,
                         err_code_des="系统超时" if code == "SYSTEMERROR" else code)
            raise _Reject(self._sign_reply(reply, key, st))

    def _result_fail(self, params, err_code, des):
        return {"return_code": "SUCCESS", "return_msg": "OK", "appid": params["appid"],
                "mch_id": params["mch_id"], "nonce_str": new_nonce(),
                "result_code": "FAIL", "err_code": err_code, "err_code_des": des}

    @staticmethod
    def _sign_reply(reply: dict, key: str, st: str) -> dict:
        reply["sign"] = sign(reply, key, st)
        return reply

    def _need(self, params, *names):
        for n in names:
            if not params.get(n):
                raise _Reject(self._result_fail(params, "LACK_PARAMS", f"缺少参数{n}"))

    def _invalid(self, params, des):
        return _Reject(self._result_fail(params, "INVALID_REQUEST", des))

    def _do_unifiedorder(self, p: dict) -> dict:
        self._need(p, "body", "out_trade_no", "total_fee", "spbill_create_ip",
                   "notify_url", "trade_type")
        for name, limit in BYTE_LIMITS.items():
            if len(p.get(name, "").encode("utf-8")) > limit:
                raise _Reject({"return_code": "FAIL", "return_msg": f"{name}参数长度有误"})
        if len(p.get("device_info", "")) > 32:
            raise self._invalid(p, "device_info参数长度有误")
        if p.get("limit_pay") not in (None, "no_credit"):
            raise self._invalid(p, "limit_pay参数错误")
        if p.get("time_start"):
            try:
                if len(p["time_start"]) != 14 or not p["time_start"].isdigit():
                    raise ValueError
                datetime.strptime(p["time_start"], "%Y%m%d%H%M%S")
            except ValueError:
                raise self._invalid(p, "time_start时间格式错误") from None
        if not _OUT_TRADE_NO.match(p["out_trade_no"]):
            raise self._invalid(p, "out_trade_no参数格式错误")
        if not _FEN.match(p["total_fee"]) or int(p["total_fee"]) > 2**31 - 1:
            raise self._invalid(p, "total_fee参数格式错误,必须为大于0的整数")
        if p.get("fee_type", "CNY") != "CNY":
            raise self._invalid(p, "fee_type参数错误")
        try:
            ipaddress.ip_address(p["spbill_create_ip"])
        except ValueError:
            raise self._invalid(p, "spbill_create_ip参数格式错误") from None
        nu = urlsplit(p["notify_url"])
        if nu.scheme not in ("http", "https") or not nu.hostname or nu.query:
            raise self._invalid(p, "notify_url参数格式错误")
        if p["trade_type"] not in ("JSAPI", "NATIVE", "MWEB"):
            raise self._invalid(p, "trade_type参数错误")
        if p["trade_type"] == "JSAPI" and not p.get("openid"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS",
                                            "trade_type=JSAPI时，openid为必填参数"))
        if p["trade_type"] == "NATIVE" and not p.get("product_id"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS", "缺少参数product_id"))
        if p["trade_type"] == "MWEB" and not p.get("scene_info"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS", "缺少参数scene_info"))
        expire = None
        if p.get("time_expire"):
            try:
                expire = datetime.strptime(p["time_expire"], "%Y%m%d%H%M%S").replace(
                    tzinfo=BEIJING).timestamp()
            except ValueError:
                raise self._invalid(p, "time_expire时间格式错误") from None
            if len(p["time_expire"]) != 14 or not p["time_expire"].isdigit():
                raise self._invalid(p, "time_expire时间格式错误")
        now = self.now()
        with self._lock:
            o = self._orders.get((p["mch_id"], p["out_trade_no"]))
            if o is not None:
                self._expire(o)
                if o.appid != p["appid"]:
                    raise _Reject(self._result_fail(p, "OUT_TRADE_NO_USED", "商户订单号重复"))
                if o.state == "SUCCESS":
                    raise _Reject(self._result_fail(p, "ORDERPAID", "该订单已支付"))
                if o.state == "CLOSED":
                    raise _Reject(self._result_fail(p, "ORDERCLOSED", "该订单已关闭"))
                if any(o.params.get(k) != p.get(k) for k in KEY_FIELDS):
                    raise self._invalid(p, "201 商户订单号重复")
                if now - o.prepay_at > PREPAY_TTL:
                    self._by_prepay.pop(o.prepay_id, None)
                    o.prepay_id, o.prepay_at = self._new_prepay(), now
                    self._by_prepay[o.prepay_id] = o
            else:
                # time_expire is checked on the first call only (a repeat must send
                # the same one, even when it is now closer than 5 minutes)
                if expire is not None and expire < now - 1 + MIN_EXPIRE_S:
                    raise _Reject({"return_code": "FAIL", "return_msg": TIME_EXPIRE_SHORT})
                keep = {k: v for k, v in p.items() if k not in ("sign", "nonce_str")}
                o = _Order(appid=p["appid"], mch_id=p["mch_id"],
                           out_trade_no=p["out_trade_no"], params=keep,
                           sign_type=normalize_sign_type(p.get("sign_type")),
                           prepay_id=self._new_prepay(), prepay_at=now,
                           time_expire=expire, created=now)
                self._orders[(o.mch_id, o.out_trade_no)] = o
                self._by_prepay[o.prepay_id] = o
            reply = {"return_code": "SUCCESS", "return_msg": "OK", "appid": p["appid"],
                     "mch_id": p["mch_id"], "nonce_str": new_nonce(),
                     "result_code": "SUCCESS", "prepay_id": o.prepay_id,
                     "trade_type": p["trade_type"]}
            if p.get("device_info"):
                reply["device_info"] = p["device_info"]
            if p["trade_type"] == "NATIVE":
                reply["code_url"] = "weixin://wxpay/bizpayurl?pr=" + o.prepay_id[-7:]
            if p["trade_type"] == "MWEB":
                reply["mweb_url"] = ("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb"
                                     f"?prepay_id={o.prepay_id}&package="
                                     + str(1000000000 + secrets.randbelow(9000000000)))
            return reply

    def _new_prepay(self) -> str:
        return "wx" + beijing_stamp(self.now()) + secrets.token_hex(10)

    def _lookup(self, p: dict) -> _Order:
        if not p.get("out_trade_no") and not p.get("transaction_id"):
            raise _Reject(self._result_fail(p, "LACK_PARAMS",
                                            "缺少参数out_trade_no或transaction_id"))
        with self._lock:
            o = None
            if p.get("transaction_id"):
                o = next((x for x in self._orders.values()
                          if x.transaction_id == p["transaction_id"]
                          and x.mch_id == p["mch_id"]), None)
            elif p.get("out_trade_no"):
                o = self._orders.get((p["mch_id"], p["out_trade_no"]))
            if o is None or o.appid != p["appid"]:
                raise _Reject(self._result_fail(p, "ORDERNOTEXIST", "此交易订单号不存在"))
            self._expire(o)
            return o

    def _do_orderquery(self, p: dict) -> dict:
        with self._lock:
            o = self._lookup(p)
            # a paid order with refunds is REFUND to orderquery (§8.2)
            state = "REFUND" if o.state == "SUCCESS" and o.refunds else o.state
            reply = {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                     "mch_id": o.mch_id, "nonce_str": new_nonce(),
                     "result_code": "SUCCESS", "out_trade_no": o.out_trade_no,
                     "trade_state": state,
                     "trade_state_desc": {"NOTPAY": "订单未支付", "CLOSED": "订单已关闭",
                                          "SUCCESS": "支付成功", "REFUND": "转入退款"}[state],
                     "total_fee": o.params["total_fee"],
                     "fee_type": o.params.get("fee_type", "CNY"),
                     "trade_type": o.params["trade_type"]}
            for k in ("openid", "attach", "device_info"):
                if o.params.get(k):
                    reply[k] = o.params[k]
            if o.state == "SUCCESS":      # paid (REFUND included)
                reply.update(is_subscribe="N", bank_type=o.bank_type,
                             cash_fee=o.params["total_fee"],
                             transaction_id=o.transaction_id, time_end=o.time_end)
            return reply

    def _do_closeorder(self, p: dict) -> dict:
        self._need(p, "out_trade_no")
        with self._lock:
            o = self._lookup(p)
            if o.state == "SUCCESS":
                raise _Reject(self._result_fail(p, "ORDERPAID", "订单已支付，不能发起关单"))
            if o.state == "CLOSED":
                raise _Reject(self._result_fail(p, "ORDERCLOSED", "订单已关闭，无法重复关闭"))
            o.state = "CLOSED"
            return {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                    "mch_id": o.mch_id, "nonce_str": new_nonce(),
                    "result_code": "SUCCESS", "result_msg": "OK"}

