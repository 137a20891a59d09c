"""HTTP client of the WeChat Pay v2 API on a pooled keep-alive ``urllib3`` pool manager.

urllib3 is what ``requests`` is built on; a payment call needs none of ``requests``'
machinery (cookies, hooks, proxies from the environment, redirects), which cost ~0.4 ms
of CPU per call (bench/wechat_clients.py).  The contract is unchanged: connect 5 s /
read 10 s, the whole reply within connect + read (a trickling server can not hold the
caller), no retries, no redirects, a body cap, the same error classes and messages.

Every reply is checked by :func:`wxpay.api.parse_reply` (signature included).
Failures are distinct errors: :class:`TransportError` (connection, timeout, HTTP
status, a body that is not XML), :class:`ReturnFail`, :class:`ResultFail`,
:class:`SignError`.
"""
from __future__ import annotations

import time
from typing import Mapping

import urllib3
import urllib3.exceptions as u3

from wnerrors import TIMEOUT

from .account import Account
from .api import build_closeorder, build_orderquery, build_unifiedorder, parse_reply
from .bill import bill_text, build_downloadbill
from .errors import TransportError, XmlError
from .xmlcodec import MAX_BYTES, from_xml, to_xml

__all__ = ["Client", "CONNECT_TIMEOUT", "READ_TIMEOUT"]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


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


def _pool(ssl_context=None) -> urllib3.PoolManager:
    """Keep-alive connections, at most 32 kept per host (a worker's request threads; more
    may be opened under load, never kept); no retries, no redirects; proxies are never
    read from the environment (urllib3 does not look at it)."""
    kw = {"ssl_context": ssl_context} if ssl_context is not None else {}
    return urllib3.PoolManager(num_pools=4, maxsize=32, block=False, retries=False, **kw)


class Client:
    """``Client(account, http=None, timeout=(5, 10))``.

    ``http`` is a ``urllib3.PoolManager`` to share; by default the client owns one.
    """

    def __init__(self, account: Account, http: urllib3.PoolManager | None = None,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
                 max_bytes: int = MAX_BYTES, cert=None, secapi_base: str | None = None,
                 ca_pem: bytes | None = None):
        """``cert``: a :class:`wxpay.certs.MerchantCert` for ``/secapi/`` (refunds);
        ``secapi_base``: where ``/secapi/`` is (default: the account's api_base);
        ``ca_pem``: trust anchors for that TLS server (default: the system's)."""
        self.account = account
        self._owns_http = http is None
        self.http = http if http is not None else _pool()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.cert = cert
        self.secapi_base = (secapi_base or account.api_base).rstrip("/")
        self.ca_pem = ca_pem
        self._secure: urllib3.PoolManager | None = None
        self._pools: dict = {}      # (base URL, secure) -> (host pool, base's path)

    @property
    def base_url(self) -> str:
        return self.account.api_base.rstrip("/")

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for (_base, secure), (pool, _prefix) in pools.items():
            if secure or self._owns_http:       # a shared manager's pools stay open
                pool.close()
        if self._owns_http:
            self.http.clear()
        if self._secure is not None:
            self._secure.clear()

    def _secure_session(self) -> urllib3.PoolManager:
        """A pool whose TLS presents the merchant certificate (no certificate: plain
        TLS, which WeChat refuses); the server is verified against ``ca_pem`` (else the
        system's CAs), its name included."""
        if self._secure is None:
            import ssl
            if self.cert is not None:
                ctx = self.cert.ssl_context(self.ca_pem)
            elif self.ca_pem:
                ctx = ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
            else:
                ctx = ssl.create_default_context()
            self._secure = _pool(ctx)
        return self._secure

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
        base = self.secapi_base if secure else self.base_url
        pool, prefix = self._host_pool(base, secure)
        url = prefix + "/" + path.lstrip("/")
        data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
        # the read timeout bounds each socket read; a server that trickles its reply
        # one byte at a time must not hold the caller for ever: the whole reply has to
        # arrive within connect + read timeout
        deadline = time.monotonic() + self._total_timeout()
        t = self.timeout
        connect, read = (t[0], t[1]) if isinstance(t, (tuple, list)) else (t, t)
        try:
            resp = pool.urlopen("POST", url, body=data, headers=_HEADERS,
                                timeout=urllib3.Timeout(connect=connect, read=read),
                                redirect=False, retries=False, preload_content=False,
                                assert_same_host=False)
        except u3.NewConnectionError:       # (a subclass of ConnectTimeoutError)
            raise TransportError(
                f"cannot reach WeChat Pay {path} (ConnectionError)") from None
        except u3.TimeoutError:
            raise TransportError(f"timeout calling WeChat Pay {path}", TIMEOUT) from None
        except u3.SSLError:
            raise TransportError(f"TLS handshake with WeChat Pay {path} failed (server "
                                 "certificate not trusted, or client certificate "
                                 "refused)") from None
        except (u3.HTTPError, OSError, ValueError) as e:
            raise TransportError(
                f"cannot reach WeChat Pay {path} ({_cause(e)})") from None
        try:
            body = self._read(resp, path, deadline, max_bytes or self.max_bytes)
            status = resp.status
        except BaseException:
            resp.close()            # a half-read connection is never reused
            raise
        resp.release_conn()
        if status != 200:
            what = "server error" if status >= 500 else "unexpected status"
            raise TransportError(f"WeChat Pay {path} answered HTTP {status} ({what})")
        return body

    def _host_pool(self, base: str, secure: bool):
        """(the connection pool of ``base``'s host, ``base``'s path) from the pool
        manager, looked up once per base (not a URL parse and pool-key lookup per
        call).  urllib3 2 never closes a pool it drops (more hosts than it keeps): one
        held here goes on working."""
        got = self._pools.get((base, secure))
        if got is None:
            http = self._secure_session() if secure else self.http
            prefix = urllib3.util.parse_url(base).path or ""
            got = self._pools[(base, secure)] = (http.connection_from_url(base),
                                                 prefix.rstrip("/"))
        return got

    def _total_timeout(self) -> float:
        t = self.timeout
        if isinstance(t, (tuple, list)):
            return float(sum(x for x in t if x is not None))
        return float(t) * 2 if t is not None else 60.0

    def _read(self, resp, path: str, deadline: float | None = None,
              max_bytes: int | None = None) -> bytes:
        """The reply body, one socket read at a time, the deadline checked between
        reads, at most ``max_bytes``."""
        limit = max_bytes or self.max_bytes
        chunks, size = [], 0
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise TransportError(f"timeout reading WeChat Pay {path}", TIMEOUT)
            try:
                chunk = resp.read1(8192, decode_content=True)
            except (u3.ReadTimeoutError, TimeoutError):
                raise TransportError(f"timeout reading WeChat Pay {path}", TIMEOUT) from None
            except (u3.HTTPError, OSError) as e:
                raise TransportError(f"connection lost reading WeChat Pay {path} "
                                     "(ConnectionError)") from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise TransportError(f"WeChat Pay {path} answered more than {limit} bytes")
            chunks.append(chunk)

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


def _cause(e: BaseException) -> str:
    """The class name of what went wrong (urllib3 wraps the socket's error), never its
    text (which may carry a URL)."""
    inner = getattr(e, "reason", None)
    if isinstance(e, u3.MaxRetryError) and isinstance(inner, BaseException):
        e = inner
    if isinstance(e, u3.ProtocolError):
        return "ConnectionError"
    return type(e).__name__
