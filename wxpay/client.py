"""HTTP client of the WeChat Pay v2 API on pooled keep-alive connections (wxpay/keepalive.py:
replies parsed by ``httptools``).

The contract: connect 5 s / read 10 s, the whole reply within connect + read (a
trickling server can not hold the caller), no retries, no redirects, a body cap, the
same error classes and messages whatever went wrong.  Before issue 10 the calls went
through a ``requests.Session`` (~0.4 ms more CPU a call), then through a ``urllib3``
pool (~0.13 ms more); a payment call needs none of their machinery (cookies, hooks,
proxies from the environment, redirects, retries), and ``http.client`` under both
parses reply headers in Python.  bench/wechat_clients.py prints each.

Every reply is checked by :func:`wxpay.api.parse_reply` (signature included).
Failures are distinct errors: :class:`TransportError` (connection, timeout, HTTP
status, a body that is not XML), :class:`ReturnFail`, :class:`ResultFail`,
:class:`SignError`.
"""
from __future__ import annotations

import time
from typing import Mapping
from urllib.parse import urlsplit

from wnerrors import BAD_INPUT, TIMEOUT, WnError

from .account import Account
from .api import build_closeorder, build_orderquery, build_unifiedorder, parse_reply
from .bill import bill_text, build_downloadbill
from .errors import TransportError, XmlError
from .keepalive import Failure, HostPool
from .xmlcodec import MAX_BYTES, from_xml, to_xml

__all__ = ["Client", "CONNECT_TIMEOUT", "READ_TIMEOUT"]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
KEEP = 32               # idle connections kept per host: a worker's request threads


def _session():
    """A pooled ``requests.Session`` (the v3 client's; wxpay/v3/client.py)."""
    import requests
    from requests.adapters import HTTPAdapter
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.trust_env = False          # no proxies from the environment for payment calls
    return s


_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


