"""``postgresql://...``: the store on a PostgreSQL server (psycopg 3 + a connection pool).

Several wnshell processes (server workers, CLIs) may share one database; nothing is cached
across operations, and every operation is one transaction.

Layout (one table, ``wn_obj``, in the connection's current schema):

* ``id`` primary key; ``pid`` (parent id, NULL for ``/``) references ``id`` with
  ``ON DELETE CASCADE``, so an object can never outlive its parent and a concurrent
  create under a DIR being deleted fails cleanly; ``nm`` and ``ph`` in the "C"
  collation (codepoint order, like every other backend); ``race``; ``expi`` (epoch ms,
  partial index); ``meta`` JSONB holding the *whole* document (reserved fields
  included), its free (non-reserved) keys GIN-indexed with ``jsonb_path_ops``;
  ``content`` bytea.
* unique ``(pid, nm)`` (children listing in name order), unique ``ph`` with
  ``text_pattern_ops`` (fetch by path, subtree ranges with ``~>=~``/``~<~``).

Atomicity: ``cas`` is one ``UPDATE ... WHERE id = $1 AND <expectations> RETURNING``,
``incr`` one ``UPDATE`` with ``jsonb_set`` and ``coalesce(...)+delta``, ``set_meta`` one
``UPDATE`` with ``||`` and ``-``; multi-statement operations run inside one transaction
(read committed; rows locked ``FOR UPDATE`` where a decision depends on them).  Queries
are compiled from ``objstore.query``'s ``Cond`` tree to SQL; nothing is filtered in Python.

Expired objects (``expi < now``) are invisible to every read at once; ``purge_expired``
deletes them (and their subtrees) and is safe with several workers purging together.

The schema is created idempotently under an advisory lock, so several processes may start
against an empty database at the same time.

Environment: ``WNSHELL_PG_POOL_MAX`` (default 16 connections per process);
``WNSHELL_PG_PREPARE=0`` turns off server-side prepared statements (for a connection
pooler in transaction mode that cannot keep them).  See docs/postgresql.md.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any, Mapping

from . import common as C
from . import paths, query as Q
from .base import RESERVED, Store, WnObj
from .errors import BAD_INPUT, INTERNAL, TIMEOUT, StoreError

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"the postgresql backend needs psycopg 3 and psycopg_pool "
                      f"(pip install 'wnshell[postgres]'): {_exc}") from None

TABLE = "wn_obj"
SCHEMA_LOCK = 0x776E7368656C6C  # advisory lock key ("wnshell") for schema creation
PURGE_LOCK = 0x776E7370757267  # advisory lock key: one purger at a time per database
PURGE_EVERY_MS = 60_000
RETRIES = 5

# The GIN index covers free metadata only: the reserved fields are either columns with
# their own indexes (id, pid, nm, ph, race, expi) or too common to narrow a search (d0,
# race, mime...) or changed by every write (lm); leaving them out keeps each write's
# index work proportional to the caller's own keys.
FREE_ARR = "'{" + ",".join(RESERVED) + "}'::text[]"
FREE_META = f"(meta - {FREE_ARR})"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id      text PRIMARY KEY,
    pid     text REFERENCES {TABLE} (id) ON DELETE CASCADE,
    nm      text COLLATE "C" NOT NULL,
    ph      text COLLATE "C" NOT NULL,
    race    text NOT NULL,
    expi    bigint,
    meta    jsonb NOT NULL,
    content bytea
);
CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_pid_nm ON {TABLE} (pid, nm);
CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_ph ON {TABLE} (ph text_pattern_ops);
CREATE INDEX IF NOT EXISTS {TABLE}_meta ON {TABLE} USING gin ((meta - {FREE_ARR}) jsonb_path_ops)
    WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS {TABLE}_expi ON {TABLE} (expi) WHERE expi IS NOT NULL
"""

LIVE = "(expi IS NULL OR expi >= %(now)s)"
_LIVE_POS = "(expi IS NULL OR expi >= %s)"
_COLUMN_KEYS = {"id": "id", "pid": "pid", "nm": "nm", "ph": "ph", "race": "race"}


