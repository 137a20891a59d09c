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

from objstore.errors import BAD_INPUT, WnError

from ..account import DEFAULT_API_BASE, mask
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
