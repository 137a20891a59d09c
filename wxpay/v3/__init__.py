"""WeChat Pay merchant API v3 (JSON, RSA signatures, AES-256-GCM): a sans-IO core
(:mod:`.crypto`, :mod:`.auth`, :mod:`.keys`, :mod:`.api`, :mod:`.notify`,
:mod:`.errors`), a thin client (:mod:`.client`) and a loopback simulator
(:mod:`.simulator`).  See docs/wechatpay-v3-notes.md."""
from .account import V3Account
from .api import (Request, build_close, build_download, build_jsapi_prepay, build_query,
                  build_refund, build_refund_query, build_tradebill, check_answer,
                  jsapi_params)
from .errors import UnknownSerial, V3ResultFail
from .keys import PlatformCert, WechatKeys, parse_certificates
from .notify import Notification, answer, parse_notification

__all__ = ["V3Account", "WechatKeys", "PlatformCert", "parse_certificates", "Request",
           "build_jsapi_prepay", "build_query", "build_close", "build_refund",
           "build_refund_query", "build_tradebill", "build_download", "check_answer",
           "jsapi_params", "parse_notification", "Notification", "answer",
           "UnknownSerial", "V3ResultFail"]
