"""PostgreSQL's SQL for the store's rules: ``objstore.query``'s ``Cond`` trees as a
WHERE clause over the JSONB document (``PgCompiler``), ``children()`` globs as
PostgreSQL regexes, and the one-statement forms of ``set_meta``/``cas`` (the changes
as ``||``/``-``, the cas expectations as JSONB equality).  Used by ``postgres``."""
from __future__ import annotations

from psycopg.types.json import Jsonb

from . import common as C
from . import query as Q
from .base import RESERVED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

# The GIN index covers free metadata only: the reserved fields are either columns with
# their own indexes (id, pid, nm, ph, race, expi) or too common to narrow a search (d0,
# race, mime...) or changed by every write (lm); leaving them out keeps each write's
# index work proportional to the caller's own keys.
FREE_ARR = "'{" + ",".join(RESERVED) + "}'::text[]"
FREE_META = f"(meta - {FREE_ARR})"
_COLUMN_KEYS = {"id": "id", "pid": "pid", "nm": "nm", "ph": "ph", "race": "race"}


def _lit(text: str) -> str:
    """A string literal safe under any ``standard_conforming_strings`` setting."""
    if "\x00" in text:
        raise C.meta_invalid(f"key contains NUL: {text!r}")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


_RX_META = set(".^$*+?{}[]()|\\")


def _literal_prefix(rx: str) -> str:
    """The literal text every match of ``rx`` must start with ('' when unknown).  Only for
    patterns anchored with ``^`` and without alternation."""
    if not rx.startswith("^") or "|" in rx:
        return ""
    out: list[str] = []
    i = 1
    while i < len(rx):
        ch = rx[i]
        if ch == "\\":
            if i + 1 < len(rx) and not rx[i + 1].isalnum():
                lit, step = rx[i + 1], 2
            else:
                break
        elif ch in _RX_META:
            break
        else:
            lit, step = ch, 1
        nxt = rx[i + step] if i + step < len(rx) else ""
        if nxt in ("?", "*", "{"):
            break
        out.append(lit)
        i += step
    return "".join(out)


