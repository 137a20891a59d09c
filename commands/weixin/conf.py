"""The merchant account of ``weixin <conf>``: the store object ``~/.weixin/<conf>/wxconf``.

Its content is Walnut's lenient JSON (hjson: unquoted keys, single quotes, ``#``
comments, braces optional), so the seed's own snippet loads verbatim.  Parsed accounts
are cached per (store, object id, sha1, lm, len): a changed wxconf is re-read, an
unchanged one is never re-parsed.  Nothing here ever puts a secret (``pay_key``,
``appsecret``, the APIv3 key, a private key) into an error message.

``pay_api_version: 3`` makes it a WeChat Pay v3 account (docs/wechatpay-v3.md): its key
objects are read from the account's folder (``apiclient_key.pem``, the WeChat Pay
public key), and are part of the cache key, so a replaced key is picked up at once;
the platform certificates the client fetches are cached in the folder's
``platform_certs.json`` (public certificates only).
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from objstore.errors import BAD_INPUT, NOT_FOUND, WnError
from wxpay.account import Account, mask
from .common import account_store

_CONF_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# field names that look secret (over-masking is harmless, under-masking is a leak)
_SECRET_KEY = re.compile(r"(key|secret|pass|pwd|token|private|cert|pem|credential|auth"
                         r"|salt|signature)", re.IGNORECASE)
_CACHE_MAX = 128
# the account's public fields (sent in every request to WeChat): shown as they are
_PUBLIC = frozenset(("appID", "appid", "appId", "pay_mch_id", "mch_id", "pay_time_expire",
                     "pay_notify_url", "pay_api_base", "pay_sign_type", "pay_timeout"))

_lock = threading.Lock()
_cache: "OrderedDict[tuple, Loaded]" = OrderedDict()
# (store, wxconf path) -> (dot generation, monotonic time, expi, Loaded): the account
# last loaded there, good while the generation has not moved
_current: dict = {}
# a wxconf changed without wnshell (the database edited by hand) is seen within this
RECHECK_S = 1.0


@dataclass
class Loaded:
    """One parsed wxconf: the raw mapping, the Account, and a lazily made Client."""
    name: str
    conf: dict
    account: Account
    # v3: called with the platform certificates after each /v3/certificates refresh
    save_certificates: object = field(default=None, repr=False)
    objects_key: tuple = ()         # v3: versions of the key objects it was made from
    _client: object = field(default=None, repr=False)
    _client_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _total: float | None = field(default=None, repr=False)    # the client's, in seconds

    @property
    def client(self):
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    from wxpay.client import CONNECT_TIMEOUT, Client
                    read = self.read_timeout()
                    timeout = (min(CONNECT_TIMEOUT, read), read)
                    if self.api_version == 3:
                        from .v3pay import V3PayClient
                        self._client = V3PayClient(self.account, timeout=timeout,
                                                   on_certificates=self.save_certificates)
                    else:
                        self._client = Client(self.account, timeout=timeout)
        return self._client

    @property
    def api_version(self) -> int:
        """2 (the seed's XML API) or 3 (``pay_api_version: 3``)."""
        return getattr(self.account, "api_version", 2)

    def bounded(self, seconds: float) -> "Loaded":
        """This account with a client that waits at most ``seconds`` in all for each
        WeChat call (a request's remaining time); itself when its own timeouts are
        shorter.  The HTTP connection pool is shared."""
        total = self._total
        if total is None:           # the client's timeouts never change: once
            client = self.client
            total = self._total = client._total_timeout() if hasattr(
                client, "_total_timeout") else sum(client.timeout)
        if seconds >= total:
            return self
        client = self.client
        import copy
        import dataclasses
        quick = copy.copy(client)
        quick._owns_http = False
        connect = min(client.timeout[0], seconds / 2) if isinstance(
            client.timeout, (tuple, list)) else seconds / 2
        quick.timeout = (max(connect, 0.001), max(seconds - connect, 0.001))
        return dataclasses.replace(self, _client=quick, _total=None)

    def read_timeout(self) -> float:
        """wxconf ``pay_timeout``: seconds to wait for WeChat's reply (default 10)."""
        from wxpay.client import READ_TIMEOUT
        value = self.conf.get("pay_timeout")
        if value is None or value == "":
            return READ_TIMEOUT
        return float(value)

    def masked(self) -> dict:
        """The conf with every secret-looking value masked (for ``info``)."""
        return mask_conf(self.conf)


def mask_conf(conf: dict, _secrets: frozenset | None = None) -> dict:
    """Every secret-looking field masked, at any depth (in maps and in lists): a name
    that looks secret (key, secret, pass, token, private, cert...), a PEM block, or a
    value equal to the account's pay_key or appsecret under any name."""
    if _secrets is None:
        _secrets = frozenset(str(conf.get(k)) for k in ("pay_key", "appsecret", "appSecret")
                             if conf.get(k) not in (None, ""))
    return {k: v if k in _PUBLIC and not isinstance(v, (dict, list))
            else _mask_value(v, _secrets, _SECRET_KEY.search(str(k)) is not None)
            for k, v in conf.items()}


def _mask_value(v, secrets: frozenset, secret_name: bool):
    if secret_name:
        return mask(v if isinstance(v, str) else (str(v) if v is not None else None))
    if isinstance(v, dict):
        return mask_conf(v, secrets)
    if isinstance(v, list):
        return [_mask_value(x, secrets, False) for x in v]
    if isinstance(v, bool) or v is None:
        return v
    if str(v) in secrets or (isinstance(v, str) and "-----BEGIN" in v):
        return mask(str(v))
    return v


def _invalid(name: str, reason: str) -> WnError:
    return WnError("e.cmd.weixin.conf.invalid", f"{name}: {reason}", BAD_INPUT)


def parse_wxconf(name: str, text: str) -> dict:
    """Lenient JSON -> dict, or ``e.cmd.weixin.conf.invalid`` (never quoting content)."""
    import hjson
    if not text.strip():
        raise _invalid(name, "wxconf is empty")
    try:
        value = hjson.loads(text)
    except hjson.HjsonDecodeError as e:
        raise _invalid(name, f"wxconf is not valid lenient JSON (line {e.lineno} "
                             f"column {e.colno})") from None
    except Exception:  # hjson raises a few other types on odd input
        raise _invalid(name, "wxconf is not valid lenient JSON") from None
    if not isinstance(value, dict):
        # hjson reads an unparsable document as one quoteless string: never show it
        raise _invalid(name, "wxconf is not an object of fields")
    from commands._jsonout import plain
    return plain(value)


def load(session, name: str) -> Loaded:
    """The account named ``name`` for this session's user (cached).

    Where the store keeps a dot-folder generation (``Store.dot_generation``: SQLite,
    PostgreSQL), an account loaded since the generation last moved is returned without
    a store read; otherwise (and at least every ``RECHECK_S``, for a database edited without
    wnshell) the wxconf object is fetched and its version compared."""
    if not isinstance(name, str) or not _CONF_NAME.match(name) or name in (".", ".."):
        raise WnError("e.cmd.weixin.conf.invalid", "bad account name (letters, digits, "
                      "'_', '-', '.', '@'; at most 64)", BAD_INPUT)
    # what session.resolve("~/.weixin/<name>/wxconf") gives for a name that matched
    # (no "/", not "." or ".."), without resolving it on every call
    path = f"{session.home}/.weixin/{name}/wxconf"
    # the account lives in a tree a request's session can not see (.weixin is hidden
    # from it): weixin, which owns that tree, reads it through the unhidden view
    view = session.store                # (the unhidden view is made only to read it)
    gen = view.dot_generation()         # read before the fetch: a write after it moves it
    if gen is None:
        return _load(account_store(session), name, path)[0]
    where = (getattr(view, "url", "") or str(id(view)), path)
    now = time.monotonic()
    seen = _current.get(where)
    if seen is not None and seen[0] == gen and now - seen[1] < RECHECK_S \
            and (seen[2] is None or seen[2] > time.time() * 1000):
        return seen[3]
    loaded, expi = _load(account_store(session), name, path)
    with _lock:
        _current[where] = (gen, now, expi, loaded)
        if len(_current) > _CACHE_MAX:
            _current.pop(next(iter(_current)))
    return loaded


def _load(store, name: str, path: str):
    """``(the account at path, the wxconf's expi)``: a fetch; parsed again only when
    its version changed."""
    obj = store.fetch(path)
    if obj is None or obj.is_dir:
        raise WnError("e.cmd.weixin.conf.noexists", f"~/.weixin/{name}/wxconf", NOT_FOUND)
    key = (getattr(store, "url", "") or str(id(store)), obj.id, obj.get("sha1"),
           obj.get("lm"), obj.get("len"))
    folder = path.rpartition("/")[0]
    hit = _cached(key)
    if hit is not None and hit.api_version == 3:
        # a v3 account also depends on its key objects: the same versions, the same one
        if hit.objects_key == _objects_key(store, folder, hit.conf):
            return hit, obj.get("expi")
        hit = None
    if hit is not None:
        return hit, obj.get("expi")
    raw = store.read(obj.id)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid(name, "wxconf is not UTF-8 text") from None
    conf = parse_wxconf(name, text)
    save = None
    try:
        from wxpay.account import load_account
        account = load_account(conf, _object_reader(store, folder))
        if getattr(account, "api_version", 2) == 3:
            save = _certificate_writer(store, folder, name, conf)
    except WnError as e:
        # wxpay's reasons name fields only; re-key under the command's namespace
        raise _invalid(name, e.reason) from None
    except Exception:
        raise _invalid(name, "wxconf fields are malformed") from None
    t = conf.get("pay_timeout")
    if t not in (None, "") and (isinstance(t, bool) or not isinstance(t, (int, float))
                                or not 0 < t <= 120):
        raise _invalid(name, "pay_timeout must be seconds between 0 and 120")
    loaded = Loaded(name=name, conf=conf, account=account, save_certificates=save)
    if loaded.api_version == 3:
        loaded.objects_key = _objects_key(store, folder, conf)
    with _lock:
        _cache[key] = loaded
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return loaded, obj.get("expi")


def forget() -> None:
    """Drop every cached account (as a new process starts)."""
    with _lock:
        _cache.clear()
        _current.clear()


def _cached(key):
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        return hit


def _key_objects(conf: dict) -> list[str]:
    """The objects a v3 account is made from (its certificate cache excepted: the
    client keeps the certificates it fetched in memory)."""
    from wxpay.v3.account import DEFAULT_PRIVATE_KEY, DEFAULT_PUBKEY, object_name
    try:
        names = [object_name(conf, "pay_private_key", DEFAULT_PRIVATE_KEY)]
        if conf.get("pay_wechat_pubkey_id") not in (None, ""):
            names.append(object_name(conf, "pay_wechat_pubkey", DEFAULT_PUBKEY))
    except WnError:
        return []
    return names


def _objects_key(store, folder: str, conf: dict) -> tuple:
    out = []
    for n in _key_objects(conf):
        o = store.fetch(f"{folder}/{n}")
        out.append((n, None) if o is None else (n, o.id, o.get("sha1"), o.get("lm"),
                                                o.get("len")))
    return tuple(out)


def _object_reader(store, folder: str):
    """``read_object(name)`` of wxpay.account.load_account: the text of a plain-named
    object in the account's folder, None when missing (the name was checked by
    wxpay.v3.account.object_name)."""
    def read(name: str):
        o = store.fetch(f"{folder}/{name}")
        if o is None or o.is_dir:
            return None
        raw = store.read(o.id)
        if len(raw) > 1024 * 1024:
            raise WnError("e.weixin.conf.invalid", f"{name} is too large", BAD_INPUT)
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WnError("e.weixin.conf.invalid", f"{name} is not UTF-8 text",
                          BAD_INPUT) from None
    return read


def _certificate_writer(store, folder: str, name: str, conf: dict):
    """Write the platform certificates a v3 client fetched (public, PEM in JSON) to
    the account's ``platform_certs.json`` (or wxconf ``pay_platform_certs``)."""
    from wxpay.v3.account import DEFAULT_CERT_CACHE, object_name
    path = f"{folder}/{object_name(conf, 'pay_platform_certs', DEFAULT_CERT_CACHE)}"

    def save(text: str) -> None:
        from .common import log
        try:
            o = store.fetch(path)
            if o is None:
                o = store.create(path)
            store.write(o.id, text.encode("utf-8"))
        except WnError as e:
            log.warning("weixin %s: cannot cache the platform certificates: %s", name,
                        e.key)
    return save


def cache_size() -> int:
    with _lock:
        return len(_cache)
