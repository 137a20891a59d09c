"""``sqlite:///path.db``: the default store, one SQLite file.

* WAL journal, ``synchronous=FULL`` (every commit syncs the WAL before it returns: an
  acknowledged write survives a power loss, not only the process being killed), a
  busy timeout, a small pool of connections per process (``WNSHELL_SQLITE_CONNECTIONS``,
  default 4), each lent to one thread for one operation (a forked child opens its own);
  no memory map, a 2 MiB page cache per connection.
* Every operation is one transaction.  ``cas``, ``set_meta`` and ``incr`` on plain
  keys (letters, digits, ``_``, ``-``) with scalar expectations are one autocommit
  ``UPDATE ... WHERE <expectations> RETURNING`` (``json_set``/``json_remove`` on the
  row's JSON, no read first, the write lock held for that statement only); other writes
  take the write lock up front (``BEGIN IMMEDIATE``) and read, check and write inside
  it.  Either way a read-check-write is atomic across threads and processes.
* Writers take turns at a gate before SQLite's write lock (threads of a process in a
  queue, processes on ``flock`` of ``<db>-wlock``) instead of sleeping in SQLite's busy
  handler; single-statement writes queued meanwhile share one transaction and one
  sync (group commit), each statement still atomic on its own.
* Table ``obj``: the reserved fields the tree needs as columns (``id`` primary key,
  unique ``(pid, nm)``, unique ``ph``, ``expi`` indexed) and every other field as JSON
  text in ``meta``.  Content lives in table ``content``.  Queries are compiled to SQL
  by ``sqlite_query`` (``json_extract``; ``REGEXP`` is a registered Python function).
* What the operations mean is ``sqlstore.SQLStore``'s and ``rules``' (written once for
  every SQL backend); this module is SQLite's connections, write path and layout.
* Nothing is cached across operations except prepared statements, so several
  processes can share the file safely.
"""
from __future__ import annotations

import json
import json.scanner
import os
import sqlite3
import time
# threading.local/Lock themselves, without the threading and contextlib modules around
# them: every shell start opens this store
from _thread import _local as thread_local, allocate_lock

from . import common as C
from . import paths
from .base import WnObj
from .errors import INTERNAL, TIMEOUT, StoreError
from .sqlite_query import SqliteCompiler, json_path, sqlite_regexp
from .sqlstore import Dialect, SQLStore, SQLView, subtree_range

TYPE_CHECKING = False   # typing costs start-up time (and hashlib is imported by the first
if TYPE_CHECKING:       # content write): every shell opens this store
    from typing import Any, Mapping

