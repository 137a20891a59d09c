"""``obj``: show, update, query and create objects' metadata as JSON."""
from __future__ import annotations

import re

from objstore.base import READONLY
from objstore.errors import BAD_INPUT, NOT_FOUND, WnError
from wnshell.command import Command

from commands._jsonout import compile_regex, parse_json, pick_keys, write_json
from commands.fs import expand, parse, usage


class Obj(Command):
    name = "obj"
    summary = "show, update (-u), query (-match) or create (-new) objects' metadata as JSON"
    flags = "cl"
    options = {
        "-u": "update metadata with a JSON map (null deletes a key); bare -u reads stdin",
        "-e": "show only the keys this regex finds",
        "-match": "query the store with a JSON map (AND) or list of maps (OR)",
        "-sort": "with -match: sort, e.g. '{\"ct\":-1}'",
        "-limit": "with -match: at most N objects",
        "-skip": "with -match: skip the first N objects",
        "-new": "create an object under PATH (default .) from a JSON map; bare -new reads stdin",
        "-c": "compact JSON output (one line)",
        "-l": "always print a JSON array, even for one object",
    }
    man = """NAME
    obj - show, update, query and create objects' metadata as JSON

SYNOPSIS
    obj [PATH...] [-e REGEX] [-c] [-l]
    obj PATH... -u JSON [-e REGEX] [-c] [-l]
    echo JSON | obj PATH... -u
    obj [PATH...] -match QUERY [-sort JSON] [-skip N] [-limit N] [-u JSON] [-e REGEX] [-c]
    obj -new JSON [PARENT] [-e REGEX] [-c]
    echo JSON | obj [PARENT] -new

DESCRIPTION
    Prints the metadata of each PATH (default: the current directory) as JSON: one
    object prints as a JSON object, several (or a glob such as ~/orders/o*) as a JSON
    array.  Output is pretty-printed with 2 spaces unless -c; text is UTF-8, never
    \\u-escaped.

    -u JSON   writes only the keys given; a value of null deletes the key.  The
              updated objects are printed.  Read-only fields (id pid nm ph race d0 d1
              ct lm len sha1) are refused: use mv to rename.  expi, c, m, g, tp and
              mime may be set.  With a bare -u (last on the line: echo JSON |
              obj PATH -u) the JSON map is read from stdin.
              Every object and the JSON are checked before anything is written.
    -match    QUERY is a JSON map (all keys must match) or a list of maps (any map
              matches).  Values use Walnut's syntax: "^regex", "*" globs, "!x"
              negation, ranges "[1,5)", null for an absent key; others compare equal.
              With PATHs, only objects below those DIRs are searched (a "ph" regex
              is added to each map, so QUERY itself may not hold "ph" then).
              Without PATH the whole store is searched.  A query always prints a
              JSON array.  Combined with -u, every matched object is updated.
    -sort     JSON map key -> 1 (ascending) or -1 (descending), e.g. '{"ct":-1}'.
    -skip N, -limit N   page through the query's result.
    -new JSON creates one object below PARENT (default: the current directory):
              "nm" is its name (default: its id), "race" FILE (default) or DIR, any
              other key is metadata.  Prints the new object.  A bare -new (last on
              the line: echo JSON | obj ~/orders -new) reads the JSON map from stdin.
    -e REGEX  prints only the keys the regex finds (re.search), e.g. -e '^or_|^nm$'.
    -c        compact output, one line per JSON value.
    -l        always print a JSON array.

    JSON arguments may be lenient (Walnut style): unquoted keys, single quotes,
    # comments; strict JSON always means what it says.

EXAMPLES
    obj ~/orders/o1
    obj ~/orders/o1 -u '{"or_status":"PAID","tmp":null}'
    echo '{"or_status":"PAID"}' | obj ~/orders/o1 -u
    obj ~/orders -match '{"or_status":"WAIT"}' -sort '{"ct":-1}' -limit 10 -c
    obj -new '{"nm":"o1","race":"FILE","or_fee":100}' ~/orders
    obj ~/orders/o1 -e '^or_'

ERRORS
    e.io.obj.noexists : PATH        no such object (status 1)
    e.json.invalid : ...            a JSON argument (or stdin) is not JSON (status 1)
    e.cmd.obj.readonly : KEY ...    -u/-new tried to set a read-only field (status 1)
    e.io.obj.exists : PATH          -new: the name is taken (status 1)
    bad option values (-limit x, -sort '[1]') are usage errors (status 2)
"""

    _KNOWN = ("u", "e", "match", "sort", "limit", "skip", "new", "c", "l")

    def run(self, session, args, stdin, stdout, stderr) -> int:
        parsed = parse(args, self.flags)
        opts = parsed.opts
        for k in opts:
            if k not in self._KNOWN:
                raise usage("e.cmd.obj.option", "unknown option " + parsed.typed(k))
        compact = opts.get("c") is True
        as_list = opts.get("l") is True
        key_rx = None
        if "e" in opts:
            if opts["e"] is True:
                raise usage("e.cmd.obj.option", "-e needs a REGEX")
            key_rx = compile_regex(opts["e"])

        if "new" in opts:
            for other in ("u", "match", "sort", "skip", "limit"):
                if other in opts:
                    raise usage("e.cmd.obj.option", f"-new can not go with -{other}")
            obj = self._new(session, opts["new"], parsed.args, stdin)
            self._print(stdout, [obj], key_rx, compact, single=not as_list)
            return 0

        changes = None
        if "u" in opts:
            changes = self._changes(opts["u"], stdin)

        if "match" in opts:
            objs = self._query(session, opts, parsed.args)
            single = False
        else:
            for other in ("sort", "skip", "limit"):
                if other in opts:
                    raise usage("e.cmd.obj.option", f"-{other} goes with -match")
            paths = parsed.args or ["."]
            objs, seen = [], set()
            for p in paths:
                for o in expand(session, p):
                    if o.id not in seen:
                        seen.add(o.id)
                        objs.append(o)
            # one literal PATH -> a JSON object; a glob or several PATHs -> an array
            single = (len(paths) == 1 and len(objs) == 1
                      and session.store.fetch(session.resolve(paths[0])) is not None)

        if changes is not None:
            objs = [session.store.set_meta(o.id, changes) for o in objs]
        self._print(stdout, objs, key_rx, compact, single=single and not as_list)
        return 0

    # ---- pieces -----------------------------------------------------------------
    @staticmethod
    def _print(stdout, objs, key_rx, compact, *, single):
        shown = [pick_keys(dict(o), key_rx) if key_rx else dict(o) for o in objs]
        write_json(stdout, shown[0] if single and len(shown) == 1 else shown, compact=compact)

    @staticmethod
    def _json_map(value, stdin, what):
        if value is True:
            text = stdin.read() if stdin is not None else ""
            if not text.strip():
                raise usage("e.cmd.obj.option", f"{what} needs a JSON map (argument or stdin)")
        else:
            text = value
        data = parse_json(text, lenient=True, what=what)
        if not isinstance(data, dict):
            raise WnError("e.json.invalid", f"{what}: expected a JSON map, got {type(data).__name__}",
                          BAD_INPUT)
        return data

    def _changes(self, value, stdin) -> dict:
        changes = self._json_map(value, stdin, "-u")
        bad = [k for k in changes if k in READONLY]
        if bad:
            hint = " (use mv to rename)" if "nm" in bad else ""
            raise WnError("e.cmd.obj.readonly", ", ".join(bad) + " is read-only" + hint,
                          BAD_INPUT)
        return changes

    def _query(self, session, opts, paths):
        raw = opts["match"]
        if raw is True:
            raise usage("e.cmd.obj.option", "-match needs a QUERY (JSON map or list of maps)")
        match = parse_json(raw, lenient=True, what="-match")
        maps = match if isinstance(match, list) else [match]
        if not maps or not all(isinstance(m, dict) for m in maps):
            raise WnError("e.json.invalid", "-match: expected a JSON map or a list of maps",
                          BAD_INPUT)
        if paths:
            scopes = []
            for p in paths:
                for o in expand(session, p):
                    if not o.is_dir:
                        raise WnError("e.io.obj.notdir", o.ph, BAD_INPUT)
                    scopes.append(o.ph.rstrip("/"))
            if any("ph" in m for m in maps):
                raise usage("e.cmd.obj.option",
                            "-match with a PATH can not also match ph (drop the PATH)")
            maps = [dict(m, ph="^" + re.escape(s) + "/") for m in maps for s in scopes]
        sort = None
        if "sort" in opts:
            sort = parse_json(opts["sort"], lenient=True, what="-sort") \
                if opts["sort"] is not True else None
            if not isinstance(sort, dict) or not all(v in (1, -1) and not isinstance(v, bool)
                                                     for v in sort.values()):
                raise usage("e.cmd.obj.option", "-sort needs a JSON map of key: 1 or -1")
        skip = self._count(opts, "skip", 0)
        limit = self._count(opts, "limit", None)
        return session.store.query(maps if len(maps) > 1 else maps[0],
                                   sort=sort, skip=skip, limit=limit)

    @staticmethod
    def _count(opts, key, default):
        if key not in opts:
            return default
        v = opts[key]
        if v is True or not re.fullmatch(r"\d{1,9}", str(v)):
            raise usage("e.cmd.obj.option", f"-{key} needs a whole number >= 0")
        return int(v)

    def _new(self, session, value, paths, stdin):
        meta = self._json_map(value, stdin, "-new")
        if len(paths) > 1:
            raise usage("e.cmd.obj.option", "-new takes one PARENT")
        nm = meta.pop("nm", None)
        race = meta.pop("race", "FILE")
        if race not in ("FILE", "DIR"):
            raise WnError("e.cmd.obj.race", f"race must be FILE or DIR, not {race!r}", BAD_INPUT)
        bad = [k for k in meta if k in READONLY]
        if bad:
            raise WnError("e.cmd.obj.readonly", ", ".join(bad) + " is read-only", BAD_INPUT)
        if nm is not None:
            from objstore.paths import check_name
            check_name(nm)          # e.io.path.invalid: "", ".", "..", "/", control chars
        store = session.store
        parent = store.fetch(session.resolve(paths[0] if paths else "."))
        if parent is None:
            raise WnError("e.io.obj.noexists", paths[0] if paths else ".", NOT_FOUND)
        if not parent.is_dir:
            raise WnError("e.io.obj.notdir", parent.ph, BAD_INPUT)
        base = parent.ph.rstrip("/")
        if nm is not None:
            return store.create(f"{base}/{nm}", race, meta)
        # no name: Walnut names the object by its id -- create, then rename to the id
        import secrets
        tmp = store.create(f"{base}/.new-{secrets.token_hex(8)}", race, meta)
        try:
            return store.move(tmp.id, f"{base}/{tmp.id}")
        except BaseException:
            store.delete(tmp.id, recursive=True)
            raise


OBJ = Obj()
