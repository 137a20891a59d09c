"""WeChat Pay merchant API v2 (XML): signatures, XML codec, request builders, reply
and notification checks, refunds (``wxpay.refund``), bills (``wxpay.bill``), the
merchant certificate (``wxpay.certs``), an HTTP client and a loopback simulator
(``wxpay.simulator``).  No shell inside."""
from .account import Account
from .api import (build_closeorder, build_orderquery, build_unifiedorder,
                  check_notification_amount, choose_wx_pay_params, jsapi_params,
                  parse_notification, parse_reply, reply_xml)
from .errors import (ResultFail, ReturnFail, SignError, TransportError, WxPayError,
                     XmlError)
from .bill import build_downloadbill, parse_bill
from .money import to_fen
from .refund import build_refund, build_refundquery, parse_refund_notification
from .sign import sign, string_to_sign, verify
from .xmlcodec import from_xml, to_xml

__all__ = ["Account", "build_unifiedorder", "build_orderquery", "build_closeorder",
           "parse_reply", "parse_notification", "check_notification_amount",
           "jsapi_params", "choose_wx_pay_params", "reply_xml", "WxPayError",
           "TransportError", "ReturnFail", "ResultFail", "SignError", "XmlError",
           "to_fen", "sign", "string_to_sign", "verify", "from_xml", "to_xml",
           "build_refund", "build_refundquery", "parse_refund_notification",
           "build_downloadbill", "parse_bill"]
