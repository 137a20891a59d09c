"""``${http-se-*}``: the browser session set by the OAuth2 callback (regapi.websession),
through the real WSGI app, the checkout APIs and the MP-platform simulator."""
from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

import pytest
import requests

from regapi import checkout
from wxpay.mpsim import MpSimulator

from .conftest import call, put_api, qs

APPID, SECRET = "wx" + "ab" * 8, "s" * 32
OPENID = "o_web_user_1"
WXCONF = f"""appID : '{APPID}'
appsecret : '{SECRET}'
pay_mch_id : "1900000109"
pay_key : "{'k' * 32}"
pay_notify_url : "http://127.0.0.1:9/n"
pay_api_base : "http://127.0.0.1:9"
"""


@pytest.fixture()
def mpsim():
    with MpSimulator(apps={APPID: SECRET}, users=[{"openid": OPENID}]) as s:
        yield s


@pytest.fixture()
def shop(store, mpsim):
    store.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True, content=WXCONF.encode())
    checkout.point_at_mp(store, "demo", "xxx", mpsim.url)
    checkout.install(store, "demo", "xxx")
    put_api(store, "demo", "whoami", "echo se=${http-se-openid?none} qs=${http-qs-openid?none}",
            **{"http-header-Content-Type": "text/plain"})
    return store


def _cookies(resp) -> dict:
    out = {}
    for k, v in resp.header_list:
        if k == "Set-Cookie":
            name, _, rest = v.partition("=")
            out[name] = (rest.split(";", 1)[0], v)
    return out


def sign_in(app, back="/api/demo/whoami"):
    r = call(app, "GET", "/api/demo/checkout/login", qs(back=back))
    assert r.status == 302
    state_cookie = _cookies(r)["wnst"][0]
    loc = r.headers["Location"]
    assert loc.startswith("http") and "#wechat_redirect" in loc
    w = requests.get(loc.split("#")[0], allow_redirects=False, timeout=5)   # WeChat
    assert w.status_code == 302
    cb = urlsplit(w.headers["Location"])
    assert cb.path == "/api/demo/checkout/login/done"
    return cb.query, state_cookie


def test_callback_sets_a_signed_httponly_cookie_and_templates_read_it(app, shop, mpsim):
    query, state_cookie = sign_in(app)
    r = call(app, "GET", "/api/demo/checkout/login/done", query,
             headers={"Cookie": f"wnst={state_cookie}"})
    assert r.status == 302 and r.headers["Location"] == "/api/demo/whoami"
    cookie, raw = _cookies(r)["wnse"]
    assert "HttpOnly" in raw and "SameSite=Lax" in raw and "Path=/api/demo/" in raw
    assert "Secure" not in raw                                       # plain HTTP here
    r = call(app, "GET", "/api/demo/whoami", "openid=mallory",
             headers={"Cookie": f"wnse={cookie}"})
    assert r.text.strip() == f"se={OPENID} qs=mallory"


@pytest.mark.parametrize("forge", ["tamper", "garbage", "other-secret", "none"])
def test_forged_or_tampered_cookie_gives_no_value_and_no_error_page(app, shop, mpsim, forge):
    query, state_cookie = sign_in(app)
    r = call(app, "GET", "/api/demo/checkout/login/done", query,
             headers={"Cookie": f"wnst={state_cookie}"})
    good = _cookies(r)["wnse"][0]
    if forge == "tamper":
        bad = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    elif forge == "garbage":
        bad = "eyJ1IjoiZGVtbyIsInYiOnsib3BlbmlkIjoieCJ9fQ.x.y"
    elif forge == "other-secret":
        from itsdangerous import URLSafeTimedSerializer
        bad = URLSafeTimedSerializer(secrets.token_hex(32), salt="wnshell-websession").dumps(
            {"u": "demo", "v": {"openid": OPENID}})
    else:
        bad = ""
    r = call(app, "GET", "/api/demo/whoami", headers={"Cookie": f"wnse={bad}"})
    assert r.status == 200 and r.text.strip() == "se=none qs=none"
    # and the order API answers "sign in", never order data
    o = shop.create("/home/demo/orders/o1", "FILE", {"openid": OPENID, "total_fee": 1,
                                                     "or_status": 0}, parents=True)
    r = call(app, "GET", "/api/demo/checkout/order", qs(id=o.id),
             headers={"Cookie": f"wnse={bad}"})
    assert r.status == 403 and json.loads(r.body)["errCode"] == "e.cmd.weixin.checkout.nosession"


def test_callback_without_the_browsers_state_cookie_runs_nothing(app, shop, mpsim):
    query, _ = sign_in(app)
    calls = mpsim.calls["/sns/oauth2/access_token"]
    for cookie in ({}, {"Cookie": "wnst=forged"}):
        r = call(app, "GET", "/api/demo/checkout/login/done", query, headers=cookie)
        assert r.status == 403 and "wnse" not in _cookies(r)
        assert b"Traceback" not in r.body and len(r.body.splitlines()) == 1
    assert mpsim.calls["/sns/oauth2/access_token"] == calls


def test_replayed_callback_is_refused(app, shop, mpsim):
    query, state_cookie = sign_in(app)
    h = {"Cookie": f"wnst={state_cookie}"}
    assert call(app, "GET", "/api/demo/checkout/login/done", query, headers=h).status == 302
    r = call(app, "GET", "/api/demo/checkout/login/done", query, headers=h)
    assert r.status == 403 and "wnse" not in _cookies(r)


def test_back_never_leaves_the_server(app, shop, mpsim):
    for back, want in (("https://evil.example/x", "/api/demo/"), ("//evil.example", "/api/demo/"),
                       ("/api/demo/checkout?id=1", "/api/demo/checkout?id=1")):
        query, state_cookie = sign_in(app, back)
        r = call(app, "GET", "/api/demo/checkout/login/done", query,
                 headers={"Cookie": f"wnst={state_cookie}"})
        assert r.headers["Location"] == want


def test_secure_cookie_over_https(app, shop, mpsim):
    r = call(app, "GET", "/api/demo/checkout/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in _cookies(r)["wnst"][1]


def test_session_secret_lives_outside_every_home(app, shop, mpsim):
    sign_in(app)
    obj = shop.fetch("/sys/regapi/websession")
    assert obj is not None and len(obj["ws_secret"]) == 64
    put_api(shop, "demo", "peek", "obj /sys/regapi/websession",
            **{"http-header-Content-Type": "text/plain"})
    r = call(app, "GET", "/api/demo/peek")
    assert r.status == 404 and obj["ws_secret"] not in r.text
