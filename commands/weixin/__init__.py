"""``weixin <conf> <handler> ...``: WeChat Pay (v2, JSAPI; v3 for an account with
``pay_api_version: 3``, in ``v3pay``) for the seed's flows.

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
    "oauth2": "oauth2",
    "user": "user",
    "jssdk": "jssdk",
    "checkout": "checkout",
    "refund": "refund",
    "bill": "bill",
}


# what each handler accepts, for completion at the prompt (weixin xxx order -<Tab>)
HANDLER_OPTIONS = {
    "info": {},
    "pay": {"-json": "print the request as JSON, not XML",
            "-order": "ORDER  take time_expire from the order's order_expi",
            "-trade_type": "JSAPI|NATIVE|MWEB"},
    "payre": {"-SUCCESS": "accepted for the seed's spelling"},
    "order": {"-submit": "ORDER  call unifiedorder, print pay_jsobj",
              "-client_ip": "IP  the payer's address (spbill_create_ip)",
              "-openid": "OPENID  the payer, checked against the order",
              "-openid_key": "KEY  the order's field holding the openid",
              "-result": "id:REQ  apply WeChat's notification",
              "-query": "ORDER  ask orderquery, apply a payment",
              "-trade_type": "JSAPI|NATIVE  NATIVE: a code_url for a QR code",
              "-close": "ORDER  closeorder an unpaid order",
              "-sweep": "close expired unpaid orders (orderquery first)",
              "-limit": "N  at most N orders per sweep"},
    "refund": {"-fee": "FEN  the amount to refund",
               "-reason": "TEXT  refund_desc",
               "-result": "id:REQ  apply WeChat's refund notification",
               "-query": "ORDER  ask refundquery, apply what it says"},
    "bill": {"-date": "YYYYMMDD  the bill's day",
             "-type": "ALL|SUCCESS|REFUND",
             "-reconcile": "compare the bill with the store, exit 1 on a difference"},
    "oauth2": {"-scope": "snsapi_base|snsapi_userinfo",
               "-state": "DATA  kept on the server, handed back by user"},
    "user": {"-code": "CODE  the code WeChat sent back",
             "-state": "STATE  the state weixin oauth2 issued",
             "-nostate": "skip the state check (not for web pages)",
             "-lang": "zh_CN|zh_TW|en  language of the profile"},
    "jssdk": {"-apilist": "a,b,c  the jsApiList"},
    "checkout": {"-status": "ORDER  the order, for its buyer",
                 "-native": "ORDER  a QR code of the Native code_url",
                 "-openid": "OPENID  the session's openid",
                 "-query": "0|1  ask orderquery when still unpaid",
                 "-client_ip": "IP  the payer's address"},
}


class WeixinCommand(Command):
    name = "weixin"
    blocks = "deadline"             # WeChat calls: never past session.remaining()
    summary = "WeChat Pay (JSAPI, API v2) for an account in ~/.weixin/<conf>/wxconf"
    flags = ""
    options = {
        "info": "print the account, secrets masked",
        "pay": "[JSON|path] [-json] [-order ID] [-trade_type T]  print the signed "
               "unifiedorder XML",
        "payre": "[id:ID|XML] [-SUCCESS]  verify WeChat XML, print it as JSON",
        "order": "-submit ID -client_ip IP -openid OPENID [-openid_key K] "
                 "[-trade_type NATIVE] | -result id:REQ | -query ID | -close ID | "
                 "-sweep [-limit N]",
        "refund": "ORDER -fee FEN [-reason TEXT] | -result id:REQ | -query ORDER",
        "bill": "-date YYYYMMDD [-type ALL|SUCCESS|REFUND] [-reconcile]",
        "oauth2": "URL [-scope snsapi_base|snsapi_userinfo] [-state DATA]  print the "
                  "OAuth2 authorize URL (server-issued state)",
        "user": "-code CODE (-state STATE | -nostate)  exchange an OAuth2 code for the openid",
        "jssdk": "URL [-apilist a,b,c]  print the wx.config object for a page URL",
        "checkout": "-status ORDER -openid O [-query 0|1] | -native ORDER -openid O "
                    "-client_ip IP  what the checkout page asks",
    }
    man = """weixin - WeChat Pay (JSAPI, merchant API v2)

