"""The checkout page: plain HTML + JS in the store, behind ``.regapi`` APIs.

``install(store, user, conf)`` puts ``checkout.html`` at ``/home/<user>/www/`` and the
APIs of the folder ``apis/`` (a ``wnshell sync`` folder) under
``/home/<user>/.regapi/api/checkout/``, leaving the user's other APIs alone:

    GET /api/<user>/checkout?id=ORDER        the page (cat ~/www/checkout.html)
    GET /api/<user>/checkout/login?back=P    302 to WeChat's OAuth2 (weixin oauth2)
    GET /api/<user>/checkout/login/done      the callback: sets the session cookie
    GET /api/<user>/checkout/order?id=       the order, for its buyer only
    GET /api/<user>/checkout/jssdk?url=      wx.config
    GET /api/<user>/checkout/pay?id=         order -submit: getBrandWCPayRequest's object
    GET /api/<user>/checkout/native?id=      Native pay: the code_url's QR code

Edit the page or the APIs in the store like any other object (or keep a copy of this
folder in git and ``wnshell sync`` it with the rest).
"""
from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "checkout.html")
APIS = os.path.join(HERE, "apis")


def _put(store, path: str, content: bytes, meta: dict | None = None):
    obj = store.fetch(path)
    if obj is None:
        return store.create(path, "FILE", meta or {}, parents=True, content=content)
    if store.read(obj.id) != content:
        store.write(obj.id, content)
    if meta:
        store.set_meta(obj.id, meta)
    return obj


def install(store, user: str = "demo", conf: str = "xxx") -> list[str]:
    """Write the page and the checkout APIs; the API paths written."""
    from regapi.sync import scan
    with open(PAGE, "rb") as f:
        _put(store, f"/home/{user}/www/checkout.html", f.read())
    root = f"/home/{user}/.regapi/api"
    done = []
    for rel, entry in sorted(scan(APIS).items()):
        if entry.race != "FILE":
            continue
        text = entry.content
        if conf != "xxx":
            text = text.replace(b"weixin xxx ", f"weixin {conf} ".encode())
        _put(store, f"{root}/{rel}", text, entry.meta)
        done.append(rel)
    return done


def point_at_mp(store, user: str, conf: str, mp_url: str) -> None:
    """Add ``mp_api_base`` and ``mp_open_base`` (the MP simulator) to a wxconf."""
    obj = store.fetch(f"/home/{user}/.weixin/{conf}/wxconf")
    text = store.read(obj.id).decode("utf-8")
    text = text.rstrip("\n") + (f'\nmp_api_base : "{mp_url}"   # the local MP simulator\n'
                                f'mp_open_base : "{mp_url}"\n')
    store.write(obj.id, text.encode("utf-8"))


def start_demo(store, user: str, conf: str, appid: str, appsecret: str, openid: str):
    """For ``wnshell demo``: the MP simulator (``openid`` signs in), the checkout page
    and APIs, and an unpaid order for it; ``(simulator, order)``."""
    from wxpay.mpsim import MpSimulator
    sim = MpSimulator(apps={appid: appsecret}, users=[{"openid": openid}]).start()
    point_at_mp(store, user, conf, sim.url)
    install(store, user, conf)
    order = store.create(f"/home/{user}/orders/o2", "FILE",
                         {"title": "wnshell demo: a pot of tea", "openid": openid,
                          "total_fee": 1200, "or_status": 0}, parents=True)
    return sim, order
