"""SQLite's SQL for the store's rules: ``objstore.query``'s ``Cond`` trees as a WHERE
clause, the ``REGEXP`` function they use, and the one-statement forms of
``set_meta``/``cas`` (the changes as ``json_set``/``json_remove``, the cas
expectations with ``common.same_value``'s equality).  Used by ``sqlite_backend``."""
from __future__ import annotations

import re

from . import query as Q

TYPE_CHECKING = False   # typing costs start-up time (every shell opens a store)
if TYPE_CHECKING:
    from typing import Any, Mapping, Sequence


def json_path(key: str) -> str:
    return '$."' + key + '"'


# keys a JSON path names as written ($."key"): the single-statement writes take only
# these; any other key goes through the read-modify-write transaction
_PLAIN_KEY = None


class SqliteCompiler:
    """Compile Cond trees to an SQLite WHERE clause.

    ``columns`` maps reserved keys stored in their own column to the column name;
    ``int_columns`` are those holding integers; every other key is read from the JSON
    text column ``meta_col`` with ``json_extract``.  The REGEXP operator must be
    registered on the connection (``regexp(pattern, value)``: ``sqlite_regexp``).
    """

    def __init__(self, columns: Mapping[str, str], int_columns: Sequence[str],
                 meta_col: str = "meta"):
        self.columns = dict(columns)
        self.int_columns = set(int_columns)
        self.meta_col = meta_col

    def _access(self, key: str) -> tuple[str, str, list]:
        """(value expression, type expression, params used by both, in order)."""
        if key in self.columns:
            col = self.columns[key]
            return col, f"typeof({col})", []
        return (f"json_extract({self.meta_col}, ?)", f"json_type({self.meta_col}, ?)",
                [json_path(key)])

    def cond(self, c: Q.Cond) -> tuple[str, list]:
        if c.op == "any":
            if not c.subs:
                return "0", []
            parts = [self.cond(s) for s in c.subs]
            return "(" + " OR ".join(p for p, _ in parts) + ")", [x for _, ps in parts for x in ps]
        if c.op == "not":
            inner, params = self.cond(c.subs[0])
            return f"(NOT COALESCE({inner}, 0))", params
        val, typ, kp = self._access(c.key)
        if c.op == "absent":
            return f"({val} IS NULL)", kp
        if c.op == "eq":
            if isinstance(c.value, bool):
                if c.key in self.columns:
                    return "0", []
                return f"({typ} = ?)", kp + ["true" if c.value else "false"]
            # the cheap equality first: the type is only checked on rows that pass it
            if isinstance(c.value, str):
                return f"({val} = ? AND {typ} = 'text')", kp + [c.value] + kp
            return f"({val} = ? AND {typ} IN ('integer','real'))", kp + [c.value] + kp
        if c.op == "regex":
            return (f"({typ} IN ('text','integer','real') AND {val} REGEXP ?)",
                    kp + kp + [c.value])
        if c.op == "range":
            sql = f"({typ} IN ('integer','real')"
            params = list(kp)
            if c.lo is not None:
                sql += f" AND {val} {'>=' if c.lo_incl else '>'} ?"
                params += kp + [c.lo]
            if c.hi is not None:
                sql += f" AND {val} {'<=' if c.hi_incl else '<'} ?"
                params += kp + [c.hi]
            return sql + ")", params
        raise AssertionError(c.op)

    def where(self, ors: list[list[Q.Cond]]) -> tuple[str, list]:
        """OR-of-ANDs -> (sql, params); ``"1"`` when it matches everything."""
        if not ors:
            return "1", []
        or_parts, params = [], []
        for ands in ors:
            parts = []
            for c in ands:
                sql, ps = self.cond(c)
                parts.append(sql)
                params += ps
            or_parts.append("(" + " AND ".join(parts) + ")")
        return "(" + " OR ".join(or_parts) + ")", params

    def order_by(self, sort: list[tuple[str, int]]) -> tuple[str, list]:
        parts, params = [], []
        for key, direction in sort:
            val, _, kp = self._access(key)
            parts.append(f"{val} {'DESC' if direction < 0 else 'ASC'}")
            params += kp
        parts.append(f"{self.columns.get('ph', 'ph')} ASC")
        return "ORDER BY " + ", ".join(parts), params

    # ---- the one-statement writes -----------------------------------------------------
    def plain(self, key: str) -> bool:
        """A key the one-statement writes take: a JSON path names it as written, and
        it is no column (a column has rules of its own: ``expi``)."""
        global _PLAIN_KEY
        if _PLAIN_KEY is None:
            _PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
        return _PLAIN_KEY.fullmatch(key) is not None and key not in self.columns

    def changes(self, texts: dict, params: list) -> str | None:
        """``meta`` after ``texts`` ({key: JSON text, or None to delete}) as one SQL
        expression, its parameters appended to ``params``; None when a key needs the
        read-modify-write path (not a plain key)."""
        sets, dels = [], []
        for k, text in texts.items():
            if not self.plain(k):
                return None
            if text is None:
                dels.append(k)
            else:
                sets.append(k)
        expr = self.meta_col
        if sets:
            expr = f"json_set({expr}" + ", ?, json(?)" * len(sets) + ")"
            for k in sets:
                params += [json_path(k), texts[k]]
        if dels:
            expr = "json_remove(" + expr + ", ?" * len(dels) + ")"
            params += [json_path(k) for k in dels]
        return expr

    def expect(self, want: dict, params: list) -> str | None:
        """The cas expectations as SQL conditions on ``meta`` (the equality rules of
        ``common.same_value``: booleans only equal booleans, numbers by value, strings
        by type and text, None = absent); None when one needs Python (a JSON object or
        array, a key that is not plain)."""
        m = self.meta_col
        conds = []
        for k, v in want.items():
            if not self.plain(k):
                return None
            p = json_path(k)
            if v is None:
                conds.append(f" AND coalesce(json_type({m}, ?), 'null') = 'null'")
                params.append(p)
            elif v is True or v is False:
                conds.append(f" AND json_type({m}, ?) = ?")
                params += [p, "true" if v else "false"]
            elif isinstance(v, (int, float)):
                conds.append(f" AND json_type({m}, ?) IN ('integer', 'real') "
                             f"AND json_extract({m}, ?) = ?")
                params += [p, p, v]
            elif isinstance(v, str):
                conds.append(f" AND json_type({m}, ?) = 'text' AND json_extract({m}, ?) = ?")
                params += [p, p, v]
            else:
                return None
        return "".join(conds)


def sqlite_regexp(pattern: str, value: Any, _cache: dict = {}) -> bool:
    """The REGEXP function to register on SQLite connections (``X REGEXP Y`` calls
    ``regexp(Y, X)``)."""
    if value is None:
        return False
    rx = _cache.get(pattern)
    if rx is None:
        if len(_cache) > 512:
            _cache.clear()
        try:
            rx = Q.linear_regex(pattern)
        except ValueError:
            # not a query's regex (parse_match already refused those RE2 can not run):
            # one the store made itself, e.g. a children() glob from fnmatch
            rx = re.compile(pattern)
        _cache[pattern] = rx
    return rx.search(value if isinstance(value, str) else str(value)) is not None