USAGE
    weixin CONF info
    weixin CONF pay [JSON | PATH] [-json] [-order ORDER] [-trade_type JSAPI|NATIVE|MWEB]
    weixin CONF payre [id:ID | XML] [-SUCCESS]
    weixin CONF order -submit ORDER -client_ip IP -openid OPENID [-openid_key KEY]
    weixin CONF order -submit ORDER -client_ip IP -trade_type NATIVE
    weixin CONF order -result id:REQ
    weixin CONF order -query ORDER
    weixin CONF order -close ORDER
    weixin CONF order -sweep [-limit N]
    weixin CONF refund ORDER -fee FEN [-reason TEXT]
    weixin CONF refund -result id:REQ
    weixin CONF refund -query ORDER
    weixin CONF bill -date YYYYMMDD [-type ALL|SUCCESS|REFUND] [-reconcile]
    weixin CONF oauth2 URL [-scope snsapi_base|snsapi_userinfo] [-state DATA]
    weixin CONF user -code CODE (-state STATE | -nostate)
    weixin CONF jssdk URL [-apilist a,b,c]
    weixin CONF checkout -status ORDER -openid OPENID [-query 0|1]
    weixin CONF checkout -native ORDER -openid OPENID -client_ip IP

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
        pay_secapi_base : "https://..."  # where /secapi/ is, default pay_api_base
        pay_refund_notify_url : "https://example.com/api/demo/refundresult"
        pay_cert_password : "..."  # of apiclient_cert.p12, default pay_mch_id
    Missing: e.cmd.weixin.conf.noexists. Malformed: e.cmd.weixin.conf.invalid.
    pay_sign_type decides how every reply and notification is verified: a
    payload without sign_type (WeChat's HMAC notifications carry none) is
    checked with it, one naming another type is refused (no MD5 downgrade).
    Beside wxconf, for refunds: apiclient_cert.p12 (password pay_cert_password,
    else Walnut's key_password, else pay_mch_id) or the PEM pair
    apiclient_cert.pem + apiclient_key.pem; optional wxpay_ca.pem, the CA of
    the /secapi/ server (the simulator's; WeChat's is verified against the
    system CAs). They are read into memory only; ssl gets them through an
    anonymous memory file (memfd) whose key is encrypted under a one-time
    passphrase, so the key never touches a disk unencrypted.

API V3 ACCOUNT
    pay_api_version: 3 makes CONF a WeChat Pay API v3 account; every handler
    below keeps its command line and its order fields (JSON inside):
        appID          : 'wx..'
        pay_api_version: 3
        pay_mch_id     : "1900000001"
        pay_apiv3_key  : "..."     # 32 chars, never printed
        pay_cert_serial: "7E5A.."  # serial of the merchant API certificate
        pay_private_key: "apiclient_key.pem"   # object beside wxconf (default)
        pay_wechat_pubkey_id : "PUB_KEY_ID_.."  # optional: WeChat Pay public key
        pay_wechat_pubkey    : "wechatpay_pubkey.pem"  # its object (default)
        pay_notify_url, pay_refund_notify_url, pay_api_base, pay_time_expire,
        pay_timeout as above.
    Without a public key, the platform certificates are fetched from
    /v3/certificates, decrypted with the APIv3 key and cached in
    ~/.weixin/CONF/platform_certs.json. order -submit calls
    /v3/pay/transactions/jsapi and prints pay_jsobj with signType RSA
    (-trade_type NATIVE: /v3/pay/transactions/native, pay_native as on v2 with
    prepay_id null, so checkout -native works too); order -result and refund -result verify Wechatpay-Signature
    (5 minutes, a known serial), decrypt the resource, check mchid, appid,
    out_trade_no and the amount, apply exactly once, and answer 204 (applied or
    duplicate) or 4xx {"code":"FAIL","message":..} (refused, nothing changed);
    500 when the store failed. v3 error codes keep v2's keys
    (ORDER_CLOSED: e.weixin.err.ORDERCLOSED, ...). Refunds need no client
    certificate. See docs/wechatpay-v3.md.

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
        minutes), signs, prints the XML (-json: as JSON). -trade_type NATIVE
        needs product_id (no openid), MWEB needs scene_info. What WeChat would
        refuse is refused with WeChat's reason: body, attach (127) and detail
        (6000) are limited in UTF-8 bytes ("body参数长度有误"), time_expire must
        be at least 5 minutes ahead ("time_expire时间过短，刷卡至少1分钟，其他5分钟").
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
        e.cmd.weixin.order.user.nosame, forbidden). A paid (or_status 2),
        cancelled or being refunded (3), refunded (5) or fulfilled (4) order is
        refused (conflict). The amount is total_fee (fen) or pay_val
        (yuan); zero, negative or fractional fen is refused.
        When pay_jsobj was built for the same amount, openid, body and account
        less than 2 hours ago (and before its time_expire), it is printed again.
        Otherwise: out_trade_no = <order id>_<pay_seq + 1> (a number WeChat
        holds with other parameters, from an attempt never recorded, is skipped;
        a failed attempt spends its number), body from the order's
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
        body is cut to 127 UTF-8 bytes on a character boundary. An order_expi
        less than 5 minutes ahead is refused (e.cmd.weixin.order.expired, with
        WeChat's reason). An order with its own expi (a temporary order) has it
        pushed, before the call, to at least time_expire + 30 minutes: it never
        vanishes while WeChat can still take money for it. The same write
        stores pay_expire_at (time_expire, epoch ms: the sweeper's index) and
        clears pay_closed.
        -trade_type NATIVE (a QR code; -openid optional, checked when given):
        product_id is the order's product_id, else its id; prints and stores
        pay_native {trade_type, code_url, out_trade_no, prepay_id, time_expire,
        total_fee} (code_url: weixin://wxpay/bizpayurl?pr=..., for a QR code);
        reused like pay_jsobj while valid.

    order -result id:REQ
        REQ is the request object whose content is WeChat's notification XML.
        Checks, in order: safe XML; return_code SUCCESS; sign present and valid;
        appid and mch_id are the account's; out_trade_no = <order id>_<n> with
        the order existing and 1 <= n <= its pay_seq; total_fee equals the
        order's amount. Then, for result_code SUCCESS, one compare-and-set moves
        or_status to 2, stores pay_result (the notification's fields) and
        pay_time (ms), and sets expi to null (a paid order is kept forever). A
        repeat of the transaction that paid the order changes nothing, whatever
        or_status has become since (3, 4, 5).
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
        5). trade_state SUCCESS (or REFUND) makes the same checks and the same
        exactly-once transition as -result. Prints
        {id, or_status, trade_state, out_trade_no, transaction_id, pay_time}.

    order -close ORDER
        closeorder for every recent attempt of an unpaid order (ORDERCLOSED and
        ORDERNOTEXIST count as done), then records pay_closed {time, by,
        out_trade_nos}. Prints {id, closed, or_status}. A paid order is
        refused with e.weixin.err.ORDERPAID (conflict); when WeChat answers
        ORDERPAID for an order the store thought unpaid, the payment is applied
        first (orderquery), then the same refusal.

    order -sweep [-limit N]
        For this account's orders (of the session's user) whose pay_expire_at
        has passed, unpaid and not closed (at most N, default 200): orderquery
        first (a late payment is applied, exactly as -result would), else
        -close (pay_closed.by "sweep"). Then refunds still PROCESSING two
        minutes after they were asked are looked up (refund -query). One JSON
        line per order {id, outcome: paid|closed|refunds|error, ...}, then
        {"summary": {swept, paid, closed, refunds, errors}}; exit 1 when an
        order failed (it is tried on the next sweep).
        wnshell serve runs it for every account every --sweep seconds (60), in
        one process beside the workers.

    refund ORDER -fee FEN [-reason TEXT]
        Refunds FEN of a paid order (or_status 2, 3, 4) through
        /secapi/pay/refund with the merchant certificate (none in the store:
        e.cmd.weixin.cert.noexists, nothing changed). First, one
        compare-and-set appends to pay_refunds {out_refund_no: <id>_r<n>,
        refund_fee, status PENDING, time, reason?} and sets or_status 3; it
        refuses (e.cmd.weixin.refund.exceeds, conflict) when the refunds would
        exceed the paid amount, however many requests race. Then WeChat is
        called with transaction_id, total_fee, refund_fee, refund_desc and
        pay_refund_notify_url. Accepted: status PROCESSING, refund_id. A
        network error or SYSTEMERROR/BIZERR_NEED_RETRY/NOTENOUGH/
        FREQUENCY_LIMITED leaves it PENDING with doubt: the next refund of the
        same amount retries the same out_refund_no (and the sweeper, after two
        minutes, asks refundquery: applied if WeChat has it, released as FAILED
        if not). Any other refusal: status FAILED (the amount is free again).
        Prints {id, out_refund_no, refund_id, refund_fee, status, or_status,
        pay_refunded}. It gives money back: a .regapi that runs it is for the
        merchant's staff only (api-access-token), never a public API.

    refund -result id:REQ
        REQ holds WeChat's refund notification: no sign; trusted because
        req_info (base64, AES-256-ECB, key = lowercase hex md5(pay_key), PKCS7)
        decrypts under this account's key, appid and mch_id are the account's,
        and out_refund_no, out_trade_no, transaction_id, refund_fee and
        total_fee match a refund of the order. refund_status SUCCESS,
        REFUNDCLOSE or CHANGE is applied once (one compare-and-set; duplicates,
        even concurrent, change nothing; a final status is never moved back),
        stores refund_id, success_time, recv_account, and recomputes or_status:
        3 while a refund is in flight, 5 once the whole paid amount is
        refunded, else the status before the first refund (pay_refund_from).
        Prints SUCCESS XML; a rejected notification prints FAIL XML and one
        stderr line, changes nothing, exit 0 (as for order -result).

    refund -query ORDER
        refundquery by the order's out_trade_no (every page); each refund
        WeChat reports is applied as -result would. Prints {id, or_status,
        pay_refunded, paid, refunds, wechat}.

    bill -date YYYYMMDD [-type ALL|SUCCESS|REFUND] [-reconcile]
        downloadbill (gzip): one JSON object per bill line with English names
        (time, appid, mch_id, transaction_id, out_trade_no, openid, trade_type,
        trade_state, total_fee, refund_id, out_refund_no, refund_fee,
        refund_status, body, attach, fee, ...), amounts in integer fen (fee,
        the handling charge, stays exact yuan: it has fractions of a fen), then
        {"summary": {count, total_fee, settlement_refund_fee, ...}}. No bill
        that day: {"summary": {"count": 0}}.
        -reconcile compares the ALL bill with this account's orders in the
        store whose payment (time_end) or successful refund falls on that day,
        one JSON line per difference {"diff": KIND, ...}: paid_at_wechat_not_in_store,
        amount_differs, paid_in_store_not_in_bill, refund_not_in_store,
        refund_amount_differs, refund_status_differs, refund_in_store_not_in_bill;
        then {"reconcile": {date, bill_payments, bill_refunds, store_payments,
        store_refunds, differences}}. Exit 1 when there is any difference.

OFFICIAL ACCOUNT (OAuth2, JS-SDK)
    wxconf fields: appsecret (required here), mp_api_base and mp_open_base
    (optional: api.weixin.qq.com / open.weixin.qq.com, the simulator in tests).

    oauth2 URL [-scope S] [-state DATA]
        Prints the authorize URL that sends the browser back to URL with a code.
        Its state is issued here (random, stored under ~/.weixin/CONF/oauth2_state,
        valid 10 minutes, single use); DATA (e.g. the page to return to) stays in
        the store and comes back from user as state_data.

    user -code CODE (-state STATE | -nostate)
        Spends the state (unknown, used or expired: e.cmd.weixin.oauth2.state.invalid,
        forbidden), exchanges CODE for the openid and prints
        {openid, scope, unionid?, state_data?} plus the profile for snsapi_userinfo.
        A snapshot-page user is refused. WeChat's 40029 (invalid code) and 40163
        (code used) are e.weixin.mp.40029 / e.weixin.mp.40163: start again.

    jssdk URL [-apilist a,b,c]
        Prints {appId, timestamp (seconds), nonceStr, signature, jsApiList} for the
        page URL (cut at #). access_token and jsapi_ticket are cached in
        ~/.weixin/CONF/access_token and ~/.weixin/CONF/jsapi_ticket with their
        expiry, refreshed 5 minutes early by one caller at a time (a lease taken by
        compare-and-set: one WeChat call per refresh for all workers), and fetched
        again once when WeChat answers 40001/42001. WeChat's errcodes are
        e.weixin.mp.<errcode> (45009: daily quota, never retried).

    checkout -status ORDER -openid OPENID [-query 0|1]
        For the checkout page: {id, name, total_fee, yuan, or_status, state} of
        an order of OPENID (the session's ${http-se-openid}; empty:
        e.cmd.weixin.checkout.nosession, forbidden). -query 1 also runs
        order -query for an unpaid order already sent to WeChat (a late
        notification), at most once every 2 s per order.

    checkout -native ORDER -openid OPENID -client_ip IP
        Submits the order for Native pay and prints {code_url, qr}, qr being an
        SVG data URI of the QR code (e.cmd.weixin.checkout.native.unavailable
        where order -submit has no NATIVE trade type).

ORDER FIELDS (written by weixin)
    or_status        0 new, 1 confirmed, 2 paid, 3 cancelled / refund in
                     flight, 4 fulfilled, 5 refunded
    expi             cleared (null) on payment; pushed past time_expire on submit
    pay_seq          the last attempt's number; out_trade_no = <id>_<pay_seq>
    pay_type         "weixin"
    pay_send         the last unifiedorder request (without sign)
    pay_out_trade_no the last attempt's out_trade_no
    pay_rexml        WeChat's reply XML; pay_remap: its verified fields
    pay_jsobj        getBrandWCPayRequest arguments; pay_jsobj_choose: the
                     wx.chooseWXPay form; pay_native: the NATIVE code_url
    pay_prepay_time  when the prepay was made (ms)
    pay_expire_at    the time_expire sent (ms)
    pay_fees         out_trade_no -> fen of the recent attempts
    pay_error        the last failed attempt {out_trade_no, key, reason, time}
    pay_closed       {time, by: close|sweep, out_trade_nos}
    pay_result       the paying notification's (or orderquery's) fields
    pay_time         when it was applied (ms)
    pay_result_extra payments not applied (another transaction, cancelled...)
    pay_refunds      [{out_refund_no, refund_fee, status, time, reason?,
                     refund_id?, success_time?, recv_account?, doubt?, error?}]
    pay_refunded     fen refunded (SUCCESS)
    pay_refund_from  or_status before the first refund (2 or 4)

ERRORS
    WeChat failures pass through as e.weixin.* (kind upstream: regapi 502):
    e.weixin.transport, e.weixin.return.fail, e.weixin.err.<ERR_CODE>,
    e.weixin.sign.invalid. Secrets (pay_key, appsecret, the certificate and
    its password) never appear in any output or log.
"""

    def complete(self, session, words, prefix):
        """CONF: the account folders under ~/.weixin; then the handlers; then the
        handler's options."""
        if not words:
            store = session.store
            folder = store.fetch(session.resolve("~/.weixin"))
            if folder is None or folder.get("race") != "DIR":
                return []
            return [(c["nm"], "account") for c in store.children(folder["id"])
                    if c.get("race") == "DIR"]
        if len(words) == 1:
            return [(h, self.options.get(h, "")) for h in HANDLERS]
        if prefix.startswith("-"):
            return sorted(HANDLER_OPTIONS.get(words[1], {}).items())
        return None

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
        loaded = (_LOADED.get("conf") or _module("conf")).load(session, conf_name)
        left = session.remaining() if hasattr(session, "remaining") else None
        if left is not None:        # a request's deadline bounds every WeChat call
            loaded = loaded.bounded(left)
        mod = _LOADED.get(module) or _module(module)
        return mod.run(session, loaded, args[2:], stdin, stdout, stderr)


_LOADED: dict = {}     # module name -> the module, once imported


def _module(name: str):
    """``commands.weixin.<name>`` (conf, a handler), imported at its first use and kept
    (an import statement costs about half a microsecond even when it is loaded)."""
    _LOADED[name] = mod = importlib.import_module(f"{__name__}.{name}")
    return mod


COMMAND = WeixinCommand()
