"""access_token and jsapi_ticket, cached in the store beside the account's wxconf.

``~/.weixin/<conf>/access_token`` holds ``wx_at_token`` and ``wx_at_expires`` (epoch s),
``~/.weixin/<conf>/jsapi_ticket`` holds ``wx_jt_ticket``, ``wx_jt_expires`` and
``wx_jt_lm`` (Walnut's names, wechat-mp.md §1).  A value is used until
``REFRESH_EARLY`` seconds before its expiry; then **one** caller -- the one whose
compare-and-set takes the lease ``wx_*_lease`` (epoch ms until which it holds it) --
fetches a new one while every other caller keeps using the still-valid old one (WeChat
keeps the old token valid 5 minutes after a new fetch).  A caller with no valid value
waits for the holder instead of calling WeChat.  The lease is atomic in every backend,
so workers and machines sharing one store make one WeChat call per refresh.

When WeChat answers 40001/42001 for a token we used, :func:`access_token` is called
with ``rejected=<that token>``: it refreshes only if the store still holds that token
(another worker may have replaced it already), and the caller retries once.
Nothing here logs or raises a token, a ticket or the appsecret.
"""
from __future__ import annotations

import secrets
import time

from objstore.errors import CONFLICT, NOT_FOUND, TIMEOUT, WnError
from wxpay import mp
from .common import account_store

REFRESH_EARLY = 300         # seconds before expiry a refresh starts
MIN_LEFT = 30               # a value with less left than this is not used at all
LEASE_MS = 15_000           # how long a refresher holds the lease (at least; longer
                            # when the account's timeouts are: it must outlast one fetch)
WAIT_STEP = 0.05


class _Slot:
    def __init__(self, name: str, prefix: str):
        self.name, self.prefix = name, prefix
        self.value = f"wx_{prefix}_" + ("token" if prefix == "at" else "ticket")
        self.expires = f"wx_{prefix}_expires"
        self.lease = f"wx_{prefix}_lease"
        self.lease_by = f"wx_{prefix}_lease_by"


AT = _Slot("access_token", "at")
JT = _Slot("jsapi_ticket", "jt")


def client(loaded) -> mp.MpClient:
    """One MpClient per loaded account (api base: wxconf ``mp_api_base``)."""
    c = getattr(loaded, "_mp_client", None)
    if c is None:
        conf = loaded.conf
        # a v3 pay account keeps the official account's appsecret in wxconf too
        secret = getattr(loaded.account, "appsecret", None) or conf.get("appsecret") \
            or conf.get("appSecret")
        c = mp.MpClient(loaded.account.appid, secret,
                        api_base=conf.get("mp_api_base") or mp.API_BASE,
                        timeout=(5.0, loaded.read_timeout()))
        loaded._mp_client = c
    return c


def _obj(session, loaded, slot: _Slot):
    store = account_store(session)
    path = session.resolve(f"~/.weixin/{loaded.name}/{slot.name}")
    obj = store.fetch(path)
    if obj is None:
        try:
            obj = store.create(path, "FILE", {}, parents=True)
        except WnError as e:
            if e.key != "e.io.obj.exists":
                raise
            obj = store.fetch(path)
            if obj is None:
                raise WnError("e.cmd.weixin.mp.cache", f"{slot.name} vanished",
                              NOT_FOUND) from None
    return obj


def _lease_ms(loaded) -> int:
    t = client(loaded).timeout
    return max(LEASE_MS, int((float(sum(t)) + 5) * 1000))


def _cached(session, loaded, slot: _Slot, fetch, rejected: str | None = None) -> str:
    store = account_store(session)
    lease_ms = _lease_ms(loaded)
    give_up = time.monotonic() + lease_ms / 1000 + 5
    while True:
        obj = _obj(session, loaded, slot)
        value, exp = obj.get(slot.value), obj.get(slot.expires)
        now = time.time()
        usable = (isinstance(value, str) and value and isinstance(exp, (int, float))
                  and value != rejected)
        if usable and exp > now + REFRESH_EARLY:
            return value
        valid = usable and exp > now + MIN_LEFT
        lease = obj.get(slot.lease)
        held = isinstance(lease, (int, float)) and lease > now * 1000
        if held:
            if valid:
                return value            # someone else refreshes; the old one still works
            if time.monotonic() > give_up:
                raise WnError("e.cmd.weixin.mp.busy", f"{slot.name} refresh takes too "
                              "long in another worker", TIMEOUT)
            time.sleep(WAIT_STEP)
            continue
        me = secrets.token_hex(8)
        took = store.cas(obj.id, {slot.lease: lease, slot.value: obj.get(slot.value)},
                         {slot.lease: int(now * 1000) + lease_ms, slot.lease_by: me})
        if took is None:
            continue                    # another caller moved first: look again
        try:
            fresh = fetch()
        except BaseException:
            store.cas(obj.id, {slot.lease_by: me}, {slot.lease: None, slot.lease_by: None})
            raise
        changes = {slot.value: fresh.value, slot.expires: fresh.expires_at,
                   slot.lease: None, slot.lease_by: None}
        if slot is JT:
            changes["wx_jt_lm"] = int(time.time() * 1000)
        if store.cas(obj.id, {slot.lease_by: me}, changes) is None:
            raise WnError("e.cmd.weixin.mp.cache", f"{slot.name} lease lost", CONFLICT)
        return fresh.value


def access_token(session, loaded, rejected: str | None = None) -> str:
    """The account's valid access_token (one WeChat call per refresh, store-wide)."""
    return _cached(session, loaded, AT, lambda: client(loaded).fetch_token(), rejected)


def jsapi_ticket(session, loaded, rejected: str | None = None) -> str:
    """The account's valid jsapi_ticket; a token WeChat rejects (40001/42001) while
    fetching it is refreshed once and the fetch retried once."""
    def fetch():
        token = access_token(session, loaded)
        try:
            return client(loaded).fetch_ticket(token)
        except mp.MpError as e:
            if not e.token_invalid:
                raise
        token = access_token(session, loaded, rejected=token)
        return client(loaded).fetch_ticket(token)
    return _cached(session, loaded, JT, fetch, rejected)
