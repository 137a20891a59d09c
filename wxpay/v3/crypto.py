"""The cryptographic primitives of WeChat Pay v3, on ``cryptography`` (no I/O here).

* SHA256withRSA (RSASSA-PKCS1-v1_5) signatures, base64 text: :func:`rsa_sign`,
  :func:`rsa_verify` (never raises on a malformed signature: it is simply not valid).
* AEAD_AES_256_GCM under the APIv3 key: :func:`aes_gcm_decrypt` (certificates and
  notification ``resource``\\ s), :func:`aes_gcm_encrypt` (the simulator's side).
* Loading PEM keys and certificates: :func:`load_private_key`, :func:`load_public_key`,
  :func:`load_certificate`, :func:`serial_hex`.

Errors are :class:`wxpay.errors.WxPayError` subclasses whose reasons never hold key
material.
"""
from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wnerrors import BAD_INPUT

from ..errors import WxPayError

__all__ = ["rsa_sign", "rsa_verify", "aes_gcm_decrypt", "aes_gcm_encrypt",
           "load_private_key", "load_public_key", "load_certificate", "serial_hex",
           "public_pem", "private_pem", "check_apiv3_key", "DecryptError", "KeyMaterialError"]

_MIN_RSA_BITS = 2048


class KeyMaterialError(WxPayError):
    """A key or certificate that cannot be loaded or is not usable (kind BAD_INPUT)."""

    def __init__(self, reason: str):
        super().__init__("e.weixin.v3.key.invalid", reason, BAD_INPUT)


class DecryptError(WxPayError):
    """AES-GCM failed: tampered ciphertext, wrong APIv3 key, wrong nonce or AAD."""

    def __init__(self, reason: str = "the encrypted resource does not decrypt "
                                     "(tampered, or another APIv3 key)"):
        super().__init__("e.weixin.v3.decrypt.invalid", reason)


def _as_bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise KeyMaterialError("a key must be PEM text or bytes")


def load_private_key(pem) -> rsa.RSAPrivateKey:
    """An RSA private key (PKCS#8 ``apiclient_key.pem``, or PKCS#1) of ≥ 2048 bits."""
    if isinstance(pem, rsa.RSAPrivateKey):
        return pem
    try:
        key = serialization.load_pem_private_key(_as_bytes(pem), password=None)
    except (ValueError, TypeError, binascii.Error):
        raise KeyMaterialError("the merchant private key is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _MIN_RSA_BITS:
        raise KeyMaterialError("the merchant private key must be RSA of at least 2048 bits")
    return key


def load_public_key(pem) -> rsa.RSAPublicKey:
    """An RSA public key from PEM (``-----BEGIN PUBLIC KEY-----``), or the public
    key of a PEM certificate."""
    if isinstance(pem, rsa.RSAPublicKey):
        return pem
    if isinstance(pem, rsa.RSAPrivateKey):
        return pem.public_key()
    data = _as_bytes(pem)
    try:
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, binascii.Error):
        raise KeyMaterialError("the public key is not a PEM public key or certificate") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_RSA_BITS:
        raise KeyMaterialError("the public key must be RSA of at least 2048 bits")
    return key


def load_certificate(pem) -> x509.Certificate:
    if isinstance(pem, x509.Certificate):
        return pem
    try:
        cert = x509.load_pem_x509_certificate(_as_bytes(pem))
    except (ValueError, TypeError, binascii.Error):
        raise KeyMaterialError("the certificate is not a PEM X.509 certificate") from None
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise KeyMaterialError("the certificate does not hold an RSA key")
    return cert


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as WeChat writes it: upper-case hex, no leading zeros."""
    return format(cert.serial_number, "X")


def public_pem(key) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM, as WeChat's ``apiclient_key.pem``."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def rsa_sign(private_key, message) -> str:
    """base64(SHA256withRSA(message)); ``message`` text is encoded as UTF-8."""
    key = load_private_key(private_key)
    sig = key.sign(_as_bytes(message), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def rsa_verify(public_key, message, signature) -> bool:
    """True when ``signature`` (base64 text) is SHA256withRSA of ``message`` under
    ``public_key``.  A signature that does not even decode (a ``WECHATPAY/SIGNTEST/``
    probe) is simply False."""
    key = load_public_key(public_key)
    if not isinstance(signature, (str, bytes)) or not signature:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, _as_bytes(message), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def check_apiv3_key(apiv3_key) -> bytes:
    """The APIv3 key as the 32 bytes AES-256 needs."""
    if not isinstance(apiv3_key, (str, bytes)):
        raise KeyMaterialError("the APIv3 key must be text")
    raw = _as_bytes(apiv3_key)
    if len(raw) != 32:
        raise KeyMaterialError("the APIv3 key must be 32 ASCII characters")
    return raw


def aes_gcm_decrypt(apiv3_key, nonce: str, ciphertext: str,
                    associated_data: str | None = "") -> bytes:
    """Plaintext bytes of an AEAD_AES_256_GCM ``{nonce, associated_data,
    ciphertext}`` (ciphertext = base64(ct ‖ 16-byte tag)).  DecryptError otherwise."""
    key = check_apiv3_key(apiv3_key)
    if not isinstance(nonce, str) or not nonce or not isinstance(ciphertext, str):
        raise DecryptError("the encrypted resource lacks its nonce or ciphertext")
    if associated_data is None:
        associated_data = ""
    if not isinstance(associated_data, str):
        raise DecryptError("associated_data must be text")
    try:
        data = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("the ciphertext is not base64") from None
    if len(data) < 16:
        raise DecryptError("the ciphertext is shorter than its tag")
    try:
        return AESGCM(key).decrypt(nonce.encode("utf-8"), data,
                                   associated_data.encode("utf-8"))
    except InvalidTag:
        raise DecryptError() from None
    except ValueError:
        raise DecryptError("the nonce is not usable for AES-GCM") from None


def aes_gcm_encrypt(apiv3_key, nonce: str, plaintext, associated_data: str = "") -> str:
    """base64(ct ‖ tag) of ``plaintext`` (what WeChat puts in ``ciphertext``)."""
    key = check_apiv3_key(apiv3_key)
    ct = AESGCM(key).encrypt(nonce.encode("utf-8"), _as_bytes(plaintext),
                             (associated_data or "").encode("utf-8"))
    return base64.b64encode(ct).decode("ascii")
