"""Payment notifications: signed, POSTed to notify_url in the background, retried
on every reply that is not SUCCESS, duplicated or concurrent on a fault."""
from __future__ import annotations

import secrets
import threading
from urllib.parse import urlsplit

import requests

from ..api import beijing_stamp, new_nonce
from ..errors import WxPayError
from ..sign import sign
from ..xmlcodec import MAX_BYTES, from_xml, to_xml
from ..simrun import deliver_with_retries, is_loopback_host
from .state import PREPAY_TTL, _Order


class NotifyMixin:
    # ----- payment and notification -------------------------------------------------
    def pay(self, prepay_id: str | None = None, out_trade_no: str | None = None,
            bank_type: str = "OTHERS") -> dict:
        """The user pays: mark the order paid and start notifying.

        Raises LookupError (unknown) or ValueError (not payable: paid, closed, expired).
        """
        with self._lock:
            o = self._payable(prepay_id, out_trade_no, PREPAY_TTL)
            now = self.now()
            o.state, o.paid_at = "SUCCESS", now
            o.transaction_id = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
            o.time_end = beijing_stamp(now)
            o.bank_type = bank_type
            mch_key = self._apps[o.appid][1]
            n = {"return_code": "SUCCESS", "return_msg": "OK", "appid": o.appid,
                 "mch_id": o.mch_id, "device_info": o.params.get("device_info"),
                 "nonce_str": new_nonce(), "result_code": "SUCCESS",
                 "openid": o.params.get("openid"), "is_subscribe": "N",
                 "trade_type": o.params["trade_type"], "bank_type": bank_type,
                 "total_fee": o.params["total_fee"],
                 "fee_type": o.params.get("fee_type", "CNY"),
                 "cash_fee": o.params["total_fee"], "transaction_id": o.transaction_id,
                 "out_trade_no": o.out_trade_no, "attach": o.params.get("attach"),
                 "time_end": o.time_end}
            n = {k: v for k, v in n.items() if v not in (None, "")}
            # signed the way the order was placed; like WeChat, no sign_type field
            # even for HMAC-SHA256 (wechatpay-v2.md §8.7)
            n["sign"] = sign(n, mch_key, o.sign_type)
            o.notification = n
            faults = self._take_faults(notify=True)
            copies = faults.get("concurrent_notify") or faults.get("duplicate_notify") or 1
            concurrent = "concurrent_notify" in faults
            o.notify_status = "pending"
            o.notify_active = copies
            result = {"out_trade_no": o.out_trade_no, "transaction_id": o.transaction_id,
                      "prepay_id": o.prepay_id, "total_fee": int(o.params["total_fee"]),
                      "time_end": o.time_end, "notify_url": o.params["notify_url"],
                      "notify_copies": copies}
        body = to_xml(n).encode("utf-8")
        threading.Thread(target=self._deliver,
                         args=(o, body, copies, concurrent, faults.get("notify_latency", 0)),
                         name="wxpay-sim-notify", daemon=True).start()
        return result

    def _deliver(self, o: _Order, body: bytes, copies: int, concurrent: bool, delay: float):
        url = o.params["notify_url"]
        if not self.allow_remote and not is_loopback_host(urlsplit(url).hostname):
            with self._cond:
                o.notify_status = "refused"
                o.notify_active = 0
                o.notify_attempts.append({"copy": 0, "n": 0, "at": int(self.now() * 1000),
                                          "status": None, "ok": False,
                                          "reply": "refused: notify_url is not loopback"})
                o.last_reply = "refused: notify_url is not loopback"
                self._cond.notify_all()
            return
        if delay and self._stop.wait(delay):
            return
        if concurrent and copies > 1:
            barrier = threading.Barrier(copies)
            threads = [threading.Thread(target=self._deliver_copy,
                                        args=(o, url, body, i, barrier), daemon=True)
                       for i in range(copies)]
            for t in threads:
                t.start()
        else:
            for i in range(copies):
                self._deliver_copy(o, url, body, i, None)

    def _deliver_copy(self, o, url, body, copy, barrier):
        delivered = False
        http = requests.Session()
        http.trust_env = False            # never through a proxy from the environment

        def post(n: int) -> bool:
            status, reply, ok = None, "", False
            try:
                r = http.post(url, data=body, timeout=self.notify_timeout,
                              headers={"Content-Type": "text/xml; charset=utf-8"},
                              allow_redirects=False)
                status = r.status_code
                raw = r.content[:MAX_BYTES]
                reply = raw[:500].decode("utf-8", "replace")
                ok = status == 200 and _is_success(raw)      # v2: SUCCESS in the XML
            except requests.RequestException as e:
                reply = f"error: {type(e).__name__}"
            with self._cond:
                o.notify_attempts.append({"copy": copy, "n": n, "at": int(self.now() * 1000),
                                          "status": status, "ok": ok, "reply": reply})
                o.last_reply = reply
            return ok
        try:
            delivered = deliver_with_retries(self._stop, self.retry_schedule, post, barrier)
        finally:
            http.close()
            with self._cond:
                o.notify_active -= 1
                if delivered:
                    o.notify_status = "delivered"
                elif o.notify_active <= 0 and o.notify_status != "delivered":
                    o.notify_status = "failed"
                self._cond.notify_all()


def _is_success(raw: bytes) -> bool:
    try:
        return from_xml(raw).get("return_code") == "SUCCESS"
    except WxPayError:
        return False

