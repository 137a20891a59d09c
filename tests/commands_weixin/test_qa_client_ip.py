"""QA: -client_ip must be an IP address, also when a stored pay_jsobj is reused."""
from __future__ import annotations

import pytest

from .conftest import OPENID, make_order, run


@pytest.mark.parametrize("ip", ["not-an-ip", "1.2.3.4; rm -rf ~", "1.2.3.4\n", "1" * 100])
def test_bad_client_ip_is_refused_even_on_reuse(sh, store, ip):
    order = make_order(store)
    submit = "weixin xxx order -submit $O -client_ip $IP -openid $U"
    ok = sh.run(submit, "", template_vars={"O": order.id, "IP": "127.0.0.1", "U": OPENID})
    assert ok[0] == 0, ok
    before = store.get(order.id)
    status, out, err = sh.run(submit, "", template_vars={"O": order.id, "IP": ip,
                                                          "U": OPENID})
    assert status == 1 and out == ""
    assert err.startswith("e.weixin.param.invalid : "), err
    assert err.count("\n") == 1
    assert store.get(order.id) == before


@pytest.mark.parametrize("ip", ["::1", "2001:db8::1", "10.0.0.7"])
def test_ipv4_and_ipv6_client_ips_are_fine(sh, store, ip):
    order = make_order(store)
    status, _, err = run(sh, f"weixin xxx order -submit {order.id} -client_ip {ip} "
                             f"-openid {OPENID}")
    assert status == 0, err
