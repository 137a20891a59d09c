import pytest

from wxpay.account import Account
from wxpay.client import Client
from wxpay.simulator import Simulator

from .sink import NotifySink

APPID = "wxd930ea5d5a258f4f"
MCH_ID = "10000100"
KEY = "192006250b4c09247ec02edce69f6a2d"
APPSECRET = "3f1b9c0e7d5a4b2c8e6f0a1d3c5b7e9f"
OTHER_APPID = "wx0000000000other"
OTHER_MCH = "10000200"
OTHER_KEY = "0123456789abcdef0123456789abcdef"
SECOND_APPID = "wx0000000000second"      # a second app of MCH_ID


def order(**kw):
    base = {"body": "test", "out_trade_no": "o_1", "total_fee": 888, "openid": "oUser",
            "spbill_create_ip": "127.0.0.1"}
    base.update(kw)
    return base


@pytest.fixture
def account():
    return Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/notify",
                   appsecret=APPSECRET)


@pytest.fixture
def sim():
    s = Simulator(merchants=[(APPID, MCH_ID, KEY), (OTHER_APPID, OTHER_MCH, OTHER_KEY),
                             (SECOND_APPID, MCH_ID, KEY)],
                  retry_schedule=(0.05, 0.05, 0.1), hold=3.0, notify_timeout=2.0)
    with s:
        yield s


@pytest.fixture
def sim_account(sim):
    return Account(APPID, MCH_ID, KEY, notify_url="http://127.0.0.1:9/notify",
                   api_base=sim.url)


@pytest.fixture
def client(sim_account):
    with Client(sim_account, timeout=(2, 2)) as c:
        yield c


class Receiver(NotifySink):
    """A tiny notify_url on 127.0.0.1: answers ``script`` replies in order (the last
    one repeats; a callable is given the body) and records every body it got."""

    def __init__(self, script, check=None):
        self.script = list(script)
        self.check = check
        super().__init__(self._reply)

    def _reply(self, path, headers, body, n):
        reply = self.script[min(n, len(self.script) - 1)]
        if callable(reply):
            reply = reply(body)
        return 200, "text/xml", reply.encode("utf-8")
