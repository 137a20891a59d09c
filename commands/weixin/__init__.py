"""``weixin <conf> <handler> ...``: WeChat Pay (v2, JSAPI) for the seed's flows.

One module per handler (``info``, ``pay``, ``payre``, ``order``); each exposes
``run(session, loaded, args, stdin, stdout, stderr) -> int`` where ``loaded`` is the
parsed account (:class:`commands.weixin.conf.Loaded`).  The protocol itself lives in
the ``wxpay`` package; these modules only join it to the store and the shell.
"""
from __future__ import annotations

import importlib

from wnshell.command import Command

from .common import usage

HANDLERS = {
    "info": "info",
    "pay": "pay",
    "payre": "payre",
    "order": "order",
    "refund": "refund",
    "bill": "bill",
}


class WeixinCommand(Command):
    name = "weixin"
    summary = "WeChat Pay (JSAPI, API v2) for an account in ~/.weixin/<conf>/wxconf"
    flags = ""
    options = {
        "info": "print the account, secrets masked",
        "pay": "[JSON|path] [-json] [-order ID]  print the signed unifiedorder XML",
        "payre": "[id:ID|XML] [-SUCCESS]  verify WeChat XML, print it as JSON",
        "order": "-submit ID -client_ip IP -openid OPENID [-openid_key K] | "
                 "-result id:REQ | -query ID",
    }
    man = """weixin - WeChat Pay (JSAPI, merchant API v2)

USAGE
    weixin CONF info
    weixin CONF pay [JSON | PATH] [-json] [-order ORDER]
    weixin CONF payre [id:ID | XML] [-SUCCESS]
    weixin CONF order -submit ORDER -client_ip IP -openid OPENID [-openid_key KEY]
    weixin CONF order -result id:REQ
    weixin CONF order -query ORDER

ACCOUNT
    CONF names the FILE ~/.weixin/CONF/wxconf, in Walnut's lenient JSON
    (unquoted keys, single quotes, # comments, braces optional):
        appID      : 'wx45ac..',   # the official account's appid
        appsecret  : '39b0..',     # never printed
        pay_mch_id : "1230000109"  # merchant id
        pay_key    : "..."         # 32-char API key, never printed
        pay_time_expire : 10       # minutes until a new payment expires
        pay_notify_url : "https://example.com/api/demo/payresult"
        pay_api_base : "https://api.mch.weixin.qq.com"   # optional
        pay_sign_type : "MD5"      # or HMAC-SHA256, optional
        pay_timeout : 10           # seconds to wait for WeChat's reply, optional
    Missing: e.cmd.weixin.conf.noexists. Malformed: e.cmd.weixin.conf.invalid.

HANDLERS
    info
        The wxconf as JSON; pay_key, appsecret and any *key*/*secret* field are
        masked.

    pay [JSON | PATH] [-json] [-order ORDER]
        JSON (lenient; from stdin when absent; PATH = an object holding it):
        {body, out_trade_no, total_fee (fen) | pay_val (yuan), openid,
        spbill_create_ip, time_expire?}. Fills appid, mch_id, nonce_str,
        notify_url, trade_type JSAPI, device_info WEB and time_expire (the
        input's, else ORDER's order_expi (epoch ms), else now + pay_time_expire
        minutes), signs, prints the XML (-json: as JSON).
            echo $JSON | weixin xxx pay | httpc POST $BASE/pay/unifiedorder \\
                       | weixin xxx payre

    payre [id:ID | XML] [-SUCCESS]
        Verifies a WeChat XML (a reply or a payment notification; from stdin
        when absent, or the content of the object id:ID): return_code SUCCESS,
        a valid sign, the account's appid and mch_id, result_code SUCCESS.
        Prints its fields as JSON. Anything else is an error (return_code FAIL:
        e.weixin.return.fail; bad or missing sign: e.weixin.sign.invalid;
        result_code FAIL: e.weixin.err.<ERR_CODE>). -SUCCESS is accepted for
        the seed's spelling (the check is always made).

    order -submit ORDER -client_ip IP -openid OPENID [-openid_key KEY]
        ORDER is an id, id:ID or a path (missing: e.cmd.weixin.order.noexists,
        not found; an object with none of the fields KEY, or_status, total_fee,
        pay_val: e.cmd.weixin.order.invalid, bad input). The order's field KEY
        (default "openid") must equal OPENID (else
        e.cmd.weixin.order.user.nosame, forbidden). A paid (or_status 2), cancelled (3, 5) or fulfilled (4)
        order is refused (conflict). The amount is total_fee (fen) or pay_val
        (yuan); zero, negative or fractional fen is refused.
        When pay_jsobj was built for the same amount, openid, body and account
        less than 2 hours ago (and before its time_expire), it is printed again.
        Otherwise: out_trade_no = <order id>_<pay_seq> (pay_seq incremented
        atomically, so every attempt has a fresh number), body from the order's
        pay_body, title or body (else "order <id>"), unifiedorder is called and
        on success one write stores pay_type "weixin", pay_send (the request
        without sign), pay_fees (out_trade_no -> fen of the recent attempts),
        pay_out_trade_no, pay_rexml, pay_remap (the verified
        reply), pay_jsobj (getBrandWCPayRequest: appId, timeStamp in seconds,
        nonceStr, package, signType, paySign), pay_jsobj_choose (the
        wx.chooseWXPay form, lowercase timestamp), pay_prepay_time (ms).
        pay_jsobj is printed. A FAIL reply or a transport error stores only
        pay_error {out_trade_no, key, reason, time} and the error is raised
        (kind upstream): the next submit tries again with a new out_trade_no.

    order -result id:REQ
        REQ is the request object whose content is WeChat's notification XML.
        Checks, in order: safe XML; return_code SUCCESS; sign present and valid;
        appid and mch_id are the account's; out_trade_no = <order id>_<n> with
        the order existing and 1 <= n <= its pay_seq; total_fee equals the
        order's amount. Then, for result_code SUCCESS, one compare-and-set moves
        or_status to 2 and stores pay_result (the notification's fields) and
        pay_time (ms). A repeat of the same transaction changes nothing.
        Prints WeChat's SUCCESS reply XML.
        A rejected notification prints the FAIL reply XML, writes one line
            weixin: notification rejected: <reason>
        on stderr and to the log (logger wnshell.weixin), changes nothing, and
        the exit status is still 0: WeChat reads the reply body, and a
        regapi answers it with HTTP 200.
        A payment for an order that is already paid by another transaction,
        cancelled or fulfilled is answered SUCCESS (WeChat must stop
        retrying), logged as a warning and recorded under pay_result_extra for
        a refund; or_status is not changed. So is the payment of an older
        attempt made for an amount the order no longer has (pay_fees keeps
        each recent attempt's amount): the money is real, the order is not
        paid by it.

    order -query ORDER
        Asks orderquery for the order's latest attempts (newest first, at most
        5). trade_state SUCCESS makes the same checks and the same
        exactly-once transition as -result. Prints
        {id, or_status, trade_state, out_trade_no, transaction_id, pay_time}.

ERRORS
    WeChat failures pass through as e.weixin.* (kind upstream: regapi 502):
    e.weixin.transport, e.weixin.return.fail, e.weixin.err.<ERR_CODE>,
    e.weixin.sign.invalid. Secrets never appear in any output or log.
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        args = list(args)
        if len(args) < 2:
            raise usage("e.cmd.weixin.usage", "weixin CONF HANDLER ... "
                        f"(handlers: {', '.join(HANDLERS)})")
        conf_name, handler = args[0], args[1]
        module = HANDLERS.get(handler)
        if module is None:
            raise usage("e.cmd.weixin.handler.unknown",
                        f"{handler[:40]} (handlers: {', '.join(HANDLERS)})")
        from . import conf
        loaded = conf.load(session, conf_name)
        mod = importlib.import_module(f"{__name__}.{module}")
        return mod.run(session, loaded, args[2:], stdin, stdout, stderr)


COMMAND = WeixinCommand()
