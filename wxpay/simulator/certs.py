"""The simulator's own test CA (``cryptography``): it issues the TLS server certificate
of the ``/secapi/`` listener and merchants' API client certificates (CN = mch_id, as
WeChat's), as ``apiclient_cert.p12`` (password = mch_id) or a PEM pair.  One CA per
process (keys are costly to make); never use these outside tests.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import threading

__all__ = ["TestCA", "test_ca", "write_merchant_files"]

_lock = threading.Lock()
_ca: "TestCA | None" = None


def _rsa():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestCA:
    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID
        self._key = _rsa()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wxpay-sim"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "wxpay-sim test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self._key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True,
                                                  True, False, False), True)
                     .sign(self._key, hashes.SHA256()))
        self._server = None
        self._merchants: dict[str, tuple] = {}

    @property
    def ca_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _issue(self, subject, key, *, server: bool, sans=()):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(self.cert.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.ExtendedKeyUsage(
                 [ExtendedKeyUsageOID.SERVER_AUTH if server
                  else ExtendedKeyUsageOID.CLIENT_AUTH]), False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        return b.sign(self._key, hashes.SHA256())

    def server_pem(self) -> tuple[bytes, bytes]:
        """(certificate, key) PEM for 127.0.0.1, ::1 and localhost."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID
        with _lock:
            if self._server is None:
                key = _rsa()
                sans = [x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1"))]
                cert = self._issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                 "localhost")]),
                                   key, server=True, sans=sans)
                self._server = (
                    cert.public_bytes(serialization.Encoding.PEM),
                    key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
            return self._server

    def merchant(self, mch_id: str):
        """(key, certificate) of the merchant's API client certificate (CN = mch_id)."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        with _lock:
            if mch_id not in self._merchants:
                key = _rsa()
                subject = x509.Name([
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wxpay-sim merchant"),
                    x509.NameAttribute(NameOID.COMMON_NAME, str(mch_id))])
                self._merchants[mch_id] = (key, self._issue(subject, key, server=False))
            return self._merchants[mch_id]

    def merchant_p12(self, mch_id: str, password: str | None = None) -> bytes:
        """``apiclient_cert.p12`` as WeChat issues it (password = mch_id by default)."""
        from cryptography.hazmat.primitives.serialization import (
            BestAvailableEncryption, pkcs12)
        key, cert = self.merchant(mch_id)
        pw = (password if password is not None else str(mch_id)).encode("utf-8")
        return pkcs12.serialize_key_and_certificates(b"Tenpay Certificate", key, cert,
                                                     None, BestAvailableEncryption(pw))

    def merchant_pem(self, mch_id: str) -> tuple[bytes, bytes]:
        """(``apiclient_cert.pem``, ``apiclient_key.pem``)."""
        from cryptography.hazmat.primitives import serialization
        key, cert = self.merchant(mch_id)
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def test_ca() -> TestCA:
    """The process's test CA (made on first use)."""
    global _ca
    with _lock:
        if _ca is None:
            _ca = TestCA()
        return _ca


test_ca.__test__ = False          # not a pytest test
TestCA.__test__ = False


def write_merchant_files(directory: str, mch_id: str) -> dict:
    """Write ``wxpay_ca.pem``, ``apiclient_cert.p12`` (password mch_id),
    ``apiclient_cert.pem`` and ``apiclient_key.pem`` (0600) into ``directory``."""
    ca = test_ca()
    os.makedirs(directory, exist_ok=True)
    cert_pem, key_pem = ca.merchant_pem(mch_id)
    files = {"wxpay_ca.pem": ca.ca_pem, "apiclient_cert.p12": ca.merchant_p12(mch_id),
             "apiclient_cert.pem": cert_pem, "apiclient_key.pem": key_pem}
    out = {}
    for name, data in files.items():
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        out[name] = path
    return out
