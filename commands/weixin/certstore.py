"""The merchant's API client certificate, kept in the store the Walnut way, beside the
wxconf: ``~/.weixin/<conf>/apiclient_cert.p12`` (password: wxconf
``pay_cert_password``, else Walnut's ``key_password``, else ``pay_mch_id``), or the PEM
pair ``apiclient_cert.pem`` + ``apiclient_key.pem``.  Optional beside them:
``wxpay_ca.pem``, the CA that signs the ``/secapi/`` server (the simulator's test CA;
WeChat's own server is verified against the system's CAs), and wxconf
``pay_secapi_base`` (default: ``pay_api_base``).

The files are read from the store into memory only (:mod:`wxpay.certs` explains how
``ssl`` gets them without an unencrypted key on disk); the client holding them is
cached per (store, files, versions), so a replaced certificate is picked up at once.
Nothing here puts certificate bytes or passwords into an error or a log.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from objstore.errors import BAD_INPUT, NOT_FOUND, WnError
from .common import account_store

P12 = "apiclient_cert.p12"
CERT_PEM = "apiclient_cert.pem"
KEY_PEM = "apiclient_key.pem"
CA_PEM = "wxpay_ca.pem"
_CACHE_MAX = 32

_lock = threading.Lock()
_cache: "OrderedDict[tuple, object]" = OrderedDict()


def _fetch(session, conf: str, name: str):
    obj = account_store(session).fetch(session.resolve(f"~/.weixin/{conf}/{name}"))
    return None if obj is None or obj.is_dir else obj


def secure_client(session, loaded):
    """A :class:`wxpay.client.Client` that presents the merchant certificate on
    ``/secapi/``; ``e.cmd.weixin.cert.noexists`` when the store holds none."""
    objs = {n: _fetch(session, loaded.name, n) for n in (P12, CERT_PEM, KEY_PEM, CA_PEM)}
    if objs[P12] is None and (objs[CERT_PEM] is None or objs[KEY_PEM] is None):
        raise WnError("e.cmd.weixin.cert.noexists",
                      f"no merchant certificate: put apiclient_cert.p12 (or "
                      f"apiclient_cert.pem and apiclient_key.pem) in ~/.weixin/{loaded.name}/",
                      NOT_FOUND)
    store = account_store(session)
    key = (getattr(store, "url", "") or str(id(store)), loaded.name, loaded.account.mch_id,
           str(loaded.conf.get("pay_secapi_base")),
           tuple((n, o.id, o.get("sha1"), o.get("lm")) if o else (n,) for n, o in objs.items()))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    from wxpay.certs import load_merchant_cert
    from wxpay.client import CONNECT_TIMEOUT, Client
    conf = loaded.conf
    password = conf.get("pay_cert_password") or conf.get("key_password") \
        or loaded.account.mch_id
    try:
        if objs[P12] is not None:
            cert = load_merchant_cert(p12=store.read(objs[P12].id), password=str(password))
        else:
            cert = load_merchant_cert(cert_pem=store.read(objs[CERT_PEM].id),
                                      key_pem=store.read(objs[KEY_PEM].id))
    except WnError as e:
        raise WnError("e.cmd.weixin.cert.invalid", e.reason, BAD_INPUT) from None
    ca = store.read(objs[CA_PEM].id) if objs[CA_PEM] is not None else None
    base = conf.get("pay_secapi_base")
    if base not in (None, "") and (not isinstance(base, str)
                                   or not base.startswith("https://")):
        raise WnError("e.cmd.weixin.conf.invalid",
                      f"{loaded.name}: pay_secapi_base must be an https:// URL", BAD_INPUT)
    read = loaded.read_timeout()
    client = Client(loaded.account, timeout=(min(CONNECT_TIMEOUT, read), read), cert=cert,
                    secapi_base=base or None, ca_pem=ca)
    with _lock:
        _cache[key] = client
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return client
