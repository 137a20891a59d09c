"""Errors of the WeChat Pay v2 library.

Every error is a :class:`wnerrors.WnError`, so the shell prints it as
``e.<key> : <reason>`` and regapi maps its kind to an HTTP status.  Reasons never
contain secrets (API key, appsecret): they name fields and codes only.

Keys:

* ``e.weixin.transport``      -- connection failure, timeout, HTTP error status, a
  body that is not XML (HTML error page, garbage).  Kind UPSTREAM, TIMEOUT for timeouts.
* ``e.weixin.return.fail``    -- WeChat answered ``return_code=FAIL`` (``.return_msg``).
* ``e.weixin.err.<ERR_CODE>`` -- ``result_code=FAIL`` (``.err_code``, ``.err_code_des``).
* ``e.weixin.sign.invalid``   -- bad signature, or a SUCCESS payload without ``sign``.
* ``e.weixin.xml.invalid``    -- unsafe or malformed XML (kind BAD_INPUT).
* ``e.weixin.notify.*``       -- a notification whose fields do not belong to the account.
* ``e.weixin.reply.*``        -- a reply whose fields do not belong to the account.
"""
from __future__ import annotations

import re

from wnerrors import BAD_INPUT, TIMEOUT, UPSTREAM, WnError

__all__ = ["WxPayError", "TransportError", "ReturnFail", "ResultFail", "SignError",
           "SignMissing", "XmlError", "MismatchError", "NotifyFail"]

_CODE = re.compile(r"^[A-Z0-9_]{1,64}$")


def _short(text, limit: int = 200) -> str:
    text = " ".join(str(text if text is not None else "").split())
    return text if len(text) <= limit else text[:limit] + "..."


class WxPayError(WnError):
    """Base class of every WeChat Pay failure (kind UPSTREAM unless told)."""

    def __init__(self, key: str, reason: str = "", kind: str = UPSTREAM):
        super().__init__(key, reason, kind)


class TransportError(WxPayError):
    """The HTTP exchange itself failed; the request may be retried as is."""

    def __init__(self, reason: str, kind: str = UPSTREAM):
        super().__init__("e.weixin.transport", reason, kind)

    @property
    def is_timeout(self) -> bool:
        return self.kind == TIMEOUT


class ReturnFail(WxPayError):
    """``return_code=FAIL``: the call was refused (bad signature, bad XML, ...)."""

    def __init__(self, return_msg: str = "", err_code: str | None = None):
        self.return_msg = return_msg or ""
        # an unsigned hint some servers add; not trusted, for diagnostics only
        self.err_code = err_code if err_code and _CODE.match(err_code) else None
        reason = "WeChat return_code=FAIL"
        if self.return_msg:
            reason += ": " + _short(self.return_msg)
        if self.err_code:
            reason += f" ({self.err_code})"
        super().__init__("e.weixin.return.fail", reason)


class ResultFail(WxPayError):
    """``result_code=FAIL``: key ``e.weixin.err.<ERR_CODE>``."""

    def __init__(self, err_code: str | None, err_code_des: str | None = ""):
        code = err_code if err_code and _CODE.match(err_code) else "UNKNOWN"
        self.err_code = code
        self.err_code_des = err_code_des or ""
        reason = f"WeChat result_code=FAIL err_code={code}"
        if self.err_code_des:
            reason += ": " + _short(self.err_code_des)
        super().__init__("e.weixin.err." + code, reason)

    @property
    def retryable(self) -> bool:
        """SYSTEMERROR means: call again with the same parameters."""
        return self.err_code in ("SYSTEMERROR", "BANKERROR", "USERPAYING")


class SignError(WxPayError):
    """The signature is wrong or missing, or the sign_type is unknown."""

    def __init__(self, reason: str = "signature does not match"):
        super().__init__("e.weixin.sign.invalid", reason)


class SignMissing(SignError):
    """A SUCCESS payload that carries no ``sign`` (same key as SignError)."""

    def __init__(self, reason: str = "missing sign"):
        super().__init__(reason)


class XmlError(WxPayError):
    """XML refused before or while parsing: DOCTYPE/entities, too large, malformed,
    or not a flat ``<xml>`` document."""

    def __init__(self, reason: str):
        super().__init__("e.weixin.xml.invalid", reason, BAD_INPUT)


class MismatchError(WxPayError):
    """A signed payload names another appid/mch_id than the account's.

    key e.g. ``e.weixin.notify.appid_mismatch`` or ``e.weixin.reply.mch_id_mismatch``.
    """

    def __init__(self, where: str, field: str):
        self.field = field
        super().__init__(f"e.weixin.{where}.{field}_mismatch",
                         f"{field} of the {where} is not the account's")


class NotifyFail(WxPayError):
    """A notification with ``return_code`` other than SUCCESS."""

    def __init__(self, return_code: str | None, return_msg: str | None = ""):
        self.return_msg = return_msg or ""
        reason = f"notification return_code={_short(return_code or 'missing', 20)}"
        if self.return_msg:
            reason += ": " + _short(self.return_msg)
        super().__init__("e.weixin.notify.return_fail", reason)
