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
are compiled from ``objstore.query``'s ``Cond`` tree to SQL by ``postgres_query``;
nothing is filtered in Python.  What the operations mean is ``sqlstore.SQLStore``'s and
``rules``' (written once for every SQL backend); this module is PostgreSQL's
connections, layout and one-statement forms.

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
from typing import Any

from . import common as C
from . import paths, query as Q, rules
from .base import WnObj
from .errors import BAD_INPUT, INTERNAL, TIMEOUT, StoreError

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as _exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"the postgresql backend needs psycopg 3 and psycopg_pool "
                      f"(pip install 'wnshell[postgres]'): {_exc}") from None

from .postgres_query import FREE_ARR, PgCompiler, _lit, glob_to_are  # noqa: E402
from .sqlstore import Dialect, SQLStore, SQLView, subtree_range  # noqa: E402

TABLE = "wn_obj"
SCHEMA_LOCK = 0x776E7368656C6C  # advisory lock key ("wnshell") for schema creation
PURGE_LOCK = 0x776E7370757267  # advisory lock key: one purger at a time per database
# the channel every write that may change a dot-folder object NOTIFYs (database-wide:
# stores on other schemas of the database only cause a spurious re-read)
DOT_CHANNEL = "wnshell_dot"
RETRIES = 5

# the GIN index covers free metadata only (postgres_query.FREE_ARR says why)
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

_LIVE_POS = "(expi IS NULL OR expi >= %s)"


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


COMPILER = PgCompiler()


def _configure(conn) -> None:
    """Every pooled session: ``synchronous_commit = on`` whatever the server, database
    or role default says, so a call (the paid transition above all) returns only after
    its commit is flushed to disk -- an acknowledged write survives a power loss (given
    the server's own ``fsync = on``)."""
    conn.execute("SET synchronous_commit = on")


class _Dialect(Dialect):
    P = "%s"
    TABLE = TABLE
    COLS = "meta"               # the whole document (psycopg decodes it: a fresh dict)
    ROW_LOCK = " FOR UPDATE"
    REGEX = "~"
    PH_BYTES = "octet_length(ph)"
    GE, LT = "~>=~", "~<~"      # text_pattern_ops: the ph index serves subtree ranges
    compiler = COMPILER

    def row_doc(self, row) -> dict:
        return row[0]

    def among(self, values: list) -> tuple[str, list]:
        return "= ANY(%s::text[])", [values]

    def glob(self, glob):
        C.glob_regex(glob)          # the shared validation (type, encodable text)
        return glob_to_are(glob)

    def window(self, skip: int, limit: int | None, params: list) -> str:
        sql = ""
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        if skip:
            sql += " OFFSET %s"
            params.append(skip)
        return sql


DIALECT = _Dialect()


class _DotWatch:
    """This process's dot-folder generation on PostgreSQL (``Store.dot_generation``).

    A connection of its own LISTENs on ``DOT_CHANNEL``; every process NOTIFYs it in
    the transaction of each write that may change an object in a dot-folder (delivered
    when that commits), and a daemon thread moves ``value`` on each notification.  The
    writing process moves it itself once its write has committed.  ``value`` is None
    while not listening -- before the first LISTEN, after a lost connection -- so
    callers read what they need then; each new LISTEN starts from a new value, as what
    happened while nobody listened is unknown."""

    POLL_S = 1.0        # how often the thread looks whether it should stop

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self.value: int | None = None
        self.pid = os.getpid()
        self._stop = threading.Event()
        threading.Thread(target=self._loop, name="wnshell-pg-dot-watch", daemon=True).start()

    def bump(self) -> None:
        if self.value is not None:
            self.value = _new_generation()

    def close(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=15)
            except Exception:  # noqa: BLE001 - no server now: readers read, retry later
                self._stop.wait(self.POLL_S)
                continue
            try:
                conn.execute(f"LISTEN {DOT_CHANNEL}")
                self.value = _new_generation()
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=self.POLL_S):
                        self.value = _new_generation()
            except Exception:  # noqa: BLE001 - connection lost: unknown until listening
                pass
            finally:
                self.value = None
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
            self._stop.wait(self.POLL_S / 2)


def _new_generation() -> int:
    return int.from_bytes(os.urandom(8), "big")


