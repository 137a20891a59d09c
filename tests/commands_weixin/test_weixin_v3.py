"""The ``weixin`` commands on a WeChat Pay v3 account (``pay_api_version: 3``), against
the v3 simulator on loopback: the seed's command lines unchanged."""
from __future__ import annotations

import json

import pytest

from wnshell.session import Session
from wxpay.v3.simserver import V3Server
from wxpay.v3.simulator import V3Simulator

from .conftest import OPENID, make_order, run, write_file
from .v3env import V3_APIV3_KEY, V3_APPID, V3_MCHID, V3Merchant, V3Receiver, install_v3


@pytest.fixture(scope="module")
def merchant():
    return V3Merchant()


@pytest.fixture()
def v3srv(merchant):
    sim = V3Simulator(retry_schedule=(0.05, 0.1, 0.2), hold=3.0, notify_timeout=5.0,
                      refund_delay=0.05)
    sim.add_merchant(V3_MCHID, [V3_APPID], merchant.public, merchant.serial, V3_APIV3_KEY)
    with V3Server(sim) as s:
        yield s


@pytest.fixture()
def v3rcv(store):
    r = V3Receiver(store)
    yield r
    r.close()


@pytest.fixture()
def v3sh(store, v3srv, v3rcv, merchant):
    install_v3(store, merchant, v3srv.url, v3rcv.url)
    return Session(store, user="demo")


# ---- wxconf -----------------------------------------------------------------------------
def test_info_masks_every_v3_key(v3sh, store, merchant):
    status, out, err = run(v3sh, "weixin v3 info")
    assert status == 0, err
    info = json.loads(out)
    assert info["pay_api_version"] == 3 and info["pay_mch_id"] == V3_MCHID
    assert V3_APIV3_KEY not in out and merchant.serial not in out
    assert "PRIVATE KEY" not in out and info["pay_apiv3_key"].startswith("****")


def test_v3_account_without_its_private_key_is_refused_in_one_line(v3sh, store):
    key = store.fetch("/home/demo/.weixin/v3/apiclient_key.pem")
    store.delete(key.id)
    status, out, err = run(v3sh, "weixin v3 info")
    assert status != 0 and err.count("\n") == 1
    assert err.startswith("e.cmd.weixin.conf.invalid : v3: ") and "apiclient_key.pem" in err
    assert "Traceback" not in err


def test_replaced_private_key_is_picked_up(v3sh, store, merchant):
    from commands.weixin import conf
    first = conf.load(v3sh, "v3")
    assert conf.load(v3sh, "v3") is first              # cached while nothing changed
    other = V3Merchant()
    write_file(store, "/home/demo/.weixin/v3/apiclient_key.pem", other.pem)
    again = conf.load(v3sh, "v3")
    assert again is not first
    assert again.account.private_key.public_key().public_numbers() == \
        other.key.public_key().public_numbers()


def test_platform_certificates_are_cached_in_the_account_folder(v3sh, store, v3srv):
    from commands.weixin import conf
    loaded = conf.load(v3sh, "v3")
    loaded.client.refresh_certificates()
    obj = store.fetch("/home/demo/.weixin/v3/platform_certs.json")
    assert obj is not None
    text = store.read(obj.id).decode()
    assert "BEGIN CERTIFICATE" in text and "PRIVATE" not in text
    assert V3_APIV3_KEY not in text
    # a fresh load (another process) starts from the cache: no refetch needed
    conf._cache.clear()
    fresh = conf.load(v3sh, "v3")
    assert [c.serial for c in fresh.account.keys.certificates()] == \
        [v3srv.sim.platform_serial()]
    assert not fresh.account.keys.needs_refresh()