def glob_to_are(glob: str) -> str:
    """fnmatch-style glob (``*``, ``?``, ``[seq]``, ``[!seq]``) -> anchored PostgreSQL ARE."""
    out = ["^"]
    i, n = 0, len(glob)
    while i < n:
        ch = glob[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
                continue
            body = glob[i:j]
            i = j + 1
            neg = body.startswith("!")
            if neg:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            if body.startswith("^") and not neg:
                body = "\\" + body
            out.append("[" + ("^" if neg else "") + body + "]")
        elif ch.isalnum() or ch == "_" or ord(ch) > 127:
            out.append(ch)
        else:
            out.append("\\" + ch)
    out.append("$")
    return "".join(out)


class PgCompiler:
    """``objstore.query`` Cond trees -> a PostgreSQL WHERE clause over ``meta`` (JSONB).

    Semantics follow the Python predicate in objstore/query.py: booleans only equal
    booleans, numbers compare numerically, regexes/globs apply to strings and numbers,
    ranges to numbers only, ``not`` matches absent keys.  String equality on the
    tree columns (id, pid, nm, ph, race) uses the columns and their indexes; other
    equalities on free metadata add a containment test on the GIN-indexed expression
    ``meta - <reserved keys>`` so the index can narrow the scan.
    """

    def cond(self, c: Q.Cond, params: list) -> str:
        if c.op == "any":
            if not c.subs:
                return "FALSE"
            return "(" + " OR ".join(self.cond(s, params) for s in c.subs) + ")"
        if c.op == "not":
            return f"(NOT COALESCE({self.cond(c.subs[0], params)}, FALSE))"
        k = _lit(c.key)
        v = f"(meta -> {k})"
        if c.op == "absent":
            return f"({v} IS NULL)"
        if c.op == "eq":
            if isinstance(c.value, str) and c.key in _COLUMN_KEYS:
                params.append(c.value)
                return f"({_COLUMN_KEYS[c.key]} = %s)"
            params.append(Jsonb(c.value))
            if c.key in RESERVED:
                return f"({v} = %s)"
            params.insert(len(params) - 1, Jsonb({c.key: c.value}))
            return f"({FREE_META} @> %s AND {v} = %s)"
        if c.op == "regex":
            params.append(c.value)
            extra = ""
            if c.key == "ph":
                prefix = _literal_prefix(c.value)
                if prefix:
                    params += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
                    extra = " AND ph ~>=~ %s AND ph ~<~ %s"
            return (f"(jsonb_typeof({v}) IN ('string', 'number') "
                    f"AND (meta ->> {k}) ~ %s{extra})")
        if c.op == "range":
            parts = [f"jsonb_typeof({v}) = 'number'"]
            if c.lo is not None:
                params.append(Jsonb(c.lo))
                parts.append(f"{v} {'>=' if c.lo_incl else '>'} %s")
            if c.hi is not None:
                params.append(Jsonb(c.hi))
                parts.append(f"{v} {'<=' if c.hi_incl else '<'} %s")
            return "(" + " AND ".join(parts) + ")"
        raise AssertionError(c.op)

    def where(self, ors: list[list[Q.Cond]]) -> tuple[str, list]:
        """OR-of-ANDs -> (sql, params); ``TRUE`` when it matches everything."""
        params: list = []
        if not ors:
            return "TRUE", params
        return "(" + " OR ".join(
            "(" + " AND ".join(self.cond(c, params) for c in ands) + ")" for ands in ors
        ) + ")", params

    @staticmethod
    def order_by(sort: list[tuple[str, int]]) -> tuple[str, list]:
        """Order of objstore.query.sort_value: absent < numbers (booleans as 0/1) <
        strings (codepoint order) and other JSON (as text); ties by ``ph``."""
        parts = []
        for key, direction in sort:
            v = f"(meta -> {_lit(key)})"
            d = "DESC" if direction < 0 else "ASC"
            parts.append(f"(CASE jsonb_typeof({v}) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 "
                         f"WHEN 'string' THEN 2 WHEN 'null' THEN 0 ELSE "
                         f"(CASE WHEN {v} IS NULL THEN 0 ELSE 2 END) END) {d}")
            parts.append(f"(CASE jsonb_typeof({v}) WHEN 'number' THEN ({v} #>> '{{}}')::numeric "
                         f"WHEN 'boolean' THEN (CASE WHEN {v} = 'true' THEN 1 ELSE 0 END) "
                         f"END) {d}")
            parts.append(f"(CASE jsonb_typeof({v}) WHEN 'string' THEN ({v} #>> '{{}}') "
                         f"WHEN 'object' THEN {v}::text WHEN 'array' THEN {v}::text "
                         f"END) COLLATE \"C\" {d}")
        parts.append("ph ASC")
        return "ORDER BY " + ", ".join(parts), []

    @staticmethod
    def expect(want: Mapping[str, Any], params: list) -> str:
        """The cas expectations as conditions on ``meta``: JSONB equality is
        ``common.same_value``'s (booleans only equal booleans, 1 = 1.0, objects and
        arrays by value), None = absent."""
        conds = []
        for k, v in want.items():
            if v is None:
                conds.append(f" AND (meta -> {_lit(k)}) IS NULL")
            else:
                conds.append(f" AND (meta -> {_lit(k)}) = %s")
                params.append(Jsonb(v))
        return "".join(conds)

    @staticmethod
    def changes(texts: Mapping[str, Any], expi: Any, now: int, params: list) -> str:
        """SET clause applying ``changes`` (``texts``: each value's JSON text, None
        deletes; ``common.meta_texts``) and bumping ``lm``.  The values go to the
        server as the JSON text they were checked as: no copy of them is decoded."""
        import json
        setv = "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + t
                              for k, t in texts.items() if t is not None) + "}"
        dels = [k for k, t in texts.items() if t is None]
        params += [setv, dels, now]
        sql = ("meta = ((meta || %s::jsonb) - %s::text[]) || jsonb_build_object('lm', "
               "greatest(%s, (meta ->> 'lm')::bigint))")
        if "expi" in texts:
            params.append(expi)
            sql += ", expi = %s"
        return sql
