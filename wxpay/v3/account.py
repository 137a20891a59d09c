"""A WeChat Pay v3 merchant account: what a v3 ``wxconf`` resolves to.

``V3Account(appid, mchid, apiv3_key, serial_no, private_key, keys=WechatKeys(...))``.
``private_key`` is the PEM text of ``apiclient_key.pem`` (or a loaded key); ``keys``
is WeChat's side (public key and/or platform certificates).  ``repr`` and
:meth:`public_info` mask every secret.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wnerrors import BAD_INPUT, WnError

from ..account import DEFAULT_API_BASE, mask, wxconf_getter
from .crypto import check_apiv3_key, load_private_key
from .keys import WechatKeys

__all__ = ["V3Account"]

_ID = re.compile(r"^[!-~]{1,32}$")
_SERIAL = re.compile(r"^[0-9A-Fa-f]{1,64}$")


def _bad(reason: str) -> WnError:
    return WnError("e.weixin.conf.invalid", reason, BAD_INPUT)


@dataclass(repr=False)
class V3Account:
    appid: str
    mchid: str
    apiv3_key: str
    serial_no: str
    private_key: object
    keys: WechatKeys = field(default_factory=WechatKeys)
    notify_url: str | None = None
    refund_notify_url: str | None = None
    api_base: str = DEFAULT_API_BASE
    time_expire_minutes: int = 10

    def __post_init__(self):
        for name in ("appid", "mchid"):
            v = getattr(self, name)
            if isinstance(v, int) and not isinstance(v, bool):
                v = str(v)
                setattr(self, name, v)
            if not isinstance(v, str) or not _ID.match(v):
                raise _bad(f"{name} is missing or malformed")
        try:
            check_apiv3_key(self.apiv3_key)
        except WnError:
            raise _bad("the APIv3 key (pay_apiv3_key) must be 32 ASCII characters") from None
        if isinstance(self.apiv3_key, bytes):
            self.apiv3_key = self.apiv3_key.decode("ascii")
        if not isinstance(self.serial_no, str) or not _SERIAL.match(self.serial_no):
            raise _bad("the merchant certificate serial (pay_cert_serial) must be hex")
        self.serial_no = self.serial_no.upper()
        try:
            self.private_key = load_private_key(self.private_key)
        except WnError:
            raise _bad("the merchant private key (apiclient_key.pem) is not a PEM RSA "
                       "key of at least 2048 bits") from None
        if not isinstance(self.keys, WechatKeys):
            raise _bad("keys must be a WechatKeys")
        parts = urlsplit(str(self.api_base or DEFAULT_API_BASE))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _bad("pay_api_base must be an http(s) URL")
        if parts.path.strip("/") or parts.query or parts.fragment:
            # v3 signs the request-target the server sees: no prefix can sit in front
            raise _bad("pay_api_base of a v3 account is scheme://host[:port], no path")
        self.api_base = str(self.api_base or DEFAULT_API_BASE).rstrip("/")
        tem = self.time_expire_minutes
        if isinstance(tem, str) and tem.strip().isdigit():
            tem = int(tem.strip())
        if isinstance(tem, bool) or not isinstance(tem, int) or tem <= 0:
            raise _bad("pay_time_expire must be a whole number of minutes > 0")
        self.time_expire_minutes = tem

    api_version = 3

    @property
    def mch_id(self) -> str:          # the v2 spelling, for code shared by both
        return self.mchid

    def public_info(self) -> dict:
        """What ``weixin <conf> info`` may print: every secret masked."""
        return {"appID": self.appid, "pay_api_version": 3, "pay_mch_id": self.mchid,
                "pay_apiv3_key": mask(self.apiv3_key),
                "pay_cert_serial": self.serial_no,
                "pay_private_key": "****(RSA %d bits)" % self.private_key.key_size,
                "pay_wechat_pubkey_id": self.keys.public_key_id,
                "pay_platform_certs": [c.serial for c in self.keys.certificates()],
                "pay_notify_url": self.notify_url,
                "pay_refund_notify_url": self.refund_notify_url,
                "pay_api_base": self.api_base,
                "pay_time_expire": self.time_expire_minutes}

    def __repr__(self) -> str:
        return (f"V3Account(appid={self.appid!r}, mchid={self.mchid!r}, "
                f"apiv3_key={mask(self.apiv3_key)!r}, serial_no={self.serial_no!r}, "
                f"private_key='****', api_base={self.api_base!r})")

    __str__ = __repr__


# ----- wxconf ----------------------------------------------------------------------------
_OBJ_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
DEFAULT_PRIVATE_KEY = "apiclient_key.pem"
DEFAULT_PUBKEY = "wechatpay_pubkey.pem"
DEFAULT_CERT_CACHE = "platform_certs.json"
WXCONF_KEYS = {
    "pay_api_version": "3 (absent or 2: the v2 account, unchanged)",
    "pay_mch_id": "the merchant id (as v2)",
    "pay_apiv3_key": "the APIv3 key, 32 characters (never printed)",
    "pay_cert_serial": "serial number (hex) of the merchant API certificate",
    "pay_private_key": f"object in the account's folder holding the merchant private "
                       f"key PEM (default {DEFAULT_PRIVATE_KEY})",
    "pay_wechat_pubkey_id": "PUB_KEY_ID_... of the WeChat Pay public key (public-key mode)",
    "pay_wechat_pubkey": f"object holding that public key PEM (default {DEFAULT_PUBKEY})",
    "pay_platform_certs": f"object caching the /v3/certificates answer (default "
                          f"{DEFAULT_CERT_CACHE}; certificate mode, written by the client)",
    "pay_refund_notify_url": "notify_url of refunds (optional)",
}


def object_name(conf, field_name: str, default: str | None) -> str | None:
    """The file name a wxconf field names inside the account's folder: a plain name,
    never a path (no ``/``, no ``..``)."""
    value = conf.get(field_name)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _OBJ_NAME.match(value) or ".." in value:
        raise _bad(f"{field_name} must be a plain object name in the account's folder")
    return value


def from_wxconf(conf, read_object) -> V3Account:
    """The v3 account of a ``wxconf`` with ``pay_api_version: 3``.

    ``read_object(name) -> str | None`` returns the text of the object ``name`` in the
    account's folder (``~/.weixin/<conf>/``), None when it does not exist.  The
    private key is required; the WeChat side is the public key (when
    ``pay_wechat_pubkey_id`` is set) and/or the cached platform certificates (an empty
    or missing cache is fine: the client fetches ``/v3/certificates`` on first use)."""
    get = wxconf_getter(conf, ("pay_apiv3_key", "pay_cert_serial"))
    key_name = object_name(conf, "pay_private_key", DEFAULT_PRIVATE_KEY)
    pem = read_object(key_name)
    if not pem:
        raise WnError("e.weixin.conf.incomplete",
                      f"the merchant private key object {key_name} is missing", BAD_INPUT)
    pub_id = get("pay_wechat_pubkey_id")
    pub = None
    if pub_id is not None:
        pub_name = object_name(conf, "pay_wechat_pubkey", DEFAULT_PUBKEY)
        pub = read_object(pub_name)
        if not pub:
            raise WnError("e.weixin.conf.incomplete",
                          f"the WeChat Pay public key object {pub_name} is missing", BAD_INPUT)
    try:
        keys = WechatKeys(public_key=pub, public_key_id=pub_id)
    except WnError as e:
        raise _bad(e.reason) from None
    cache = read_object(object_name(conf, "pay_platform_certs", DEFAULT_CERT_CACHE))
    if cache:
        try:
            keys.load_certificates(cache)
        except WnError:
            pass                     # a bad cache is refetched, never trusted
    tem = get("pay_time_expire")
    return V3Account(appid=str(get("appID", "appid", "appId")),
                     mchid=str(get("pay_mch_id", "mch_id")),
                     apiv3_key=str(get("pay_apiv3_key")),
                     serial_no=str(get("pay_cert_serial")), private_key=pem, keys=keys,
                     notify_url=get("pay_notify_url"),
                     refund_notify_url=get("pay_refund_notify_url"),
                     api_base=get("pay_api_base") or DEFAULT_API_BASE,
                     time_expire_minutes=10 if tem is None else tem)
