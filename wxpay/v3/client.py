"""HTTP client of WeChat Pay v3 on one pooled ``requests.Session``.

Thin: :mod:`wxpay.v3.api` builds and signs each request and checks each answer.  The
client sends the exact bytes that were signed, reads the answer against a deadline
(connect + read timeout for the whole answer, as :class:`wxpay.client.Client`), and
verifies every 2xx answer's ``Wechatpay-Signature`` before parsing it -- the bill file
excepted, which is checked by its SHA-1 instead.  On a signature by an unknown
certificate serial it fetches ``/v3/certificates`` once and verifies again.

Failures are the v2 classes: :class:`TransportError` (kind TIMEOUT for timeouts),
:class:`ReturnFail` (401 SIGN_ERROR), :class:`ResultFail` (``V3ResultFail``),
:class:`SignError` (``UnknownSerial`` included).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Mapping

import requests


from ..client import CONNECT_TIMEOUT, READ_TIMEOUT, _session
from ..errors import SignError, TransportError
from ..httpread import exchange
from . import api
from .account import V3Account
from .errors import UnknownSerial
from .keys import PUB_KEY_PREFIX, WechatKeys, parse_certificates

__all__ = ["V3Client", "MAX_BYTES", "MAX_BILL_BYTES"]

MAX_BYTES = 1 << 20
MAX_BILL_BYTES = 64 << 20


class V3Client:
    """``V3Client(account, http=None, timeout=(5, 10), clock=time.time,
    on_certificates=None)``; ``on_certificates(text)`` is called with
    :meth:`WechatKeys.export_certificates` after each refresh (to cache them in the
    store)."""

    def __init__(self, account: V3Account, http: requests.Session | None = None,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
                 clock: Callable[[], float] = time.time,
                 on_certificates: Callable[[str], None] | None = None):
        self.account = account
        self.on_certificates = on_certificates
        self._owns_http = http is None
        self.http = http if http is not None else _session()
        self.timeout = timeout
        self.clock = clock
        self._refresh_lock = threading.Lock()

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----- transport ------------------------------------------------------------------
    def send(self, req: api.Request, max_bytes: int = MAX_BYTES) -> tuple[int, Mapping, bytes]:
        """Sign and send ``req``; ``(status, headers, body)`` of whatever came back."""
        what = f"WeChat Pay {req.target.split('?')[0]}"
        url = req.url(self.account.api_base)
        headers = req.headers(self.account, now=self.clock())
        total = sum(t for t in self.timeout if t is not None) \
            if isinstance(self.timeout, (tuple, list)) else float(self.timeout) * 2
        deadline = time.monotonic() + total
        resp, body = exchange(self.http, req.method, url, what, deadline, max_bytes,
                              data=req.body or None, headers=headers, timeout=self.timeout)
        ctype = resp.headers.get("Content-Type", "")
        if 200 <= resp.status_code < 300 and "html" in ctype.lower():
            raise TransportError(f"{what} answered an HTML page, not JSON")
        return resp.status_code, resp.headers, body

    def call(self, req: api.Request):
        """The verified JSON answer of ``req`` (None for a 204)."""
        return self.exchange(req)[0]

    def exchange(self, req: api.Request) -> tuple[dict | None, str]:
        """``(verified JSON or None, the answer's text)`` -- the text for a record
        such as the order's ``pay_rexml``."""
        self.ensure_certificates()
        status, headers, body = self.send(req)
        what = f"WeChat Pay {req.target.split('?')[0]}"
        try:
            doc = api.check_answer(self.account, status, headers, body, now=self.clock(),
                                   what=what)
        except UnknownSerial as e:
            if e.serial.startswith(PUB_KEY_PREFIX):
                raise
            self.refresh_certificates()          # a rotated certificate: fetch, retry once
            doc = api.check_answer(self.account, status, headers, body, now=self.clock(),
                                   what=what)
        return doc, body.decode("utf-8")

    # ----- platform certificates -----------------------------------------------------------
    def ensure_certificates(self) -> None:
        if self.account.keys.needs_refresh(self.clock()):
            self.refresh_certificates(force=False)

    def refresh_certificates(self, force: bool = True):
        """GET /v3/certificates, decrypt with the APIv3 key, verify the answer with the
        certificates it holds, and keep every valid one.  ``force=False``: only when
        still needed once the lock is held (concurrent callers fetch once)."""
        keys = self.account.keys
        with self._refresh_lock:
            if not force and not keys.needs_refresh(self.clock()):
                return keys.certificates()
            status, headers, body = self.send(api.build_certificates(self.account))
            if not 200 <= status < 300:
                api.check_answer(self.account, status, headers, body, verify=False)
            now = self.clock()
            certs = parse_certificates(self.account.apiv3_key, body, now)
            WechatKeys(certificates=certs).verify(headers, body, now)
            keys.set_certificates(certs, now)
        if self.on_certificates is not None:
            self.on_certificates(keys.export_certificates())
        return certs

    # ----- endpoints ---------------------------------------------------------------------
    def prepay(self, order: Mapping) -> str:
        """``POST /v3/pay/transactions/jsapi``; the prepay_id."""
        req = api.build_jsapi_prepay(self.account, order, now=self.clock())
        return api.parse_prepay(self.call(req))

    def native(self, order: Mapping) -> str:
        """``POST /v3/pay/transactions/native``; the ``code_url`` for a QR code."""
        req = api.build_native_prepay(self.account, order, now=self.clock())
        return api.parse_code_url(self.call(req))

    def jsapi(self, order: Mapping) -> tuple[str, dict]:
        """prepay, then the page's ``getBrandWCPayRequest`` parameters."""
        pid = self.prepay(order)
        return pid, api.jsapi_params(self.account, pid, now=self.clock())

    def query(self, out_trade_no: str | None = None,
              transaction_id: str | None = None) -> dict:
        doc = self.call(api.build_query(self.account, out_trade_no, transaction_id))
        return api.parse_transaction(self.account, doc,
                                     out_trade_no if not transaction_id else None)

    def close_order(self, out_trade_no: str) -> None:
        doc = self.call(api.build_close(self.account, out_trade_no))
        if doc is not None:
            raise SignError("the close answer should be an empty 204")

    def refund(self, refund: Mapping) -> dict:
        req = api.build_refund(self.account, refund)
        return api.parse_refund(self.account, self.call(req), refund.get("out_refund_no"))

    def refund_query(self, out_refund_no: str) -> dict:
        doc = self.call(api.build_refund_query(self.account, out_refund_no))
        return api.parse_refund(self.account, doc, out_refund_no)

    def tradebill(self, bill_date: str, bill_type: str = "ALL") -> str:
        """The trade bill's text: the signed answer's download_url fetched at once
        (unsigned file), gunzipped, its SHA-1 checked."""
        info = api.parse_bill(self.account, self.call(
            api.build_tradebill(self.account, bill_date, bill_type)))
        status, headers, body = self.send(api.build_download(self.account,
                                                             info["download_url"]),
                                          max_bytes=MAX_BILL_BYTES)
        if not 200 <= status < 300:
            api.check_answer(self.account, status, headers, body, verify=False)
        return api.check_bill_file(info, body, MAX_BILL_BYTES)
