"""``weixin <conf> user -code CODE -state STATE | -nostate``: OAuth2 step 3 (and 5).

Checks and spends the ``state`` that ``weixin <conf> oauth2`` issued (single use,
10 minutes; ``-nostate`` skips it, for a code obtained some other way), exchanges the
code for the openid with the appsecret, and for ``snsapi_userinfo`` also fetches the
profile.  Prints ``{openid, scope, unionid?, state_data?, nickname?, …}``: never the
user-level access_token or refresh_token.  A snapshot user (``is_snapshotuser``: a
virtual openid) is refused: such an openid must never be bound or billed.
"""
from __future__ import annotations

from objstore.errors import FORBIDDEN, WnError

from . import mpcache
from .common import parse_opts, usage, write_json
from .oauth2 import consume_state


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = dict(po.opts)
    extra = sorted(set(opts) - {"code", "state", "nostate", "lang"})
    code = opts.get("code")
    if extra or po.args or not isinstance(code, str) or not code \
            or (("state" in opts) == ("nostate" in opts)):
        raise usage("e.cmd.weixin.user.usage", "user -code CODE (-state STATE | -nostate)")
    out = {}
    if "state" in opts:
        rec = consume_state(session, loaded, opts["state"])
        if rec.get("st_data"):
            out["state_data"] = rec["st_data"]
    c = mpcache.client(loaded)
    got = c.exchange_code(code)
    if got.get("is_snapshotuser"):
        raise WnError("e.cmd.weixin.user.snapshot", "a snapshot-page user: ask them to "
                      "open the full service first", FORBIDDEN)
    info = {"openid": got["openid"], "scope": got["scope"]}
    if got.get("unionid"):
        info["unionid"] = got["unionid"]
    if got["scope"] == "snsapi_userinfo" and got.get("access_token"):
        lang = opts.get("lang", "zh_CN")
        profile = c.userinfo(got["access_token"], got["openid"],
                             lang if isinstance(lang, str) else "zh_CN")
        info.update({k: v for k, v in profile.items() if k != "openid"})
    info.update(out)
    write_json(stdout, info)
    return 0
