"""Payment and refund notifications of WeChat Pay v3 (wechatpay-v3.md §7, §8).  No I/O.

:func:`parse_notification` does every check that needs no store, in order: signature
headers and the 5-minute window, the serial, the signature over the raw bytes, the
envelope, AES-256-GCM decryption of ``resource`` with the APIv3 key, and mchid/appid.
:func:`check_payment` then matches the order (out_trade_no, amount.total, SUCCESS).
:func:`answer` is the HTTP answer to send back: 204 = received; 4xx/5xx with
``{"code":"FAIL","message":…}`` = "send it again" (a forged notification gets a 4xx).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from wnerrors import BAD_INPUT, WnError

from ..errors import MismatchError, SignError, WxPayError
from .account import V3Account
from .api import parse_refund, parse_transaction
from .crypto import DecryptError, aes_gcm_decrypt

__all__ = ["Notification", "parse_notification", "check_payment", "check_refund",
           "answer", "status_for", "headers_from_meta", "MAX_BYTES", "PAYMENT_EVENTS", "REFUND_EVENTS"]

MAX_BYTES = 64 * 1024
PAYMENT_EVENTS = ("TRANSACTION.SUCCESS",)
REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")
_ORIGINAL = {"TRANSACTION": "transaction", "REFUND": "refund"}


@dataclass(frozen=True)
class Notification:
    id: str
    event_type: str
    kind: str                 # "transaction" or "refund"
    resource: dict            # the decrypted, checked plaintext
    envelope: dict            # the outer JSON, resource still encrypted
    serial: str


def headers_from_meta(meta: Mapping) -> dict:
    """The request headers of a regapi request object, whose metadata spells them
    ``http-header-WECHATPAY-SIGNATURE`` (the names compare case-insensitively)."""
    return {k[len("http-header-"):]: v for k, v in meta.items()
            if isinstance(k, str) and k.startswith("http-header-") and isinstance(v, str)}


def _invalid(reason: str) -> WxPayError:
    return WxPayError("e.weixin.notify.invalid", reason, BAD_INPUT)


def parse_notification(account: V3Account, headers: Mapping, body: bytes,
                       now: float | None = None) -> Notification:
    """A verified, decrypted notification; raises on the first failed check
    (SignError/UnknownSerial, e.weixin.notify.invalid, DecryptError, MismatchError)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    body = bytes(body or b"")
    if not body:
        raise _invalid("the notification is empty")
    if len(body) > MAX_BYTES:
        raise _invalid("the notification is too large")
    h = account.keys.verify(headers, body, now)          # over the raw bytes
    try:
        env = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _invalid("the notification is not JSON") from None
    if not isinstance(env, dict):
        raise _invalid("the notification is not a JSON object")
    event = env.get("event_type")
    if not isinstance(event, str) or event not in PAYMENT_EVENTS + REFUND_EVENTS:
        raise _invalid("the notification's event_type is not a payment or refund event")
    kind = _ORIGINAL[event.split(".")[0]]
    res = env.get("resource")
    if env.get("resource_type") != "encrypt-resource" or not isinstance(res, dict):
        raise _invalid("the notification has no encrypted resource")
    if res.get("algorithm") != "AEAD_AES_256_GCM":
        raise _invalid("the notification's resource is not AEAD_AES_256_GCM")
    if res.get("original_type") not in (None, kind):
        raise _invalid("the notification's original_type does not fit its event_type")
    plain = aes_gcm_decrypt(account.apiv3_key, res.get("nonce"), res.get("ciphertext"),
                            res.get("associated_data"))
    try:
        doc = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _invalid("the decrypted resource is not JSON") from None
    if kind == "transaction":
        doc = parse_transaction(account, doc, where="notify")
    else:
        if not isinstance(doc, dict) or doc.get("mchid") != account.mchid:
            raise MismatchError("notify", "mch_id")
        doc = parse_refund(account, doc, where="notify")
    nid = env.get("id") if isinstance(env.get("id"), str) else ""
    return Notification(nid[:64], event, kind, doc, env, h["serial"])


def check_payment(n: Notification, out_trade_no: str, total_fen: int) -> dict:
    """The transaction of a payment notification for this order: out_trade_no,
    amount.total and trade_state SUCCESS must match."""
    if n.kind != "transaction":
        raise _invalid("not a payment notification")
    t = n.resource
    if t.get("out_trade_no") != out_trade_no:
        raise MismatchError("notify", "out_trade_no")
    if t["amount"]["total"] != int(total_fen):
        raise WxPayError("e.weixin.notify.amount_mismatch",
                         "the notification's amount.total is not the order's amount",
                         BAD_INPUT)
    if t.get("trade_state") != "SUCCESS":
        raise _invalid("the notification's trade_state is not SUCCESS")
    if not isinstance(t.get("transaction_id"), str) or not t["transaction_id"]:
        raise _invalid("the notification has no transaction_id")
    return t


def check_refund(n: Notification, out_refund_no: str, refund_fen: int | None = None) -> dict:
    if n.kind != "refund":
        raise _invalid("not a refund notification")
    r = n.resource
    if r.get("out_refund_no") != out_refund_no:
        raise MismatchError("notify", "out_refund_no")
    if refund_fen is not None and r["amount"]["refund"] != int(refund_fen):
        raise WxPayError("e.weixin.notify.amount_mismatch",
                         "the notification's amount.refund is not the refund's amount",
                         BAD_INPUT)
    return r


def status_for(error: BaseException | None) -> int:
    """The HTTP status of the answer to a notification.

    None → 204 (received; WeChat stops).  A notification that fails verification
    (signature, serial, window, ciphertext, fields) → 401 for signatures, 400
    otherwise: WeChat retries and a forger learns nothing.  Anything else (store
    unavailable, a conflict) → 500: WeChat sends it again later."""
    if error is None:
        return 204
    if isinstance(error, SignError):
        return 401
    if isinstance(error, (DecryptError, MismatchError)):
        return 400
    if isinstance(error, WnError) and error.kind == BAD_INPUT:
        return 400
    return 500


def answer(error: BaseException | None = None) -> tuple[int, dict, bytes]:
    """``(status, headers, body)`` answering a notification: 204 with no body, or
    the status of :func:`status_for` with ``{"code":"FAIL","message":…}`` -- the
    message names the failed check, never a secret."""
    status = status_for(error)
    if status == 204:
        return 204, {}, b""
    msg = error.key if isinstance(error, WnError) else "失败"
    body = json.dumps({"code": "FAIL", "message": msg}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")
    return status, {"Content-Type": "application/json; charset=utf-8"}, body