class Client:
    """``Client(account, timeout=(5, 10))``: calls of one merchant account, each host's
    connections kept open between calls."""

    def __init__(self, account: Account,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
                 max_bytes: int = MAX_BYTES, cert=None, secapi_base: str | None = None,
                 ca_pem: bytes | None = None):
        """``cert``: a :class:`wxpay.certs.MerchantCert` for ``/secapi/`` (refunds);
        ``secapi_base``: where ``/secapi/`` is (default: the account's api_base);
        ``ca_pem``: trust anchors for that TLS server (default: the system's)."""
        self.account = account
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cert = cert
        self.secapi_base = (secapi_base or account.api_base).rstrip("/")
        self.ca_pem = ca_pem
        self._pools: dict = {}      # (base URL, secure) -> (host pool, base's path)

    @property
    def base_url(self) -> str:
        return self.account.api_base.rstrip("/")

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool, _prefix in pools.values():
            pool.close()

    def _tls_context(self, secure: bool):
        """For ``/secapi/``: TLS presenting the merchant certificate (no certificate:
        plain TLS, which WeChat refuses), the server verified against ``ca_pem`` (else
        the system's CAs), its name included.  Other calls: the system's CAs."""
        import ssl
        if secure and self.cert is not None:
            return self.cert.ssl_context(self.ca_pem)
        if secure and self.ca_pem:
            return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        return ssl.create_default_context()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def post_xml(self, path: str, xml: str) -> str:
        """POST ``xml`` to ``base + path``; the reply body (text) when it is a 200 XML.

        Raises TransportError (kind TIMEOUT for timeouts) otherwise.
        """
        return self.post_xml_fields(path, xml)[0]

    def post_xml_fields(self, path: str, xml: str) -> tuple[str, dict]:
        """``post_xml``'s text and the fields read from it (to hand to
        ``parse_reply``: the reply is parsed once)."""
        body = self.post_raw(path, xml)
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TransportError(f"WeChat Pay {path} answered a body that is not UTF-8") from None
        stripped = text.lstrip()
        if stripped[:15].lower().startswith(("<!doctype html", "<html")):
            raise TransportError(f"WeChat Pay {path} answered an HTML page, not XML")
        try:
            fields = from_xml(text, max_bytes=self.max_bytes)
        except XmlError as e:
            raise TransportError(f"WeChat Pay {path} answered a body that is not "
                                 f"WeChat XML ({e.reason})") from None
        return text, fields

    def post_raw(self, path: str, xml: str, max_bytes: int | None = None) -> bytes:
        """POST ``xml``; the 200 reply's bytes (``/secapi/`` paths go over the
        certificate session to ``secapi_base``)."""
        secure = path.lstrip("/").startswith("secapi/")
        pool, prefix = self._host_pool(self.secapi_base if secure else self.base_url,
                                       secure)
        data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
        t = self.timeout
        connect, read = (t[0], t[1]) if isinstance(t, (tuple, list)) else (t, t)
        # the read timeout bounds each socket read; a server that trickles its reply
        # one byte at a time must not hold the caller for ever: the whole reply has to
        # arrive within connect + read timeout
        deadline = time.monotonic() + self._total_timeout()
        try:
            status, body = pool.post(prefix + "/" + path.lstrip("/"), data, connect, read,
                                     deadline, max_bytes or self.max_bytes)
        except Failure as f:
            raise _transport_error(f.stage, path, max_bytes or self.max_bytes) from None
        except ValueError:          # a path the address gave that HTTP cannot carry
            raise _bad_address() from None
        if status != 200:
            what = "server error" if status >= 500 else "unexpected status"
            raise TransportError(f"WeChat Pay {path} answered HTTP {status} ({what})")
        return body

    def _host_pool(self, base: str, secure: bool):
        """(the connections of ``base``'s host, ``base``'s path), made once per base."""
        got = self._pools.get((base, secure))
        if got is None:
            try:
                url = urlsplit(base)
                port = url.port
            except ValueError:
                url = port = None
            if url is None or url.scheme not in ("http", "https") or not url.hostname:
                raise _bad_address()
            https = url.scheme == "https"
            try:
                pool = HostPool(url.hostname, port or (443 if https else 80),
                                self._tls_context(secure) if https else None, keep=KEEP,
                                headers=_HEADERS)
            except ValueError:
                raise _bad_address() from None
            got = self._pools[(base, secure)] = (pool, url.path.rstrip("/"))
        return got

    def _total_timeout(self) -> float:
        t = self.timeout
        if isinstance(t, (tuple, list)):
            return float(sum(x for x in t if x is not None))
        return float(t) * 2 if t is not None else 60.0

    def call(self, path: str, params: Mapping) -> dict:
        """POST signed ``params`` as XML and return the checked reply fields."""
        return parse_reply(self.account, self.post_xml_fields(path, to_xml(params))[1],
                           max_bytes=self.max_bytes)

    def unifiedorder(self, params: Mapping) -> dict:
        """``params``: a signed request (from build_unifiedorder) is sent as is; an
        unsigned order (seed input) is built and signed first."""
        if not params.get("sign"):
            params = build_unifiedorder(self.account, params)
        return self.call("/pay/unifiedorder", params)

    def orderquery(self, out_trade_no: str | None = None,
                   transaction_id: str | None = None) -> dict:
        return self.call("/pay/orderquery", build_orderquery(
            self.account, out_trade_no, transaction_id=transaction_id))

    def closeorder(self, out_trade_no: str) -> dict:
        return self.call("/pay/closeorder", build_closeorder(self.account, out_trade_no))

    def refund(self, params: Mapping) -> dict:
        """``/secapi/pay/refund`` with a signed request from
        :func:`wxpay.refund.build_refund` (needs ``cert``)."""
        return self.call("/secapi/pay/refund", params)

    def refundquery(self, **numbers) -> dict:
        from .refund import build_refundquery
        return self.call("/pay/refundquery", build_refundquery(self.account, **numbers))

    def downloadbill(self, bill_date: str, bill_type: str = "ALL",
                     gzip_body: bool = True) -> str:
        """The bill's text (gunzipped); a failure → ReturnFail (``e.weixin.bill.none``
        for "No Bill Exist").  Bills are not signed."""
        params = build_downloadbill(self.account, bill_date, bill_type, gzip_body)
        # a day's bill can be large
        body = self.post_raw("/pay/downloadbill", to_xml(params),
                             max_bytes=max(self.max_bytes, 64 * 1024 * 1024))
        return bill_text(body)


def _bad_address() -> WnError:
    return WnError("e.weixin.conf.invalid", "the WeChat Pay address is not an http(s) URL "
                   "of printable ASCII", BAD_INPUT)


_STAGES = {
    "connect": "cannot reach WeChat Pay {path} (ConnectionError)",
    "send": "cannot reach WeChat Pay {path} (ConnectionError)",
    "tls": "TLS handshake with WeChat Pay {path} failed (server certificate not "
           "trusted, or client certificate refused)",
    "timeout": "timeout calling WeChat Pay {path}",
    "read-timeout": "timeout reading WeChat Pay {path}",
    "read": "connection lost reading WeChat Pay {path} (ConnectionError)",
    "too-large": "WeChat Pay {path} answered more than {limit} bytes",
}


def _transport_error(stage: str, path: str, limit: int) -> TransportError:
    """The error of a call that stopped at ``stage`` (never the server's own text)."""
    reason = _STAGES[stage].format(path=path, limit=limit)
    if stage in ("timeout", "read-timeout"):
        return TransportError(reason, TIMEOUT)
    return TransportError(reason)
