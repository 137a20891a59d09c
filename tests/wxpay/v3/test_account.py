"""The wxconf keys of a v3 account (wxpay.account.load_account), v2 left as it was."""
import json

import pytest

from commands.weixin.conf import mask_conf
from wxpay.account import Account, load_account
from wxpay.v3.account import V3Account, WXCONF_KEYS
from wxpay.v3.client import V3Client

from .conftest import APIV3_KEY, APPID, MCHID, order

V2 = {"appID": "wx45ac", "appsecret": "39b0", "pay_mch_id": "1230000109",
      "pay_key": "k" * 32, "pay_notify_url": "https://example.com/n"}


def v3conf(srv=None, **kw):
    c = {"appID": APPID, "pay_api_version": 3, "pay_mch_id": MCHID,
         "pay_apiv3_key": APIV3_KEY, "pay_cert_serial": None,
         "pay_notify_url": "https://example.com/n"}
    if srv is not None:
        c["pay_api_base"] = srv.url
    c.update(kw)
    return c


def test_v2_conf_loads_the_v2_account_unchanged():
    a = load_account(V2)
    assert isinstance(a, Account) and a == Account.from_wxconf(V2)
    assert load_account(dict(V2, pay_api_version=2)) == a


def test_v3_conf_reads_its_key_objects_and_masks_every_secret(merchant):
    objects = {"apiclient_key.pem": merchant.pem}
    conf = v3conf(pay_cert_serial=merchant.serial)
    a = load_account(conf, objects.get)
    assert isinstance(a, V3Account) and a.mchid == MCHID and a.api_version == 3
    shown = json.dumps(a.public_info(), ensure_ascii=False) + repr(a) + str(a)
    assert APIV3_KEY not in shown and "PRIVATE KEY" not in shown
    assert merchant.pem.splitlines()[1] not in shown
    masked = json.dumps(mask_conf(conf))            # what `weixin CONF info` prints
    assert APIV3_KEY not in masked
    assert set(WXCONF_KEYS) >= {"pay_apiv3_key", "pay_cert_serial", "pay_private_key"}


def test_v3_conf_public_key_mode(merchant, srv):
    objects = {"apiclient_key.pem": merchant.pem,
               "wx_pub.pem": srv.sim.public_key_pem()}
    a = load_account(v3conf(pay_cert_serial=merchant.serial,
                            pay_wechat_pubkey_id=srv.sim.public_key_id,
                            pay_wechat_pubkey="wx_pub.pem"), objects.get)
    assert a.keys.public_key_id == srv.sim.public_key_id
    assert not a.keys.needs_refresh()


@pytest.mark.parametrize("change,key", [
    ({"pay_private_key": "../../other/apiclient_key.pem"}, "e.weixin.conf.invalid"),
    ({"pay_private_key": "/home/x/key.pem"}, "e.weixin.conf.invalid"),
    ({"pay_private_key": "absent.pem"}, "e.weixin.conf.incomplete"),
    ({"pay_apiv3_key": "short"}, "e.weixin.conf.invalid"),
    ({"pay_apiv3_key": None}, "e.weixin.conf.incomplete"),
    ({"pay_cert_serial": "not hex!"}, "e.weixin.conf.invalid"),
    ({"pay_wechat_pubkey_id": "PUB_KEY_ID_1"}, "e.weixin.conf.incomplete"),
    ({"pay_api_version": 4}, "e.weixin.conf.invalid"),
    ({"pay_api_base": "https://api.mch.weixin.qq.com/prefix"}, "e.weixin.conf.invalid"),
])
def test_v3_conf_refusals_name_fields_never_secrets(merchant, change, key):
    conf = v3conf(pay_cert_serial=merchant.serial)
    conf.update(change)
    with pytest.raises(Exception) as e:
        load_account(conf, {"apiclient_key.pem": merchant.pem}.get)
    assert e.value.key == key
    assert APIV3_KEY not in e.value.line() and "PRIVATE" not in e.value.line()


def test_platform_certificates_are_cached_and_reused(srv, sim, merchant):
    objects = {"apiclient_key.pem": merchant.pem}
    conf = v3conf(srv, pay_cert_serial=merchant.serial)
    a = load_account(conf, objects.get)
    with V3Client(a, timeout=(2, 2),
                  on_certificates=lambda text: objects.__setitem__("platform_certs.json",
                                                                   text)) as c:
        c.prepay(order())
    cached = objects["platform_certs.json"]
    assert "BEGIN CERTIFICATE" in cached and "PRIVATE" not in cached
    b = load_account(conf, objects.get)                 # a fresh load: cache is enough
    assert [x.serial for x in b.keys.certificates()] == [sim.platform_serial()]
    before = sim.requests_seen
    with V3Client(b, timeout=(2, 2)) as c:
        assert c.query("ORDER_0001")["trade_state"] == "NOTPAY"
    assert sim.requests_seen == before + 1              # no /v3/certificates call
    objects["platform_certs.json"] = "garbage"
    assert load_account(conf, objects.get).keys.needs_refresh()
