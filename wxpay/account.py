"""A WeChat Pay merchant account (what the seed's ``wxconf`` holds)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from wnerrors import BAD_INPUT, WnError

from .sign import normalize_sign_type

__all__ = ["Account", "DEFAULT_API_BASE", "mask"]

DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
# printable ASCII without spaces (the seed's own placeholder is "wx45ac..")
_APPID = re.compile(r"^[!-~]{1,64}$")
_MCH_ID = re.compile(r"^[!-~]{1,64}$")


def mask(secret: str | None) -> str:
    """``"****"`` plus the length; never any character of the secret."""
    if not secret:
        return ""
    return f"****({len(secret)} chars)"


def _bad(key: str, reason: str) -> WnError:
    return WnError(key, reason, BAD_INPUT)


@dataclass
class Account:
    appid: str
    mch_id: str
    key: str = field(repr=False)
    notify_url: str | None = None
    sign_type: str = "MD5"
    api_base: str = DEFAULT_API_BASE
    time_expire_minutes: int = 10
    appsecret: str | None = field(default=None, repr=False)

    def __post_init__(self):
        for name, rx in (("appid", _APPID), ("mch_id", _MCH_ID)):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
                setattr(self, name, value)
            if not isinstance(value, str) or not rx.match(value):
                raise _bad("e.weixin.conf.invalid", f"{name} is missing or malformed")
        if not isinstance(self.key, str) or not self.key:
            raise _bad("e.weixin.conf.invalid", "the API key (pay_key) is missing")
        self.sign_type = normalize_sign_type(self.sign_type)
        if not self.api_base:
            self.api_base = DEFAULT_API_BASE
        parts = urlsplit(str(self.api_base))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _bad("e.weixin.conf.invalid", "pay_api_base must be an http(s) URL")
        self.api_base = str(self.api_base).rstrip("/")
        # notify_url is checked when an order is built (the seed's placeholder
        # "http:xx" must still load)
        if self.notify_url is None or self.notify_url == "":
            self.notify_url = None
        else:
            self.notify_url = str(self.notify_url)
        tem = self.time_expire_minutes
        if isinstance(tem, str) and tem.strip().isdigit():
            tem = int(tem.strip())
        elif isinstance(tem, float) and tem.is_integer():
            tem = int(tem)
        if isinstance(tem, bool) or not isinstance(tem, int) or tem <= 0:
            raise _bad("e.weixin.conf.invalid",
                       "pay_time_expire must be a whole number of minutes > 0")
        self.time_expire_minutes = tem

    def __repr__(self) -> str:
        return (f"Account(appid={self.appid!r}, mch_id={self.mch_id!r}, "
                f"key={mask(self.key)!r}, notify_url={self.notify_url!r}, "
                f"sign_type={self.sign_type!r}, api_base={self.api_base!r}, "
                f"time_expire_minutes={self.time_expire_minutes!r}, "
                f"appsecret={mask(self.appsecret)!r})")

    __str__ = __repr__

    def public_info(self) -> dict:
        """What ``weixin <conf> info`` may print: secrets masked."""
        return {"appID": self.appid, "appsecret": mask(self.appsecret),
                "pay_mch_id": self.mch_id, "pay_key": mask(self.key),
                "pay_time_expire": self.time_expire_minutes,
                "pay_notify_url": self.notify_url, "pay_api_base": self.api_base,
                "pay_sign_type": self.sign_type}

    def replace(self, **changes) -> "Account":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_wxconf(cls, conf: Mapping) -> "Account":
        """Map the seed's ``wxconf`` (appID, appsecret, pay_mch_id, pay_key,
        pay_time_expire, pay_notify_url, pay_api_base, pay_sign_type)."""
        if not isinstance(conf, Mapping):
            raise _bad("e.weixin.conf.invalid", "wxconf must be an object")
        get = wxconf_getter(conf, ("pay_key",))
        tem = get("pay_time_expire")
        return cls(appid=get("appID", "appid", "appId"),
                   mch_id=get("pay_mch_id", "mch_id"),
                   key=str(get("pay_key")),
                   notify_url=get("pay_notify_url"),
                   sign_type=get("pay_sign_type") or "MD5",
                   api_base=get("pay_api_base") or DEFAULT_API_BASE,
                   time_expire_minutes=10 if tem is None else tem,
                   appsecret=get("appsecret", "appSecret"))


# the names a wxconf may spell its account's identity with (the seed's first)
IDENTITY = (("appID", ("appID", "appid", "appId")), ("pay_mch_id", ("pay_mch_id", "mch_id")))


def wxconf_getter(conf: Mapping, required=()):
    """``get(*names)``: the first of ``names`` set (not None, not "") in ``conf``; the
    appID, mch id and each of ``required`` must be there (e.weixin.conf.incomplete
    names what is missing).  The same rule for a v2 and a v3 wxconf."""
    def get(*names):
        for n in names:
            v = conf.get(n)
            if v is not None and v != "":
                return v
        return None

    missing = [label for label, names in IDENTITY + tuple((r, (r,)) for r in required)
               if get(*names) is None]
    if missing:
        raise _bad("e.weixin.conf.incomplete", "wxconf lacks " + ", ".join(missing))
    return get


def load_account(conf: Mapping, read_object=None):
    """The account a ``wxconf`` describes: :class:`Account` (v2, exactly as
    :meth:`Account.from_wxconf`) unless ``pay_api_version`` is 3, then a
    :class:`wxpay.v3.account.V3Account` whose key objects ``read_object(name)`` reads
    from the account's folder (see ``wxpay.v3.account.WXCONF_KEYS``)."""
    if not isinstance(conf, Mapping):
        raise _bad("e.weixin.conf.invalid", "wxconf must be an object")
    version = conf.get("pay_api_version")
    if version in (None, "", 2, "2", "v2"):
        return Account.from_wxconf(conf)
    if version not in (3, "3", "v3"):
        raise _bad("e.weixin.conf.invalid", "pay_api_version must be 2 or 3")
    if read_object is None:
        raise _bad("e.weixin.conf.invalid", "a v3 account needs its key objects")
    from .v3.account import from_wxconf
    return from_wxconf(conf, read_object)