class PostgresStore(SQLStore):
    """``postgresql://user@host:port/db`` (any libpq URL; ``?host=/socket/dir`` for a
    unix socket, ``?options=-c search_path=...`` for a schema)."""

    dialect = DIALECT

    def __init__(self, url: str):
        self.url = url
        self._conninfo = url
        self._pid = os.getpid()
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._last_purge = 0
        self._dots: _DotWatch | None = None
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
                self._retry_or_raise(exc, write, lost_once)
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
                self._retry_or_raise(exc, write, attempt > 0)
            except (psycopg.Error, PoolTimeout, ValueError) as exc:
                raise _store_error(exc) from None
        raise AssertionError("unreachable")

    def _retry_or_raise(self, exc: BaseException, write: bool, retried: bool) -> None:
        """After an ``OperationalError``: return when the operation may run again (a
        read, not yet retried, whose session was lost), else raise it as a
        StoreError (a write's outcome is unknown: never run twice)."""
        lost = _connection_lost(exc)
        if lost:
            self._drop_dead_connections()
        if write or retried or not lost:
            raise _store_error(exc) from None

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
        dots, self._dots = self._dots, None
        if dots is not None:
            dots.close()
        pool, self._pool = self._pool, None
        if pool is not None and os.getpid() == self._pid:
            try:
                pool.close(timeout=5)
            except Exception:
                pass

    # ---- SQLStore's hooks -------------------------------------------------------------
    def _read_one(self, sql: str, params: Any) -> Any:
        return self._one(sql, params, write=False)

    def _read_all(self, sql: str, params: Any) -> list:
        return self._one(sql, params, write=False, many=True)

    def _run_read(self, fn):
        return self._run(lambda conn: fn(_View(conn)), write=False)

    def _run_write(self, fn):
        # a transaction may change anything (create, move, delete): it NOTIFYs the
        # dot-folder watchers, whatever it did (as SQLite's generation moves after each)
        def tx(conn):
            out = fn(_View(conn))
            conn.execute(f"NOTIFY {DOT_CHANNEL}")
            return out
        try:
            return self._run(tx)
        finally:
            self._dot_written()

    # ---- the dot-folder generation ------------------------------------------------------
    def dot_generation(self) -> int | None:
        dots = self._dots
        if dots is None or dots.pid != os.getpid():
            with self._pool_lock:
                dots = self._dots
                if dots is None or dots.pid != os.getpid():    # (a forked child: its own)
                    dots = self._dots = _DotWatch(self._conninfo)
        return dots.value

    def _dot_written(self) -> None:
        """After a committed write that may have changed a dot-folder object: this
        process sees it at once (others when the NOTIFY reaches them)."""
        dots = self._dots
        if dots is not None and dots.pid == os.getpid():
            dots.bump()

    def _wrote(self, ph) -> None:
        """After a one-statement write to the object at ``ph``: below a dot folder, a
        NOTIFY of its own (such writes are rare: accounts, API objects)."""
        if isinstance(ph, str) and paths.in_dot_folder(ph):
            try:
                self._run(lambda conn: conn.execute(f"NOTIFY {DOT_CHANNEL}"))
            finally:
                self._dot_written()

    def _update_fast(self, oid: str, texts: dict, want: dict | None, changes, now: int):
        """set_meta (``||`` and ``-`` on the document) and cas (its expectations as
        JSONB equality) are always one ``UPDATE ... RETURNING``."""
        params: list = []
        sets = COMPILER.changes(texts, changes.get("expi"), now, params)
        params += [oid, now]
        conds = COMPILER.expect(want, params) if want else ""
        row = self._one(f"UPDATE {TABLE} SET {sets} WHERE id = %s AND {_LIVE_POS}"
                        f"{conds} RETURNING meta", params)
        if row is not None:
            self._wrote(row[0].get("ph"))
        return True, row

    def _incr_fast(self, oid: str, key: str, delta: int, now: int):
        k = _lit(key)
        try:
            # bigint arithmetic: leaving the 64-bit range is an error, as on every backend
            row = self._one(
                f"UPDATE {TABLE} SET meta = jsonb_set(meta, ARRAY[{k}], to_jsonb("
                f"coalesce((meta ->> {k})::bigint, 0) + %s::bigint)) || jsonb_build_object("
                f"'lm', greatest(%s, (meta ->> 'lm')::bigint)) "
                f"WHERE id = %s AND {_LIVE_POS} AND ((meta -> {k}) IS NULL OR "
                f"(jsonb_typeof(meta -> {k}) = 'number' AND (meta ->> {k}) ~ '^-?[0-9]{{1,19}}$')) "
                f"RETURNING (meta ->> {k})::bigint, meta ->> 'ph'", (delta, now, oid, now))
        except StoreError as exc:
            if "out of range" in exc.reason:
                raise C.meta_invalid(f"'{key}' would leave the 64-bit range") from None
            raise
        if row is not None:
            self._wrote(row[1])
        return True, (int(row[0]) if row is not None else None)

    # ---- content: one statement each ----------------------------------------------------
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
            self._wrote(row[0].get("ph"))
            return WnObj(row[0])
        doc = self.get(oid)
        if doc is None:
            raise C.noexists(f"id:{oid}")
        raise C.notfile(doc["ph"])

    # ---- housekeeping -----------------------------------------------------------------
    def _purge_within(self, v, now: int) -> None:
        pass                # not inside a create: see _purge_after

    def _purge_after(self, now: int) -> None:
        """About once a minute per process (after a create): purge, unless another
        worker is purging right now (then it is that worker's job; never wait for it)."""
        if not rules.purge_due(self, now):
            return
        try:
            self._purge_db(wait=False)
        except StoreError:
            pass            # best effort; the next create (or an explicit purge) retries

    def purge_expired(self) -> int:
        """Delete expired objects and their subtrees, in one statement; return how many
        objects went.  Workers purging together take turns (a transaction-level
        advisory lock), so each object is deleted, and counted, once."""
        return self._purge_db(wait=True)

    # ARRAY(...) is computed first (expired rows by the expi index, their subtrees by
    # ph ranges), then the rows go by primary key: never a scan of the whole table
    _PURGE = (f"DELETE FROM {TABLE} WHERE id = ANY(ARRAY("
              f"SELECT DISTINCT o.id FROM {TABLE} e JOIN {TABLE} o ON o.ph = e.ph OR "
              f"(o.ph ~>=~ (e.ph || '/') AND o.ph ~<~ (e.ph || '0')) WHERE e.expi < %s))")

    def _purge_db(self, wait: bool) -> int:
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


