import json

import pytest

from wxpay.v3.account import V3Account
from wxpay.v3.client import V3Client
from wxpay.v3.keys import WechatKeys
from wxpay.v3.simserver import V3Server
from wxpay.v3.simulator import V3Simulator

from ..sink import NotifySink
from .merchant import Merchant  # noqa: F401  (the fixtures' key pairs)

MCHID = "1900000001"
APPID = "wxd678efh567hg6787"
APIV3_KEY = "TESTONLYapiv3key0123456789abcdef"
PUB_MCHID = "1900000002"          # a merchant whose WeChat side is the public key only
PUB_APPID = "wx00000000000pub2"
PUB_APIV3_KEY = "TESTONLYsecondmerchantkey0123456"


@pytest.fixture(scope="session")
def merchant():
    return Merchant()


@pytest.fixture(scope="session")
def pub_merchant():
    return Merchant()


@pytest.fixture(scope="session")
def intruder():
    return Merchant()


@pytest.fixture
def srv(merchant, pub_merchant):
    sim = V3Simulator(retry_schedule=(0.05, 0.05, 0.1), hold=3.0, notify_timeout=2.0,
                      refund_delay=0.05)
    sim.add_merchant(MCHID, [APPID], merchant.public, merchant.serial, APIV3_KEY)
    sim.add_merchant(PUB_MCHID, [PUB_APPID], pub_merchant.public,
                     pub_merchant.serial, PUB_APIV3_KEY, sign_with="pubkey")
    with V3Server(sim) as s:
        yield s


@pytest.fixture
def sim(srv):
    return srv.sim


def make_account(srv, merchant, notify_url="http://127.0.0.1:9/notify", **kw):
    return V3Account(APPID, MCHID, APIV3_KEY, merchant.serial, merchant.pem,
                     keys=kw.pop("keys", None) or WechatKeys(), notify_url=notify_url,
                     api_base=srv.url, **kw)


def make_pub_account(srv, pub_merchant, notify_url="http://127.0.0.1:9/notify"):
    keys = WechatKeys(public_key=srv.sim.public_key_pem(),
                      public_key_id=srv.sim.public_key_id)
    return V3Account(PUB_APPID, PUB_MCHID, PUB_APIV3_KEY, pub_merchant.serial,
                     pub_merchant.pem, keys=keys, notify_url=notify_url, api_base=srv.url)


@pytest.fixture
def account(srv, merchant):
    return make_account(srv, merchant)


@pytest.fixture
def client(account):
    with V3Client(account, timeout=(2, 2)) as c:
        yield c


def order(**kw):
    base = {"description": "wnshell test order", "out_trade_no": "ORDER_0001",
            "amount": {"total": 100, "currency": "CNY"},
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}
    base.update(kw)
    return base


class Receiver(NotifySink):
    """A notify_url on 127.0.0.1 that records ``(headers, body)`` and answers
    ``handler(headers, body) -> (status, body)`` (default 204)."""

    def __init__(self, handler=None):
        self.handler = handler or (lambda h, b: (204, b""))
        super().__init__(self._reply)

    def _reply(self, path, headers, body, n):
        status, out = self.handler(headers, body)
        return status, "application/json", out

    @property
    def pairs(self):
        return [(h, b) for _p, h, b in self.got]


def fail_body(msg="失败"):
    return json.dumps({"code": "FAIL", "message": msg}).encode()
