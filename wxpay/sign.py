"""WeChat Pay v2 signatures (wechatpay-v2.md §1).

Rules: drop ``sign`` and every empty value (``""`` or ``None``); keep ``sign_type`` and
every unknown field; sort the names in ASCII order; join ``k=v`` with ``&`` using raw
values (no URL encoding, no trimming); append ``&key=<API key>``; hash the UTF-8 bytes
with MD5 (default) or HMAC-SHA256 keyed with the API key; uppercase hex.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from decimal import Decimal
from typing import Mapping

from wnerrors import BAD_INPUT, WnError

from .errors import SignError

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)

__all__ = ["new_nonce", "MD5", "HMAC_SHA256", "SIGN_TYPES", "text_value", "normalize_sign_type",
           "string_to_sign", "sign", "verify"]

_ALNUM = string.ascii_letters + string.digits


def new_nonce(length: int = 32) -> str:
    """A random alphanumeric nonce of ``length`` characters (about 6 bits each) from
    one draw of the OS's random bytes (``secrets.token_bytes``), each byte below 248
    mapped to one of the 62 characters (248 = 4 x 62: no bias); a ``secrets.choice``
    per character made a system call per character."""
    out = ""
    while len(out) < length:
        out += "".join([_ALNUM[b % 62] for b in secrets.token_bytes(length + 8) if b < 248])
    return out[:length]


def text_value(value) -> str | None:
    """The text a field value is signed and sent as; ``None`` for absent.

    ``int`` 0 is ``"0"`` (a value, not empty).  Booleans, floats with a fraction and
    containers are refused: the protocol has no such values and their text form is
    ambiguous.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise WnError("e.weixin.param.invalid", "a boolean is not a WeChat Pay value",
                      BAD_INPUT)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise WnError("e.weixin.param.invalid",
                          "a float with a fraction is not a WeChat Pay value", BAD_INPUT)
        return str(int(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise WnError("e.weixin.param.invalid", "not a finite number", BAD_INPUT)
        return str(value)
    raise WnError("e.weixin.param.invalid",
                  f"a {type(value).__name__} is not a WeChat Pay value", BAD_INPUT)


def normalize_sign_type(sign_type: str | None) -> str:
    """``None``/"" → MD5; MD5 or HMAC-SHA256 (any case); anything else → SignError."""
    if sign_type is None or sign_type == "":
        return MD5
    if sign_type.__class__ is str and sign_type in SIGN_TYPES:
        return sign_type             # already normal: the account's, on every call
    st = str(sign_type).strip().upper()
    if st not in SIGN_TYPES:
        raise SignError("unknown sign_type (expected MD5 or HMAC-SHA256)")
    return st


def _check_key(key) -> bytes:
    if not isinstance(key, str) or not key:
        raise SignError("no API key to sign with")
    return key.encode("utf-8")


def string_to_sign(params: Mapping, key: str) -> str:
    """``k1=v1&k2=v2&...&key=KEY`` over the non-empty fields except ``sign``."""
    _check_key(key)
    parts = []
    for name in sorted(params):
        if name == "sign":
            continue
        value = params[name]
        if value.__class__ is not str:   # a parsed payload holds only str: no call
            value = text_value(value)
            if value is None:
                continue
        if value:
            parts.append(f"{name}={value}")
    parts.append(f"key={key}")
    return "&".join(parts)


def sign(params: Mapping, key: str, sign_type: str | None = MD5) -> str:
    """Uppercase hex signature of ``params`` with the merchant API key."""
    st = normalize_sign_type(sign_type)
    data = string_to_sign(params, key).encode("utf-8")
    if st == MD5:
        return hashlib.md5(data).hexdigest().upper()
    return hmac.new(_check_key(key), data, hashlib.sha256).hexdigest().upper()


def verify(params: Mapping, key: str, sign_type: str | None = None) -> bool:
    """True when ``params["sign"]`` is the signature of ``params``.

    The sign type is ``sign_type`` when given, else the payload's ``sign_type`` field,
    else MD5.  A missing sign is False; an unknown sign type raises SignError.  The
    comparison is constant-time.
    """
    received = params.get("sign")
    if not isinstance(received, str) or not received:
        return False
    st = normalize_sign_type(sign_type if sign_type else params.get("sign_type"))
    expected = sign(params, key, st)
    # uppercase hex is ASCII: a sign that is not can only differ (compare_digest
    # takes str only when both are ASCII; isascii reads a flag, leaking nothing)
    return received.isascii() and hmac.compare_digest(expected, received)
