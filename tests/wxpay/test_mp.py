"""wxpay.mp (sans-IO builders, parsers, the JS-SDK signature) and its client against
the MP-platform simulator (wxpay.mpsim) on loopback."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from wxpay import mp
from wxpay.errors import TransportError
from wxpay.mpsim import MpSimulator

T = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
N = "Wm3WZYTPz0wzccnW"
S = 1414587457
APPID, SECRET = "wx0123456789abcdef", "mp-secret-0123456789abcdef012345"


def test_jsapi_signature_vectors():
    assert mp.jsapi_signature(T, N, S, "http://mp.weixin.qq.com?params=value") \
        == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert mp.jsapi_signature(T, N, str(S), "http://mp.weixin.qq.com") \
        == "f4d90daf4b3bca3078ab155816175ba34c443a7b"


def test_jssdk_config_cuts_the_fragment_and_uses_seconds():
    cfg = mp.jssdk_config(APPID, T, "http://mp.weixin.qq.com?params=value#part", nonce=N,
                          timestamp=S, apis="chooseWXPay,scanQRCode")
    assert cfg == {"appId": APPID, "timestamp": S, "nonceStr": N,
                   "signature": "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
                   "jsApiList": ["chooseWXPay", "scanQRCode"]}
    now = mp.jssdk_config(APPID, T, "https://a.example/p")
    assert now["jsApiList"] == ["chooseWXPay"] and 1e9 < now["timestamp"] < 1e10


@pytest.mark.parametrize("bad", ["", "a b", "x;alert(1)", ","])
def test_apilist_refuses_non_names(bad):
    if bad == "":
        assert mp.api_list(bad) == ["chooseWXPay"]
        return
    with pytest.raises(Exception) as e:
        mp.api_list(bad)
    assert e.value.key == "e.weixin.mp.param.invalid"


def test_authorize_url_is_in_wechats_order():
    url = mp.authorize_url(APPID, "https://shop.example/cb?x=1&y=2#frag", "snsapi_base",
                           "abc123")
    assert url == ("https://open.weixin.qq.com/connect/oauth2/authorize?appid="
                   f"{APPID}&redirect_uri=https%3A%2F%2Fshop.example%2Fcb%3Fx%3D1%26y%3D2"
                   "&response_type=code&scope=snsapi_base&state=abc123#wechat_redirect")
    for kw in ({"scope": "snsapi_login"}, {"state": "not/alnum"}, {"state": "a" * 129}):
        with pytest.raises(Exception) as e:
            mp.authorize_url(APPID, "https://shop.example/cb", **kw)
        assert e.value.key == "e.weixin.mp.param.invalid"
    with pytest.raises(Exception):
        mp.authorize_url(APPID, "javascript:alert(1)")


def test_parse_reply_errcodes_and_garbage():
    with pytest.raises(mp.MpError) as e:
        mp.parse_reply("/cgi-bin/token", b'{"errcode":40001,"errmsg":"invalid credential rid: 1"}')
    assert e.value.key == "e.weixin.mp.40001" and e.value.token_invalid
    assert e.value.errmsg == "invalid credential"
    with pytest.raises(mp.MpError) as e:
        mp.parse_reply("/cgi-bin/token", '{"errcode":45009,"errmsg":"reach max api daily quota limit"}')
    assert not e.value.token_invalid and "quota" in e.value.reason
    with pytest.raises(mp.MpError) as e:
        mp.parse_reply("/cgi-bin/token", '{"errcode":-1,"errmsg":"busy"}')
    assert e.value.key == "e.weixin.mp.minus1"
    for body in (b"<html>x</html>", b"not json", b"[1]", b'{"errcode":"x"}'):
        with pytest.raises(TransportError):
            mp.parse_reply("/cgi-bin/token", body)
    assert mp.parse_reply("/x", b'{"errcode":0,"ticket":"t","expires_in":7200}')["ticket"] == "t"


def test_token_repr_hides_value():
    t = mp.parse_token({"access_token": "SECRETTOKEN", "expires_in": 7200}, now=100)
    assert t.expires_at == 7300 and "SECRETTOKEN" not in repr(t)
    with pytest.raises(TransportError):
        mp.parse_token({"access_token": "x", "expires_in": 0})


@pytest.fixture()
def sim():
    with MpSimulator(apps={APPID: SECRET},
                     users=[{"openid": "o_user_1", "nickname": "Ada"}]) as s:
        yield s


def test_client_token_ticket_and_signature_checks_out(sim):
    c = mp.MpClient(APPID, SECRET, api_base=sim.url)
    tok = c.fetch_token()
    tic = c.fetch_ticket(tok.value)
    cfg = mp.jssdk_config(APPID, tic.value, "http://127.0.0.1/page?id=1")
    assert sim.platform.check_config(cfg, "http://127.0.0.1/page?id=1#x") == "config:ok"
    assert sim.platform.check_config(cfg, "http://127.0.0.1/page?id=2") \
        == "config:invalid signature"
    assert sim.calls["/cgi-bin/token"] == 1 and sim.calls["/cgi-bin/ticket/getticket"] == 1


def test_token_rotation_grace_and_expiry(sim):
    c = mp.MpClient(APPID, SECRET, api_base=sim.url)
    old = c.fetch_token()
    c.fetch_token()
    c.fetch_ticket(old.value)                 # the old one lives 300 s more
    sim.platform.advance(301)
    with pytest.raises(mp.MpError) as e:
        c.fetch_ticket(old.value)
    assert e.value.errcode == 40001
    new = c.fetch_token()
    sim.platform.expire_all()
    with pytest.raises(mp.MpError) as e:
        c.fetch_ticket(new.value)
    assert e.value.errcode == 42001


def test_bad_secret_and_quota_fault(sim):
    with pytest.raises(mp.MpError) as e:
        mp.MpClient(APPID, "wrong", api_base=sim.url).fetch_token()
    assert e.value.errcode == 40125 and "wrong" not in e.value.line()
    sim.platform.set_fault("/cgi-bin/token", 45009, count=0)
    with pytest.raises(mp.MpError) as e:
        mp.MpClient(APPID, SECRET, api_base=sim.url).fetch_token()
    assert e.value.errcode == 45009 and SECRET not in e.value.line()


def _authorize(sim, scope="snsapi_base", state="s1"):
    url = mp.authorize_url(APPID, "http://127.0.0.1:1/cb?x=1", scope, state, base=sim.url)
    r = requests.get(url.split("#")[0], allow_redirects=False, timeout=5)
    assert r.status_code == 302
    return parse_qs(urlsplit(r.headers["Location"]).query)


def test_oauth2_code_single_use_and_userinfo(sim):
    q = _authorize(sim, "snsapi_userinfo")
    assert q["state"] == ["s1"] and q["x"] == ["1"]
    c = mp.MpClient(APPID, SECRET, api_base=sim.url)
    got = c.exchange_code(q["code"][0])
    assert got["openid"] == "o_user_1" and got["scope"] == "snsapi_userinfo"
    assert c.userinfo(got["access_token"], "o_user_1")["nickname"] == "Ada"
    with pytest.raises(mp.MpError) as e:
        c.exchange_code(q["code"][0])
    assert e.value.errcode == 40163
    with pytest.raises(mp.MpError) as e:
        c.exchange_code("nonsense")
    assert e.value.errcode == 40029


def test_oauth2_code_expires_and_base_scope_has_no_userinfo(sim):
    c = mp.MpClient(APPID, SECRET, api_base=sim.url)
    got = c.exchange_code(_authorize(sim)["code"][0])
    with pytest.raises(mp.MpError) as e:
        c.userinfo(got["access_token"], got["openid"])
    assert e.value.errcode == 48001
    code = _authorize(sim)["code"][0]
    sim.platform.advance(301)
    with pytest.raises(mp.MpError) as e:
        c.exchange_code(code)
    assert e.value.errcode == 40029


def test_authorize_refuses_foreign_redirect_host(sim):
    url = mp.authorize_url(APPID, "https://evil.example/cb", base=sim.url)
    r = requests.get(url.split("#")[0], allow_redirects=False, timeout=5)
    assert r.status_code == 200 and b"10003" in r.content


def test_simulator_http_controls(sim):
    r = requests.post(sim.url + "/sim/mp/faults", json={"endpoint": "/sns/oauth2/access_token",
                                                        "errcode": 40029}, timeout=5)
    assert r.ok
    with pytest.raises(mp.MpError) as e:
        mp.MpClient(APPID, SECRET, api_base=sim.url).exchange_code("x")
    assert e.value.errcode == 40029
    calls = requests.get(sim.url + "/sim/mp/calls", timeout=5).json()
    assert calls == {"/sns/oauth2/access_token": 1}


def test_mpsim_runs_alone_on_loopback():
    import os
    import signal
    import subprocess
    import sys
    env = dict(os.environ, WXMP_SIM_SECRET=SECRET)
    p = subprocess.Popen([sys.executable, "-m", "wxpay.mpsim", "--app", APPID, "--user", "o_cli"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert line.startswith("wxmp-sim listening on http://127.0.0.1:"), p.stderr.read()
        url = line.split()[3]
        assert SECRET not in line
        tok = mp.MpClient(APPID, SECRET, api_base=url).fetch_token()
        assert tok.value
        r = requests.post(url + "/sim/mp/faults", json={"errcode": 1}, timeout=5)
        assert r.status_code == 400
        assert requests.get(url + "/sim/mp/calls", timeout=5).json() == {"/cgi-bin/token": 1}
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    r = subprocess.run([sys.executable, "-m", "wxpay.mpsim", "--host", "0.0.0.0", "--app", APPID],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2 and "loopback" in r.stderr


def test_debug_logs_of_the_http_library_never_show_the_secret_or_tokens(sim):
    import logging
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(self.format(record))
    lg = logging.getLogger("urllib3.connectionpool")
    h, old = Keep(level=logging.DEBUG), lg.level
    lg.addHandler(h)
    lg.setLevel(logging.DEBUG)
    try:
        c = mp.MpClient(APPID, SECRET, api_base=sim.url)
        tok = c.fetch_token()
        tic = c.fetch_ticket(tok.value)
    finally:
        lg.removeHandler(h)
        lg.setLevel(old)
    text = "\n".join(seen)
    assert "/cgi-bin/token" in text and "/cgi-bin/ticket/getticket" in text   # it did log
    for s in (SECRET, tok.value, tic.value):
        assert s not in text
