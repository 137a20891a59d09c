"""``weixin <conf> oauth2 | user | jssdk`` against the MP-platform simulator: the
server-issued OAuth2 state, the code exchange, the wx.config signature, and the
access_token/jsapi_ticket cache (early refresh, 40001 refresh, single flight across
processes, no secret in any output)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import objstore
from wnshell.session import Session
from wxpay.mpsim import MpSimulator

from .conftest import APPID, APPSECRET, install_wxconf, record, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER_OPENID = "o_mp_user_0001"


@pytest.fixture()
def mpsim():
    with MpSimulator(apps={APPID: APPSECRET},
                     users=[{"openid": USER_OPENID, "nickname": "Ada"}]) as s:
        yield s


def _extra(mpsim) -> str:
    return f'mp_api_base : "{mpsim.url}"\nmp_open_base : "{mpsim.url}"\n'


@pytest.fixture()
def msh(store, mpsim):
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n", extra=_extra(mpsim))
    return Session(store, user="demo")


def _follow(url: str) -> dict:
    """The browser at the authorize URL: where WeChat sends it back."""
    r = requests.get(url.split("#")[0], allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    return {k: v[0] for k, v in parse_qs(urlsplit(r.headers["Location"]).query).items()}


def test_oauth2_prints_the_url_and_user_exchanges_the_code(msh, store, mpsim):
    st, out, err = run(msh, "weixin xxx oauth2 http://127.0.0.1:8080/api/demo/cb -state /back")
    assert st == 0, err
    url = out.strip()
    assert url.endswith("#wechat_redirect") and "scope=snsapi_base" in url
    back = _follow(url)
    state = parse_qs(urlsplit(url.split("#")[0]).query)["state"][0]
    assert back["state"] == state and len(state) == 32 and "/back" not in url
    st, out, err = run(msh, f"weixin xxx user -code {back['code']} -state {state}")
    assert st == 0, err
    assert json.loads(out) == {"openid": USER_OPENID, "scope": "snsapi_base",
                               "state_data": "/back"}
    assert "access_token" not in out and "refresh_token" not in out


def test_state_is_single_use_and_checked_before_the_exchange(msh, store, mpsim):
    st, out, _ = run(msh, "weixin xxx oauth2 http://127.0.0.1/cb")
    back = _follow(out.strip())
    assert run(msh, f"weixin xxx user -code {back['code']} -state {back['state']}")[0] == 0
    calls = mpsim.calls["/sns/oauth2/access_token"]
    for state in (back["state"], "A" * 32, "bad/state", ""):
        st, out, err = run(msh, f"weixin xxx user -code {back['code']} -state '{state}'")
        assert st != 0 and out == ""
        assert err.startswith("e.cmd.weixin.oauth2.state.invalid : ") or \
            err.startswith("e.cmd.weixin.user.usage"), err
    assert mpsim.calls["/sns/oauth2/access_token"] == calls      # WeChat never asked


def test_state_expires(msh, store, mpsim):
    _, out, _ = run(msh, "weixin xxx oauth2 http://127.0.0.1/cb")
    back = _follow(out.strip())
    rec = store.fetch(f"/home/demo/.weixin/xxx/oauth2_state/{back['state']}")
    store.set_meta(rec.id, {"expi": int(time.time() * 1000) - 1})
    st, _, err = run(msh, f"weixin xxx user -code {back['code']} -state {back['state']}")
    assert st != 0 and "state.invalid" in err


def test_userinfo_scope_and_wechat_code_errors(msh, mpsim):
    _, out, _ = run(msh, "weixin xxx oauth2 http://127.0.0.1/cb -scope snsapi_userinfo")
    back = _follow(out.strip())
    st, out, err = run(msh, f"weixin xxx user -code {back['code']} -nostate")
    assert st == 0, err
    assert json.loads(out)["nickname"] == "Ada"
    st, out, err = run(msh, f"weixin xxx user -code {back['code']} -nostate")
    assert st != 0 and err.startswith("e.weixin.mp.40163 : ")
    st, _, err = run(msh, "weixin xxx user -code wrongcode -nostate")
    assert st != 0 and err.startswith("e.weixin.mp.40029 : ")
    for bad in ("weixin xxx oauth2", "weixin xxx oauth2 ftp://x/", "weixin xxx user -code c",
                "weixin xxx oauth2 http://x/ -scope snsapi_login"):
        st, _, err = run(msh, bad)
        assert st != 0 and err.startswith("e.") and len(err.splitlines()) == 1, (bad, err)


def _config(msh, url="http://127.0.0.1/pay?id=1#frag"):
    st, out, err = run(msh, f"weixin xxx jssdk '{url}' -apilist chooseWXPay,scanQRCode")
    assert st == 0, err
    return json.loads(out)


def test_jssdk_config_verifies_and_is_cached(msh, store, mpsim):
    cfg = _config(msh)
    assert set(cfg) == {"appId", "timestamp", "nonceStr", "signature", "jsApiList"}
    assert cfg["appId"] == APPID and abs(cfg["timestamp"] - time.time()) < 60
    assert mpsim.platform.check_config(cfg, "http://127.0.0.1/pay?id=1") == "config:ok"
    for _ in range(3):
        _config(msh)
    assert mpsim.calls["/cgi-bin/token"] == 1 and mpsim.calls["/cgi-bin/ticket/getticket"] == 1
    at = store.fetch("/home/demo/.weixin/xxx/access_token")
    jt = store.fetch("/home/demo/.weixin/xxx/jsapi_ticket")
    assert at["wx_at_expires"] > time.time() + 7000 and jt["wx_jt_expires"] > time.time() + 7000


def test_jssdk_refreshes_early_and_only_once_while_leased(msh, store, mpsim):
    _config(msh)
    jt = store.fetch("/home/demo/.weixin/xxx/jsapi_ticket")
    soon = int(time.time()) + 200                 # inside the 300 s early-refresh window
    store.set_meta(jt.id, {"wx_jt_expires": soon,
                           "wx_jt_lease": int(time.time() * 1000) + 10_000})
    _config(msh)                                  # another worker holds the lease
    assert mpsim.calls["/cgi-bin/ticket/getticket"] == 1
    store.set_meta(jt.id, {"wx_jt_lease": None})
    cfg = _config(msh)
    assert mpsim.calls["/cgi-bin/ticket/getticket"] == 2
    assert mpsim.calls["/cgi-bin/token"] == 1     # the token was still good
    assert store.get(jt.id)["wx_jt_expires"] > soon
    assert mpsim.platform.check_config(cfg, "http://127.0.0.1/pay?id=1") == "config:ok"


def test_jssdk_refetches_the_token_once_on_40001(msh, store, mpsim):
    _config(msh)
    mpsim.platform.invalidate_tokens()            # e.g. someone else fetched a token
    jt = store.fetch("/home/demo/.weixin/xxx/jsapi_ticket")
    store.set_meta(jt.id, {"wx_jt_expires": 0})
    cfg = _config(msh)
    assert mpsim.calls["/cgi-bin/token"] == 2
    assert mpsim.calls["/cgi-bin/ticket/getticket"] == 3       # refused, then retried
    assert mpsim.platform.check_config(cfg, "http://127.0.0.1/pay?id=1") == "config:ok"


def test_jssdk_token_expired_42001_refetched_once(msh, store, mpsim):
    _config(msh)
    mpsim.platform.expire_all()
    jt = store.fetch("/home/demo/.weixin/xxx/jsapi_ticket")
    store.set_meta(jt.id, {"wx_jt_expires": 0})
    _config(msh)
    assert mpsim.calls["/cgi-bin/token"] == 2


def test_quota_45009_is_an_error_never_a_loop(msh, store, mpsim):
    mpsim.platform.set_fault("/cgi-bin/token", 45009, count=0)
    st, out, err = run(msh, "weixin xxx jssdk http://127.0.0.1/p")
    assert st != 0 and out == "" and err.startswith("e.weixin.mp.45009 : ")
    assert mpsim.calls["/cgi-bin/token"] == 1
    # the lease was given back: the next call may try again
    at = store.fetch("/home/demo/.weixin/xxx/access_token")
    assert at.get("wx_at_lease") is None


def test_two_processes_make_exactly_one_wechat_call(tmp_path, mpsim):
    url = f"sqlite://{tmp_path / 'store.db'}"
    st = objstore.open_store(url)
    install_wxconf(st, "http://127.0.0.1:9", "http://127.0.0.1:9/n", extra=_extra(mpsim))
    st.close()
    mpsim.platform.latency = {"/cgi-bin/token": 0.6, "/cgi-bin/ticket/getticket": 0.3}
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-m", "wnshell.cli", "--store", url, "-c",
                               "weixin xxx jssdk http://127.0.0.1/p"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        record("stdout", out)
        record("stderr", err)
    assert mpsim.calls["/cgi-bin/token"] == 1
    assert mpsim.calls["/cgi-bin/ticket/getticket"] == 1
    sigs = {json.loads(o)["signature"] for o, _ in outs}
    assert len(sigs) == 3                        # one ticket, three nonces


def test_no_secret_token_or_ticket_in_any_output(msh, store, mpsim, records):
    _config(msh)
    run(msh, "weixin xxx info")
    mpsim.platform.set_fault("/cgi-bin/ticket/getticket", 40001, count=0)
    jt = store.fetch("/home/demo/.weixin/xxx/jsapi_ticket")
    store.set_meta(jt.id, {"wx_jt_expires": 0})
    st, _, err = run(msh, "weixin xxx jssdk http://127.0.0.1/p")
    assert st != 0 and err.startswith("e.weixin.mp.40001")
    token = store.fetch("/home/demo/.weixin/xxx/access_token")["wx_at_token"]
    ticket = store.get(jt.id)["wx_jt_ticket"]
    assert token and ticket
    for kind, text in records:
        for s in (APPSECRET, token, ticket):
            assert s not in text, kind


def test_a_stale_lease_of_a_crashed_worker_is_taken_over(msh, store, mpsim):
    obj = store.create("/home/demo/.weixin/xxx/access_token", "FILE",
                       {"wx_at_lease": int(time.time() * 1000) - 1, "wx_at_lease_by": "dead"},
                       parents=True)
    cfg = _config(msh)
    assert mpsim.calls["/cgi-bin/token"] == 1
    assert store.get(obj.id).get("wx_at_lease") is None
    assert mpsim.platform.check_config(cfg, "http://127.0.0.1/pay?id=1") == "config:ok"
