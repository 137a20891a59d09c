"""wxpay.certs: the merchant certificate in memory, handed to ssl without an
unencrypted key on disk, and the simulator checking it on /secapi/."""
from __future__ import annotations

import os
import tempfile

import pytest

from objstore.errors import WnError
from wxpay.account import Account
from wxpay.api import build_unifiedorder
from wxpay.certs import MerchantCert, load_merchant_cert
from wxpay.client import Client
from wxpay.errors import ReturnFail, TransportError
from wxpay.refund import build_refund

from .conftest import APPID, KEY, MCH_ID, order


def test_p12_and_pem_load_and_never_show_the_key(sim):
    cert = MerchantCert.from_p12(sim.merchant_p12(MCH_ID), MCH_ID)
    assert cert.common_name == MCH_ID and "****" in repr(cert)
    pem, key = sim.merchant_pem(MCH_ID)
    assert "PRIVATE" not in repr(load_merchant_cert(cert_pem=pem, key_pem=key))
    with pytest.raises(WnError) as e:
        MerchantCert.from_p12(sim.merchant_p12(MCH_ID), "pw-Zq9")
    assert e.value.key == "e.weixin.cert.invalid" and "pw-Zq9" not in e.value.line()
    with pytest.raises(WnError):
        load_merchant_cert(cert_pem=b"not a pem", key_pem=key)
    with pytest.raises(WnError):
        load_merchant_cert()


def _files():
    return set(os.listdir(tempfile.gettempdir()))


@pytest.mark.parametrize("memfd", [True, False])
def test_ssl_context_leaves_no_file_behind(sim, monkeypatch, memfd):
    if not memfd:            # the fallback for systems without memfd_create
        monkeypatch.delattr(os, "memfd_create", raising=False)
    cert = MerchantCert.from_p12(sim.merchant_p12(MCH_ID), MCH_ID)
    before = _files()
    ctx = cert.ssl_context(sim.ca_pem)
    assert _files() == before
    acc = Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n", api_base=sim.url)
    with Client(acc, cert=cert, secapi_base=sim.secure_url, ca_pem=sim.ca_pem) as c:
        r = c.unifiedorder(build_unifiedorder(acc, order()))
        sim.pay(r["prepay_id"])
        res = c.refund(build_refund(acc, out_refund_no="o_r1", total_fee=888,
                                    refund_fee=88, out_trade_no="o_1"))
    assert res["result_code"] == "SUCCESS" and ctx is not None


def test_secapi_refuses_without_the_right_certificate(sim):
    acc = Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/n", api_base=sim.url)
    req = build_refund(acc, out_refund_no="o_r1", total_fee=888, refund_fee=88,
                       out_trade_no="o_1")
    with Client(acc, secapi_base=sim.secure_url, ca_pem=sim.ca_pem) as c:
        with pytest.raises(ReturnFail) as e:
            c.refund(req)
    assert "证书" in e.value.return_msg
    other = MerchantCert.from_p12(sim.merchant_p12("1234567890"), "1234567890")
    with Client(acc, cert=other, secapi_base=sim.secure_url, ca_pem=sim.ca_pem) as c:
        with pytest.raises(ReturnFail) as e:
            c.refund(req)
    assert "不匹配" in e.value.return_msg
    # a client that does not trust the simulator's CA never sends anything
    good = MerchantCert.from_p12(sim.merchant_p12(MCH_ID), MCH_ID)
    with Client(acc, cert=good, secapi_base=sim.secure_url) as c:
        with pytest.raises(TransportError) as e:
            c.refund(req)
    assert "TLS" in e.value.reason
    # /secapi/ on the plain listener: no certificate can be there
    with Client(acc, cert=good, secapi_base=sim.url) as c:
        with pytest.raises(ReturnFail):
            c.refund(req)
