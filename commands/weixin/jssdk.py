"""``weixin <conf> jssdk URL [-apilist a,b,c]``: the ``wx.config`` object for a page.

``{appId, timestamp, nonceStr, signature, jsApiList}``: SHA1 over the cached
jsapi_ticket (``mpcache``), the page URL cut at ``#``, a fresh nonce and the time in
**seconds** (Walnut/nutzwx put milliseconds; WeChat wants seconds).  ``-apilist``
defaults to ``chooseWXPay``.
"""
from __future__ import annotations

from wxpay import mp

from . import mpcache
from .common import parse_opts, usage, write_json


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = dict(po.opts)
    if set(opts) - {"apilist"} or len(po.args) != 1:
        raise usage("e.cmd.weixin.jssdk.usage", "jssdk URL [-apilist a,b,c]")
    url = mp.page_url(po.args[0])
    apis = mp.api_list(opts.get("apilist") if isinstance(opts.get("apilist"), str) else None)
    ticket = mpcache.jsapi_ticket(session, loaded)
    write_json(stdout, mp.jssdk_config(loaded.account.appid, ticket, url, apis))
    return 0
