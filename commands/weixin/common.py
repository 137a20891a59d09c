"""Helpers shared by the ``weixin`` handlers."""
from __future__ import annotations

import datetime as _dt
import logging
import time

from objstore.errors import BAD_INPUT, CONFLICT, NOT_FOUND, WnError
from wnshell.options import parse_opts  # noqa: F401  (the handlers' option parser)
from wxpay.api import parse_beijing

log = logging.getLogger("wnshell.weixin")
# A library logger: without this, Python's last-resort handler prints each warning to
# the shell's stderr next to the command's own error line.  `wnshell serve` (and any
# app that configures logging) still gets every record.
log.addHandler(logging.NullHandler())

BEIJING = _dt.timezone(_dt.timedelta(hours=8), "Asia/Shanghai")
MAX_INPUT = 1024 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


def beijing(ms: int) -> str:
    """Epoch ms -> ``yyyyMMddHHmmss`` in Beijing time (WeChat's time format)."""
    return _dt.datetime.fromtimestamp(ms / 1000, tz=BEIJING).strftime("%Y%m%d%H%M%S")


def from_beijing(text: str) -> int | None:
    """``yyyyMMddHHmmss`` (Beijing) -> epoch ms, or None when malformed
    (``wxpay.api.parse_beijing``'s reading)."""
    try:
        d = parse_beijing(str(text))
    except WnError:
        return None
    return int(d.timestamp() * 1000)


def account_store(session):
    """The store as the account's own tree sees it: a request's session hides
    ``~/.weixin`` from templates; weixin, which owns that tree, reads it unhidden
    (still confined to the user's home)."""
    return getattr(session.store, "unhidden", session.store)


def usage(key: str, reason: str) -> Exception:
    from wnshell.errors import UsageError
    return UsageError(key, reason)


def looks_like_path(text: str) -> bool:
    return text.startswith(("id:", "/", "~", "./", "../")) or text in (".", "..", "~")


def object_path(session, ref: str) -> str:
    """An object reference as the user may give it: ``id:ID``, a path, or a bare id."""
    if looks_like_path(ref) or "/" in ref:
        return session.resolve(ref)
    return session.resolve("id:" + ref)


def request_body(session, ref: str) -> tuple[str, bytes]:
    """(id, body) of the request object ``ref`` names (a notification's).  A request's
    own object, which its session holds in memory (``id:${id}``), is read as it is:
    nothing of it but the body is needed, so its metadata is never built; any other
    object must exist and be a FILE."""
    store = session.store
    if ref.startswith("id:") and getattr(store, "is_held", None) is not None:
        try:
            sp = session.resolve(ref)       # the checks every path gets
        except WnError:
            sp = ""                         # fetch_obj words the error
        if sp.startswith("id:") and store.is_held(sp[3:]):
            return sp[3:], store.read(sp[3:])
    req = fetch_obj(session, ref, "request object", "e.cmd.weixin.req.noexists")
    if req.is_dir:
        raise WnError("e.cmd.weixin.req.invalid", "the request object is a directory",
                      BAD_INPUT)
    return req.id, store.read(req.id)


def fetch_obj(session, ref: str, what: str, key: str):
    """The object ``ref`` names, or ``WnError(key)`` (kind not_found)."""
    if not ref:
        raise WnError(key, f"no {what} given", BAD_INPUT)
    try:
        path = object_path(session, ref)
        obj = session.store.fetch(path)
    except WnError as e:
        if e.kind == NOT_FOUND:
            obj = None
        else:
            raise WnError(key, f"{what}: {e.reason}", BAD_INPUT) from None
    if obj is None:
        raise WnError(key, f"{what} {ref}", NOT_FOUND)
    return obj


def read_text(session, obj, what: str) -> str:
    """The UTF-8 content of a FILE object (size-capped)."""
    if obj.is_dir:
        raise WnError("e.cmd.weixin.input.invalid", f"{what} is a directory", BAD_INPUT)
    raw = session.store.read(obj.id)
    if len(raw) > MAX_INPUT:
        raise WnError("e.cmd.weixin.input.invalid", f"{what} is too large", BAD_INPUT)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WnError("e.cmd.weixin.input.invalid", f"{what} is not UTF-8 text",
                      BAD_INPUT) from None


def read_stdin(stdin) -> str:
    if stdin is None:
        return ""
    isatty = getattr(stdin, "isatty", None)
    if isatty and isatty():
        return ""
    text = stdin.read(MAX_INPUT + 1)
    if len(text) > MAX_INPUT:
        raise WnError("e.cmd.weixin.input.invalid", "stdin is too large", BAD_INPUT)
    return text


def parse_lenient(text: str, what: str):
    """JSON, else Walnut's lenient JSON (hjson); must be an object."""
    from commands._jsonout import parse_json
    value = parse_json(text, lenient=True, key="e.cmd.weixin.input.invalid", what=what)
    if not isinstance(value, dict):
        raise WnError("e.cmd.weixin.input.invalid", f"{what}: expected a JSON object",
                      BAD_INPUT)
    return value


def write_json(stdout, value) -> None:
    """``value`` as ``json.dumps(value, ensure_ascii=False, indent=2)`` writes it, and
    a newline.  A flat object of text and integers (the JSAPI parameters every submit
    prints) is spelled here, each value by the C function the encoder calls: the same
    text, without the pure-Python encoder that ``indent`` selects."""
    import json
    if type(value) is dict and value and all(
            type(k) is str and (type(v) is str or type(v) is int)
            for k, v in value.items()):
        quote = json.encoder.encode_basestring
        stdout.write("{\n" + ",\n".join(
            f"  {quote(k)}: {quote(v) if type(v) is str else int.__repr__(v)}"
            for k, v in value.items()) + "\n}\n")
        return
    stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


# WeChat refuses a JSAPI/NATIVE/MWEB time_expire less than 5 minutes ahead
# (wechatpay-v2.md §8.7); one second more, because time_expire has whole seconds
EXPIRE_MARGIN_MS = 5 * 60 * 1000 + 1000
# an order's own expi (Walnut's temporary orders) is kept at least this long after
# the time_expire sent to WeChat: a payment can still arrive (and the sweeper must
# still find the order to ask and close it)
EXPI_AFTER_PAY_WINDOW_MS = 30 * 60 * 1000


def order_time_expire(order, now: int) -> str | None:
    """The order's ``order_expi`` (epoch ms) as WeChat's ``time_expire`` (None when the
    order has none); an order that expires within 5 minutes is refused, as WeChat
    would refuse it."""
    expi = order.get("order_expi")
    if expi in (None, ""):
        return None
    if isinstance(expi, bool) or not isinstance(expi, (int, float)):
        raise WnError("e.cmd.weixin.order.expi.invalid",
                      "order_expi must be epoch milliseconds", BAD_INPUT)
    if expi <= now:
        raise WnError("e.cmd.weixin.order.expired", f"order {order.id} has expired",
                      CONFLICT)
    if expi < now + EXPIRE_MARGIN_MS:
        from wxpay.api import TIME_EXPIRE_SHORT
        raise WnError("e.cmd.weixin.order.expired",
                      f"order {order.id} expires in less than 5 minutes "
                      f"(WeChat: {TIME_EXPIRE_SHORT})", CONFLICT)
    return beijing(int(expi))
