"""Signing merchant requests and checking WeChat's signatures (wechatpay-v3.md §1, §2).

No I/O.  The merchant side signs ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` over
the request-target *as sent* and the exact body bytes; WeChat signs
``TIMESTAMP\\nNONCE\\nBODY\\n`` over the raw answer (or notification) bytes.

* :func:`request_message`, :func:`authorization` -- the merchant's ``Authorization``.
* :func:`parse_authorization` -- its fields (the simulator checks them).
* :func:`response_message`, :func:`signature_headers` -- WeChat's ``Wechatpay-*``.
* :func:`check_timestamp` -- the 5-minute window; :func:`wechatpay_headers` reads the
  ``Wechatpay-*`` headers from any mapping (case-insensitive).
"""
from __future__ import annotations

import re
import time
from typing import Mapping

from ..errors import SignError
from ..sign import new_nonce
from .crypto import rsa_sign

__all__ = ["SCHEMA", "SIGNATURE_TYPE", "WINDOW", "new_nonce", "request_message",
           "authorization", "parse_authorization", "response_message",
           "signature_headers", "check_timestamp", "wechatpay_headers", "header"]

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
WINDOW = 300                      # seconds: |now - timestamp| must stay below
_FIELD = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')
_TARGET = re.compile(r"^/[!-~]*$")
_NONCE = re.compile(r"^[0-9A-Za-z]{1,64}$")
_SERIAL = re.compile(r"^[0-9A-Za-z_]{1,64}$")
_AUTH_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")


def _stamp(timestamp) -> str:
    if timestamp is None:
        return str(int(time.time()))
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, str)):
        raise SignError("a timestamp must be Unix seconds")
    text = str(int(timestamp)) if not isinstance(timestamp, str) else timestamp
    if not text.isdigit() or len(text) > 10:
        raise SignError("a timestamp must be Unix seconds (not milliseconds)")
    return text


def _text(body) -> str:
    if body is None:
        return ""
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise SignError("a signed body must be UTF-8") from None
    return str(body)


def _bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    return str(body).encode("utf-8")


def request_message(method: str, target: str, timestamp, nonce: str, body=b"") -> str:
    """``METHOD\\nTARGET\\nTIMESTAMP\\nNONCE\\nBODY\\n`` (target = path + ``?query`` as
    sent, still percent-encoded; body = the exact bytes sent, empty for GET)."""
    if not isinstance(target, str) or not _TARGET.match(target):
        raise SignError("the URL to sign must be a request-target starting with /")
    return f"{method.upper()}\n{target}\n{_stamp(timestamp)}\n{nonce}\n{_text(body)}\n"


def authorization(mchid: str, serial_no: str, private_key, method: str, target: str,
                  body=b"", timestamp=None, nonce: str | None = None) -> str:
    """The ``Authorization`` header value for one request."""
    nonce = nonce or new_nonce()
    ts = _stamp(timestamp)
    request_message(method, target, ts, nonce, "")          # checks the target
    # the exact bytes: what is sent is what is signed
    msg = f"{method.upper()}\n{target}\n{ts}\n{nonce}\n".encode("utf-8") + _bytes(body) + b"\n"
    sig = rsa_sign(private_key, msg)
    return (f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{sig}",'
            f'timestamp="{ts}",serial_no="{serial_no}"')


def parse_authorization(value) -> dict:
    """The five fields of an ``Authorization`` header (pairs in any order).

    SignError when the schema is not ``WECHATPAY2-SHA256-RSA2048`` or a field is
    missing, repeated or malformed."""
    if not isinstance(value, str) or not value.startswith(SCHEMA + " "):
        raise SignError("Authorization is not WECHATPAY2-SHA256-RSA2048")
    fields: dict[str, str] = {}
    for part in value[len(SCHEMA) + 1:].split(","):
        m = _FIELD.fullmatch(part)
        if not m or m.group(1) not in _AUTH_FIELDS or m.group(1) in fields:
            raise SignError("Authorization holds a malformed field")
        fields[m.group(1)] = m.group(2)
    missing = [f for f in _AUTH_FIELDS if not fields.get(f)]
    if missing:
        raise SignError("Authorization lacks " + ", ".join(missing))
    if not fields["timestamp"].isdigit() or len(fields["timestamp"]) > 10:
        raise SignError("Authorization timestamp is not Unix seconds")
    return fields


def response_message(timestamp, nonce: str, body=b"") -> str:
    """``TIMESTAMP\\nNONCE\\nBODY\\n`` over the raw bytes (204: empty body)."""
    return f"{_stamp(timestamp)}\n{nonce}\n{_text(body)}\n"


def signature_headers(private_key, serial: str, body=b"", timestamp=None,
                      nonce: str | None = None) -> dict:
    """The ``Wechatpay-*`` headers WeChat puts on an answer or a notification."""
    nonce = nonce or new_nonce()
    ts = _stamp(timestamp)
    msg = f"{ts}\n{nonce}\n".encode("utf-8") + _bytes(body) + b"\n"
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa_sign(private_key, msg),
            "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": SIGNATURE_TYPE}


def header(headers: Mapping, name: str) -> str | None:
    """A header from a mapping of any case (also WSGI ``HTTP_X_Y`` keys)."""
    if headers is None:
        return None
    v = headers.get(name)
    if v is not None:
        return v
    low = name.lower()
    wsgi = "HTTP_" + name.upper().replace("-", "_")
    for k, v in headers.items():
        if isinstance(k, str) and (k.lower() == low or k == wsgi):
            return v
    return None


def wechatpay_headers(headers: Mapping) -> dict:
    """timestamp, nonce, signature, serial, signature_type from the ``Wechatpay-*``
    headers; SignError when one of the first four is missing or malformed."""
    out = {"timestamp": header(headers, "Wechatpay-Timestamp"),
           "nonce": header(headers, "Wechatpay-Nonce"),
           "signature": header(headers, "Wechatpay-Signature"),
           "serial": header(headers, "Wechatpay-Serial"),
           "signature_type": header(headers, "Wechatpay-Signature-Type")}
    missing = [k for k in ("timestamp", "nonce", "signature", "serial") if not out[k]]
    if missing:
        raise SignError("the WeChat Pay answer lacks Wechatpay-" +
                        ", Wechatpay-".join(m.capitalize() for m in missing))
    if not out["timestamp"].isdigit() or len(out["timestamp"]) > 10:
        raise SignError("Wechatpay-Timestamp is not Unix seconds")
    if not _NONCE.match(out["nonce"]):
        raise SignError("Wechatpay-Nonce is malformed")
    if not _SERIAL.match(out["serial"]):
        raise SignError("Wechatpay-Serial is malformed")
    st = out["signature_type"]
    if st not in (None, "", SIGNATURE_TYPE):
        raise SignError("Wechatpay-Signature-Type is not WECHATPAY2-SHA256-RSA2048")
    return out


def check_timestamp(timestamp, now=None, window: int = WINDOW) -> int:
    """The timestamp as int; SignError when ``|now - timestamp| >= window`` seconds."""
    ts = int(_stamp(timestamp))
    now = time.time() if now is None else float(now)
    if abs(now - ts) >= window:
        raise SignError("the timestamp is more than 5 minutes off")
    return ts
