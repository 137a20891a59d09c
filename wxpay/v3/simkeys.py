"""Key material for the v3 simulator and for tests: fresh RSA key pairs and
self-signed X.509 certificates standing in for WeChat's platform certificates and the
merchant's API certificate.  Uses ``cryptography``; nothing here is used on a real
merchant's path."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .crypto import serial_hex

__all__ = ["new_key", "new_certificate", "new_serial"]


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def new_serial() -> int:
    """A positive 159-bit serial, written as 40 hex digits like WeChat's."""
    return secrets.randbits(159) | (1 << 158)


def new_certificate(key: rsa.RSAPrivateKey, common_name: str = "Tenpay.com Root CA",
                    serial: int | None = None, not_before: datetime | None = None,
                    days: int = 365 * 5) -> x509.Certificate:
    """A self-signed certificate of ``key`` (serial, validity as given)."""
    nb = not_before or datetime.now(timezone.utc) - timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wxpay-sim"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial or new_serial())
            .not_valid_before(nb).not_valid_after(nb + timedelta(days=days))
            .sign(key, hashes.SHA256()))


def cert_serial(cert: x509.Certificate) -> str:
    return serial_hex(cert)