SCHEMA_VERSION = 1
COLUMNS = ("id", "pid", "nm", "ph", "race", "d0", "d1", "ct", "lm", "expi")
INT_COLUMNS = ("ct", "lm", "expi")
_COLS = "id, pid, nm, ph, race, d0, d1, ct, lm, expi, meta"
# what cas_applied's statement returns: no object, only whether it is below a dot
# folder (1/0).  Numbers SQLite makes itself: nothing can fail after the statement's
# changes (decoding a column's text could), so it needs no savepoint in a batch
# paths.in_dot_folder(ph), in SQL: 1 or 0
_IN_DOT = "instr(ph, '/.') > 0"
_APPLIED_COLS = "NULL, NULL, NULL, " + _IN_DOT
_SEL = "SELECT " + _COLS + " FROM obj"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS obj (
    id   TEXT PRIMARY KEY NOT NULL,
    pid  TEXT NOT NULL,
    nm   TEXT NOT NULL,
    ph   TEXT NOT NULL,
    race TEXT NOT NULL,
    d0   TEXT,
    d1   TEXT,
    ct   INTEGER NOT NULL,
    lm   INTEGER NOT NULL,
    expi INTEGER,
    meta TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS obj_pid_nm ON obj (pid, nm);
CREATE UNIQUE INDEX IF NOT EXISTS obj_ph ON obj (ph);
CREATE INDEX IF NOT EXISTS obj_expi ON obj (expi) WHERE expi IS NOT NULL;
CREATE TABLE IF NOT EXISTS content (
    id   TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL
);
"""

COMPILER = SqliteCompiler({k: k for k in COLUMNS}, INT_COLUMNS, "meta")


_VALUE_ERRORS = (OverflowError, UnicodeError)   # a value SQLite cannot bind


def _store_error(exc: BaseException, what: str = "") -> StoreError:
    """A raw sqlite3 exception -> StoreError (never leaks sqlite3 types upward)."""
    msg = str(exc)[:300]
    if isinstance(exc, _VALUE_ERRORS):
        return C.meta_invalid(f"value cannot be stored: {msg}")
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in msg:
        return C.exists(what or msg)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
        return StoreError("e.io.store.busy", f"database is busy: {msg}", TIMEOUT)
    if "malformed JSON" in msg:     # json_extract() on a row edited by hand
        return StoreError("e.io.store.corrupt", "a row's metadata is not JSON", INTERNAL)
    return StoreError("e.io.store.failed", f"sqlite: {msg}", INTERNAL)


# the JSON text of ``meta`` -> (value, end): the C scanner json.loads ends in, without
# json.loads' layers (type and BOM checks, two whitespace regexes) for text this
# module wrote; anything else (space around it, not JSON) is json.loads' to judge
_scan_json = json.scanner.make_scanner(json.JSONDecoder())


def _row_doc(row, cls=dict) -> dict:
    """A row of ``_COLS`` -> its document, a fresh ``cls`` (``dict``; ``WnObj`` for
    what goes to the caller, made as one, not copied into one)."""
    doc = cls(id=row[0], pid=row[1], nm=row[2], ph=row[3], race=row[4])
    if row[5] is not None:
        doc["d0"] = row[5]
    if row[6] is not None:
        doc["d1"] = row[6]
    doc["ct"] = row[7]
    doc["lm"] = row[8]
    if row[9] is not None:
        doc["expi"] = row[9]
    text = row[10]
    if text != "{}":
        try:
            meta, end = _scan_json(text, 0)
            if end != len(text):
                raise ValueError
        except (TypeError, ValueError, StopIteration):
            try:
                meta = json.loads(text)
            except (TypeError, ValueError):
                meta = None
        if type(meta) is not dict:          # a row edited by hand or by another tool
            raise StoreError("e.io.store.corrupt", f"object {row[0]!r} ({row[3]}): its "
                             "metadata is not a JSON object", INTERNAL)
        doc.update(meta)
    return doc


def _meta_json(doc: Mapping[str, Any]) -> str:
    meta = {k: v for k, v in doc.items() if k not in COLUMNS}
    return json.dumps(meta, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# this process's pid, kept current by a fork hook: os.getpid() is a system call, and
# every store operation asks "am I still the process that opened these handles?"
_PID = [os.getpid()]


def _forked() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_forked)

PAGE_SIZE = 16384
POOL_SIZE = max(1, int(os.environ.get("WNSHELL_SQLITE_CONNECTIONS", "4") or 4))


class _Pool:
    """At most ``size`` connections per store and process, lent to one thread at a
    time for one operation (a statement, a transaction, a batch of writes) and given
    back at its end; a thread that finds them all lent waits its turn (FIFO).  A
    thread that already holds one (an operation inside an operation) is lent the same
    one again.

    Not one connection per thread: a server with 32-64 request threads had as many
    connections per worker, each with its own page cache (and memory map), so memory
    grew with the thread count and every new thread started cold.  And never a
    connection owned by a thread-local: when a thread ends, nothing of SQLite is freed
    in its teardown.  That matters: on a thread whose Python state came from
    ``PyGILState_Ensure`` (granian's blocking threads, ctypes callbacks) CPython 3.11
    runs the teardown from ``PyGILState_Release``; closing (or merely freeing) a
    connection that has a ``create_function`` there runs sqlite3's function destructor,
    which re-enters ``PyGILState_Ensure``/``Release``, and the nested release frees the
    thread state under the running code: a segfault in libpython (CPython gh-119585,
    fixed in 3.12.4+/3.13 only; docs/regapi.md).  Connections are closed only by
    ``close()``, on the thread that calls it."""

    __slots__ = ("make", "size", "pid", "lock", "idle", "all", "waiters", "local")

    def __init__(self, make, size: int):
        self.make = make
        self.size = size
        self.pid = os.getpid()
        self.lock = allocate_lock()
        self.idle: list = []
        self.all: list = []           # every connection made (strong references)
        self.waiters: list = []       # [lock, conn] of threads waiting, oldest first
        self.local = thread_local()   # .lent = [conn, depth] while this thread holds one

    def get(self) -> sqlite3.Connection:
        lent = getattr(self.local, "lent", None)
        if lent is not None:
            lent[1] += 1
            return lent[0]
        with self.lock:
            if self.idle:
                conn = self.idle.pop()
                wait = None
            elif len(self.all) < self.size:
                self.all.append(None)          # a place taken while it is being made
                conn = wait = None
            else:
                wait = [allocate_lock(), None]
                wait[0].acquire()
                self.waiters.append(wait)
                conn = None
        if conn is None and wait is None:
            try:
                conn = self.make()
            except BaseException:
                with self.lock:
                    self.all.remove(None)
                raise
            with self.lock:
                self.all[self.all.index(None)] = conn
        elif conn is None:
            if not wait[0].acquire(timeout=BUSY_S):
                with self.lock:
                    if wait[1] is None:
                        self.waiters.remove(wait)
                if wait[1] is None:
                    raise StoreError("e.io.store.busy", "every store connection is busy",
                                     TIMEOUT)
            conn = wait[1]
        self.local.lent = [conn, 1]
        return conn

    def put(self, conn: sqlite3.Connection) -> None:
        lent = self.local.lent
        lent[1] -= 1
        if lent[1]:
            return
        self.local.lent = None
        if conn.in_transaction:          # never lend one with a transaction left open
            _rollback(conn)
        with self.lock:
            if self.waiters:
                wait = self.waiters.pop(0)
                wait[1] = conn
                wait[0].release()
            else:
                self.idle.append(conn)

    def close(self) -> None:
        """Close the idle connections (the lent ones are closed when given back... by
        ``close`` once more; a store is closed when it is no longer used)."""
        with self.lock:
            idle, self.idle = self.idle, []
            for conn in idle:
                self.all.remove(conn)
        for conn in idle:
            _close(conn)


# connections inherited from a parent process: never closed, never freed (closing the
# parent's SQLite handle in a child could corrupt its locks)
_FORKED: list = []


def _close(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass


def _rollback(conn: sqlite3.Connection) -> None:
    """End the connection's transaction, if any is left, on a path that is already
    failing (its own error is not the one to report)."""
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


class _Tx:
    """The context manager of ``SQLiteStore._tx`` (a class, not contextlib's generator
    decorator: contextlib costs start-up time): BEGIN [IMMEDIATE] on entry; COMMIT when
    the block ends normally, ROLLBACK when it raises (sqlite3 errors -> StoreError)."""

    __slots__ = ("store", "write", "conn")

    def __init__(self, store: SQLiteStore, write: bool):
        self.store = store
        self.write = write
        self.conn = None

    def __enter__(self) -> sqlite3.Connection:
        pool = self.store._pool_now()
        conn = pool.get()
        try:
            if self.write:
                self.store._gate.acquire()
            try:
                conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
            except sqlite3.Error as exc:
                if self.write:
                    self.store._gate.release()
                raise _store_error(exc) from None
        except BaseException:
            pool.put(conn)
            raise
        self.conn = conn
        return conn

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            return self._end(exc_type, exc)
        finally:
            try:
                if self.write:
                    self.store._gate.release()
            finally:
                self.store._pool_now().put(self.conn)

    def _end(self, exc_type, exc) -> bool:
        conn = self.conn
        if exc_type is not None:
            _rollback(conn)
            if isinstance(exc, (sqlite3.Error,) + _VALUE_ERRORS):
                raise _store_error(exc) from None
            return False
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise _store_error(exc) from None
        return False


class _WriteGate:
    """Writers take turns here before they ask SQLite for its write lock: the threads
    of a process in a queue (a lock), the processes with ``flock`` on a file next to the
    database (``<db>-wlock``), polled every 0.05-1 ms.  Why: a connection that finds
    SQLite's lock taken sleeps in its busy handler 1, 2, 5, 10 ... up to 100 ms at a
    time, however soon the lock frees, so under load most of a write's time was spent
    asleep.  Processes that do not use the gate (another program on the file) still
    meet SQLite's own lock and busy timeout, so correctness never depends on it.
    A wait past ``BUSY_S`` is ``e.io.store.busy``, as SQLite's busy timeout is.

    The process's turn (the ``flock``) is given back before the batch's COMMIT
    (``release_turn``): the COMMIT's sync, and the wait for the GIL after it, are then
    no longer the other processes' wait too.  Their next writer, in its turn, finds
    SQLite's lock until that COMMIT ends: the gate's connection (``connection``: the
    leader's, one per process) has no busy timeout, so it polls, ``_busy_retry``,
    instead of sleeping in the busy handler."""

    __slots__ = ("lock", "pid", "fd", "turn", "conn", "_connect")

    def __init__(self, path: str, connect):
        self.lock = allocate_lock()
        self.pid = os.getpid()
        self.turn = False
        self.conn = None
        self._connect = connect
        try:
            self.fd = os.open(path + "-wlock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            self.fd = None      # e.g. a read-only folder: SQLite's lock alone

    def connection(self) -> sqlite3.Connection:
        """The leader's connection (made at first use; only the lock's holder uses
        it): no busy timeout once it is set up (see the class)."""
        conn = self.conn
        if conn is None:
            conn = self.conn = self._connect(busy_ms=0)
        return conn

    # os is bound as defaults: at interpreter exit module globals may already be None
    def __del__(self, _getpid=os.getpid, _close=os.close) -> None:
        if getattr(self, "fd", None) is not None and _getpid() == self.pid:
            try:
                _close(self.fd)
            except OSError:
                pass

    def acquire(self) -> None:
        if not self.lock.acquire(True, BUSY_S):
            raise StoreError("e.io.store.busy", f"no turn to write within {BUSY_S:g} s",
                             TIMEOUT)
        if self.fd is None:
            return
        import fcntl
        waits = None
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.turn = True
                return
            except BlockingIOError:
                pass
            except OSError:      # flock unsupported here: SQLite's lock alone
                return
            waits = waits or _waits()
            if next(waits, None) is None:
                self.lock.release()
                raise StoreError("e.io.store.busy", f"no turn to write within {BUSY_S:g} s",
                                 TIMEOUT)

    def release_turn(self) -> None:
        """Let the other processes' writers have their turn (this process's stay queued
        on the lock)."""
        if self.turn:
            self.turn = False
            import fcntl
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            except OSError:
                pass

    def release(self) -> None:
        try:
            self.release_turn()
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            conn, self.conn = self.conn, None
        if conn is not None:
            _close(conn)


def _waits():
    """The polls of a lock that is taken: each ``next`` sleeps 0.05 ms, then twice as
    long each time up to 1 ms, and gives None once ``BUSY_S`` has passed."""
    pause, deadline = 0.00005, time.monotonic() + BUSY_S
    while time.monotonic() <= deadline:
        time.sleep(pause)
        yield pause
        pause = min(pause * 2, 0.001)


def _busy_retry(fn, *args):
    """``fn(*args)`` again while SQLite answers busy (its lock is another connection's:
    a COMMIT still ending, or a program that does not use the gate), polled as
    ``_waits`` says.  ``fn`` runs a statement that begins a transaction or is one:
    busy, it has changed nothing."""
    waits = None
    while True:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith(("database is locked", "database is busy")):
                raise
            waits = waits or _waits()
            if next(waits, None) is None:
                raise


class _Generation:
    """``dot_generation`` for every process on one database: 8 bytes in a file beside
    it (``<db>-gen``) that each process maps (``MAP_SHARED``, kept across a fork), so
    reading it is a memory read -- no statement, no system call, no GIL handed over.
    A write that may have changed an object in a dot-folder stores a fresh random
    value there after its commit (random, not an increment: writers of several
    processes need no lock for it, and any change of the value is what readers look
    for).  Where the file cannot be made or mapped (a read-only folder) there is no
    generation and readers read the database as before."""

    __slots__ = ("map",)

    def __init__(self, path: str):
        self.map = None
        try:
            fd = os.open(path + "-gen", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)         # a file of 8 bytes or more keeps its value
            import mmap
            self.map = mmap.mmap(fd, 8)
        except (OSError, ValueError):
            self.map = None
        finally:
            os.close(fd)

    def read(self) -> int | None:
        m = self.map
        return None if m is None else int.from_bytes(m[:8], "little")

    def bump(self) -> None:
        m = self.map
        if m is not None:
            m[:8] = os.urandom(8)


BUSY_S = 30.0
# False: no gate and no group commit, SQLite's busy handler alone (for
# bench/store_writes.py, which measures what they buy)
USE_WRITE_GATE = True
# what a queued write is (``_write_fn``): a function of its own statements (0), one
# statement, one statement that returns only numbers SQLite computes
STATEMENT, NUMBERS = 1, 2


class _NoGate:
    pid = None

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


_NO_GATE = _NoGate()
_GATE_LOCK = allocate_lock()


class _Dialect(Dialect):
    COLS = _COLS
    compiler = COMPILER

    def row_doc(self, row) -> dict:
        return _row_doc(row)

    def row_obj(self, row) -> WnObj:
        return _row_doc(row, WnObj)


DIALECT = _Dialect()


class _View(SQLView):
    """The writes of ``rules.TreeView`` on this layout: the tree's fields as columns,
    the rest as JSON text in ``meta``, content in its own table."""

    __slots__ = ()
    d = DIALECT

    def get_content(self, oid: str) -> bytes:
        row = self.conn.execute("SELECT data FROM content WHERE id = ?", (oid,)).fetchone()
        return bytes(row[0]) if row else b""

    def clear(self, ph: str, now: int) -> None:
        row = self.conn.execute("SELECT expi FROM obj WHERE ph = ?", (ph,)).fetchone()
        if row is None:
            return
        if row[0] is None or row[0] >= now:
            raise C.exists(ph)
        self.remove_path(ph)

    def insert(self, doc: dict, data: bytes | None) -> None:
        conn = self.conn
        if data is not None:
            conn.execute("INSERT OR REPLACE INTO content (id, data) VALUES (?, ?)",
                         (doc["id"], data))
        conn.execute("INSERT INTO obj (id, pid, nm, ph, race, d0, d1, ct, lm, expi, meta) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (doc["id"], doc["pid"], doc["nm"], doc["ph"], doc["race"], doc.get("d0"),
                      doc.get("d1"), doc["ct"], doc["lm"], doc.get("expi"), _meta_json(doc)))

    def save(self, doc: dict) -> None:
        self.conn.execute("UPDATE obj SET lm = ?, expi = ?, meta = ? WHERE id = ?",
                          (doc["lm"], doc.get("expi"), _meta_json(doc), doc["id"]))

    def set_content(self, doc: dict, data: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO content (id, data) VALUES (?, ?)",
                          (doc["id"], data))
        self.save(doc)

    def remove_tree(self, doc: dict) -> int:
        return self.remove_path(doc["ph"])

    def remove_path(self, ph: str) -> int:
        """Delete the object at ``ph`` and its subtree, content included."""
        lo, hi = subtree_range(ph)
        where = "(ph = ? OR (ph >= ? AND ph < ?))"
        self.conn.execute(f"DELETE FROM content WHERE id IN (SELECT id FROM obj WHERE {where})",
                          (ph, lo, hi))
        return self.conn.execute(f"DELETE FROM obj WHERE {where}", (ph, lo, hi)).rowcount

    def move_tree(self, src: dict, moved: dict) -> None:
        # descendants: ph prefix swapped, d0/d1 recomputed, all in SQL
        conn, old_ph, dest = self.conn, src["ph"], moved["ph"]
        lo, hi = subtree_range(old_ph)
        d0, d1 = paths.d0_d1(dest)
        cut = len(old_ph) + 1          # substr() index of the '/' after old_ph
        if d1 is not None:
            conn.execute("UPDATE obj SET ph = ? || substr(ph, ?), d0 = ?, d1 = ? "
                         "WHERE ph >= ? AND ph < ?", (dest, cut, d0, d1, lo, hi))
        else:   # dest is /x: d1 of a descendant is its first segment below dest
            conn.execute(
                "UPDATE obj SET ph = ? || substr(ph, ?), d0 = ?, "
                "d1 = substr(substr(ph, ?), 1, instr(substr(ph, ?) || '/', '/') - 1) "
                "WHERE ph >= ? AND ph < ?",
                (dest, cut, d0, cut + 1, cut + 1, lo, hi))
        conn.execute("UPDATE obj SET pid = ?, nm = ?, ph = ?, d0 = ?, d1 = ?, lm = ?, "
                     "meta = ? WHERE id = ?",
                     (moved["pid"], moved["nm"], dest, moved.get("d0"), moved.get("d1"),
                      moved["lm"], _meta_json(moved), moved["id"]))


class SQLiteStore(SQLStore):
    dialect = DIALECT

    def __init__(self, url: str):
        from . import url_path
        self.url = url
        self.path = url_path(url)
        self._pool = _Pool(self._connect, POOL_SIZE)
        self._wgate: _WriteGate | None = None
        self._queue: list = []              # writes waiting for a group commit
        self._queue_lock = allocate_lock()
        self._leading = False               # a writer is running a batch
        self._last_purge = 0
        self._gen: _Generation | None = None
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        except OSError as exc:
            raise StoreError("e.io.store.open", f"cannot create {os.path.dirname(self.path)}: "
                             f"{exc.strerror}", INTERNAL) from None
        pool = self._pool
        conn = pool.get()
        try:
            self._init_schema(conn)
        except sqlite3.Error as exc:
            raise _store_error(exc) from None
        finally:
            pool.put(conn)

    # ---- connections ---------------------------------------------------------------------
    def _pool_now(self) -> _Pool:
        """This process's pool (forked: a new one; the parent's handles are never
        touched, never freed)."""
        pool = self._pool
        if pool.pid != _PID[0]:
            with _GATE_LOCK:
                pool = self._pool
                if pool.pid != _PID[0]:
                    _FORKED.append(pool)
                    pool = self._pool = _Pool(self._connect, POOL_SIZE)
        return pool

    def _connections(self) -> list:
        """This process's connections (for tests and diagnostics): the pool's, and the
        writers' gate's (made here if no write made it yet)."""
        conns = [c for c in self._pool_now().all if c is not None]
        gate = self._gate
        if gate is not _NO_GATE:
            with gate.lock:
                conns.append(gate.connection())
        return conns

    def _connect(self, busy_ms: int = 30000) -> sqlite3.Connection:
        """A new connection; ``busy_ms``: its busy timeout once it is set up.  The
        setup itself reads the schema, which another connection may lock for a while:
        it always waits that out (30 s; the writers' leader, whose own timeout is 0,
        failed at once with "database is locked")."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False, cached_statements=256)
            # FULL: every commit syncs the WAL before it returns, so a write that has
            # been acknowledged (a paid order, to WeChat) survives a power loss
            conn.execute("PRAGMA synchronous = FULL")
            # no memory map: the file's pages read into a map count in the process's
            # resident memory (once per connection mapping them); reads go through
            # the OS page cache instead, which is as fast for a hot working set.  A
            # bounded page cache per connection (2 MiB), a few connections per process
            conn.execute("PRAGMA mmap_size = 0")
            conn.execute("PRAGMA cache_size = -2048")
            conn.create_function("regexp", 2, sqlite_regexp, deterministic=True)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        except sqlite3.Error as exc:
            raise StoreError("e.io.store.open", f"cannot open {self.path}: {exc}",
                             INTERNAL) from None
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        # 16 KiB pages (SQLite's default is 4): an order's row (2-4 KB of JSON) fits in
        # its leaf, where a 4 KiB page keeps only ~1 KB of a WITHOUT ROWID row and
        # chains the rest to an overflow page -- each update then rewrote the leaf,
        # the overflow page and the free list's pages, all in the WAL and under the
        # sync.  Only a new database takes it (an existing one keeps its size).
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        for attempt in range(100):
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise StoreError("e.io.store.open", f"{self.path}: WAL mode refused ({mode})",
                             INTERNAL)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError("e.io.store.open", f"{self.path}: schema version {version} is "
                             f"newer than this wnshell ({SCHEMA_VERSION})", INTERNAL)
        if version == SCHEMA_VERSION:
            return          # schema and "/" were made in one transaction by an earlier open
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            if conn.execute("SELECT 1 FROM obj WHERE ph = '/'").fetchone() is None:
                now = C.now_ms()
                conn.execute("INSERT INTO obj (id, pid, nm, ph, race, ct, lm, meta) "
                             "VALUES (?, '', '', '/', 'DIR', ?, ?, '{}')",
                             (paths.new_id(), now, now))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _tx(self, write: bool) -> _Tx:
        """``with self._tx(write) as conn``: one transaction; sqlite3 errors become
        StoreError."""
        return _Tx(self, write)

    def _read_one(self, sql: str, params, _all: bool = False) -> Any:
        """A single autocommit SELECT (itself one transaction): its first row (all its
        rows with ``_all``)."""
        pool = self._pool
        if pool.pid != _PID[0]:
            pool = self._pool_now()
        conn = pool.get()
        try:
            cur = conn.execute(sql, params)
            return cur.fetchall() if _all else cur.fetchone()
        except (sqlite3.Error,) + _VALUE_ERRORS as exc:
            raise _store_error(exc) from None
        finally:
            pool.put(conn)

    @property
    def _gate(self) -> _WriteGate:
        if not USE_WRITE_GATE:
            return _NO_GATE
        gate = self._wgate
        if gate is None or gate.pid != _PID[0]:
            # first write, or forked: the parent's locks may be held for ever, its
            # queue holds the parent's statements, and its flock'd file description
            # is shared with the parent
            with _GATE_LOCK:
                gate = self._wgate
                if gate is None or gate.pid != _PID[0]:
                    if gate is not None:
                        self._queue, self._queue_lock = [], allocate_lock()
                        self._leading = False
                        _FORKED.append(gate)    # the parent's connection: never freed
                    gate = self._wgate = _WriteGate(self.path, self._connect)
        return gate

    def _write(self, sql: str, params: list, numbers: bool = False) -> list:
        """One write statement, committed (fully synced) when this returns; its
        RETURNING rows (see ``_write_fn``).  ``numbers``: it returns only numbers
        SQLite computes (no text to decode), so nothing can fail after its changes."""
        return self._write_fn(lambda conn: conn.execute(sql, params).fetchall(),
                              NUMBERS if numbers else STATEMENT)

    def _write_fn(self, fn, single: int = 0):
        """``fn(conn)``'s result, its writes committed (fully synced) when this returns.

        Group commit: ``fn`` joins this process's queue.  One writer at a time leads:
        it takes everything queued, runs it in one transaction under the gate, in
        queue order, each function in its own SAVEPOINT (each atomic on its own: one
        that raises is undone alone), commits them all with one sync, wakes their
        writers, and hands the lead to the first writer queued meanwhile.  A writer
        that is not leading sleeps on its own lock until its function is done (or it
        is handed the lead), so finished writers never queue for the gate.  Under load
        one fsync serves many writes instead of one (the sync, not the statements, is
        what a write costs here); alone, a write is its own batch."""
        if not USE_WRITE_GATE:          # each write alone, SQLite's lock alone
            with self._tx(True) as conn:
                return fn(conn)
        gate = self._gate
        wake = allocate_lock()
        wake.acquire()
        # fn, what it is (0, STATEMENT, NUMBERS), result, error, done, wake, told to lead
        item = [fn, single, None, None, False, wake, False]
        with self._queue_lock:
            self._queue.append(item)
            lead = not self._leading
            if lead:
                self._leading = True
        if not lead:
            wake.acquire()              # released when done, or when handed the lead
            lead = item[6] and not item[4]
        if lead:
            self._lead(gate, item)
        if item[3] is not None:
            raise item[3]
        return item[2]

    def _lead(self, gate, me: list) -> None:
        """Run one batch (``me`` is in it), then wake its writers and pass the lead on."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        conn = None
        interrupted = None
        try:
            gate.acquire()
            try:
                conn = gate.connection()
                self._run_batch(conn, batch, gate)
            finally:
                gate.release()
        except BaseException as exc:
            # never leave a queued writer without an answer: whatever was not
            # committed is an error for its caller
            err = exc if isinstance(exc, StoreError) else StoreError(
                "e.io.store.failed", f"the write was interrupted ({type(exc).__name__})",
                INTERNAL)
            for it in batch:
                if not it[4]:
                    it[2], it[3], it[4] = None, err, True
            try:
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001
                pass
            if not isinstance(exc, StoreError):
                interrupted = exc       # e.g. KeyboardInterrupt, after answering the rest
        finally:
            with self._queue_lock:
                nxt = self._queue[0] if self._queue else None
                if nxt is None:
                    self._leading = False
                else:
                    nxt[6] = True
            for it in batch:
                if it is not me:
                    it[5].release()
            if nxt is not None:
                nxt[5].release()
        if interrupted is not None:
            raise interrupted

    @staticmethod
    def _run_batch(conn, batch: list, gate) -> None:
        """Run queued write functions in one transaction (under the gate, whose turn
        goes to the other processes before the COMMIT)."""
        if len(batch) == 1:
            # alone: one statement is its own (autocommit) transaction; a function
            # gets one without a savepoint
            it = batch[0]
            try:
                if it[1]:
                    it[2] = _busy_retry(it[0], conn)
                else:
                    _busy_retry(conn.execute, "BEGIN IMMEDIATE")
                    try:
                        it[2] = it[0](conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            _rollback(conn)
                        raise
            except (sqlite3.Error,) + _VALUE_ERRORS as exc:
                it[2], it[3] = None, _store_error(exc)
            except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
                it[2], it[3] = None, exc
            it[4] = True
            return
        todo = batch
        while todo:
            try:
                _busy_retry(conn.execute, "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                for it in todo:
                    it[3] = _store_error(exc)
                break
            redo = None
            for i, it in enumerate(todo):
                # a statement that can only fail in SQLite needs no savepoint: SQLite
                # undoes a failed statement alone, or else the whole transaction (not
                # in_transaction: the redo below).  One whose RETURNING text is decoded
                # after its changes, or a function of several, gets one.  Two statements
                # fewer each: a shorter hold of the gate, where each statement gives
                # the GIL away and may wait for it to come back
                sp = it[1] != NUMBERS
                try:
                    if sp:
                        conn.execute("SAVEPOINT w")
                    it[2] = it[0](conn)
                    if sp:
                        conn.execute("RELEASE w")
                except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
                    if sp and conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK TO w")
                            conn.execute("RELEASE w")
                        except sqlite3.Error:
                            pass
                    it[2] = None
                    it[3] = (_store_error(exc) if isinstance(exc, (sqlite3.Error,) + _VALUE_ERRORS)
                             else exc)
                    if not conn.in_transaction:
                        # an error that ended the whole transaction (I/O, disk full):
                        # the functions before this one are undone too -- run them
                        # again in a new one
                        redo = [x for x in todo[:i] if x[3] is None] + todo[i + 1:]
                        break
            if redo is not None:
                todo = redo
                continue
            try:
                gate.release_turn()
                _busy_retry(conn.execute, "COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                err = _store_error(exc)
                for it in todo:
                    if it[3] is None:
                        it[2], it[3] = None, err
            break
        for it in batch:
            it[4] = True

    def close(self) -> None:
        self._pool_now().close()
        gate = self._wgate
        if gate is not None and gate.pid == _PID[0]:
            gate.close()

    # ---- SQLStore's hooks ---------------------------------------------------------------------
    def _read_all(self, sql: str, params) -> list:
        return self._read_one(sql, params, True)

    def _run_read(self, fn):
        with self._tx(False) as conn:
            return fn(_View(conn))

    def _run_write(self, fn):
        # a transaction may change anything (create, move, delete, the purge): the
        # dot-folder generation moves on after each, whether it did or not
        try:
            return self._write_fn(lambda conn: fn(_View(conn)))
        finally:
            self._generation().bump()

    def _generation(self) -> _Generation:
        gen = self._gen
        if gen is None:
            gen = self._gen = _Generation(self.path)
        return gen

    def _wrote(self, ph) -> None:
        """After a one-statement write to the object at ``ph`` (or 1/0: whether its
        path has a dot folder, as ``_IN_DOT`` says)."""
        below_dot = ph == 1 if type(ph) is int else paths.in_dot_folder(ph)
        if below_dot:
            self._generation().bump()

    def dot_generation(self) -> int | None:
        return (self._gen or self._generation()).read()

    def cas_applied(self, oid: str, expect: Mapping[str, Any],
                    changes: Mapping[str, Any]) -> bool:
        """``cas`` returning only whether it applied: the one statement returns no
        object (no JSON of the whole changed object to decode: the paid transition
        needs none); outside the dot folders it returns nothing at all (``rowcount``),
        else whether the path is below one."""
        return self._cas_any(oid, expect, changes, returning=_APPLIED_COLS)[1] is not None

    def _update_fast(self, oid: str, texts: dict, want: dict | None, changes, now: int,
                     returning: str = _COLS):
        """set_meta/cas as one ``UPDATE ... RETURNING`` (no read first, the write lock
        held for that statement only); ``returning`` has ``ph`` fourth."""
        params: list = [now]
        # clearing ``expi`` (a column; a paid order is kept for ever) is one more
        # assignment of the statement; setting it has rules, the transaction path
        clear_expi = "expi" in texts and texts["expi"] is None
        if clear_expi:
            texts = {k: v for k, v in texts.items() if k != "expi"}
        expr = COMPILER.changes(texts, params)
        if expr is None:
            return False, None
        if clear_expi:
            expr += ", expi = NULL"
        params += [oid, now]
        conds = ""
        if want:
            conds = COMPILER.expect(want, params)
            if conds is None:
                return False, None
        sql = (f"UPDATE obj SET lm = max(lm, ?), meta = {expr} WHERE id = ? "
               f"AND (expi IS NULL OR expi >= ?){conds}")
        try:
            if returning is _APPLIED_COLS:
                # first without RETURNING, for an object outside the dot folders (an
                # order): the statement ends in one step of SQLite, its count says
                # whether it applied -- one hand-off of the GIL fewer while the gate
                # is held.  Not applied (an expectation, a dot path): the statement
                # below gives the answer
                done = self._write_fn(lambda conn: conn.execute(
                    f"{sql} AND NOT {_IN_DOT}", params).rowcount, NUMBERS)
                if done == 1:
                    return True, (None, None, None, 0)
            rows = self._write(f"{sql} RETURNING {returning}", params,
                               numbers=returning is _APPLIED_COLS)
        except StoreError as exc:
            if exc.key != "e.io.store.corrupt":
                raise
            return False, None      # the transaction path names the broken row
        if rows:
            self._wrote(rows[0][3])
        return True, (rows[0] if rows else None)

    def _incr_fast(self, oid: str, key: str, delta: int, now: int):
        """One statement; a value that is not an integer, or would leave the 64-bit
        range, matches no row and takes the transaction for its error."""
        if not COMPILER.plain(key):
            return False, None
        p = json_path(key)
        lo = -C.INT64 - min(delta, 0)
        hi = C.INT64 - 1 - max(delta, 0)
        try:
            rows = self._write(
                "UPDATE obj SET lm = max(lm, ?), meta = json_set(meta, ?, "
                "coalesce(json_extract(meta, ?), 0) + ?) WHERE id = ? "
                "AND (expi IS NULL OR expi >= ?) "
                "AND coalesce(json_type(meta, ?), 'null') IN ('integer', 'null') "
                "AND coalesce(json_extract(meta, ?), 0) BETWEEN ? AND ? "
                "RETURNING json_extract(meta, ?), " + _IN_DOT,
                [now, p, p, delta, oid, now, p, p, lo, hi, p], numbers=True)
        except StoreError as exc:
            if exc.key != "e.io.store.corrupt":
                raise
            return False, None      # the transaction path names the broken row
        if not rows:
            return False, None
        self._wrote(rows[0][1])
        return True, rows[0][0]

    # ---- housekeeping ----------------------------------------------------------------------------------
    @staticmethod
    def _purge(v: "_View", now: int) -> int:
        n = 0
        rows = v.conn.execute("SELECT ph FROM obj WHERE expi < ? ORDER BY ph", (now,)).fetchall()
        for (ph,) in rows:
            n += v.remove_path(ph)       # 0 when it went with an expired DIR above
        return n

