"""QA: amounts are exact text -- total_fee and pay_val refuse the same stray
whitespace (a trailing newline slipped through the regex's "$")."""
from __future__ import annotations

import pytest

from objstore.errors import WnError
from wxpay.money import to_fen


@pytest.mark.parametrize("amount", [
    {"total_fee": "888\n"}, {"total_fee": " 888"}, {"total_fee": "888 "},
    {"pay_val": "8.88\n"}, {"pay_val": " 8.88"}, {"pay_val": "8.88 "},
])
def test_amount_text_with_whitespace_is_refused(amount):
    with pytest.raises(WnError) as info:
        to_fen(**amount)
    assert info.value.key == "e.weixin.money.invalid"


@pytest.mark.parametrize("amount, fen", [
    ({"total_fee": "888"}, 888), ({"total_fee": "0888"}, 888), ({"total_fee": 888}, 888),
    ({"total_fee": 8.0}, 8), ({"pay_val": "8.88"}, 888), ({"pay_val": 8.88}, 888),
    ({"pay_val": "0.01"}, 1),
])
def test_exact_amounts_still_read(amount, fen):
    assert to_fen(**amount) == fen
