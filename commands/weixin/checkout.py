"""``weixin <conf> checkout``: what the checkout page asks the server.

    weixin CONF checkout -status ORDER -openid OPENID [-query 0|1]
    weixin CONF checkout -native ORDER -openid OPENID -client_ip IP

``OPENID`` is the session's verified openid (``${http-se-openid}``); empty means the
browser has no session: ``e.cmd.weixin.checkout.nosession`` (forbidden), and the page
starts OAuth2.  Another user's order is ``e.cmd.weixin.order.user.nosame`` (forbidden),
with no order data.

``-status`` prints ``{id, name, total_fee, yuan, or_status, state}`` (state: ``unpaid``,
``paid``, ``cancelled``, ``fulfilled``).  With ``-query 1`` an unpaid order that has
been sent to WeChat is also looked up with ``weixin CONF order -query`` (when the
notification is late), at most once every ``QUERY_EVERY_MS`` per order.

``-native`` submits the order for Native pay (``order -submit … -trade_type NATIVE``)
and prints ``{code_url, qr}``: ``qr`` is an ``image/svg+xml`` data URI of the QR code
(``segno``) for the page's ``<img>``.  On a server whose ``order -submit`` has no
NATIVE trade type it is ``e.cmd.weixin.checkout.native.unavailable`` (conflict).
"""
from __future__ import annotations

import io
import json
import time

from objstore.errors import CONFLICT, FORBIDDEN, WnError
from wxpay.money import fen_to_yuan, to_fen

from .common import fetch_obj, parse_opts, usage, write_json

QUERY_EVERY_MS = 2000
STATES = {0: "unpaid", 1: "unpaid", 2: "paid", 3: "cancelled", 4: "fulfilled",
          5: "cancelled"}


def _owned(session, ref: str, openid):
    if not isinstance(openid, str) or not openid:
        raise WnError("e.cmd.weixin.checkout.nosession", "sign in first", FORBIDDEN)
    order = fetch_obj(session, ref, "order", "e.cmd.weixin.order.noexists")
    if order.is_dir or not any(order.get(k) not in (None, "")
                               for k in ("openid", "or_status", "total_fee", "pay_val")):
        raise WnError("e.cmd.weixin.order.invalid", f"{order.id} is not an order")
    if order.get("openid") != openid:
        raise WnError("e.cmd.weixin.order.user.nosame", f"order {order.id} is not this "
                      "user's", FORBIDDEN)
    return order


def _name(order) -> str:
    for key in ("pay_body", "title", "body"):
        v = order.get(key)
        if isinstance(v, str) and v.strip():
            return " ".join(v.split())[:127]
    return f"order {order.id}"


def _status(order) -> dict:
    fen = to_fen(order.get("total_fee"), order.get("pay_val"))
    st = order.get("or_status")
    st = st if isinstance(st, int) and not isinstance(st, bool) else 0
    return {"id": order.id, "name": _name(order), "total_fee": fen,
            "yuan": fen_to_yuan(fen), "or_status": st, "state": STATES.get(st, "unpaid")}


def _sub(session, loaded, args: list[str], stderr):
    """Run another handler of this account; its JSON output."""
    from . import order as order_handler
    buf = io.StringIO()
    order_handler.run(session, loaded, args, None, buf, stderr)
    return json.loads(buf.getvalue() or "{}")


def status(session, loaded, opts, stderr) -> dict:
    order = _owned(session, opts["status"], opts.get("openid"))
    out = _status(order)
    if opts.get("query") in ("1", True) and out["state"] == "unpaid" \
            and isinstance(order.get("pay_seq"), int) and order["pay_seq"] >= 1:
        now = int(time.time() * 1000)
        last = order.get("ck_query_at")
        due = not isinstance(last, int) or now - last >= QUERY_EVERY_MS
        if due and session.store.cas(order.id, {"ck_query_at": last},
                                     {"ck_query_at": now}) is not None:
            _sub(session, loaded, ["-query", order.id], stderr)
            out = _status(session.store.get(order.id) or order)
    return out


def native(session, loaded, opts, stderr) -> dict:
    order = _owned(session, opts["native"], opts.get("openid"))
    ip = opts.get("client_ip")
    if not isinstance(ip, str) or not ip:
        raise usage("e.cmd.weixin.checkout.usage", "-native needs -client_ip")
    try:
        got = _sub(session, loaded, ["-submit", order.id, "-client_ip", ip, "-openid",
                                     order.get("openid"), "-trade_type", "NATIVE"], stderr)
    except WnError as e:
        if e.key == "e.cmd.weixin.order.usage" and "trade_type" in e.reason:
            raise WnError("e.cmd.weixin.checkout.native.unavailable",
                          "Native pay is not available on this server", CONFLICT) from None
        raise
    code_url = got.get("code_url") if isinstance(got, dict) else None
    if not isinstance(code_url, str) or not code_url.startswith("weixin://"):
        raise WnError("e.cmd.weixin.checkout.native.unavailable",
                      "WeChat gave no code_url", CONFLICT)
    return {"code_url": code_url, "qr": qr_data_uri(code_url)}


def qr_data_uri(text: str) -> str:
    import segno
    return segno.make(text, error="m").svg_data_uri(scale=6, border=4)


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = dict(po.opts)
    modes = [m for m in ("status", "native") if m in opts]
    allowed = {"status": {"status", "openid", "query"},
               "native": {"native", "openid", "client_ip"}}
    if len(modes) != 1 or po.args or set(opts) - allowed[modes[0]] \
            or not isinstance(opts[modes[0]], str) or not opts[modes[0]]:
        raise usage("e.cmd.weixin.checkout.usage", "checkout -status ORDER -openid OPENID "
                    "[-query 0|1] | -native ORDER -openid OPENID -client_ip IP")
    fn = status if modes[0] == "status" else native
    write_json(stdout, fn(session, loaded, opts, stderr))
    return 0
