"""End to end, an HMAC-SHA256 account: WeChat's notifications carry no sign_type
(they were refused, and WeChat retried for a day); an MD5-signed one is a downgrade."""
from __future__ import annotations

import json
import time

import pytest

from regapi.demo import PAY_API, PAYRESULT_API
from tests.e2e import served
from tests.e2e.served import get, new_order
from wxpay.sign import sign
from wxpay.xmlcodec import from_xml, to_xml

USER = served.USER


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hmac")
    apis = tmp / "apis"
    apis.mkdir()
    (apis / "pay").write_text(PAY_API, encoding="utf-8")
    (apis / "pay.meta.json").write_text(
        json.dumps({"http-header-Content-Type": "application/json"}))
    (apis / "payresult").write_text(PAYRESULT_API, encoding="utf-8")
    s = served.start(tmp, f"sqlite://{tmp / 'store.db'}", apis, mch_id="1900000412",
                     extra_args=("--sweep", "0"),
                     wxconf_extra='pay_sign_type : "HMAC-SHA256"\n')
    yield s
    assert served.stop(s) == 0


def test_hmac_notification_without_sign_type_pays_the_order(srv):
    order, openid = new_order(srv, "h1")
    r = get(srv, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid})
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["signType"] == "HMAC-SHA256" and len(js["paySign"]) == 64
    paid = srv.sim.pay(prepay_id=js["package"][len("prepay_id="):])
    snap = srv.sim.wait_notified(paid["out_trade_no"], timeout=20)
    assert snap["notify"]["status"] == "delivered" and snap["notify"]["attempts"] == 1
    assert srv.store.get(order["id"])["or_status"] == 2


def test_md5_signed_notification_is_refused(srv):
    order, openid = new_order(srv, "h2")
    assert get(srv, f"/api/{USER}/pay",
               params={"id": order["id"], "openid": openid}).status_code == 200
    n = {"return_code": "SUCCESS", "appid": srv.appid, "mch_id": srv.mch_id,
         "nonce_str": "n1", "result_code": "SUCCESS", "openid": openid,
         "trade_type": "JSAPI", "total_fee": "888", "cash_fee": "888",
         "transaction_id": "4200000000000000000000000042",
         "out_trade_no": f"{order['id']}_1", "time_end": time.strftime("%Y%m%d%H%M%S")}
    for body in (dict(n, sign=sign(n, srv.key, "MD5")),
                 dict(n, sign_type="MD5", sign=sign(dict(n, sign_type="MD5"), srv.key, "MD5"))):
        r = srv.http.post(f"{srv.base}/api/{USER}/payresult", data=to_xml(body).encode(),
                          timeout=20)
        assert r.status_code == 200 and from_xml(r.content)["return_code"] == "FAIL"
    assert srv.store.get(order["id"])["or_status"] == 0
