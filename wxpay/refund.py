"""Refunds of WeChat Pay v2 (wechatpay-v2.md §8.2–§8.4), no I/O here.

* :func:`build_refund` / :func:`build_refundquery`: the signed requests.
* :func:`refund_key`: the AES-256 key of refund notifications, the 32 ASCII bytes of
  lowercase hex md5(API key).
* :func:`decrypt_req_info` / :func:`encrypt_req_info`: ``req_info`` = base64 of
  AES-256-ECB with strict 16-byte PKCS7 (``cryptography``; a wrong key fails the unpad).
* :func:`parse_refund_notification`: the checks a notification without ``sign`` allows
  (return_code, appid, mch_id, ``req_info`` decrypts under the account's key into a
  ``<root>`` document); the caller matches it to its refund.
* :func:`refunds_of_query`: the ``_$n`` fields of a refundquery reply as a list.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Mapping

from wnerrors import BAD_INPUT, WnError

from .account import Account
from .api import _check_nonce, _check_out_trade_no, _check_owner, _parse, _signed, new_nonce
from .errors import NotifyFail, WxPayError
from .xmlcodec import MAX_BYTES, from_xml

__all__ = ["OUT_REFUND_NO", "build_refund", "build_refundquery", "refund_key",
           "encrypt_req_info", "decrypt_req_info", "parse_refund_notification",
           "refunds_of_query", "REFUND_STATES"]

OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
REFUND_STATES = ("SUCCESS", "REFUNDCLOSE", "PROCESSING", "CHANGE")
_FEN = re.compile(r"^[1-9][0-9]{0,9}$")


def _bad(reason: str) -> WnError:
    return WnError("e.weixin.param.invalid", reason, BAD_INPUT)


def _fen(name: str, value) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _FEN.match(text) or int(text) > 2**31 - 1:
        raise _bad(f"{name} must be a whole number of fen > 0")
    return text


def build_refund(account: Account, *, out_refund_no: str, total_fee, refund_fee,
                 out_trade_no: str | None = None, transaction_id: str | None = None,
                 refund_desc: str | None = None, notify_url: str | None = None,
                 nonce=None) -> dict:
    """The signed ``/secapi/pay/refund`` request (transaction_id wins when both)."""
    params = {"appid": account.appid, "mch_id": account.mch_id,
              "nonce_str": _check_nonce(nonce or new_nonce())}
    if transaction_id:
        if not isinstance(transaction_id, str) or not re.match(r"^[0-9A-Za-z]{1,32}$",
                                                                transaction_id):
            raise _bad("transaction_id is malformed")
        params["transaction_id"] = transaction_id
    else:
        params["out_trade_no"] = _check_out_trade_no(out_trade_no)
    if not isinstance(out_refund_no, str) or not OUT_REFUND_NO.match(out_refund_no):
        raise _bad("out_refund_no must be 1-64 characters of 0-9 A-Z a-z _ - | * @")
    params["out_refund_no"] = out_refund_no
    params["total_fee"] = _fen("total_fee", total_fee)
    params["refund_fee"] = _fen("refund_fee", refund_fee)
    if int(params["refund_fee"]) > int(params["total_fee"]):
        raise _bad("refund_fee is more than total_fee")
    params["refund_fee_type"] = "CNY"
    if refund_desc not in (None, ""):
        if not isinstance(refund_desc, str) or len(refund_desc) > 80 \
                or re.search("[\x00-\x1f]", refund_desc):
            raise _bad("refund_desc must be text of at most 80 characters")
        params["refund_desc"] = refund_desc
    if notify_url not in (None, ""):
        params["notify_url"] = str(notify_url)
    return _signed(account, params)


def build_refundquery(account: Account, *, out_trade_no: str | None = None,
                      out_refund_no: str | None = None, transaction_id: str | None = None,
                      refund_id: str | None = None, offset: int | None = None,
                      nonce=None) -> dict:
    """The signed ``/pay/refundquery`` request (one of the four numbers)."""
    params = {"appid": account.appid, "mch_id": account.mch_id,
              "nonce_str": _check_nonce(nonce or new_nonce())}
    if refund_id:
        params["refund_id"] = str(refund_id)
    elif out_refund_no:
        if not OUT_REFUND_NO.match(str(out_refund_no)):
            raise _bad("out_refund_no is malformed")
        params["out_refund_no"] = str(out_refund_no)
    elif transaction_id:
        params["transaction_id"] = str(transaction_id)
    else:
        params["out_trade_no"] = _check_out_trade_no(out_trade_no)
    if offset is not None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise _bad("offset must be an integer >= 0")
        params["offset"] = str(offset)
    return _signed(account, params)


def refund_key(api_key: str) -> bytes:
    """The 32 ASCII bytes of lowercase hex md5(API key): the AES-256 key of req_info."""
    if not isinstance(api_key, str) or not api_key:
        raise WxPayError("e.weixin.sign.invalid", "no API key")
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")


def _aes(key: bytes):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    return Cipher(algorithms.AES(key), modes.ECB())


def encrypt_req_info(plaintext: bytes, api_key: str) -> str:
    """base64(AES-256-ECB(PKCS7-16(plaintext))) -- what WeChat sends (simulator)."""
    from cryptography.hazmat.primitives import padding
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = _aes(refund_key(api_key)).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")


def _undecryptable() -> WxPayError:
    return WxPayError("e.weixin.notify.req_info_invalid",
                      "req_info does not decrypt under the account's key")


def decrypt_req_info(req_info: str, api_key: str) -> bytes:
    """The plaintext of ``req_info``; a wrong key, garbage or bad padding →
    ``e.weixin.notify.req_info_invalid``."""
    from cryptography.hazmat.primitives import padding
    if not isinstance(req_info, str) or not req_info or len(req_info) > MAX_BYTES:
        raise _undecryptable()
    try:
        raw = base64.b64decode(req_info.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _undecryptable() from None
    if not raw or len(raw) % 16:
        raise _undecryptable()
    dec = _aes(refund_key(api_key)).decryptor()
    padded = dec.update(raw) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise _undecryptable() from None


def parse_refund_notification(account: Account, xml, max_bytes: int = MAX_BYTES) -> dict:
    """The outer fields and the decrypted ``req_info`` fields, merged (outer
    ``return_code, appid, mch_id, nonce_str``; inner ``out_refund_no, refund_status,
    refund_fee, ...``).  Refund notifications carry no ``sign``: trust comes from
    the decryption, the account's appid/mch_id, and the caller's match to its refund.
    """
    outer = _parse(xml, max_bytes)
    if outer.get("return_code") != "SUCCESS":
        raise NotifyFail(outer.get("return_code"), outer.get("return_msg"))
    _check_owner(account, outer, "notify")
    plain = decrypt_req_info(outer.get("req_info", ""), account.key)
    try:
        inner = from_xml(plain, max_bytes=max_bytes, root="root")
    except WxPayError:
        raise _undecryptable() from None
    if inner.get("refund_status") not in REFUND_STATES or not inner.get("out_refund_no"):
        raise WxPayError("e.weixin.notify.req_info_invalid",
                         "req_info has no out_refund_no or refund_status")
    merged = {k: v for k, v in outer.items() if k != "req_info"}
    merged.update(inner)
    return merged


def refunds_of_query(reply: Mapping) -> list[dict]:
    """``out_refund_no_$n, refund_id_$n, refund_fee_$n, refund_status_$n, ...`` of a
    refundquery reply as ``[{out_refund_no, refund_id, refund_fee, refund_status,
    ...}]``."""
    out = []
    try:
        count = int(reply.get("refund_count", "0"))
    except ValueError:
        count = 0
    for n in range(max(0, min(count, 50))):
        item = {}
        for name in ("out_refund_no", "refund_id", "refund_channel", "refund_fee",
                     "refund_status", "refund_recv_accout", "refund_success_time",
                     "refund_account"):
            value = reply.get(f"{name}_{n}")
            if value is not None:
                item[name] = value
        if item.get("out_refund_no"):
            out.append(item)
    return out
