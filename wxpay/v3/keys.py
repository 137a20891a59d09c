"""WeChat's side of the trust: the WeChat Pay public key and/or the platform
certificates, picked by ``Wechatpay-Serial`` (wechatpay-v3.md §2, §3).  No I/O.

:class:`WechatKeys` holds both, knows when the certificates need a refresh
(:meth:`WechatKeys.needs_refresh`), and verifies a signed answer or notification
(:meth:`WechatKeys.verify`: headers, 5-minute window, serial, signature over the raw
bytes).  :func:`parse_certificates` decrypts a ``/v3/certificates`` answer.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

from cryptography import x509

from ..errors import SignError, WxPayError
from .auth import WINDOW, check_timestamp, response_message, wechatpay_headers
from .crypto import aes_gcm_decrypt, load_certificate, load_public_key, rsa_verify, serial_hex
from .errors import UnknownSerial

__all__ = ["PlatformCert", "WechatKeys", "parse_certificates", "REFRESH_EVERY",
           "PUB_KEY_PREFIX"]

PUB_KEY_PREFIX = "PUB_KEY_ID_"
REFRESH_EVERY = 11 * 3600          # "refresh every < 12 h"
EXPIRY_MARGIN = 24 * 3600          # refetch once a kept certificate expires within a day


@dataclass(frozen=True)
class PlatformCert:
    serial: str
    cert: x509.Certificate
    not_before: float
    not_after: float

    @classmethod
    def of(cls, cert) -> "PlatformCert":
        cert = load_certificate(cert)
        return cls(serial_hex(cert), cert,
                   cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())

    def valid_at(self, now: float) -> bool:
        return self.not_before <= now <= self.not_after

    def pem(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding
        return self.cert.public_bytes(Encoding.PEM).decode("ascii")


def _norm_serial(serial: str) -> str:
    s = serial.strip()
    if s.startswith(PUB_KEY_PREFIX):
        return s
    return s.upper().lstrip("0") or "0"


class WechatKeys:
    """``WechatKeys(public_key=PEM, public_key_id="PUB_KEY_ID_…", certificates=[PEM…])``.

    Thread-safe; the certificate set is replaced as a whole by
    :meth:`set_certificates`."""

    def __init__(self, public_key=None, public_key_id: str | None = None,
                 certificates: Iterable = (), fetched_at: float | None = None):
        if (public_key is None) != (public_key_id is None):
            raise WxPayError("e.weixin.conf.invalid",
                             "the WeChat Pay public key and its id go together")
        if public_key_id is not None and not str(public_key_id).startswith(PUB_KEY_PREFIX):
            raise WxPayError("e.weixin.conf.invalid",
                             "the WeChat Pay public key id must start with PUB_KEY_ID_")
        self.public_key = load_public_key(public_key) if public_key is not None else None
        self.public_key_id = public_key_id
        self._lock = threading.Lock()
        self._certs: dict[str, PlatformCert] = {}
        self.fetched_at = fetched_at
        if certificates:
            self.set_certificates(certificates, fetched_at)

    # ----- certificates --------------------------------------------------------
    def set_certificates(self, certificates: Iterable, fetched_at: float | None = None) -> None:
        certs = {}
        for c in certificates:
            pc = c if isinstance(c, PlatformCert) else PlatformCert.of(c)
            certs[pc.serial] = pc
        with self._lock:
            self._certs = certs
            self.fetched_at = time.time() if fetched_at is None else fetched_at

    def export_certificates(self) -> str:
        """The certificate cache as JSON text (public certificates only, no secret):
        ``{"fetched_at": seconds, "certificates": [PEM, ...]}``."""
        with self._lock:
            return json.dumps({"fetched_at": self.fetched_at,
                               "certificates": [c.pem() for c in self._certs.values()]})

    def load_certificates(self, text: str, now: float | None = None) -> None:
        """Load :meth:`export_certificates` output, keeping the still valid ones.
        WxPayError ``e.weixin.v3.certificates.invalid`` when it is not that."""
        try:
            doc = json.loads(text)
            pems = doc["certificates"]
            fetched = doc.get("fetched_at")
            if not isinstance(pems, list) or not (fetched is None
                                                  or isinstance(fetched, (int, float))):
                raise ValueError
            certs = [PlatformCert.of(p) for p in pems]
        except (ValueError, TypeError, KeyError, AttributeError, WxPayError):
            raise WxPayError("e.weixin.v3.certificates.invalid",
                             "the platform certificate cache is not valid") from None
        now = time.time() if now is None else now
        self.set_certificates([c for c in certs if c.valid_at(now)], fetched)

    def certificates(self) -> list[PlatformCert]:
        with self._lock:
            return list(self._certs.values())

    @property
    def uses_certificates(self) -> bool:
        return self.public_key is None or bool(self._certs)

    def needs_refresh(self, now: float | None = None) -> bool:
        """True when the certificates were never fetched, were fetched ≥ 11 h ago,
        or none stays valid for another day.  Never in pure public-key mode."""
        if self.public_key is not None and not self._certs:
            return False
        now = time.time() if now is None else now
        with self._lock:
            if self.fetched_at is None or now - self.fetched_at >= REFRESH_EVERY:
                return True
            return not any(c.valid_at(now) and c.not_after - now > EXPIRY_MARGIN
                           for c in self._certs.values())

    def newest_serial(self, now: float | None = None) -> str | None:
        """The serial to name in ``Wechatpay-Serial`` (the public key id, else the
        valid certificate that expires last)."""
        if self.public_key_id:
            return self.public_key_id
        now = time.time() if now is None else now
        valid = [c for c in self.certificates() if c.valid_at(now)]
        return max(valid, key=lambda c: c.not_after).serial if valid else None

    def key_for(self, serial: str, now: float | None = None):
        """The public key that ``serial`` names; UnknownSerial when none (an
        expired certificate is unknown too)."""
        if not isinstance(serial, str) or not serial:
            raise SignError("the answer names no Wechatpay-Serial")
        if serial.startswith(PUB_KEY_PREFIX):
            if self.public_key is not None and serial == self.public_key_id:
                return self.public_key
            raise UnknownSerial(serial)
        now = time.time() if now is None else now
        with self._lock:
            pc = self._certs.get(_norm_serial(serial))
        if pc is None or not pc.valid_at(now):
            raise UnknownSerial(serial)
        return pc.cert.public_key()

    # ----- verification ----------------------------------------------------------
    def verify(self, headers: Mapping, body: bytes, now: float | None = None,
               window: int = WINDOW) -> dict:
        """Check a signed answer or notification over the raw ``body`` bytes.

        SignError (missing/malformed headers, timestamp ≥ 5 min off, bad signature),
        UnknownSerial (serial not known).  Returns the parsed headers."""
        h = wechatpay_headers(headers)
        check_timestamp(h["timestamp"], now, window)
        key = self.key_for(h["serial"], now)
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            text = bytes(body or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise SignError("the signed body is not UTF-8") from None
        if not rsa_verify(key, response_message(h["timestamp"], h["nonce"], text),
                          h["signature"]):
            raise SignError("the Wechatpay-Signature does not match")
        return h


def parse_certificates(apiv3_key, body: bytes, now: float | None = None) -> list[PlatformCert]:
    """The valid platform certificates of a ``/v3/certificates`` answer.

    Each ``encrypt_certificate`` is decrypted with the APIv3 key (AAD
    ``certificate``); a certificate whose serial differs from its ``serial_no`` or
    that is not valid now is left out.  WxPayError ``e.weixin.v3.certificates.invalid``
    when the answer is not the expected JSON or holds no usable certificate;
    DecryptError when a ciphertext does not decrypt (wrong APIv3 key)."""
    now = time.time() if now is None else now
    try:
        doc = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, TypeError):
        doc = None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise WxPayError("e.weixin.v3.certificates.invalid",
                         "the /v3/certificates answer has no data list")
    out = []
    for item in data:
        if not isinstance(item, dict):
            continue
        enc = item.get("encrypt_certificate")
        serial = item.get("serial_no")
        if not isinstance(enc, dict) or not isinstance(serial, str):
            continue
        if enc.get("algorithm") != "AEAD_AES_256_GCM":
            continue
        pem = aes_gcm_decrypt(apiv3_key, enc.get("nonce"), enc.get("ciphertext"),
                              enc.get("associated_data"))
        pc = PlatformCert.of(pem)
        if pc.serial != _norm_serial(serial) or not pc.valid_at(now):
            continue
        out.append(pc)
    if not out:
        raise WxPayError("e.weixin.v3.certificates.invalid",
                         "the /v3/certificates answer holds no valid certificate")
    return out
