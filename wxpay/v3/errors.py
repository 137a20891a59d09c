"""v3 error answers mapped onto the v2 error classes (wechatpay-v3.md §10).

A template that checks ``e.weixin.err.ORDERPAID`` or ``e.weixin.return.fail`` works the
same whichever API version the account speaks:

* 401 ``SIGN_ERROR`` → :class:`ReturnFail` (v2: ``return_code=FAIL`` 签名错误), key
  ``e.weixin.return.fail``;
* other codes → :class:`V3ResultFail` (a :class:`ResultFail`): key
  ``e.weixin.err.<V2 CODE>`` -- v3 codes v2 spelled differently are renamed
  (``ORDER_CLOSED`` → ``ORDERCLOSED``, ``ORDER_NOT_EXIST`` → ``ORDERNOTEXIST``, …);
  ``.v3_code``, ``.v3_status`` and ``.detail_field`` keep what v3 said;
* 5xx without a JSON error body, or a body that is not JSON → :class:`TransportError`
  (as v2 does for HTTP errors and HTML pages).
"""
from __future__ import annotations

import json
import re

from ..errors import ResultFail, ReturnFail, SignError, TransportError

__all__ = ["V2_CODES", "V3ResultFail", "UnknownSerial", "error_from_answer", "v2_code"]

_CODE = re.compile(r"^[A-Z0-9_]{1,64}$")

# v3 code -> the v2 err_code a template already checks
V2_CODES = {
    "ORDER_CLOSED": "ORDERCLOSED",
    "ORDER_NOT_EXIST": "ORDERNOTEXIST",
    "ORDER_PAID": "ORDERPAID",
    "SYSTEM_ERROR": "SYSTEMERROR",
    "NOT_ENOUGH": "NOTENOUGH",
    "USER_PAYING": "USERPAYING",
    "NO_AUTH": "NOAUTH",
    "RESOURCE_NOT_EXISTS": "REFUNDNOTEXIST",
    "RATELIMIT_EXCEEDED": "FREQUENCY_LIMITED",
    "MCH_NOT_EXISTS": "MCHID_NOT_EXIST",
    "SERVICE_UNAVAILABLE": "SYSTEMERROR",
    "BANK_ERROR": "BANKERROR",
}
_RETRYABLE = {"SYSTEMERROR", "BANKERROR", "USERPAYING", "FREQUENCY_LIMITED"}


def v2_code(code: str) -> str:
    return V2_CODES.get(code, code)


class UnknownSerial(SignError):
    """An answer or notification signed under a serial (certificate or
    ``PUB_KEY_ID_…``) the account does not know: refresh the certificates, then retry
    once (same key as every signature failure)."""

    def __init__(self, serial: str):
        self.serial = serial
        super().__init__("the signature names an unknown Wechatpay-Serial")


class V3ResultFail(ResultFail):
    """A v3 error answer: key ``e.weixin.err.<v2 code>``, plus the v3 facts."""

    def __init__(self, http_status: int, code: str, message: str = "",
                 detail_field: str | None = None):
        self.v3_status = http_status
        self.v3_code = code
        self.detail_field = detail_field
        super().__init__(v2_code(code), message)
        if detail_field:
            self.reason += f" (field {detail_field})"
        self.reason += f" [HTTP {http_status} {code}]"
        self.args = (self.line(),)

    @property
    def retryable(self) -> bool:
        return self.err_code in _RETRYABLE or self.v3_status in (429, 500, 502, 503)


def _short(text, limit=200) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit] + "..."


def error_from_answer(status: int, body: bytes, what: str = "WeChat Pay"):
    """The exception for a non-2xx answer (never raises it)."""
    doc = None
    try:
        doc = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    code = doc.get("code") if isinstance(doc, dict) else None
    if not isinstance(code, str) or not _CODE.match(code):
        kind = "server error" if status >= 500 else "unexpected status"
        return TransportError(f"{what} answered HTTP {status} ({kind})")
    message = doc.get("message")
    message = _short(message) if isinstance(message, str) else ""
    field = None
    detail = doc.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("field"), str):
        field = _short(detail["field"], 64)
    if code == "SIGN_ERROR" or status == 401:
        return ReturnFail(message or "签名错误", "SIGNERROR")
    return V3ResultFail(status, code, message, field)
