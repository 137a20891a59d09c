"""The merchant's API client certificate (``apiclient_cert.p12``) for ``/secapi/``.

:class:`MerchantCert` holds the private key and certificate in memory (``cryptography``
objects), loaded from the PKCS#12 file WeChat issues (password = mch_id unless told)
or from the PEM pair.  Its ``repr`` shows the subject only.

``ssl`` can load a client certificate from a file path only (``load_cert_chain``), and
``requests`` passes paths only.  :meth:`MerchantCert.ssl_context` therefore hands
``ssl`` the chain through an anonymous in-memory file (Linux ``memfd_create``:
``/proc/self/fd/N``, never on a disk) whose private key is PEM-encrypted under a
one-time random passphrase, closed as soon as it is loaded.  Where ``memfd_create`` is
missing, a 0600 temporary file (the key still encrypted under the one-time passphrase)
is written, loaded and deleted at once.  The unencrypted key never touches a disk.
The resulting ``ssl.SSLContext`` is mounted on a ``requests`` adapter
(:class:`TLSAdapter`).
"""
from __future__ import annotations

import os
import secrets
import ssl
import tempfile

from requests.adapters import HTTPAdapter

from wnerrors import BAD_INPUT, WnError

__all__ = ["MerchantCert", "TLSAdapter", "load_merchant_cert"]


def _bad(reason: str) -> WnError:
    return WnError("e.weixin.cert.invalid", reason, BAD_INPUT)


class MerchantCert:
    """A private key and its certificate (plus any chain), in memory."""

    def __init__(self, key, cert, chain=()):
        self._key, self.cert, self.chain = key, cert, tuple(chain)

    def __repr__(self) -> str:
        return f"MerchantCert(subject={self.subject!r}, key=****)"

    __str__ = __repr__

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    @property
    def common_name(self) -> str | None:
        from cryptography.x509.oid import NameOID
        names = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None

    @classmethod
    def from_p12(cls, data: bytes, password) -> "MerchantCert":
        from cryptography.hazmat.primitives.serialization import pkcs12
        pw = password.encode("utf-8") if isinstance(password, str) else password
        try:
            key, cert, chain = pkcs12.load_key_and_certificates(bytes(data), pw or None)
        except (ValueError, TypeError):
            raise _bad("apiclient_cert.p12 cannot be opened (wrong password or not "
                       "a PKCS#12 file)") from None
        if key is None or cert is None:
            raise _bad("apiclient_cert.p12 holds no key and certificate")
        return cls(key, cert, chain or ())

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, password=None) -> "MerchantCert":
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        pw = password.encode("utf-8") if isinstance(password, str) else password
        try:
            certs = x509.load_pem_x509_certificates(bytes(cert_pem))
        except ValueError:
            raise _bad("apiclient_cert.pem is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(bytes(key_pem), pw or None)
        except (ValueError, TypeError):
            raise _bad("apiclient_key.pem is not a PEM private key (or needs a "
                       "password)") from None
        return cls(key, certs[0], certs[1:])

    def ssl_context(self, ca_pem: bytes | str | None = None) -> ssl.SSLContext:
        """A client TLS context presenting this certificate; the server is verified
        against ``ca_pem`` when given, else the system's CAs."""
        from cryptography.hazmat.primitives import serialization
        if ca_pem:
            ctx = ssl.create_default_context(
                cadata=ca_pem.decode("ascii") if isinstance(ca_pem, bytes) else ca_pem)
        else:
            ctx = ssl.create_default_context()
        passphrase = secrets.token_hex(32).encode("ascii")
        blob = self.cert.public_bytes(serialization.Encoding.PEM)
        for c in self.chain:
            blob += c.public_bytes(serialization.Encoding.PEM)
        blob += self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase))
        _load_chain(ctx, blob, passphrase)
        return ctx


def _load_chain(ctx: ssl.SSLContext, blob: bytes, passphrase: bytes) -> None:
    memfd = getattr(os, "memfd_create", None)
    fd = None
    if memfd is not None:
        try:
            fd = memfd("wxpay-apiclient", getattr(os, "MFD_CLOEXEC", 0))
        except OSError:
            fd = None
    if fd is not None:
        try:
            os.write(fd, blob)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}", password=passphrase)
        except ssl.SSLError:
            raise _bad("the merchant certificate and key do not match") from None
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="wxpay-", suffix=".pem")    # mode 0600
    try:
        os.write(fd, blob)
        os.close(fd)
        fd = -1
        ctx.load_cert_chain(path, password=passphrase)
    except ssl.SSLError:
        raise _bad("the merchant certificate and key do not match") from None
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)


class TLSAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections use one ``ssl.SSLContext``."""

    def __init__(self, context: ssl.SSLContext, **kw):
        self._context = context
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kw)

    def cert_verify(self, conn, url, verify, cert):
        # the context carries both the trust anchors and the client certificate
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None
        conn.cert_file = conn.key_file = None


def load_merchant_cert(*, p12: bytes | None = None, cert_pem: bytes | None = None,
                       key_pem: bytes | None = None, password=None) -> MerchantCert:
    """From ``apiclient_cert.p12`` (password) or the PEM pair."""
    if p12 is not None:
        return MerchantCert.from_p12(p12, password)
    if cert_pem is not None and key_pem is not None:
        return MerchantCert.from_pem(cert_pem, key_pem)
    raise _bad("no merchant certificate (apiclient_cert.p12, or apiclient_cert.pem "
               "with apiclient_key.pem)")
