"""Walnut-style option parsing (``ZParams``).

``parse_opts(args, flags="")`` reads the argument words of a command:

* ``-key value``: ``opts["key"] = "value"`` (the value may be empty, or a negative
  number such as ``-5``);
* ``-flag`` followed by another ``-x`` token, or at the end: ``opts["flag"] = True``;
* ``-abc`` where every letter is a declared single-letter flag (``flags="abc"``): three
  booleans; a declared single-letter flag never takes a value;
* ``--key`` is read like ``-key``; ``--`` ends the options;
* anything else (including ``-5`` and a lone ``-``) is positional, in ``.args``.

Arguments whose text came from an expansion (``$X``, ``${k}``, ``$(cmd)``) arrive as
``Expanded`` strings: they are always values or positionals, never options -- so a
request value such as ``-client_ip`` pasted into ``-submit ${http-qs-id}`` cannot turn
into an option.
"""
from __future__ import annotations

__all__ = ["Expanded", "Opts", "parse_opts", "is_option"]


class Expanded(str):
    """A ``str`` whose leading text came from a variable or command substitution."""

    __slots__ = ()


def _is_number(tok: str) -> bool:
    body = tok[1:] if tok[:1] in "-+" else tok
    if not body:
        return False
    if body.count(".") > 1:
        return False
    return body.replace(".", "", 1).isdigit()


def is_option(tok: str) -> bool:
    """True for a token that reads as an option: literal, ``-`` plus something that is not
    a number."""
    return (len(tok) > 1 and tok[0] == "-" and not isinstance(tok, Expanded)
            and (tok[1].isalpha() or not _is_number(tok)))


class Opts:
    """``.opts`` (dict) and ``.args`` (list of positionals).  ``get``/``has``/``in``;
    ``typed(key)``: the option as the user typed it (``--update``, not ``-update``), for
    error messages."""

    __slots__ = ("opts", "args", "raw")

    def __init__(self, opts: dict, args: list, raw: dict | None = None):
        self.opts = opts
        self.args = args
        self.raw = raw or {}

    def typed(self, key: str) -> str:
        return self.raw.get(key, "-" + key)

    def get(self, key: str, default=None):
        return self.opts.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.opts

    def __contains__(self, key: str) -> bool:
        return key in self.opts

    def flag(self, key: str) -> bool:
        """True when ``-key`` was given (as a flag or with any value)."""
        v = self.opts.get(key)
        return v is not None and v is not False

    def __repr__(self) -> str:
        return f"Opts(opts={self.opts!r}, args={self.args!r})"


def parse_opts(args, flags: str = "") -> Opts:
    opts: dict = {}
    raw: dict = {}
    pos: list = []
    toks = list(args)
    i, n = 0, len(toks)
    while i < n:
        tok = toks[i]
        i += 1
        if tok == "--" and not isinstance(tok, Expanded):
            pos.extend(toks[i:])
            break
        if not is_option(tok):
            pos.append(tok)
            continue
        key = tok[2:] if tok.startswith("--") else tok[1:]
        if not key:
            pos.append(tok)
            continue
        if len(key) > 1 and flags and key.isalpha() and all(c in flags for c in key) \
                and not tok.startswith("--"):
            for c in key:
                opts[c] = True
                raw.setdefault(c, "-" + c)
            continue
        raw.setdefault(key, str(tok))
        if len(key) == 1 and key in flags:
            opts[key] = True
            continue
        if i < n and not is_option(toks[i]):
            v = toks[i]
            # a value keeps its request marks (wnshell.provenance) for path checks
            opts[key] = v if getattr(v, "spans", None) else str(v)
            i += 1
        else:
            opts[key] = True
    return Opts(opts, pos, raw)
