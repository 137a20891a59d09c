"""QA: hostile JSON on stdin of weixin handlers is one bad-input line."""
from __future__ import annotations

import pytest

from .conftest import run


@pytest.mark.parametrize("stdin", ["[" * 100_000, '{"body":' + "[" * 100_000])
def test_deeply_nested_pay_input_is_bad_input(sh, stdin):
    status, out, err = run(sh, "weixin xxx pay", stdin)
    assert status == 1 and out == ""
    assert err.startswith("e.cmd.weixin.input.invalid : "), err
    assert err.count("\n") == 1
