"""SQLite's write path: single-statement cas/set_meta/incr sharing group commits.

Many threads write at once, so their statements are run in shared transactions; each
must still be atomic on its own: one that fails (a row edited by hand into bad JSON)
changes nothing and leaves every other write in its batch committed."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from objstore import open_store
from objstore.errors import WnError
from tests.objstore._worker import spawn


def test_a_failing_write_does_not_undo_the_others_in_its_batch(tmp_path):
    path = tmp_path / "store.db"
    s = open_store(f"sqlite://{path}")
    good = [s.create(f"/o/{i}", "FILE", {"or_status": 1, "n": 0}, parents=True)
            for i in range(64)]
    bad = s.create("/o/bad", "FILE", {"or_status": 1})
    with sqlite3.connect(path) as c:
        c.execute("UPDATE obj SET meta = '{broken' WHERE id = ?", (bad["id"],))
    errors, wins = [], []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def run(k):
        start.wait()
        for j, o in enumerate(good[k::16]):
            if j % 2 == 0:
                try:
                    s.cas(bad["id"], {"or_status": 1}, {"or_status": 2})
                except WnError as e:
                    with lock:
                        errors.append(e)
            s.incr(o["id"], "n")
            won = s.cas(o["id"], {"or_status": 1}, {"or_status": 2, "paid": k})
            with lock:
                wins.append(won is not None)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert wins == [True] * 64
    assert errors and all(e.key == "e.io.store.corrupt" and bad["id"] in e.reason
                          for e in errors)
    s.close()
    s = open_store(f"sqlite://{path}")       # what is on disk, from a fresh connection
    for o in good:
        got = s.get(o["id"])
        assert got["or_status"] == 2 and got["n"] == 1 and "paid" in got
    s.close()


def test_concurrent_cas_on_one_object_one_winner_per_value(tmp_path):
    """A chain of transitions 0 -> 1 -> ... raced by threads: every step is taken
    exactly once, even when the racing statements share one transaction."""
    s = open_store(f"sqlite://{tmp_path}/store.db")
    f = s.create("/c", "FILE", {"v": 0})
    taken: list[int] = []
    lock = threading.Lock()

    def run():
        for v in range(200):
            if s.cas(f["id"], {"v": v}, {"v": v + 1}) is not None:
                with lock:
                    taken.append(v)
    ts = [threading.Thread(target=run) for _ in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(taken) == list(range(200)) and s.get(f["id"])["v"] == 200
    s.close()


@pytest.mark.parametrize("gate", [True, False])
def test_writes_with_and_without_the_gate_agree(tmp_path, monkeypatch, gate):
    import objstore.sqlite_backend as sb
    monkeypatch.setattr(sb, "USE_WRITE_GATE", gate)
    s = open_store(f"sqlite://{tmp_path}/store.db")
    f = s.create("/x", "FILE", {"a": 1})
    assert s.incr(f["id"], "n", 5) == 5
    assert s.cas(f["id"], {"a": 1}, {"a": None, "b": [1]})["b"] == [1]
    assert s.set_meta(f["id"], {"c": "z"})["c"] == "z"
    assert {k: s.get(f["id"]).get(k) for k in "abcn"} == {"a": None, "b": [1], "c": "z", "n": 5}
    s.close()


def test_a_cas_that_clears_expi_is_one_statement(tmp_path):
    """The paid transition clears ``expi`` (a paid order is kept): that is one more
    assignment of the single UPDATE, not the read-modify-write transaction."""
    s = open_store(f"sqlite://{tmp_path / 'store.db'}")
    o = s.create("/o/1", "FILE", {"or_status": 1, "expi": 2 ** 60}, parents=True)
    statements = []
    for c in s._connections():
        c.set_trace_callback(statements.append)
    got = s.cas(o["id"], {"or_status": 1}, {"or_status": 2, "expi": None})
    assert got["or_status"] == 2 and "expi" not in got
    writes = [q for q in statements if not q.startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("UPDATE obj SET"), statements
    assert "expi" not in s.get(o["id"])
    # an expired object is gone: not revived by clearing its expi
    gone = s.create("/o/2", "FILE", {"or_status": 1, "expi": 1})
    with pytest.raises(WnError, match="noexists"):
        s.cas(gone["id"], {"or_status": 1}, {"or_status": 2, "expi": None})
    s.close()


def test_paid_transitions_share_a_transaction_without_savepoints(tmp_path):
    """cas_applied and incr return only numbers SQLite computes, so nothing can fail
    after their changes: in a shared transaction they run without a savepoint each
    (two statements fewer while the write gate is held).  One that fails -- a row
    edited by hand into bad JSON -- is undone alone by SQLite; the rest commit."""
    path = tmp_path / "store.db"
    s = open_store(f"sqlite://{path}")
    good = [s.create(f"/o/{i}", "FILE", {"or_status": 1, "n": 0}, parents=True)
            for i in range(96)]
    bad = s.create("/o/bad", "FILE", {"or_status": 1})
    with sqlite3.connect(path) as c:
        c.execute("UPDATE obj SET meta = '{broken' WHERE id = ?", (bad["id"],))
    statements, errors, applied = [], [], []
    for c in s._connections():
        c.set_trace_callback(statements.append)
    lock = threading.Lock()
    start = threading.Barrier(12)

    def run(k):
        start.wait()
        for j, o in enumerate(good[k::12]):
            if j % 3 == 0:
                try:
                    s.cas_applied(bad["id"], {"or_status": 1}, {"or_status": 2})
                except WnError as e:
                    with lock:
                        errors.append(e.key)
            s.incr(o["id"], "n")
            ok = s.cas_applied(o["id"], {"or_status": 1}, {"or_status": 2, "expi": None})
            with lock:
                applied.append(ok)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert applied == [True] * 96
    assert errors and set(errors) == {"e.io.store.corrupt"}
    assert any(q.startswith("BEGIN") for q in statements), "no write shared a transaction"
    # the only savepoints: the transaction path each failed statement took for its error
    assert len([q for q in statements if q.startswith("SAVEPOINT")]) <= len(errors)
    s.close()
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT meta FROM obj WHERE id = ?", (bad["id"],)).fetchone() \
            == ("{broken",)
    s = open_store(f"sqlite://{path}")
    assert all(s.get(o["id"])["or_status"] == 2 and s.get(o["id"])["n"] == 1 for o in good)
    s.close()


def test_cas_applied_outside_dot_folders_is_one_statement_without_returning(tmp_path):
    """The paid transition's statement returns nothing (its row count answers), so
    SQLite ends it in one step; below a dot folder, and when an expectation fails,
    the RETURNING statement answers (and moves the dot-folder generation)."""
    s = open_store(f"sqlite://{tmp_path / 'store.db'}")
    order = s.create("/home/demo/orders/o1", "FILE", {"or_status": 1}, parents=True)
    conf = s.create("/home/demo/.weixin/x/wxconf", "FILE", {"v": 1}, parents=True)
    statements = []
    for c in s._connections():
        c.set_trace_callback(statements.append)
    assert s.cas_applied(order["id"], {"or_status": 1}, {"or_status": 2}) is True
    writes = [q for q in statements if q.startswith("UPDATE")]
    assert len(writes) == 1 and "RETURNING" not in writes[0], statements
    assert s.get(order["id"])["or_status"] == 2
    statements.clear()
    assert s.cas_applied(order["id"], {"or_status": 1}, {"or_status": 3}) is False
    assert s.get(order["id"])["or_status"] == 2
    gen = s.dot_generation()
    assert s.cas_applied(conf["id"], {"v": 1}, {"v": 2}) is True
    assert s.dot_generation() != gen and s.get(conf["id"])["v"] == 2
    with pytest.raises(WnError, match="noexists"):
        s.cas_applied("a" * 26, {"v": 1}, {"v": 2})
    s.close()


def test_a_new_store_keeps_an_order_sized_row_in_its_leaf(tmp_path, monkeypatch):
    """16 KiB pages: an order's few KB of JSON stay in the row's leaf (a 4 KiB page of a
    WITHOUT ROWID table keeps about 1 KB and chains the rest to overflow pages, each
    rewritten, with the free list, by every update).  A store made with another page
    size keeps it, and works as before."""
    import objstore.sqlite_backend as sb
    order = {"or_status": 1, "pay_rexml": "<xml>" + "x" * 1800 + "</xml>",
             "pay_send": {f"k{i}": "v" * 30 for i in range(20)}}
    s = open_store(f"sqlite://{tmp_path / 'new.db'}")
    o = s.create("/home/demo/orders/o1", "FILE", order, parents=True)
    conn = s._connections()[0]
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 16384
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    for n in range(20):        # updates rewrite the row in place: no page is added
        assert s.cas_applied(o["id"], {"or_status": 1}, {"or_status": 1, "n": n})
    assert conn.execute("PRAGMA page_count").fetchone()[0] == pages
    s.close()

    monkeypatch.setattr(sb, "PAGE_SIZE", 4096)
    old = open_store(f"sqlite://{tmp_path / 'old.db'}")
    o = old.create("/o/1", "FILE", order, parents=True)
    old.close()
    monkeypatch.undo()
    again = open_store(f"sqlite://{tmp_path / 'old.db'}")
    assert again._connections()[0].execute("PRAGMA page_size").fetchone()[0] == 4096
    assert again.cas_applied(o["id"], {"or_status": 1}, {"or_status": 2})
    assert again.get(o["id"])["or_status"] == 2
    again.close()


def test_processes_of_many_writers_lose_no_increment(tmp_path):
    """Two processes, each with 16 threads incrementing one counter: their batches
    alternate, each process handing its turn over before its COMMIT ends, the next
    writer polling SQLite's lock until it does -- every increment is counted once."""
    url = f"sqlite://{tmp_path / 'store.db'}"
    s = open_store(url)
    o = s.create("/seq", "FILE", {"n": 0})
    procs = [spawn("threads", url, o["id"], "16", "60") for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    assert s.get(o["id"])["n"] == 2 * 16 * 60
    s.close()


def test_a_write_waits_for_a_lock_held_without_the_gate(tmp_path, monkeypatch):
    """A program that does not use the gate holds SQLite's write lock: the writers'
    connection has no busy timeout, so it polls -- the writes wait, and commit as soon
    as the lock is free; a lock held past BUSY_S is e.io.store.busy, nothing changed."""
    import time
    import objstore.sqlite_backend as sb
    path = tmp_path / "store.db"
    s = open_store(f"sqlite://{path}")
    objs = [s.create(f"/o/{i}", "FILE", {"or_status": 1, "n": 0}, parents=True)
            for i in range(8)]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done = []

    def write(o):
        s.incr(o["id"], "n")
        done.append((s.cas_applied(o["id"], {"or_status": 1}, {"or_status": 2}),
                     time.monotonic()))
    ts = [threading.Thread(target=write, args=(o,)) for o in objs]
    held = time.monotonic()
    for t in ts:
        t.start()
    time.sleep(0.4)
    assert done == []                       # waiting, not failed
    other.execute("COMMIT")
    for t in ts:
        t.join()
    assert [ok for ok, _ in done] == [True] * 8
    assert all(at - held >= 0.4 for _, at in done)
    assert all(s.get(o["id"])["or_status"] == 2 and s.get(o["id"])["n"] == 1
               for o in objs)

    monkeypatch.setattr(sb, "BUSY_S", 0.3)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WnError) as e:
            s.cas_applied(objs[0]["id"], {"or_status": 2}, {"or_status": 3})
        assert e.value.key == "e.io.store.busy"
    finally:
        other.execute("ROLLBACK")
    assert s.get(objs[0]["id"])["or_status"] == 2
    other.close()
    s.close()


def test_the_first_write_of_a_store_handle_waits_for_a_reader_lockout(tmp_path):
    """The writers' connection is made at a handle's first write; its setup reads the
    schema, which another program can lock out for a while (here: exclusive locking
    mode).  That setup must wait like any other statement -- it failed at once with
    e.io.store.open "database is locked" (its busy timeout was already 0), seen as one
    of 50 concurrent duplicate notifications failing."""
    import time
    path = tmp_path / "store.db"
    first = open_store(f"sqlite://{path}")
    o = first.create("/o/0", "FILE", {"n": 0}, parents=True)
    first.close()
    s = open_store(f"sqlite://{path}")          # opened, no write yet
    s._pool_now().close()       # no connection open: another program can lock it all
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("COMMIT")                     # exclusive mode keeps the lock

    timer = threading.Timer(0.4, other.close)    # lets go (WAL: closing does)
    timer.start()
    t0 = time.monotonic()
    try:
        assert s.incr(o["id"], "n") == 1        # the handle's first write
    finally:
        timer.join()
    assert time.monotonic() - t0 >= 0.3          # it waited for the lock
    assert s.get(o["id"])["n"] == 1
    s.close()
