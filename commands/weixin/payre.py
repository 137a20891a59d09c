"""``weixin <conf> payre [id:ID | XML] [-SUCCESS]``: verify WeChat XML, print JSON."""
from __future__ import annotations

from wxpay.api import parse_notification, parse_reply
from wxpay.errors import ResultFail
from wxpay.xmlcodec import from_xml

from .common import fetch_obj, parse_opts, read_stdin, read_text, usage, write_json


def input_xml(session, args, stdin) -> str:
    if len(args) > 1:
        raise usage("e.cmd.weixin.payre.usage", "one id:ID or XML at most")
    if not args:
        return read_stdin(stdin)
    text = args[0]
    if text.lstrip().startswith("<"):
        return text
    obj = fetch_obj(session, text.strip(), "payre input", "e.cmd.weixin.input.noexists")
    return read_text(session, obj, "payre input")


def verify_xml(account, xml: str) -> dict:
    """Every check: safe XML, return_code, sign, appid/mch_id, result_code."""
    fields = from_xml(xml)
    # a payment notification (not a unifiedorder/orderquery reply): its sign type is
    # its own sign_type field, else MD5 (§4); a reply's default is the account's
    if "transaction_id" in fields and "prepay_id" not in fields \
            and "trade_state" not in fields:
        params = parse_notification(account, fields)
        if params.get("result_code") != "SUCCESS":
            raise ResultFail(params.get("err_code"), params.get("err_code_des"))
        return params
    return parse_reply(account, fields)


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    if getattr(loaded, "api_version", 2) == 3:
        from objstore.errors import BAD_INPUT, WnError
        raise WnError("e.cmd.weixin.payre.v3", f"payre speaks v2 XML; account {loaded.name} "
                      "is API v3 (order -submit and -result speak v3)", BAD_INPUT)
    po = parse_opts(args, "")
    unknown = set(po.opts) - {"SUCCESS"}
    if unknown:
        raise usage("e.cmd.weixin.payre.usage", "unknown option " + po.typed(sorted(unknown)[0]))
    rest = list(po.args)
    if isinstance(po.opts.get("SUCCESS"), str):   # "-SUCCESS id:X": flag, then input
        rest.insert(0, po.opts["SUCCESS"])
    xml = input_xml(session, rest, stdin)
    write_json(stdout, verify_xml(loaded.account, xml))
    return 0