# ---- errors -----------------------------------------------------------------------------
def _store_error(exc: BaseException, what: str = "") -> StoreError:
    """A raw psycopg / pool exception -> StoreError (psycopg types never leak upward)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, pg_errors.UniqueViolation):
        return C.exists(what or "object already exists")
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return C.noexists(what or "parent directory vanished")
    if isinstance(exc, pg_errors.InvalidRegularExpression):
        return Q.query_error(f"bad regex: {_first_line(exc)}")
    if isinstance(exc, (pg_errors.UntranslatableCharacter, pg_errors.CharacterNotInRepertoire,
                        pg_errors.InvalidTextRepresentation, pg_errors.NumericValueOutOfRange)):
        return C.meta_invalid(f"value refused by the database: {_first_line(exc)}")
    if isinstance(exc, ValueError) and "NUL" in str(exc):
        return C.meta_invalid("text may not contain NUL characters")
    if isinstance(exc, PoolTimeout):
        return StoreError("e.io.store.busy", "no database connection free in time", TIMEOUT)
    if isinstance(exc, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure,
                        pg_errors.LockNotAvailable, pg_errors.QueryCanceled)):
        return StoreError("e.io.store.busy", f"database busy: {_first_line(exc)}", TIMEOUT)
    if isinstance(exc, psycopg.OperationalError):
        return StoreError("e.io.store.unavailable", f"postgresql: {_first_line(exc)}", INTERNAL)
    return StoreError("e.io.store.failed", f"postgresql: {_first_line(exc)}", INTERNAL)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def _connection_lost(exc: BaseException) -> bool:
    """The session ended under us (server restart, admin shutdown, network)."""
    if isinstance(exc, (pg_errors.AdminShutdown, pg_errors.CrashShutdown,
                        pg_errors.CannotConnectNow)):
        return True
    return isinstance(exc, psycopg.OperationalError) and (
        getattr(exc, "sqlstate", None) is None or str(exc.sqlstate).startswith("08"))


# ---- SQL helpers ------------------------------------------------------------------------
def _lit(text: str) -> str:
    """A string literal safe under any ``standard_conforming_strings`` setting."""
    if "\x00" in text:
        raise C.meta_invalid(f"key contains NUL: {text!r}")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _range(ph: str) -> tuple[str, str]:
    """Descendants of ``ph`` are exactly the paths in [ph + '/', ph + '0')."""
    return ph + "/", ph + "0"


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

    def where(self, ors: list[list[Q.Cond]], params: list) -> str:
        if not ors:
            return "TRUE"
        return "(" + " OR ".join(
            "(" + " AND ".join(self.cond(c, params) for c in ands) + ")" for ands in ors) + ")"

    @staticmethod
    def order_by(sort: list[tuple[str, int]]) -> str:
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
        return "ORDER BY " + ", ".join(parts)


COMPILER = PgCompiler()


def _configure(conn) -> None:
    """Every pooled session: ``synchronous_commit = on`` whatever the server, database
    or role default says, so a call (the paid transition above all) returns only after
    its commit is flushed to disk -- an acknowledged write survives a power loss (given
    the server's own ``fsync = on``)."""
    conn.execute("SET synchronous_commit = on")


def _doc(meta: Any) -> WnObj:
    """A row's ``meta`` (already a fresh dict from psycopg) as a WnObj."""
    return WnObj(meta)


class PostgresStore(Store):
    """``postgresql://user@host:port/db`` (any libpq URL; ``?host=/socket/dir`` for a
    unix socket, ``?options=-c search_path=...`` for a schema)."""

    def __init__(self, url: str):
        self.url = url
        self._conninfo = url
        self._pid = os.getpid()
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._last_purge = 0
        self._init_schema()

    # ---- connections -----------------------------------------------------------------
    def _connect(self) -> "psycopg.Connection":
        try:
            return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=15)
        except psycopg.Error as exc:
            raise StoreError("e.io.store.open", f"cannot connect to PostgreSQL: "
                             f"{_first_line(exc)}", INTERNAL) from None
        except Exception as exc:       # bad URL syntax and the like
            raise StoreError("e.io.store.url.invalid", f"bad PostgreSQL URL: "
                             f"{_first_line(exc)}", BAD_INPUT) from None

    def _init_schema(self) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))
                ready = cur.fetchone()[0]
                if ready:
                    cur.execute(f"SELECT 1 FROM {TABLE} WHERE ph = '/'")
                    ready = cur.fetchone() is not None
                if not ready:
                    with conn.transaction():
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                        for stmt in _SCHEMA.split(";"):
                            if stmt.strip():
                                cur.execute(stmt)
                        now = C.now_ms()
                        root = {"id": paths.new_id(), "pid": "", "nm": "", "ph": "/",
                                "race": "DIR", "ct": now, "lm": now}
                        cur.execute(f"INSERT INTO {TABLE} (id, pid, nm, ph, race, meta) "
                                    f"SELECT %s, NULL, '', '/', 'DIR', %s WHERE NOT EXISTS "
                                    f"(SELECT 1 FROM {TABLE} WHERE ph = '/')",
                                    (root["id"], Jsonb(root)))
        except psycopg.Error as exc:
            raise StoreError("e.io.store.open", f"cannot prepare the PostgreSQL schema: "
                             f"{_first_line(exc)}", INTERNAL) from None
        finally:
            conn.close()

    def _get_pool(self) -> ConnectionPool:
        pid = os.getpid()
        if self._pool is not None and pid == self._pid:
            return self._pool
        with self._pool_lock:
            if pid != self._pid:
                # forked child: the parent's pool (threads, sockets) is not ours; never
                # close it from here (that would end the parent's sessions)
                self._pool = None
                self._pid = pid
            if self._pool is None:
                try:
                    size = int(os.environ.get("WNSHELL_PG_POOL_MAX") or 16)
                except ValueError:
                    raise StoreError("e.io.store.open", "WNSHELL_PG_POOL_MAX must be a "
                                     "number of connections", BAD_INPUT) from None
                kwargs: dict = {"autocommit": True}
                if os.environ.get("WNSHELL_PG_PREPARE", "1") == "0":
                    kwargs["prepare_threshold"] = None   # e.g. behind a transaction pooler
                pool = ConnectionPool(self._conninfo, min_size=1, max_size=max(1, size),
                                      kwargs=kwargs, open=False, configure=_configure,
                                      timeout=30, name="wnshell-store")
                try:
                    pool.open(wait=True, timeout=30)
                except Exception as exc:
                    try:
                        pool.close(timeout=0)
                    except Exception:
                        pass
                    raise StoreError("e.io.store.open", f"cannot connect to PostgreSQL: "
                                     f"{_first_line(exc)}", INTERNAL) from None
                self._pool = pool
            return self._pool

    def _run(self, fn, *args, write: bool = True):
        """Run ``fn(conn, *args)`` as one transaction.  Deadlocks and serialization
        failures are retried (the transaction was rolled back, so this is safe); a read
        is retried once on a broken connection (a server restart, a failover)."""
        lost_once = False
        for attempt in range(RETRIES):
            try:
                with self._get_pool().connection() as conn:
                    with conn.transaction():
                        return fn(conn, *args)
            except StoreError:
                raise
            except _RETRYABLE as exc:
                if attempt == RETRIES - 1:
                    raise _store_error(exc) from None
                time.sleep(0.005 * (attempt + 1))
            except psycopg.OperationalError as exc:
                lost = _connection_lost(exc)
                if lost:
                    self._drop_dead_connections()
                if write or lost_once or not lost:
                    raise _store_error(exc) from None
                lost_once = True
            except (psycopg.Error, PoolTimeout) as exc:
                raise _store_error(exc) from None
            except ValueError as exc:          # e.g. NUL in text, refused client-side
                raise _store_error(exc) from None
        raise AssertionError("unreachable")

    def _one(self, sql: str, params: Any, *, write: bool = True, many: bool = False) -> Any:
        """One autocommit statement (itself one transaction): first row (all rows with
        ``many``).  Reads are retried once on a broken connection; writes never (their
        outcome is unknown)."""
        for attempt in (0, 1):
            try:
                with self._get_pool().connection() as conn:
                    cur = conn.execute(sql, params)
                    return cur.fetchall() if many else cur.fetchone()
            except StoreError:
                raise
            except psycopg.OperationalError as exc:
                lost = _connection_lost(exc)
                if lost:
                    self._drop_dead_connections()
                if write or attempt or not lost:
                    raise _store_error(exc) from None
            except (psycopg.Error, PoolTimeout, ValueError) as exc:
                raise _store_error(exc) from None
        raise AssertionError("unreachable")

    def _drop_dead_connections(self) -> None:
        """After one pooled session died, the others usually did too (a restart, a
        failover): test the idle ones now so the next operations get live sessions."""
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            try:
                pool.check()
            except Exception:       # noqa: BLE001 - best effort; the caller reports
                pass

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and os.getpid() == self._pid:
            try:
                pool.close(timeout=5)
            except Exception:
                pass

    # ---- helpers inside a transaction -------------------------------------------------
    @staticmethod
    def _by_id(conn, oid: str, now: int, lock: bool = False) -> dict | None:
        row = conn.execute(f"SELECT meta FROM {TABLE} WHERE id = %s AND {_LIVE_POS}"
                           + (" FOR UPDATE" if lock else ""), (oid, now)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _by_ph(conn, ph: str, now: int) -> dict | None:
        row = conn.execute(f"SELECT meta FROM {TABLE} WHERE ph = %s AND {_LIVE_POS}",
                           (ph, now)).fetchone()
        return row[0] if row else None

    def _need(self, conn, oid: str, now: int, lock: bool = False) -> dict:
        doc = self._by_id(conn, C.check_oid(oid), now, lock)
        if doc is None:
            raise C.noexists(f"id:{oid}")
        return doc

    def _abs(self, conn, sp: str, now: int) -> str:
        if not sp.startswith("id:"):
            return sp
        oid, _, sub = sp[3:].partition("/")
        anchor = self._by_id(conn, oid, now)
        if anchor is None:
            raise C.noexists(f"id:{oid}")
        return paths.anchor_join(anchor["ph"], sub)

    @staticmethod
    def _clear_expired(conn, ph: str, now: int) -> None:
        """Delete an expired object (with its subtree, by cascade) occupying ``ph``."""
        conn.execute(f"DELETE FROM {TABLE} WHERE ph = %s AND expi < %s", (ph, now))

    @staticmethod
    def _insert(conn, doc: dict, pid: str | None, content: bytes | None = None,
                on_conflict_nothing: bool = False) -> bool:
        cur = conn.execute(
            f"INSERT INTO {TABLE} (id, pid, nm, ph, race, expi, meta, content) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            + (" ON CONFLICT DO NOTHING" if on_conflict_nothing else ""),
            (doc["id"], pid, doc["nm"], doc["ph"], doc["race"], doc.get("expi"), Jsonb(doc),
             content))
        return cur.rowcount == 1

    def _dir(self, conn, ph: str, parents: bool, now: int) -> dict:
        # as fetch: a DIR hidden by an expired DIR above it is no parent (what went in
        # there could never be reached by path, and the next purge would delete it)
        row = conn.execute(self._FETCH, (ph, now, paths.ancestors(ph), now)).fetchone()
        doc = row[0] if row else None
        if C.found_dir(doc, ph, parents) is not None:
            return doc
        up, nm = paths.parent_and_name(ph)
        parent = self._dir(conn, up, True, now)
        self._clear_expired(conn, ph, now)
        doc = C.new_doc(paths.new_id(), parent["id"], nm, ph, "DIR", {}, now)
        try:
            # several workers may create the same missing parent at once: the loser
            # waits for the winner's commit, inserts nothing, and uses the winner's DIR
            if self._insert(conn, doc, parent["id"], on_conflict_nothing=True):
                return doc
        except pg_errors.ForeignKeyViolation:
            raise C.noexists(up) from None
        return C.found_dir(self._by_ph(conn, ph, now), ph, parents=False)

    # ---- lookup -----------------------------------------------------------------------
    def get(self, oid: str) -> WnObj | None:
        if not paths.is_id(oid):
            return None
        row = self._one(f"SELECT meta FROM {TABLE} WHERE id = %s AND {_LIVE_POS}",
                        (oid, C.now_ms()), write=False)
        return _doc(row[0]) if row else None

    _FETCH = (f"SELECT meta FROM {TABLE} WHERE ph = %s AND {_LIVE_POS} AND NOT EXISTS "
              f"(SELECT 1 FROM {TABLE} WHERE ph = ANY(%s::text[]) AND expi < %s)")

    def fetch(self, path: str, *, cwd: str = "/", home: str | None = None) -> WnObj | None:
        """By path; an expired DIR hides its whole subtree from path lookups."""
        sp = paths.resolve(path, cwd, home)
        now = C.now_ms()
        if not sp.startswith("id:"):
            row = self._one(self._FETCH, (sp, now, paths.ancestors(sp), now), write=False)
            return _doc(row[0]) if row else None

        def tx(conn):
            try:
                ph = self._abs(conn, sp, now)
            except StoreError:
                return None
            row = conn.execute(self._FETCH, (ph, now, paths.ancestors(ph), now)).fetchone()
            return _doc(row[0]) if row else None
        return self._run(tx, write=False)

    # ---- create / change --------------------------------------------------------------
    def create(self, path: str, race: str = "FILE", meta: Mapping[str, Any] | None = None,
               *, parents: bool = False, content: bytes | None = None,
               cwd: str = "/", home: str | None = None) -> WnObj:
        race, sp, clean, data = C.create_args(path, race, meta, content, cwd, home)
        now = C.now_ms()

        def tx(conn):
            ph = self._abs(conn, sp, now)
            if ph == "/":
                raise C.exists("/")
            up, nm = paths.parent_and_name(ph)
            parent = self._dir(conn, up, parents, now)
            self._clear_expired(conn, ph, now)
            doc = C.new_doc(paths.new_id(), parent["id"], nm, ph, race, clean, now)
            if data is not None:
                doc["len"] = len(data)
                doc["sha1"] = hashlib.sha1(data).hexdigest()
            try:
                self._insert(conn, doc, parent["id"], data)
            except pg_errors.UniqueViolation:
                raise C.exists(ph) from None
            except pg_errors.ForeignKeyViolation:
                raise C.noexists(up) from None
            return _doc(doc)

        obj = self._run(tx)
        self._maybe_purge(now)
        return obj

    @staticmethod
    def _changes_sql(texts: Mapping[str, Any], expi: Any, now: int, params: list) -> str:
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

    def set_meta(self, oid: str, changes: Mapping[str, Any]) -> WnObj:
        texts = C.meta_texts(changes)
        C.check_oid(oid)
        now = C.now_ms()
        params: list = []
        sets = self._changes_sql(texts, changes.get("expi"), now, params)
        row = self._one(f"UPDATE {TABLE} SET {sets} WHERE id = %s AND {_LIVE_POS} "
                        f"RETURNING meta", params + [oid, now])
        if row is None:
            raise C.noexists(f"id:{oid}")
        return _doc(row[0])

    def cas(self, oid: str, expect: Mapping[str, Any], changes: Mapping[str, Any]) -> WnObj | None:
        want = C.clean_expect(expect)
        texts = C.meta_texts(changes)
        C.check_oid(oid)
        now = C.now_ms()
        params: list = []
        sets = self._changes_sql(texts, changes.get("expi"), now, params)
        params += [oid, now]
        conds = []
        for k, v in want.items():
            if v is None:
                conds.append(f" AND (meta -> {_lit(k)}) IS NULL")
            else:
                conds.append(f" AND (meta -> {_lit(k)}) = %s")
                params.append(Jsonb(v))
        row = self._one(f"UPDATE {TABLE} SET {sets} WHERE id = %s AND {_LIVE_POS}"
                        f"{''.join(conds)} RETURNING meta", params)
        if row is not None:
            return _doc(row[0])
        if self.get(oid) is None:
            raise C.noexists(f"id:{oid}")
        return None

    def incr(self, oid: str, key: str, delta: int = 1) -> int:
        C.check_delta(key, delta)
        C.check_oid(oid)
        now = C.now_ms()
        k = _lit(key)
        try:
            # bigint arithmetic: leaving the 64-bit range is an error, as on every backend
            row = self._one(
                f"UPDATE {TABLE} SET meta = jsonb_set(meta, ARRAY[{k}], to_jsonb("
                f"coalesce((meta ->> {k})::bigint, 0) + %s::bigint)) || jsonb_build_object("
                f"'lm', greatest(%s, (meta ->> 'lm')::bigint)) "
                f"WHERE id = %s AND {_LIVE_POS} AND ((meta -> {k}) IS NULL OR "
                f"(jsonb_typeof(meta -> {k}) = 'number' AND (meta ->> {k}) ~ '^-?[0-9]{{1,19}}$')) "
                f"RETURNING (meta ->> {k})::bigint", (delta, now, oid, now))
        except StoreError as exc:
            if "out of range" in exc.reason:
                raise C.meta_invalid(f"'{key}' would leave the 64-bit range") from None
            raise
        if row is not None:
            return int(row[0])
        if self.get(oid) is None:
            raise C.noexists(f"id:{oid}")
        raise C.meta_invalid(f"'{key}' is not an integer")

    # ---- content ----------------------------------------------------------------------
    def read(self, oid: str) -> bytes:
        C.check_oid(oid)
        row = self._one(f"SELECT race, ph, content FROM {TABLE} WHERE id = %s AND {_LIVE_POS}",
                        (oid, C.now_ms()), write=False)
        if row is None:
            raise C.noexists(f"id:{oid}")
        if row[0] != "FILE":
            raise C.notfile(row[1])
        return bytes(row[2]) if row[2] is not None else b""

    def write(self, oid: str, data: bytes) -> WnObj:
        data = C.as_bytes(data)
        C.check_oid(oid)
        now = C.now_ms()
        row = self._one(
            f"UPDATE {TABLE} SET content = %s, meta = meta || jsonb_build_object("
            f"'len', %s::bigint, 'sha1', %s::text, 'lm', greatest(%s, (meta ->> 'lm')::bigint)) "
            f"WHERE id = %s AND {_LIVE_POS} AND race = 'FILE' RETURNING meta",
            (data, len(data), hashlib.sha1(data).hexdigest(), now, oid, now))
        if row is not None:
            return _doc(row[0])
        doc = self.get(oid)
        if doc is None:
            raise C.noexists(f"id:{oid}")
        raise C.notfile(doc["ph"])

    def append(self, oid: str, data: bytes) -> WnObj:
        data = C.as_bytes(data)
        C.check_oid(oid)
        now = C.now_ms()

        def tx(conn):
            row = conn.execute(f"SELECT race, ph, content FROM {TABLE} WHERE id = %s AND "
                               f"{_LIVE_POS} FOR UPDATE", (oid, now)).fetchone()
            if row is None:
                raise C.noexists(f"id:{oid}")
            if row[0] != "FILE":
                raise C.notfile(row[1])
            full = (bytes(row[2]) if row[2] is not None else b"") + data
            return _doc(conn.execute(
                f"UPDATE {TABLE} SET content = %s, meta = meta || jsonb_build_object("
                f"'len', %s::bigint, 'sha1', %s::text, 'lm', "
                f"greatest(%s, (meta ->> 'lm')::bigint)) WHERE id = %s RETURNING meta",
                (full, len(full), hashlib.sha1(full).hexdigest(), now, oid)).fetchone()[0])
        return self._run(tx)

    # ---- tree -------------------------------------------------------------------------
    def children(self, oid: str, glob: str | None = None) -> list[WnObj]:
        C.check_oid(oid)
        if glob is not None:
            C.glob_regex(glob)          # the shared validation (type, encodable text)
        now = C.now_ms()
        extra, params = "", [oid, now]
        if glob is not None:
            extra = " AND nm ~ %s"
            params.append(glob_to_are(glob))

        def tx(conn):
            doc = self._need(conn, oid, now)
            if doc["race"] != "DIR":
                raise C.notdir(doc["ph"])
            rows = conn.execute(f"SELECT meta FROM {TABLE} WHERE pid = %s AND {_LIVE_POS}"
                                f"{extra} ORDER BY nm", params).fetchall()
            return [_doc(r[0]) for r in rows]
        return self._run(tx, write=False)

    def move(self, oid: str, new_path: str, *, cwd: str = "/", home: str | None = None) -> WnObj:
        sp = paths.resolve(new_path, cwd, home)
        C.check_oid(oid)
        now = C.now_ms()

        def tx(conn):
            src = self._need(conn, oid, now, lock=True)
            if src["ph"] == "/":
                raise paths.invalid("cannot move '/'")
            dest = self._abs(conn, sp, now)
            target = self._by_ph(conn, dest, now)
            dest = C.move_dest(src, dest, target)
            if dest is None:
                return _doc(src)
            up, nm = paths.parent_and_name(dest)
            parent = self._dir(conn, up, False, now)
            self._clear_expired(conn, dest, now)
            if self._by_ph(conn, dest, now) is not None:
                raise C.exists(dest)
            old_ph = src["ph"]
            lo, hi = _range(old_ph)
            longest = len(old_ph.encode("utf-8"))
            if src["race"] == "DIR":
                below = conn.execute(f"SELECT max(octet_length(ph)) FROM {TABLE} "
                                     f"WHERE ph ~>=~ %s AND ph ~<~ %s", (lo, hi)).fetchone()[0]
                longest = max(longest, below or 0)
            paths.check_moved(dest, old_ph, longest)
            conn.execute(
                f"UPDATE {TABLE} o SET ph = x.nph, meta = o.meta || jsonb_build_object("
                f"'ph', x.nph, 'd0', split_part(x.nph, '/', 2), 'd1', split_part(x.nph, '/', 3)) "
                f"FROM (SELECT id, %s || substr(ph, %s) AS nph FROM {TABLE} "
                f"WHERE ph ~>=~ %s AND ph ~<~ %s) x WHERE o.id = x.id",
                (dest, len(old_ph) + 1, lo, hi))
            C.moved(src, parent["id"], nm, dest, now)
            try:
                conn.execute(f"UPDATE {TABLE} SET pid = %s, nm = %s, ph = %s, meta = %s "
                             f"WHERE id = %s", (parent["id"], nm, dest, Jsonb(src), oid))
            except pg_errors.UniqueViolation:
                raise C.exists(dest) from None
            except pg_errors.ForeignKeyViolation:
                raise C.noexists(up) from None
            return _doc(src)
        return self._run(tx)

    def delete(self, oid: str, *, recursive: bool = False) -> None:
        C.check_oid(oid)
        now = C.now_ms()

        def tx(conn):
            doc = self._need(conn, oid, now, lock=True)
            if doc["ph"] == "/":
                raise paths.invalid("cannot delete '/'")
            if doc["race"] == "DIR" and not recursive:
                if conn.execute(f"SELECT 1 FROM {TABLE} WHERE pid = %s AND {_LIVE_POS} LIMIT 1",
                                (oid, now)).fetchone():
                    raise C.dir_notempty(doc["ph"])
            lo, hi = _range(doc["ph"])
            conn.execute(f"DELETE FROM {TABLE} WHERE ph ~>=~ %s AND ph ~<~ %s", (lo, hi))
            conn.execute(f"DELETE FROM {TABLE} WHERE id = %s", (oid,))
        self._run(tx)

    # ---- query ------------------------------------------------------------------------
    def _where(self, match, now: int, params: list) -> str:
        ors = Q.parse_match(match)
        params.append(now)
        return f"{_LIVE_POS} AND " + COMPILER.where(ors, params)

    def query(self, match, *, sort=None, skip: int = 0, limit: int | None = None) -> list[WnObj]:
        order_sql = COMPILER.order_by(Q.parse_sort(sort))
        skip, limit = Q.check_window(skip, limit)
        params: list = []
        where = self._where(match, C.now_ms(), params)
        sql = f"SELECT meta FROM {TABLE} WHERE {where} {order_sql}"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        if skip:
            sql += " OFFSET %s"
            params.append(skip)
        return [_doc(r[0]) for r in self._one(sql, params, write=False, many=True)]

    def count(self, match) -> int:
        params: list = []
        where = self._where(match, C.now_ms(), params)
        return int(self._one(f"SELECT count(*) FROM {TABLE} WHERE {where}", params,
                             write=False)[0])

    # ---- housekeeping -----------------------------------------------------------------
    def _maybe_purge(self, now: int) -> None:
        """About once a minute per process (on a create): purge, unless another worker
        is purging right now (then it is that worker's job; never wait for it)."""
        if now - self._last_purge < PURGE_EVERY_MS:
            return
        self._last_purge = now
        try:
            self._purge(wait=False)
        except StoreError:
            pass            # best effort; the next create (or an explicit purge) retries

    def purge_expired(self) -> int:
        """Delete expired objects and their subtrees, in one statement; return how many
        objects went.  Workers purging together take turns (a transaction-level
        advisory lock), so each object is deleted, and counted, once."""
        return self._purge(wait=True)

    # ARRAY(...) is computed first (expired rows by the expi index, their subtrees by
    # ph ranges), then the rows go by primary key: never a scan of the whole table
    _PURGE = (f"DELETE FROM {TABLE} WHERE id = ANY(ARRAY("
              f"SELECT DISTINCT o.id FROM {TABLE} e JOIN {TABLE} o ON o.ph = e.ph OR "
              f"(o.ph ~>=~ (e.ph || '/') AND o.ph ~<~ (e.ph || '0')) WHERE e.expi < %s))")

    def _purge(self, wait: bool) -> int:
        now = C.now_ms()
        self._last_purge = now

        def tx(conn):
            if wait:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (PURGE_LOCK,))
            elif not conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                  (PURGE_LOCK,)).fetchone()[0]:
                return 0
            # descendants of an expired DIR go with it (and the FK cascade would take
            # them anyway); the subtree ranges use the ph index
            return conn.execute(self._PURGE, (now,)).rowcount
        return self._run(tx)
