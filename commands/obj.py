"""``obj``: show, update, query and create objects' metadata as JSON."""
from __future__ import annotations

import re
import time

from objstore.base import READONLY
from objstore.errors import BAD_INPUT, CONFLICT, NOT_FOUND, WnError
from wnshell.command import Command

from commands._jsonout import compile_regex, dumps, parse_json, pick_keys, write_json
from commands.fs import expand, parse, usage


class Obj(Command):
    name = "obj"
    blocks = False                  # memory and the store only
    summary = "show, update (-u), query (-match) or create (-new) objects' metadata as JSON"
    flags = "cloH"
    options = {
        "-u": "update metadata with a JSON map (null deletes a key); bare -u reads stdin",
        "-e": "show only the keys this regex finds ('!re': the keys it does not find)",
        "-t": "print a table of these keys, e.g. 'nm,or_status,total_fee'",
        "-H": "with -t: a header row",
        "-o": "with -u/-new/-push/-pop: print the changed objects",
        "-match": "query: a JSON map (AND) or list of maps (OR); with PATH its children",
        "-sort": "sort, e.g. '{\"ct\":-1}'",
        "-limit": "at most N objects",
        "-skip": "skip the first N objects",
        "-push": "append to array fields: '{tags: \"a\"}' or '{tags: [\"a\",\"b\"]}'",
        "-pop": "remove values from array fields: '{tags: \"a\"}'",
        "-new": "create an object under PATH (default .) from a JSON map; bare -new reads stdin",
        "-c": "compact JSON output (one line)",
        "-l": "always print a JSON array, even for one object",
    }
    man = """NAME
    obj - show, update, query and create objects' metadata as JSON

SYNOPSIS
    obj [PATH...] [-e REGEX | -t KEYS [-H]] [-c] [-l] [-sort JSON] [-skip N] [-limit N]
    obj PATH... -u JSON [-o]
    echo JSON | obj PATH... -u
    obj PATH... -push JSON | -pop JSON [-o]
    obj [PATH...] -match QUERY [-sort JSON] [-skip N] [-limit N] [-u JSON] [-o]
    obj -new JSON [PARENT] [-o]
    echo JSON | obj [PARENT] -new

DESCRIPTION
    Prints the metadata of each PATH (default: the current directory) as JSON: one
    object prints as a JSON object, several (or a glob such as ~/orders/o*) as a JSON
    array.  Output is pretty-printed with 2 spaces unless -c; text is UTF-8, never
    \\u-escaped.

    -u JSON   writes only the keys given; a value of null deletes the key.  Prints
              nothing unless -o.  Read-only fields (id pid nm ph race d0 d1 ct lm
              len sha1) are refused: use mv to rename.  expi, c, m, g, tp and mime
              may be set.  With a bare -u (last on the line: echo JSON |
              obj PATH -u) the JSON map is read from stdin.
              Every object and the JSON are checked before anything is written.
              Macros in string values (also in -new and -push):
                "%ms:now"            the time now, epoch ms
                "%ms:now+10m"        ... plus (or -) N ms, s, m, h or d
                "%date:now"          the local time now, "2026-11-27 10:20:45"
                "%date:yyyy-MM-dd"   the local time now in that pattern (yyyy yy MM
                                     dd HH mm ss SSS)
    -push JSON  appends to array fields: '{tags: "a"}' adds "a", '{tags: ["a","b"]}'
              adds both (to add a list as one item: [["a","b"]]); a missing key
              becomes an array.  -pop JSON removes every item equal to the given
              value(s).  Each object changes in one compare-and-set, so concurrent
              pushes are never lost.  A field that is not an array is refused.
    -o        after -u, -new, -push or -pop: print the changed objects.
    -match    QUERY is a JSON map (all keys must match) or a list of maps (any map
              matches).  Values use Walnut's syntax: "^regex", "*" globs, "!x"
              negation, ranges "[1,5)", null for an absent key; others compare equal.
              With PATHs, the query matches the direct children of those DIRs (a
              "pid" is added to each map, so QUERY itself may not hold "pid" then);
              to search a whole subtree use a "ph" regex: '{ph: "^/home/demo/o/"}'.
              Without PATH the whole store is searched.  A query always prints a
              JSON array.  Combined with -u, every matched object is updated.
    -sort     JSON map key -> 1 (ascending) or -1 (descending), e.g. '{"ct":-1}'.
    -skip N, -limit N   page through the result (of a query, or of the PATHs).
    -new JSON creates one object below PARENT (default: the current directory):
              "nm" is its name (default: its id), "race" FILE (default) or DIR, any
              other key is metadata.  Prints nothing unless -o.  A bare -new (last on
              the line: echo JSON | obj ~/orders -new) reads the JSON map from stdin.
    -e REGEX  prints only the keys the regex finds (re.search), e.g. -e '^or_|^nm$';
              -e '!REGEX' prints the keys it does not find.
    -t KEYS   prints a table instead of JSON: one row per object, the comma-separated
              KEYS as columns (strings as they are, other values as compact JSON,
              missing keys empty), columns aligned.  -H adds a header row.
    -c        compact output, one line per JSON value.
    -l        always print a JSON array.

    JSON arguments may be lenient (Walnut style): unquoted keys, single quotes,
    # comments; strict JSON always means what it says.

WALNUT AND WNSHELL
    As in Walnut's obj: -u, -new, -o (and printing nothing without it), -e, -t, -H,
    -match with Walnut's value syntax, PATH -match meaning the children (Walnut's
    pid), -sort, -skip, -limit, -push, -pop, the %ms:/%date: macros, -c, -l, lenient
    JSON.  Ours: -e '!re' and the exact -push/-pop value rules above; -match with
    several PATHs or a list of maps (OR); -sort/-skip/-limit on PATHs without a
    query; every object and value is checked before anything is written; read-only
    fields are refused instead of ignored; output is always valid JSON.

EXAMPLES
    obj ~/orders/o1
    obj ~/orders/o1 -u '{"or_status":"PAID","tmp":null}'
    obj ~/orders/o1 -u '{paid_at: "%ms:now"}' -o -e '^paid_'
    echo '{"or_status":"PAID"}' | obj ~/orders/o1 -u
    obj ~/orders -match '{"or_status":"WAIT"}' -sort '{"ct":-1}' -limit 10 -c
    obj ~/orders -match '{}' -t 'nm,or_status,total_fee' -H
    obj ~/orders/o1 -push '{notes: "called"}'
    obj -new '{"nm":"o1","race":"FILE","or_fee":100}' ~/orders
    obj ~/orders/o1 -e '!^(ct|lm|d0|d1)$'

ERRORS
    e.io.obj.noexists : PATH        no such object (status 1)
    e.json.invalid : ...            a JSON argument (or stdin) is not JSON (status 1)
    e.cmd.obj.readonly : KEY ...    -u/-new tried to set a read-only field (status 1)
    e.cmd.obj.notarray : KEY ...    -push/-pop on a field that is not an array
    e.io.obj.exists : PATH          -new: the name is taken (status 1)
    bad option values (-limit x, -sort '[1]') are usage errors (status 2)
"""

    _KNOWN = ("u", "e", "t", "H", "o", "match", "sort", "limit", "skip", "push", "pop",
              "new", "c", "l")
    _CAS_TRIES = 20

    def run(self, session, args, stdin, stdout, stderr) -> int:
        parsed = parse(args, self.flags)
        opts = parsed.opts
        for k in opts:
            if k not in self._KNOWN:
                raise usage("e.cmd.obj.option", "unknown option " + parsed.typed(k))
        out = _Output(opts)

        if "new" in opts:
            for other in ("u", "match", "sort", "skip", "limit", "push", "pop"):
                if other in opts:
                    raise usage("e.cmd.obj.option", f"-new can not go with -{other}")
            obj = self._new(session, opts["new"], parsed.args, stdin)
            if opts.get("o") is True:
                out.write(stdout, [obj], single=True)
            return 0

        changes = None
        if "u" in opts:
            changes = self._changes(opts["u"], stdin)
        arrays = self._arrays(opts, changes)
        sort, skip, limit = self._paging(opts)

        if "match" in opts:
            objs = self._query(session, opts, parsed.args, sort, skip, limit)
            single = False
        else:
            paths = parsed.args or ["."]
            objs, seen = [], set()
            for p in paths:
                for o in expand(session, p):
                    if o.id not in seen:
                        seen.add(o.id)
                        objs.append(o)
            # one literal PATH -> a JSON object; a glob or several PATHs -> an array
            single = (len(paths) == 1 and len(objs) == 1 and sort is None
                      and session.store.fetch(session.resolve(paths[0])) is not None)
            objs = _page(objs, sort, skip, limit)

        if changes is None and not arrays:
            out.write(stdout, objs, single=single)
            return 0
        if arrays:
            for o in objs:                         # check all before writing any
                _array_fields(o, arrays)
            objs = [self._apply(session.store, o, changes or {}, arrays) for o in objs]
        else:
            objs = [session.store.set_meta(o.id, changes) for o in objs]
        if opts.get("o") is True:
            out.write(stdout, objs, single=single)
        return 0

    # ---- pieces -----------------------------------------------------------------
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
        return expand_macros(data)

    def _changes(self, value, stdin) -> dict:
        changes = self._json_map(value, stdin, "-u")
        bad = [k for k in changes if k in READONLY]
        if bad:
            hint = " (use mv to rename)" if "nm" in bad else ""
            raise WnError("e.cmd.obj.readonly", ", ".join(bad) + " is read-only" + hint,
                          BAD_INPUT)
        return changes

    def _arrays(self, opts, changes) -> dict:
        """{key: ("push"|"pop", [values])} from -push / -pop."""
        arrays: dict = {}
        for what in ("push", "pop"):
            if what not in opts:
                continue
            if opts[what] is True:
                raise usage("e.cmd.obj.option", f"-{what} needs a JSON map")
            data = self._json_map(opts[what], None, "-" + what)
            for k, v in data.items():
                if k in READONLY:
                    raise WnError("e.cmd.obj.readonly", f"{k} is read-only", BAD_INPUT)
                if k in arrays or (changes and k in changes):
                    raise usage("e.cmd.obj.option", f"{k}: one of -u, -push, -pop per key")
                arrays[k] = (what, v if isinstance(v, list) else [v])
        return arrays

    def _apply(self, store, obj, changes: dict, arrays: dict):
        """One compare-and-set per object: the arrays as read, plus -u's changes."""
        oid = obj.id
        for _ in range(self._CAS_TRIES):
            expect = {k: obj.get(k) for k in arrays}
            new = dict(changes)
            for k, (what, values) in arrays.items():
                cur = list(_array_fields(obj, {k: arrays[k]})[k])
                if what == "push":
                    new[k] = cur + values
                else:
                    new[k] = [x for x in cur if x not in values]
            done = store.cas(oid, expect, new)
            if done is not None:
                return done
            obj = store.get(oid)
            if obj is None:
                raise WnError("e.io.obj.noexists", f"id:{oid}", NOT_FOUND)
        raise WnError("e.cmd.obj.conflict", "too many concurrent changes, try again", CONFLICT)

    @staticmethod
    def _paging(opts):
        sort = None
        if "sort" in opts:
            sort = parse_json(opts["sort"], lenient=True, what="-sort") \
                if opts["sort"] is not True else None
            if not isinstance(sort, dict) or not all(v in (1, -1) and not isinstance(v, bool)
                                                     for v in sort.values()):
                raise usage("e.cmd.obj.option", "-sort needs a JSON map of key: 1 or -1")
        return sort, _count(opts, "skip", 0), _count(opts, "limit", None)

    def _query(self, session, opts, paths, sort, skip, limit):
        raw = opts["match"]
        if raw is True:
            raise usage("e.cmd.obj.option", "-match needs a QUERY (JSON map or list of maps)")
        match = parse_json(raw, lenient=True, what="-match")
        maps = match if isinstance(match, list) else [match]
        if not maps or not all(isinstance(m, dict) for m in maps):
            raise WnError("e.json.invalid", "-match: expected a JSON map or a list of maps",
                          BAD_INPUT)
        if paths:
            parents = []
            for p in paths:
                for o in expand(session, p):
                    if not o.is_dir:
                        raise WnError("e.io.obj.notdir", o.ph, BAD_INPUT)
                    parents.append(o.id)
            if any("pid" in m for m in maps):
                raise usage("e.cmd.obj.option",
                            "-match with a PATH can not also match pid (drop the PATH)")
            maps = [dict(m, pid=pid) for m in maps for pid in parents]
        return session.store.query(maps if len(maps) > 1 else maps[0],
                                   sort=sort, skip=skip, limit=limit)

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