def _up(ph: str) -> str:
    return paths.parent_and_name(ph)[0]


class _View(SQLView):
    """The writes of ``rules.TreeView`` on this layout: the whole document as JSONB in
    ``meta``, the tree's fields also as columns, content in the row; a child's ``pid``
    references its parent with ``ON DELETE CASCADE``."""

    __slots__ = ()
    d = DIALECT

    def get_content(self, oid: str) -> bytes:
        row = self.conn.execute(f"SELECT content FROM {TABLE} WHERE id = %s", (oid,)).fetchone()
        return bytes(row[0]) if row is not None and row[0] is not None else b""

    def clear(self, ph: str, now: int) -> None:
        # an expired object at ph goes, its subtree by the cascade; a live one is left
        # to the unique index of the insert or move that follows (e.io.obj.exists)
        self.conn.execute(f"DELETE FROM {TABLE} WHERE ph = %s AND expi < %s", (ph, now))

    def _insert(self, doc: dict, content: bytes | None, on_conflict_nothing: bool = False) -> bool:
        try:
            cur = self.conn.execute(
                f"INSERT INTO {TABLE} (id, pid, nm, ph, race, expi, meta, content) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                + (" ON CONFLICT DO NOTHING" if on_conflict_nothing else ""),
                (doc["id"], doc["pid"] or None, doc["nm"], doc["ph"], doc["race"],
                 doc.get("expi"), Jsonb(doc), content))
        except pg_errors.UniqueViolation:
            raise C.exists(doc["ph"]) from None
        except pg_errors.ForeignKeyViolation:       # the parent went meanwhile
            raise C.noexists(_up(doc["ph"])) from None
        return cur.rowcount == 1

    def insert(self, doc: dict, data: bytes | None) -> None:
        self._insert(doc, data)

    def insert_dir(self, doc: dict, now: int) -> dict:
        # several workers may create the same missing parent at once: the loser waits
        # for the winner's commit, inserts nothing, and uses the winner's DIR
        if self._insert(doc, None, on_conflict_nothing=True):
            return doc
        row = self.conn.execute(self.d.by_ph, (doc["ph"], now)).fetchone()
        return C.found_dir(row[0] if row else None, doc["ph"], parents=False)

    def save(self, doc: dict) -> None:
        self.conn.execute(f"UPDATE {TABLE} SET meta = %s, expi = %s WHERE id = %s",
                          (Jsonb(doc), doc.get("expi"), doc["id"]))

    def set_content(self, doc: dict, data: bytes) -> None:
        self.conn.execute(f"UPDATE {TABLE} SET content = %s, meta = %s WHERE id = %s",
                          (data, Jsonb(doc), doc["id"]))

    def remove_tree(self, doc: dict) -> int:
        lo, hi = subtree_range(doc["ph"])
        n = self.conn.execute(f"DELETE FROM {TABLE} WHERE ph ~>=~ %s AND ph ~<~ %s",
                              (lo, hi)).rowcount
        return n + self.conn.execute(f"DELETE FROM {TABLE} WHERE id = %s",
                                     (doc["id"],)).rowcount

    def move_tree(self, src: dict, moved: dict) -> None:
        conn, old_ph, dest = self.conn, src["ph"], moved["ph"]
        if conn.execute(f"SELECT 1 FROM {TABLE} WHERE ph = %s", (dest,)).fetchone():
            raise C.exists(dest)        # live: clear() took an expired one
        lo, hi = subtree_range(old_ph)
        conn.execute(
            f"UPDATE {TABLE} o SET ph = x.nph, meta = o.meta || jsonb_build_object("
            f"'ph', x.nph, 'd0', split_part(x.nph, '/', 2), 'd1', split_part(x.nph, '/', 3)) "
            f"FROM (SELECT id, %s || substr(ph, %s) AS nph FROM {TABLE} "
            f"WHERE ph ~>=~ %s AND ph ~<~ %s) x WHERE o.id = x.id",
            (dest, len(old_ph) + 1, lo, hi))
        try:
            conn.execute(f"UPDATE {TABLE} SET pid = %s, nm = %s, ph = %s, meta = %s "
                         f"WHERE id = %s", (moved["pid"], moved["nm"], dest, Jsonb(moved),
                                            moved["id"]))
        except pg_errors.UniqueViolation:
            raise C.exists(dest) from None
        except pg_errors.ForeignKeyViolation:
            raise C.noexists(_up(dest)) from None
