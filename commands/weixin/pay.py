"""``weixin <conf> pay [JSON | path] [-json] [-order ID] [-trade_type T]``: the signed
unifiedorder (refusing what WeChat would refuse, with WeChat's reason)."""
from __future__ import annotations

from wxpay.api import build_unifiedorder
from wxpay.xmlcodec import to_xml

from .common import (fetch_obj, looks_like_path, now_ms, order_time_expire,
                     parse_lenient, parse_opts, read_stdin, read_text, usage, write_json)


def input_json(session, args, stdin, what: str) -> dict:
    """The JSON object given as an argument, an object path, or on stdin."""
    if len(args) > 1:
        raise usage("e.cmd.weixin.usage", f"{what}: one JSON or path at most")
    if args:
        text = args[0]
        if looks_like_path(text.strip()):
            obj = fetch_obj(session, text.strip(), what, "e.cmd.weixin.input.noexists")
            text = read_text(session, obj, what)
    else:
        text = read_stdin(stdin)
    return parse_lenient(text, what)


def order_expire(session, ref: str) -> str | None:
    """The order's ``order_expi`` (epoch ms) as WeChat's time_expire, if any."""
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    return order_time_expire(order, now_ms())


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    if getattr(loaded, "api_version", 2) == 3:
        from objstore.errors import BAD_INPUT, WnError
        raise WnError("e.cmd.weixin.pay.v3", f"pay speaks v2 XML; account {loaded.name} "
                      "is API v3 (order -submit and -result speak v3)", BAD_INPUT)
    po = parse_opts(args, "")
    opts = po.opts
    unknown = set(opts) - {"json", "order", "trade_type"}
    if unknown:
        raise usage("e.cmd.weixin.pay.usage", "unknown option " + po.typed(sorted(unknown)[0]))
    if "order" in opts and not isinstance(opts["order"], str):
        raise usage("e.cmd.weixin.pay.usage", "-order needs an order id")
    rest = list(po.args)
    if isinstance(opts.get("json"), str):     # "-json {...}": the flag, then the JSON
        rest.insert(0, opts["json"])
        opts["json"] = True
    tt = opts.get("trade_type")
    if "trade_type" in opts and (not isinstance(tt, str) or not tt):
        raise usage("e.cmd.weixin.pay.usage", "-trade_type needs JSAPI, NATIVE or MWEB")
    data = input_json(session, rest, stdin, "pay")
    if tt:
        if data.get("trade_type") not in (None, "", tt):
            raise usage("e.cmd.weixin.pay.usage",
                        "-trade_type differs from the input's trade_type")
        data["trade_type"] = tt
    if data.get("time_expire") in (None, "") and opts.get("order"):
        stamp = order_expire(session, opts["order"])
        if stamp:
            data["time_expire"] = stamp
    params = build_unifiedorder(loaded.account, data)
    if opts.get("json") is True:
        write_json(stdout, params)
    else:
        stdout.write(to_xml(params) + "\n")
    return 0
