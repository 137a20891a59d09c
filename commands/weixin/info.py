"""``weixin <conf> info``: the account as JSON, secrets masked."""
from __future__ import annotations

from .common import usage, write_json


def run(session, loaded, args, stdin, stdout, stderr) -> int:
    if args:
        raise usage("e.cmd.weixin.info.usage", "info takes no arguments")
    write_json(stdout, loaded.masked())
    return 0