# ---- output -------------------------------------------------------------------------
class _Output:
    """How objects print: JSON (-e keys, -c, -l) or a table (-t KEYS, -H)."""

    def __init__(self, opts):
        self.compact = opts.get("c") is True
        self.as_list = opts.get("l") is True
        self.header = opts.get("H") is True
        self.keys_rx, self.negate = None, False
        if "e" in opts:
            if opts["e"] is True:
                raise usage("e.cmd.obj.option", "-e needs a REGEX")
            pattern = opts["e"]
            self.negate = pattern.startswith("!")
            self.keys_rx = compile_regex(pattern[1:] if self.negate else pattern)
        self.columns = None
        if "t" in opts:
            if opts["t"] is True or not [c for c in opts["t"].split(",") if c.strip()]:
                raise usage("e.cmd.obj.option", "-t needs KEYS, e.g. -t 'nm,or_status'")
            self.columns = [c.strip() for c in opts["t"].split(",") if c.strip()]
        elif self.header:
            raise usage("e.cmd.obj.option", "-H goes with -t")

    def write(self, stdout, objs, *, single):
        if self.columns is not None:
            stdout.write(table(objs, self.columns, header=self.header))
            return
        shown = [self._pick(dict(o)) for o in objs]
        value = shown[0] if single and not self.as_list and len(shown) == 1 else shown
        write_json(stdout, value, compact=self.compact)

    def _pick(self, obj: dict) -> dict:
        if self.keys_rx is None:
            return obj
        if self.negate:
            return {k: v for k, v in obj.items() if not self.keys_rx.search(k)}
        return pick_keys(obj, self.keys_rx)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split()) if ("\n" in value or "\t" in value) else value
    return dumps(value, compact=True)


