"""PostgreSQL-specific behaviour, beyond the shared conformance suite: several processes
starting on one empty database, concurrent parent creation, several purgers at once,
fork safety, deletes racing creates, sort order equal to the reference, error mapping.

Runs against the throwaway server of pg_backend.py (skipped without PostgreSQL, failed
under CI=true).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

if os.environ.get("CI", "").lower() == "true":
    import psycopg                      # under CI a missing driver is a failure
else:
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

import objstore
from objstore import common as C
from objstore.errors import StoreError
from tests.objstore import pg_backend
from tests.objstore.pg_backend import pg_server  # noqa: F401  (session fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def pg_url(pg_server):  # noqa: F811
    return pg_server.fresh_schema_url()


@pytest.fixture
def opened():
    stores = []

    def open_(url):
        s = objstore.open_store(url)
        stores.append(s)
        return s
    yield open_
    for s in stores:
        s.close()


def err(fn, *a, **kw) -> StoreError:
    with pytest.raises(StoreError) as ei:
        fn(*a, **kw)
    return ei.value


def test_many_processes_start_on_an_empty_database_at_once(pg_url, opened):
    code = ("import sys, objstore; s = objstore.open_store(sys.argv[1]); "
            "o = s.create('/started/' + sys.argv[2], parents=True); "
            "print(s.fetch('/').id)")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url, f"p{i}"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    roots = set()
    for p in procs:
        out, errs = p.communicate(timeout=120)
        assert p.returncode == 0, errs
        roots.add(out.strip())
    store = opened(pg_url)
    assert roots == {store.fetch("/").id}            # one "/" for everyone
    assert store.count({"ph": "/"}) == 1
    assert [c.nm for c in store.children(store.fetch("/started").id)] == [
        f"p{i}" for i in range(6)]


def test_threads_creating_the_same_missing_parents(pg_url, opened):
    stores = [opened(pg_url) for _ in range(4)]       # separate pools, like workers
    gate = threading.Barrier(8)
    errors = []

    def run(i):
        gate.wait()
        try:
            stores[i % 4].create(f"/a/b/c/f{i}", parents=True)
        except Exception as exc:                       # noqa: BLE001 - collected
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = stores[0]
    assert s.count({"ph": "/a/b/c"}) == 1
    assert [c.nm for c in s.children(s.fetch("/a/b/c").id)] == [f"f{i}" for i in range(8)]


def test_several_purgers_at_once_delete_each_expired_object_once(pg_url, opened):
    s = opened(pg_url)
    past = C.now_ms() - 10
    for i in range(60):
        s.create(f"/tmp/e{i}", meta={"expi": past}, parents=True)
    s.create("/tmp/edir", "DIR", meta={"expi": past})
    # children under an expired DIR (made before it expired) go with it, counted once
    d2 = s.create("/tmp/edir2", "DIR")
    for i in range(10):
        s.create(f"/tmp/edir2/x{i}")
    s.set_meta(d2.id, {"expi": past})
    keep = [s.create(f"/tmp/k{i}").id for i in range(5)]
    with psycopg.connect(pg_url) as conn:   # (a create may already have purged a few)
        expected = conn.execute(
            "SELECT count(*) FROM wn_obj o WHERE EXISTS (SELECT 1 FROM wn_obj e WHERE "
            "e.expi < %s AND (o.ph = e.ph OR o.ph LIKE e.ph || '/%%'))", (C.now_ms(),)
        ).fetchone()[0]
    assert expected >= 12

    purgers = [opened(pg_url) for _ in range(4)]
    counts, errors = [], []
    gate = threading.Barrier(4)

    def run(store):
        gate.wait()
        try:
            counts.append(store.purge_expired())
        except Exception as exc:                       # noqa: BLE001 - collected
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in purgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(counts) == expected
    with psycopg.connect(pg_url) as conn:
        left = conn.execute("SELECT count(*) FROM wn_obj WHERE ph LIKE '/tmp/%'").fetchone()[0]
    assert left == len(keep)
    assert all(s.get(k) is not None for k in keep)


def test_sort_order_is_the_reference_order(pg_url, opened):
    pg = opened(pg_url)
    mem = opened("memory://")
    values = [3, -1, 2.5, 0, True, False, "b", "B", "a", "é", "10", "", None, 7, 2.5, "zz",
              10 ** 15]
    for s in (pg, mem):
        s.create("/s", "DIR")
        for i, v in enumerate(values):
            s.create(f"/s/o{i:02d}", meta={} if v is None else {"v": v, "w": i % 3})
    for sort in ({"v": 1}, {"v": -1}, {"w": 1, "v": -1}, {"w": -1, "nm": 1}):
        want = [o.nm for o in mem.query({"d0": "s", "race": "FILE"}, sort=sort)]
        got = [o.nm for o in pg.query({"d0": "s", "race": "FILE"}, sort=sort)]
        assert got == want, sort
    window = [o.nm for o in pg.query({"d0": "s", "race": "FILE"}, sort={"v": 1},
                                     skip=3, limit=4)]
    assert window == [o.nm for o in mem.query({"d0": "s", "race": "FILE"}, sort={"v": 1},
                                              skip=3, limit=4)]


def test_a_forked_child_uses_its_own_connections(pg_url, opened):
    s = opened(pg_url)
    o = s.create("/f", meta={"n": 0})
    assert s.incr(o.id, "n") == 1
    pid = os.fork()
    if pid == 0:                                       # child: never return into pytest
        code = 1
        try:
            s.incr(o.id, "n")
            s.create("/from-child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert s.incr(o.id, "n") == 3                      # the parent's pool still works
    assert s.fetch("/from-child") is not None


def test_deletes_racing_creates_leave_no_orphans(pg_url, opened):
    writers = [opened(pg_url) for _ in range(3)]
    deleter = opened(pg_url)
    deleter.create("/d", "DIR")
    stop = threading.Event()
    unexpected = []

    def create_loop(store, tag):
        i = 0
        while not stop.is_set():
            try:
                store.create(f"/d/{tag}{i}")
            except StoreError as exc:
                if exc.key not in ("e.io.obj.noexists", "e.io.obj.exists"):
                    unexpected.append(exc)
            i += 1

    threads = [threading.Thread(target=create_loop, args=(w, f"t{n}_"))
               for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for _ in range(15):
        d = deleter.fetch("/d")
        if d is not None:
            deleter.delete(d.id, recursive=True)
        try:
            deleter.create("/d", "DIR")
        except StoreError as exc:
            assert exc.key == "e.io.obj.exists"
    stop.set()
    for t in threads:
        t.join()
    assert unexpected == []
    with psycopg.connect(pg_url) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM wn_obj c WHERE c.pid IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM wn_obj p WHERE p.id = c.pid AND c.ph LIKE p.ph || '%')"
        ).fetchone()[0]
    assert orphans == 0


def test_reads_survive_the_server_dropping_connections(pg_url, opened):
    s = opened(pg_url + "&application_name=wn-drop-test")
    o = s.create("/o", meta={"n": 1})
    assert s.get(o.id)["n"] == 1

    def drop():
        with psycopg.connect(pg_url, autocommit=True) as conn:
            return conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE application_name = 'wn-drop-test'").fetchone()[0]
    assert drop() >= 1
    assert s.get(o.id)["n"] == 1                      # retried on a fresh connection
    assert drop() >= 1
    assert [x.nm for x in s.query({"n": 1})] == ["o"]
    assert drop() >= 1
    # a write whose connection died is not retried (its outcome would be unknown):
    # it fails as a one-line StoreError, and the next write works
    try:
        s.set_meta(o.id, {"n": 2})
    except StoreError as exc:
        assert exc.key == "e.io.store.unavailable" and "\n" not in exc.line()
    assert s.set_meta(o.id, {"n": 3})["n"] == 3


def test_database_errors_are_store_errors(pg_url, opened, pg_server):  # noqa: F811
    s = opened(pg_url)
    f = s.create("/f", meta={"n": "text"})
    # PostgreSQL text cannot hold NUL: refused as bad metadata, nothing written
    assert err(s.create, "/g", meta={"k": "a\x00b"}).key == "e.io.meta.invalid"
    assert s.fetch("/g") is None
    assert err(s.set_meta, f.id, {"k": "a\x00b"}).key == "e.io.meta.invalid"
    assert "k" not in s.get(f.id)
    assert err(s.incr, f.id, "n").key == "e.io.meta.invalid"
    # a regex Python accepts but PostgreSQL does not
    assert err(s.query, {"nm": "^(?P<x>f)$"}).key == "e.io.query.invalid"
    # keys with quotes and backslashes are data, never SQL
    weird = "a'b\\c\"); DROP TABLE wn_obj; --"
    s.set_meta(f.id, {weird: 1})
    assert s.incr(f.id, weird) == 2
    assert s.cas(f.id, {weird: 2}, {"ok": True})["ok"] is True
    quoted = "a'b); DROP TABLE wn_obj; --"          # query keys refuse \\ and "
    s.set_meta(f.id, {quoted: 1})
    assert [o.nm for o in s.query({quoted: 1})] == ["f"]
    assert [o.nm for o in s.query({"d0": "f"}, sort={quoted: -1})] == ["f"]
    # no server there
    dead = pg_server.url().replace(f"port={pg_server.port}", "port=1")
    e = err(objstore.open_store, dead)
    assert e.key == "e.io.store.open" and "\n" not in e.line()
    e = err(objstore.open_store, "postgresql://x@/db?nosuchoption=1")
    assert e.key.startswith("e.io.store.")


def test_missing_postgresql_skips_or_fails_under_ci(monkeypatch):
    monkeypatch.setattr(pg_backend, "_server", None)
    monkeypatch.setattr(pg_backend, "find_bindir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        pg_backend.get_server()
    assert "postgresql" in str(skipped.value).lower()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        pg_backend.get_server()


def _moves(store, before, timeout=5.0) -> bool:
    """Does ``store.dot_generation()`` leave ``before`` within ``timeout``?"""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if store.dot_generation() not in (before, None):
            return True
        time.sleep(0.02)
    return False


def _listening(store, timeout=10.0):
    import time
    deadline = time.time() + timeout
    while store.dot_generation() is None:
        assert time.time() < deadline, "the dot-folder watch never started listening"
        time.sleep(0.02)
    return store.dot_generation()


def test_dot_generation_moves_in_every_process_after_a_dot_folder_write(pg_url, opened):
    """LISTEN/NOTIFY: a write below a dot folder moves the generation of the writer at
    once and of another store (another process's) when its NOTIFY arrives; a write
    elsewhere by one statement (an order's cas) moves neither."""
    a, b = opened(pg_url), opened(pg_url)
    _listening(a), _listening(b)
    order = a.create("/home/demo/orders/o1", "FILE", {"or_status": 0}, parents=True)
    conf = a.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True, content=b"v1")
    import time
    time.sleep(0.3)                       # the creates' own NOTIFYs have arrived
    ga, gb = a.dot_generation(), b.dot_generation()
    assert a.cas(order["id"], {"or_status": 0}, {"or_status": 2}) is not None
    assert a.incr(order["id"], "n") == 1
    assert not _moves(b, gb, timeout=0.5) and a.dot_generation() == ga
    for change in (lambda: a.write(conf["id"], b"v2"),
                   lambda: a.set_meta(conf["id"], {"k": 1}),
                   lambda: a.incr(conf["id"], "n"),
                   lambda: a.create("/home/demo/.regapi/api/x", "FILE", parents=True)):
        ga, gb = a.dot_generation(), b.dot_generation()
        change()
        assert a.dot_generation() != ga                 # the writer: at once
        assert _moves(b, gb)                            # the other: by its NOTIFY
