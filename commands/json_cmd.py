"""``json``: pretty/compact a JSON stream from stdin, pull a value out with -get."""
from __future__ import annotations

from wnshell.command import Command

from commands._jsonout import (compile_regex, dumps, get_path, iter_json_stream, pick_keys,
                               scalar_text)
from commands.fs import parse, usage


class Json(Command):
    name = "json"
    blocks = False                  # memory and the store only
    summary = "pretty-print (or -c compact) JSON from stdin; -get KEY pulls out a value"
    flags = "c"
    options = {
        "-c": "compact output (one line per value)",
        "-get": "print the value at KEY (dotted path a.b.0); a string prints raw",
        "-e": "keep only the keys this regex finds (of each object)",
    }
    man = """NAME
    json - format JSON from stdin, or pull one value out of it

SYNOPSIS
    ... | json [-c] [-get KEY] [-e REGEX]

DESCRIPTION
    Reads stdin as a stream of JSON values (one value, or several one after the
    other, e.g. one per line) and prints each one again: pretty with 2 spaces, or
    compact (-c).  Non-ASCII text is kept as is.  The whole input is checked before
    anything is printed: invalid JSON prints nothing but the error.

    -get KEY  prints the value at KEY instead of the whole value.  KEY is a dotted
              path: a.b.0 is key "a", then key "b", then list index 0 (-1 is the
              last item).  A top-level key that itself holds dots is found as is.
              A string value prints raw, without quotes, so it fits pipelines and
              $(...):   export PREPAY=$(cat ~/o1 | json -get prepay_id)
              Other values print as JSON (pretty unless -c).
    -e REGEX  keeps only the keys the regex finds (re.search) -- of the value, or of
              each object in it when it is an array (applied after -get).
    -c        compact output.

EXAMPLES
    echo '{"a":{"b":[1,2]}}' | json
    echo '{"a":{"b":[1,2]}}' | json -c
    echo '{"a":{"b":[1,2]}}' | json -get a.b.1          # -> 2
    obj ~/orders/o1 | json -get or_status                # -> PAID (no quotes)
    obj ~/orders/o1 | json -e '^or_' -c

ERRORS
    e.json.invalid : REASON   stdin is empty or not JSON (status 1, nothing printed)
    e.json.nokey : KEY        -get: no value at KEY (status 1)
"""

    _KNOWN = ("c", "get", "e")

    def run(self, session, args, stdin, stdout, stderr) -> int:
        parsed = parse(args, self.flags)
        opts = parsed.opts
        for k in opts:
            if k not in self._KNOWN:
                raise usage("e.cmd.json.option", "unknown option " + parsed.typed(k))
        if parsed.args:
            raise usage("e.cmd.json.args",
                        "json reads stdin; it takes no PATH (try: cat PATH | json)")
        for k in ("get", "e"):
            if opts.get(k) is True:
                raise usage("e.cmd.json.option", f"-{k} needs a value")
        compact = opts.get("c") is True
        key_rx = compile_regex(opts["e"]) if "e" in opts else None

        text = stdin.read() if stdin is not None else ""
        values = list(iter_json_stream(text))
        if not values:
            from objstore.errors import WnError
            raise WnError("e.json.invalid", "empty input")
        out = []
        for value in values:
            if "get" in opts:
                value = get_path(value, opts["get"])
            if key_rx is not None:
                value = _filter(value, key_rx)
            out.append(scalar_text(value, compact=compact) if "get" in opts
                       else dumps(value, compact=compact))
        stdout.write("".join(line + "\n" for line in out))
        return 0


def _filter(value, rx):
    if isinstance(value, dict):
        return pick_keys(value, rx)
    if isinstance(value, list):
        return [pick_keys(v, rx) if isinstance(v, dict) else v for v in value]
    return value


JSON = Json()