def _width(text: str) -> int:
    """Columns on a terminal: East Asian wide characters take two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(objs, columns, *, header: bool = False) -> str:
    rows = [[_cell(o.get(c)) for c in columns] for o in objs]
    if header:
        rows.insert(0, list(columns))
    if not rows:
        return ""
    widths = [max(_width(r[i]) for r in rows) for i in range(len(columns))]
    lines = []
    for r in rows:
        cells = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(r[:-1])]
        lines.append("  ".join(cells + [r[-1]]).rstrip())
    return "\n".join(lines) + "\n"


# ---- macros, arrays, paging ---------------------------------------------------------
_MS_RE = re.compile(r"now(?:([+-])(\d{1,12})(ms|s|m|h|d)?)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DATE_TOKENS = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss|SSS")


def expand_macros(value):
    """Walnut's value macros in -u/-new/-push maps: "%ms:now[+-N(ms|s|m|h|d)]" -> epoch
    ms; "%date:now" / "%date:PATTERN" -> the local time as text."""
    if isinstance(value, dict):
        return {k: expand_macros(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_macros(v) for v in value]
    if not isinstance(value, str) or not value.startswith("%"):
        return value
    if value.startswith("%ms:"):
        m = _MS_RE.fullmatch(value[4:])
        if not m:
            raise WnError("e.cmd.obj.macro", f"{value[:40]}: expected %ms:now or "
                          "%ms:now+N[ms|s|m|h|d]", BAD_INPUT)
        ms = int(time.time() * 1000)
        if m.group(1):
            delta = int(m.group(2)) * _UNIT_MS[m.group(3) or "ms"]
            ms = ms + delta if m.group(1) == "+" else ms - delta
        return ms
    if value.startswith("%date:"):
        import datetime as _dt
        pattern = value[6:]
        if pattern in ("", "now"):
            pattern = "yyyy-MM-dd HH:mm:ss"
        now = _dt.datetime.now().astimezone()
        parts = {"yyyy": f"{now.year:04d}", "yy": f"{now.year % 100:02d}",
                 "MM": f"{now.month:02d}", "dd": f"{now.day:02d}", "HH": f"{now.hour:02d}",
                 "mm": f"{now.minute:02d}", "ss": f"{now.second:02d}",
                 "SSS": f"{now.microsecond // 1000:03d}"}
        return _DATE_TOKENS.sub(lambda t: parts[t.group()], pattern)
    return value


def _array_fields(obj, arrays) -> dict:
    """The current arrays for -push/-pop (absent -> []); refuses other values."""
    found = {}
    for k in arrays:
        cur = obj.get(k)
        if cur is None:
            cur = []
        if not isinstance(cur, list):
            raise WnError("e.cmd.obj.notarray", f"{k} of {obj.ph} is not an array", BAD_INPUT)
        found[k] = cur
    return found


def _count(opts, key, default):
    if key not in opts:
        return default
    v = opts[key]
    if v is True or not re.fullmatch(r"\d{1,9}", str(v)):
        raise usage("e.cmd.obj.option", f"-{key} needs a whole number >= 0")
    return int(v)


_RANK = {type(None): 0, bool: 1, int: 2, float: 2, str: 3}


def _sort_key(value):
    """Missing/null first, then booleans, numbers, strings, then arrays and maps."""
    rank = _RANK.get(type(value), 4)
    if rank == 0:
        return (0, 0)
    if rank == 4:
        return (4, dumps(value, compact=True))
    return (rank, value)


def _page(objs, sort, skip, limit):
    """-sort/-skip/-limit on objects named by PATHs (a query pages in the store)."""
    if sort:
        for key, direction in reversed(list(sort.items())):
            objs = sorted(objs, key=lambda o: _sort_key(o.get(key)), reverse=direction == -1)
    objs = objs[skip:]
    return objs if limit is None else objs[:limit]


OBJ = Obj()
