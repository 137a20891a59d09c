"""The :class:`Simulator`: merchants, clock, lifecycle (a plain HTTP listener for
``/pay/*`` and a TLS one for ``/secapi/*`` that asks for the merchant's client
certificate), and state access; the protocol, refunds, bills, faults and
notifications come from their own modules."""
from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer

from ..errors import WxPayError
from .bills import BillsMixin
from .faults import FaultsMixin
from .http import _Handler, _Server, _TLSServer
from .notify import NotifyMixin
from .protocol import PayProtocolMixin
from .refunds import RefundMixin
from .state import _Order, is_loopback_host


class Simulator(FaultsMixin, PayProtocolMixin, NotifyMixin, RefundMixin, BillsMixin):
    """``tls=True`` (default) also listens with TLS for ``/secapi/`` (:attr:`secure_url`),
    with a server certificate of the process's test CA (:attr:`ca_pem`) and client
    certificates checked against it (:meth:`merchant_p12`, :meth:`merchant_pem`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, merchants=(),
                 retry_schedule=(0.2, 0.2, 0.5, 1, 2), allow_remote: bool = False,
                 hold: float = 15.0, notify_timeout: float = 5.0, verbose: bool = False,
                 tls: bool = True, secure_port: int = 0, v3=None):
        if not allow_remote and not is_loopback_host(host):
            raise WxPayError("e.weixin.sim.remote",
                             f"refusing to listen on non-loopback host {host} "
                             "(use allow_remote / --allow-remote)")
        self.host, self.port = host, port
        self.allow_remote = allow_remote
        self.retry_schedule = tuple(float(x) for x in retry_schedule)
        self.hold = float(hold)
        self.notify_timeout = float(notify_timeout)
        self.verbose = verbose
        self._apps: dict[str, tuple[str, str]] = {}     # appid -> (mch_id, key)
        self._mchs: set[str] = set()
        for m in merchants:
            self.add_merchant(*m)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._orders: dict[tuple[str, str], _Order] = {}
        self._by_prepay: dict[str, _Order] = {}
        self._faults: dict = {}
        self._fault_left: int | None = None
        self._offset = 0.0
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests_seen = 0
        self.tls, self.secure_port = tls, secure_port
        self._tls_server: ThreadingHTTPServer | None = None
        self._tls_thread: threading.Thread | None = None
        self._refund_outcome, self._refund_delay = "SUCCESS", 0.1
        self._bills: dict[tuple[str, str], list] = {}
        # the v3 API (``/v3/*``, ``/sim/v3/*``) mounted on the same listener: a
        # wxpay.v3.simulator.V3Simulator, made by the first add_v3_merchant
        self.v3 = v3

    # ----- setup ---------------------------------------------------------------
    def add_merchant(self, appid: str, mch_id: str, key: str) -> None:
        if not appid or not mch_id or not key:
            raise WxPayError("e.weixin.sim.merchant", "a merchant needs appid, mch_id and key")
        self._apps[str(appid)] = (str(mch_id), str(key))
        self._mchs.add(str(mch_id))

    def add_v3_merchant(self, mchid: str, appids, public_key, serial_no: str,
                        apiv3_key: str, sign_with: str = "certificate") -> None:
        """A v3 merchant (its API public key and certificate serial, its APIv3 key),
        served by the mounted :class:`wxpay.v3.simulator.V3Simulator` beside the v2
        merchants (``sim.v3``)."""
        if self.v3 is None:
            from ..v3.simulator import V3Simulator
            self.v3 = V3Simulator(retry_schedule=self.retry_schedule,
                                  allow_remote=self.allow_remote, hold=self.hold,
                                  notify_timeout=self.notify_timeout)
            if self._server is not None:
                self.v3.base_url = self.url
        self.v3.add_merchant(mchid, appids, public_key, serial_no, apiv3_key, sign_with)

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (expiry tests)."""
        with self._lock:
            self._offset += seconds

    @property
    def url(self) -> str:
        if self._server is None:
            raise WxPayError("e.weixin.sim.stopped", "the simulator is not started")
        host = self._server.server_address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.server_address[1]}"

    @property
    def secure_url(self) -> str:
        """``https://…`` of the TLS listener (``/secapi/pay/refund`` lives there)."""
        if self._tls_server is None:
            raise WxPayError("e.weixin.sim.stopped", "the simulator's TLS listener is off")
        host = self._tls_server.server_address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self._tls_server.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        """The test CA certificate: trust it to verify :attr:`secure_url`."""
        from .certs import test_ca
        return test_ca().ca_pem

    def merchant_p12(self, mch_id: str, password: str | None = None) -> bytes:
        """The merchant's ``apiclient_cert.p12`` (password = mch_id by default)."""
        from .certs import test_ca
        return test_ca().merchant_p12(mch_id, password)

    def merchant_pem(self, mch_id: str) -> tuple[bytes, bytes]:
        """(``apiclient_cert.pem``, ``apiclient_key.pem``)."""
        from .certs import test_ca
        return test_ca().merchant_pem(mch_id)

    def _server_context(self):
        import secrets
        import ssl
        from cryptography.hazmat.primitives import serialization
        from ..certs import _load_chain
        from .certs import test_ca
        ca = test_ca()
        cert_pem, key_pem = ca.server_pem()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # ssl loads a chain from a path only: the same memory-file route the client's
        # merchant certificate takes (wxpay.certs), the key encrypted on the way
        passphrase = secrets.token_hex(32).encode("ascii")
        key = serialization.load_pem_private_key(key_pem, None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase))
        _load_chain(ctx, cert_pem + key, passphrase)
        ctx.load_verify_locations(cadata=ca.ca_pem.decode("ascii"))
        ctx.verify_mode = ssl.CERT_OPTIONAL       # /secapi/ answers FAIL without one
        return ctx

    def start(self) -> "Simulator":
        if self._server is not None:
            return self
        self._stop.clear()
        handler = type("Handler", (_Handler,), {"sim": self})
        server = _Server((self.host, self.port), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.02},
                                        name="wxpay-sim", daemon=True)
        self._thread.start()
        if self.v3 is not None:       # the bill download_url points here
            self.v3.base_url = self.url
        if self.tls:
            tls = _TLSServer((self.host, self.secure_port), handler)
            tls.context = self._server_context()
            self._tls_server = tls
            self._tls_thread = threading.Thread(target=tls.serve_forever,
                                                kwargs={"poll_interval": 0.02},
                                                name="wxpay-sim-tls", daemon=True)
            self._tls_thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.v3 is not None:
            self.v3.stop()
        for server in (self._server, self._tls_server):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._tls_server = None
        for t in (self._thread, self._tls_thread):
            if t is not None:
                t.join(timeout=5)
        self._thread = self._tls_thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- state access ----------------------------------------------------------
    def _find(self, out_trade_no: str, mch_id: str | None = None) -> _Order | None:
        if mch_id is not None:
            return self._orders.get((mch_id, out_trade_no))
        for (m, no), order in self._orders.items():
            if no == out_trade_no:
                return order
        return None

    def order(self, out_trade_no: str, mch_id: str | None = None) -> dict | None:
        """A JSON-able snapshot of an order, or None."""
        with self._lock:
            o = self._find(out_trade_no, mch_id)
            if o is None:
                return None
            self._expire(o)
            return o.snapshot()

    def wait_notified(self, out_trade_no: str, timeout: float = 10.0,
                      mch_id: str | None = None) -> dict:
        """Wait until no notification delivery of the order is running any more."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                o = self._find(out_trade_no, mch_id)
                if o is not None and o.notify_status != "pending" and o.notify_active == 0 \
                        and o.notify_status != "none":
                    return o.snapshot()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"notification of {out_trade_no} still running")
                self._cond.wait(left)

    def _expire(self, o: _Order) -> None:
        if o.state == "NOTPAY" and o.time_expire is not None and self.now() >= o.time_expire:
            o.state = "CLOSED"

