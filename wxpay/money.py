"""Money is integer fen.  ``total_fee`` is fen; ``pay_val`` is yuan parsed as a
Decimal (never a float); zero, negative, fractional fen and non-numbers are refused."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from wnerrors import BAD_INPUT, WnError

__all__ = ["to_fen", "fen_to_yuan", "MAX_FEN"]

# WeChat's total_fee is a 32-bit Int
MAX_FEN = 2**31 - 1
# fullmatch: no surrounding whitespace, no trailing newline ("$" alone allows one)
_DIGITS = re.compile(r"-?[0-9]{1,12}")
_YUAN = re.compile(r"-?[0-9]{1,12}(\.[0-9]+)?")


def _bad(reason: str) -> WnError:
    return WnError("e.weixin.money.invalid", reason, BAD_INPUT)


def _absent(value) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def _fen_from_total_fee(value) -> int:
    if isinstance(value, bool):
        raise _bad("total_fee must be an integer number of fen, not a boolean")
    if isinstance(value, int):
        fen = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise _bad("total_fee must be a whole number of fen")
        fen = int(value)
    elif isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise _bad("total_fee must be a whole number of fen")
        fen = int(value)
    elif isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise _bad("total_fee must be a whole number of fen (digits only)")
        fen = int(value)
    else:
        raise _bad(f"total_fee must be an integer number of fen, not {type(value).__name__}")
    return fen


def _fen_from_yuan(value) -> int:
    if isinstance(value, bool):
        raise _bad("pay_val must be an amount in yuan, not a boolean")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _bad("pay_val must be a finite amount in yuan")
        amount = Decimal(repr(value))     # the literal the JSON had, not the binary float
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        text = value     # exact, like total_fee: " 8.88" and "8.88\n" are refused
        if not _YUAN.fullmatch(text):
            raise _bad("pay_val must be an amount in yuan like 8.88")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise _bad("pay_val must be an amount in yuan like 8.88") from None
    else:
        raise _bad(f"pay_val must be an amount in yuan, not {type(value).__name__}")
    if not amount.is_finite():
        raise _bad("pay_val must be a finite amount in yuan")
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise _bad("pay_val has fractions of a fen (at most 2 decimals)")
    return int(fen)


def to_fen(total_fee=None, pay_val=None) -> int:
    """The amount in fen from ``total_fee`` (fen) or ``pay_val`` (yuan).

    When both are given they must agree.  Zero, negative, fractional fen, booleans and
    non-numbers raise ``WnError("e.weixin.money.invalid", kind=BAD_INPUT)``.
    """
    if pay_val is None and type(total_fee) is int and 0 < total_fee <= MAX_FEN:
        return total_fee            # the usual order: whole fen, no pay_val
    fen = None
    if not _absent(total_fee):
        fen = _fen_from_total_fee(total_fee)
    if not _absent(pay_val):
        from_yuan = _fen_from_yuan(pay_val)
        if fen is not None and fen != from_yuan:
            raise _bad("total_fee and pay_val disagree")
        fen = from_yuan
    if fen is None:
        raise _bad("no amount: give total_fee (fen) or pay_val (yuan)")
    if fen <= 0:
        raise _bad("the amount must be more than 0 fen")
    if fen > MAX_FEN:
        raise _bad("the amount is too large")
    return fen


def fen_to_yuan(fen: int) -> str:
    """``888`` -> ``"8.88"`` (display only)."""
    return f"{fen // 100}.{fen % 100:02d}" if fen >= 0 else "-" + fen_to_yuan(-fen)
