"""``weixin <conf> oauth2 URL [-scope snsapi_base|snsapi_userinfo] [-state DATA]``:
OAuth2 web authorisation, step 1 (wechat-mp.md §4).

Prints the authorize URL for redirect URL ``URL``.  Its ``state`` is issued here: 32
random letters and digits, stored as ``~/.weixin/<conf>/oauth2_state/<state>`` (expiry
``STATE_TTL_MS``, so it is dead after 10 minutes), and checked -- once -- by
``weixin <conf> user -code CODE -state STATE`` (:func:`consume_state`).  A forged,
replayed or stale callback therefore never reaches the code exchange.  ``-state DATA``
is the caller's own value (e.g. the page to go back to): kept with the state, never put
in the URL, handed back by ``user`` as ``state_data``.
"""
from __future__ import annotations

import secrets
import string
import time

from objstore.errors import BAD_INPUT, FORBIDDEN, WnError
from wxpay import mp

from .common import parse_opts, usage
from .common import account_store

STATE_TTL_MS = 10 * 60 * 1000
MAX_DATA = 1024
_ALNUM = string.ascii_letters + string.digits


def state_dir(session, loaded) -> str:
    return session.resolve(f"~/.weixin/{loaded.name}/oauth2_state")


def issue_state(session, loaded, scope: str, redirect_uri: str, data: str = "") -> str:
    state = "".join(secrets.choice(_ALNUM) for _ in range(32))
    now = int(time.time() * 1000)
    account_store(session).create(f"{state_dir(session, loaded)}/{state}", "FILE",
                         {"expi": now + STATE_TTL_MS, "st_scope": scope,
                          "st_uri": redirect_uri, "st_data": data, "st_used": False},
                         parents=True)
    return state


def consume_state(session, loaded, state: str):
    """The state's record, marked used by one compare-and-set; any other state (never
    issued, used, expired, malformed) is ``e.cmd.weixin.oauth2.state.invalid``."""
    bad = WnError("e.cmd.weixin.oauth2.state.invalid",
                  "the OAuth2 state is unknown, used or expired: start again", FORBIDDEN)
    if not isinstance(state, str) or not (1 <= len(state) <= 128) \
            or not all(c in _ALNUM for c in state):
        raise bad
    store = account_store(session)
    obj = store.fetch(f"{state_dir(session, loaded)}/{state}")
    if obj is None or obj.get("st_used") is not False:
        raise bad
    done = store.cas(obj.id, {"st_used": False},
                             {"st_used": True, "st_used_at": int(time.time() * 1000)})
    if done is None:
        raise bad
    return done


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    po = parse_opts(args, "")
    opts = dict(po.opts)
    extra = sorted(set(opts) - {"scope", "state"})
    if extra or len(po.args) != 1:
        raise usage("e.cmd.weixin.oauth2.usage",
                    "oauth2 URL [-scope snsapi_base|snsapi_userinfo] [-state DATA]")
    url = po.args[0]
    scope = opts.get("scope", "snsapi_base")
    data = opts.get("state", "")
    if not isinstance(scope, str) or scope not in mp.SCOPES:
        raise usage("e.cmd.weixin.oauth2.usage", "-scope is snsapi_base or snsapi_userinfo")
    if not isinstance(data, str) or len(data) > MAX_DATA:
        raise WnError("e.cmd.weixin.oauth2.state.toolong",
                      f"-state holds at most {MAX_DATA} characters", BAD_INPUT)
    mp.check_url(url, "redirect URL")     # before a state is spent on it
    state = issue_state(session, loaded, scope, url.split("#", 1)[0], data)
    base = loaded.conf.get("mp_open_base") or mp.OPEN_BASE
    stdout.write(mp.authorize_url(loaded.account.appid, url, scope, state, base=base) + "\n")
    return 0
