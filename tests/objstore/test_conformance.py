"""One suite, every backend (``store_factory`` in conftest.py): the Store contract of
objstore/base.py and walnut.md §1."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from objstore import StoreError, WnError, WnObj, open_store
from objstore.common import now_ms
from objstore.errors import BAD_INPUT, CONFLICT, NOT_FOUND
from objstore.paths import MAX_PATH
from tests.objstore._worker import spawn as worker



def err(fn, *a, **kw) -> StoreError:
    with pytest.raises(StoreError) as ei:
        fn(*a, **kw)
    e = ei.value
    assert e.key.startswith("e.io.") and "\n" not in e.line()
    return e


class Key(str):
    """A str subclass as a metadata key (checked as any key is)."""


# ---- the tree ------------------------------------------------------------------------------
def test_fresh_store_has_root_dir(store):
    root = store.fetch("/")
    assert isinstance(root, WnObj) and root.is_dir and root.ph == "/"
    assert store.get(root.id) == root
    assert store.children(root.id) == []
    assert store.count({}) == 1


def test_create_and_lookup(store):
    f = store.create("/home/demo/orders/o1.json", "FILE", {"or_status": 0, "fee": 100},
                     parents=True)
    assert f.nm == "o1.json" and f.ph == "/home/demo/orders/o1.json" and not f.is_dir
    assert f["race"] == "FILE" and f["d0"] == "home" and f["d1"] == "demo"
    assert f["tp"] == "json" and f["mime"] == "application/json"
    assert f["len"] == 0 and f["sha1"] == hashlib.sha1(b"").hexdigest()
    assert isinstance(f["ct"], int) and f["lm"] >= f["ct"] > 1.6e12
    orders = store.fetch("/home/demo/orders")
    assert orders.is_dir and f["pid"] == orders.id and orders["d1"] == "demo"
    assert store.fetch("/home")["d0"] == "home" and "d1" not in store.fetch("/home")
    assert store.get(f.id) == f == store.fetch("/home/demo/orders/o1.json")
    assert store.check("/home/demo/orders/o1.json") == f
    assert store.check_id(f.id) == f
    # every path form
    assert store.fetch("~/orders/o1.json", home="/home/demo") == f
    assert store.fetch("orders/./o1.json", cwd="/home/demo") == f
    assert store.fetch("../orders/o1.json", cwd="/home/demo/x") == f
    assert store.fetch(f"id:{f.id}") == f
    assert store.fetch(f"id:{orders.id}/o1.json") == f
    assert store.fetch(f"id:{f.id}/../o1.json") == f
    assert store.fetch(f"id:{orders.id}/../..") == store.fetch("/home")
    assert store.fetch("o1.json", cwd=f"id:{orders.id}") == f
    d = store.create("sub", "DIR", cwd="/home/demo")
    assert d.ph == "/home/demo/sub" and d.is_dir and "len" not in d


def test_missing_objects(store):
    assert store.fetch("/nope") is None
    assert store.fetch("/nope/deeper") is None
    assert store.get("a" * 26) is None
    assert store.get("not an id/") is None
    assert store.fetch("id:" + "b" * 26) is None
    assert store.fetch("id:" + "b" * 26 + "/x") is None
    e = err(store.check, "/nope")
    assert e.key == "e.io.obj.noexists" and e.kind == NOT_FOUND and e.http_status == 404
    assert err(store.check_id, "c" * 26).key == "e.io.obj.noexists"
    for fn, args in [(store.set_meta, ({"a": 1},)), (store.cas, ({}, {"a": 1})),
                     (store.incr, ("n",)), (store.read, ()), (store.write, (b"x",)),
                     (store.append, (b"x",)), (store.children, ()), (store.move, ("/x",)),
                     (store.delete, ())]:
        assert err(fn, "d" * 26, *args).key == "e.io.obj.noexists"


def test_create_errors(store):
    store.create("/a", "DIR")
    f = store.create("/a/f.txt")
    e = err(store.create, "/a/f.txt")
    assert e.key == "e.io.obj.exists" and e.kind == CONFLICT
    assert err(store.create, "/a", "DIR").key == "e.io.obj.exists"
    assert err(store.create, "/").key == "e.io.obj.exists"
    assert err(store.create, "/x/y").key == "e.io.obj.noexists"          # no parents
    assert err(store.create, "/a/f.txt/child").key == "e.io.obj.notdir"
    assert err(store.create, "/a/f.txt/c/d", parents=True).key == "e.io.obj.notdir"
    assert err(store.create, "/a/b\x00c").key == "e.io.path.invalid"
    assert err(store.create, "/a/b\nc").key == "e.io.path.invalid"
    assert err(store.create, "").key == "e.io.path.invalid"
    assert err(store.create, "/a/x", "LINK").key == "e.io.meta.invalid"
    assert err(store.create, "/a/d", "DIR", content=b"x").key == "e.io.obj.notfile"
    for bad in [{"id": "x"}, {"ph": "/z"}, {"len": 3}, {"nm": "q"}, {"race": "DIR"},
                {"x": object()}, {"x": float("nan")}, {"expi": "soon"}, {"c": 5},
                {"": 1}, {1: 2}, "not a map", {"ok": 1, "sha1": "x"}, {"mime": True},
                {"expi": True}, {"expi": -1}, {"expi": 2 ** 63}, {Key("id"): "x"},
                {Key("tp"): 3}, {Key(""): 1}, {(1, 2): 3}, {None: 1}]:
        e = err(store.create, "/a/m", meta=bad)
        assert e.key == "e.io.meta.invalid" and e.kind == BAD_INPUT, bad
    assert err(store.create, "/a/m", meta={"sha1": "x"}).reason == "'sha1' is read-only"
    assert err(store.create, "/a/m", meta={"g": 1}).reason == "'g' must be a string"
    assert store.create("/a/k", meta={Key("free"): 1, "tp": None})["free"] == 1
    store.delete(store.fetch("/a/k").id)
    assert store.fetch("/a/m") is None                    # nothing half-written
    assert [c.nm for c in store.children(store.fetch("/a").id)] == ["f.txt"]
    assert store.get(f.id) is not None


def test_parents_and_lowercase_race(store):
    d = store.create("/p/q/r", "dir", parents=True)
    assert d.is_dir and store.fetch("/p/q").is_dir
    again = store.create("/p/q/s", parents=True)          # existing DIRs are fine
    assert again["pid"] == store.fetch("/p/q").id


def test_returned_objects_are_copies(store):
    f = store.create("/f", meta={"nested": {"a": [1]}})
    f["nested"]["a"].append(2)
    f["x"] = 1
    got = store.get(f.id)
    assert got["nested"] == {"a": [1]} and "x" not in got
    got["nested"]["a"].append(3)
    assert store.get(f.id)["nested"] == {"a": [1]}


def test_create_with_content_and_meta(store):
    f = store.create("/c.bin", meta={"k": "v", "gone": None, "c": "demo"}, content=b"\x00\xff")
    assert f["len"] == 2 and f["sha1"] == hashlib.sha1(b"\x00\xff").hexdigest()
    assert f["k"] == "v" and "gone" not in f and f["c"] == "demo"
    assert store.read(f.id) == b"\x00\xff"
    assert store.create("/noext")["mime"] == "application/octet-stream"


# ---- metadata ------------------------------------------------------------------------------------
def test_metadata_is_kept_as_json_gives_it_back(store):
    """Whatever JSON-able value a caller passes is stored as its JSON text would read
    back: tuples become lists, subclasses plain values; the
    caller's own value is copied, never kept."""
    import enum
    import types

    class Text(str):
        pass

    class Num(enum.IntEnum):
        ONE = 1

    given = {"t": (1, "a", (2.5, None)), "s": Text("sub"), "e": Num.ONE, "neg0": -0.0, "big": 2 ** 63 - 1,
             "nested": {"b": [{"c": [1, 2]}], "a": "\u00e9\U0001f600"}, "f": 0.1}
    want = json.loads(json.dumps(given))
    nested = given["nested"]
    f = store.create("/j", meta=types.MappingProxyType(given))
    nested["b"][0]["c"].append(3)                 # the caller's value is not the store's
    for got in (f, store.get(f.id)):
        body = {k: got[k] for k in want}
        assert body == want
        assert got["nested"]["b"][0]["c"] == [1, 2]
        assert type(got["t"]) is list and type(got["s"]) is str and type(got["e"]) is int
    nested["b"][0]["c"].pop()
    g = store.set_meta(f.id, {"t": ((1,), [2]), "nested": nested})
    assert g["t"] == [[1], [2]] and store.get(f.id)["nested"]["b"] == [{"c": [1, 2]}]
    assert store.cas(f.id, {"t": ((1,), (2,))}, {"ok": True})["ok"] is True
    scalars = {"s": "é\n\"\\\u2028\x7f\U0001f600", "a": "plain", "i": -5, "b": False, "z": 0,
               "f": -1.5e-7, "top": 2 ** 63 - 1, "low": -2 ** 63, "e": Num.ONE, "st": Text("x")}
    for got in (store.set_meta(f.id, scalars), store.get(f.id),
                store.cas(f.id, {"i": -5}, scalars)):
        assert {k: got[k] for k in scalars} == json.loads(json.dumps(scalars))
        assert type(got["b"]) is bool and type(got["f"]) is float and type(got["e"]) is int
    for bad in (2 ** 63, -2 ** 63 - 1, float("inf"), float("nan"), "a\ud800", True.__class__,
                {"deep": [1, {"x": 2 ** 63}]}, [(-2 ** 63 - 1,)]):
        assert err(store.set_meta, f.id, {"k": bad}).key == "e.io.meta.invalid", bad
        assert err(store.cas, f.id, {"i": -5}, {"k": bad}).key == "e.io.meta.invalid", bad
    assert "k" not in store.get(f.id)


def test_set_meta(store):
    f = store.create("/o", meta={"a": 1, "b": 2})
    time.sleep(0.002)
    g = store.set_meta(f.id, {"b": None, "cc": {"x": [1, "y"]}, "t": True, "tp": "order"})
    assert g["a"] == 1 and "b" not in g and g["cc"] == {"x": [1, "y"]} and g["t"] is True
    assert g["tp"] == "order" and g["lm"] > f["lm"] and g["ct"] == f["ct"]
    assert store.get(f.id) == g
    for bad in [{"id": "zz"}, {"ph": "/x"}, {"lm": 1}, {"sha1": "x"}, {"x": {1, 2}},
                {"x": float("inf")}, {"expi": 1.5}, {"expi": True}]:
        assert err(store.set_meta, f.id, bad).key == "e.io.meta.invalid", bad
    assert store.get(f.id) == g


def test_cas(store):
    f = store.create("/o", meta={"or_status": 0})
    assert store.cas(f.id, {"or_status": 1}, {"or_status": 2}) is None
    assert store.get(f.id)["or_status"] == 0
    won = store.cas(f.id, {"or_status": 0, "paid": None}, {"or_status": 2, "paid": 100})
    assert won["or_status"] == 2 and won["paid"] == 100
    assert store.cas(f.id, {"or_status": 0}, {"or_status": 3}) is None
    assert store.cas(f.id, {"paid": None}, {"x": 1}) is None        # None = absent
    assert store.cas(f.id, {"paid": 100.0}, {"x": 1})["x"] == 1       # numbers by value
    assert store.cas(f.id, {"x": True}, {"y": 1}) is None             # bool is not 1
    assert store.cas(f.id, {"ph": "/o"}, {"z": 1})["z"] == 1          # reserved keys too
    assert err(store.cas, f.id, {"a": 1}, {"id": "x"}).key == "e.io.meta.invalid"


def test_cas_applied_says_whether_the_cas_applied(store):
    f = store.create("/o", meta={"or_status": 0, "expi": 2 ** 60})
    assert store.cas_applied(f.id, {"or_status": 1}, {"or_status": 2}) is False
    assert store.get(f.id)["or_status"] == 0
    assert store.cas_applied(f.id, {"or_status": 0}, {"or_status": 2, "expi": None,
                                                      "pay": {"t": "x"}}) is True
    got = store.get(f.id)
    assert got["or_status"] == 2 and got["pay"] == {"t": "x"} and "expi" not in got
    assert store.cas_applied(f.id, {"or_status": 0}, {"or_status": 3}) is False
    assert store.cas_applied(f.id, {"pay": {"t": "x"}}, {"n": 1}) is True   # the slow path
    assert store.get(f.id)["n"] == 1
    assert err(store.cas_applied, f.id, {"a": 1}, {"id": "x"}).key == "e.io.meta.invalid"
    assert err(store.cas_applied, "nosuchid0000000000000000", {}, {"n": 1}).key \
        == "e.io.obj.noexists"


def test_incr(store):
    f = store.create("/seq")
    assert store.incr(f.id, "n") == 1
    assert store.incr(f.id, "n", 41) == 42
    assert store.incr(f.id, "n", -2) == 40
    assert store.get(f.id)["n"] == 40
    store.set_meta(f.id, {"s": "x", "b": True})
    assert err(store.incr, f.id, "s").key == "e.io.meta.invalid"
    assert err(store.incr, f.id, "b").key == "e.io.meta.invalid"
    assert err(store.incr, f.id, "n", 1.5).key == "e.io.meta.invalid"
    assert err(store.incr, f.id, "len").key == "e.io.meta.invalid"
    assert store.get(f.id)["n"] == 40


def test_cas_value_rules_and_odd_keys(store):
    """The equality rules of cas hold the same whether a backend decides in SQL or in
    Python: strings never equal numbers, booleans never equal 0/1, objects compare by
    content (key order aside), and keys with dots, quotes or non-ASCII work as any."""
    f = store.create("/o", meta={"s": "1", "n": 1, "z": 0, "b": False, "d": {"x": 1, "y": [1, 2]},
                                 "a.b": 1, 'q"k': "v", "ключ": 2.5})
    assert store.cas(f.id, {"s": 1}, {"w": 1}) is None
    assert store.cas(f.id, {"n": "1"}, {"w": 1}) is None
    assert store.cas(f.id, {"z": False}, {"w": 1}) is None
    assert store.cas(f.id, {"b": 0}, {"w": 1}) is None
    assert store.cas(f.id, {"b": None}, {"w": 1}) is None
    assert store.cas(f.id, {"d": {"y": [1, 2], "x": 1.0}}, {"w": 1})["w"] == 1
    assert store.cas(f.id, {"d": {"x": 1}}, {"w": 2}) is None
    assert store.cas(f.id, {"a.b": 1, 'q"k': "v", "ключ": 2.5}, {"w": 3})["w"] == 3
    g = store.cas(f.id, {"w": 3, "s": "1", "b": False}, {"w": None, "a.b": None, "n": 7,
                                                         'q"k': {"deep": ["x", None]}})
    assert "w" not in g and "a.b" not in g and g["n"] == 7 and g['q"k'] == {"deep": ["x", None]}
    assert store.get(f.id) == g
    assert err(store.cas, "0" * 26, {"n": 7}, {"x": 1}).key == "e.io.obj.noexists"
    gone = store.create("/gone", meta={"n": 1, "expi": now_ms() - 1})
    assert err(store.cas, gone.id, {"n": 1}, {"x": 1}).key == "e.io.obj.noexists"
    assert err(store.set_meta, gone.id, {"x": 1}).key == "e.io.obj.noexists"
    assert err(store.incr, gone.id, "n").key == "e.io.obj.noexists"


def test_incr_value_rules(store):
    big = 2 ** 63 - 1
    f = store.create("/seq", meta={"top": big - 1, "low": -big, "f": 2.0, "odd.key": 1})
    assert store.incr(f.id, "top") == big
    assert err(store.incr, f.id, "top").key == "e.io.meta.invalid"       # 64-bit range
    assert store.incr(f.id, "low", -1) == -big - 1
    assert err(store.incr, f.id, "low", -1).key == "e.io.meta.invalid"
    assert err(store.incr, f.id, "f").key == "e.io.meta.invalid"         # not an integer
    assert store.incr(f.id, "odd.key", 2) == 3
    assert store.incr(f.id, "new", 0) == 0
    g = store.get(f.id)
    assert g["top"] == big and g["low"] == -big - 1 and g["f"] == 2.0 and g["odd.key"] == 3
    assert g["new"] == 0 and g["lm"] >= f["lm"]
    assert err(store.incr, "0" * 26, "n").key == "e.io.obj.noexists"


# ---- content -------------------------------------------------------------------------------------
def test_content(store):
    f = store.create("/f.txt")
    assert store.read(f.id) == b""
    g = store.write(f.id, b"hello ")
    assert g["len"] == 6 and g["sha1"] == hashlib.sha1(b"hello ").hexdigest()
    h = store.append(f.id, "wörld")
    want = "hello wörld".encode()
    assert store.read(f.id) == want
    assert h["len"] == len(want) and h["sha1"] == hashlib.sha1(want).hexdigest()
    assert store.get(f.id)["len"] == len(want) and h["lm"] >= g["lm"]
    big = os.urandom(300_000)
    assert store.write(f.id, big)["len"] == 300_000 and store.read(f.id) == big
    d = store.create("/d", "DIR")
    for fn, args in [(store.read, ()), (store.write, (b"x",)), (store.append, (b"x",))]:
        assert err(fn, d.id, *args).key == "e.io.obj.notfile"
    assert err(store.write, f.id, 12).key == "e.io.meta.invalid"


# ---- tree operations -------------------------------------------------------------------------------
def test_children(store):
    d = store.create("/d", "DIR")
    for nm in ["b.txt", "a.txt", "c.json", "sub"]:
        store.create(f"/d/{nm}", "DIR" if nm == "sub" else "FILE")
    store.create("/d/sub/deep")
    assert [c.nm for c in store.children(d.id)] == ["a.txt", "b.txt", "c.json", "sub"]
    assert [c.nm for c in store.children(d.id, "*.txt")] == ["a.txt", "b.txt"]
    assert [c.nm for c in store.children(d.id, "?.json")] == ["c.json"]
    assert store.children(d.id, "zz*") == []
    f = store.fetch("/d/a.txt")
    assert err(store.children, f.id).key == "e.io.obj.notdir"


def test_move_rename_and_subtree(store):
    store.create("/home/demo/a/b/c.txt", parents=True, content=b"c")
    a = store.fetch("/home/demo/a")
    c = store.fetch("/home/demo/a/b/c.txt")
    assert err(store.move, a.id, "/srv/x").key == "e.io.obj.noexists"   # no /srv yet
    store.create("/srv", "DIR")
    moved = store.move(a.id, "/srv/x")
    assert moved.id == a.id and moved.ph == "/srv/x" and moved.nm == "x"
    assert moved["pid"] == store.fetch("/srv").id and moved["d0"] == "srv" and moved["d1"] == "x"
    c2 = store.get(c.id)
    assert c2.ph == "/srv/x/b/c.txt" and c2["d0"] == "srv" and c2["d1"] == "x"
    assert store.fetch("/srv/x/b")["d1"] == "x"
    assert store.fetch("/home/demo/a") is None and store.fetch("/home/demo/a/b/c.txt") is None
    assert store.read(c.id) == b"c"
    # to a top-level name: d1 of descendants becomes their first segment below it
    store.move(a.id, "/top")
    assert store.get(c.id).ph == "/top/b/c.txt" and store.get(c.id)["d1"] == "b"
    assert store.fetch("/top")["d0"] == "top" and "d1" not in store.fetch("/top")
    # deeper again
    store.move(a.id, "/home/demo/again")
    assert store.get(c.id)["d0"] == "home" and store.get(c.id)["d1"] == "demo"
    assert store.fetch("/home/demo/again/b/c.txt").id == c.id


def test_move_into_dir_and_errors(store):
    f = store.create("/a/f.txt", parents=True)
    store.create("/b", "DIR")
    g = store.move(f.id, "/b")                           # into an existing DIR
    assert g.ph == "/b/f.txt"
    r = store.move(f.id, "g.md", cwd="/b")               # rename
    assert r.ph == "/b/g.md" and r["tp"] == "md"
    store.create("/b/other.txt")
    assert err(store.move, f.id, "/b/other.txt").key == "e.io.obj.exists"
    assert err(store.move, f.id, "/nope/x").key == "e.io.obj.noexists"
    a = store.fetch("/a")
    assert err(store.move, a.id, "/a/inside").key == "e.io.path.invalid"
    store.create("/a/sub", "DIR")
    assert err(store.move, a.id, "/a/sub").key == "e.io.path.invalid"
    assert err(store.move, store.fetch("/").id, "/x").key == "e.io.path.invalid"
    assert err(store.move, f.id, "/b/other.txt/x").key == "e.io.obj.notdir"
    assert store.move(f.id, "/b/g.md").ph == "/b/g.md"    # onto itself: no-op
    assert store.fetch("/b/g.md").id == f.id


def test_delete(store):
    f = store.create("/d/sub/f", parents=True, content=b"data")
    d = store.fetch("/d")
    e = err(store.delete, d.id)
    assert e.key == "e.io.dir.notempty" and e.kind == CONFLICT
    store.delete(f.id)
    assert store.get(f.id) is None and store.fetch("/d/sub/f") is None
    again = store.create("/d/sub/f")                      # name free again, new id
    assert again.id != f.id and store.read(again.id) == b""
    store.delete(d.id, recursive=True)
    assert store.fetch("/d") is None and store.get(again.id) is None
    assert store.count({}) == 1
    assert err(store.delete, store.fetch("/").id, recursive=True).key == "e.io.path.invalid"
    empty = store.create("/e", "DIR")
    store.delete(empty.id)
    assert store.fetch("/e") is None


# ---- query ---------------------------------------------------------------------------------------
@pytest.fixture
def orders(store):
    rows = [
        ("o1", {"or_status": 0, "fee": 100, "title": "apple pie", "tag": "a"}),
        ("o2", {"or_status": 1, "fee": 250, "title": "Apple juice"}),
        ("o3", {"or_status": 2, "fee": 999, "title": "banana", "tag": "b", "flag": True}),
        ("o4", {"or_status": 2, "fee": 5.5, "title": "cherry", "flag": False}),
        ("o5", {"or_status": 0, "fee": 1000, "title": "apple tart", "tag": None}),
    ]
    store.create("/orders", "DIR")
    for nm, meta in rows:
        store.create(f"/orders/{nm}", meta=meta)
    return store


def names(objs):
    return sorted(o.nm for o in objs)


@pytest.mark.parametrize("match, want", [
    ({"or_status": 2}, ["o3", "o4"]),
    ({"or_status": 2.0}, ["o3", "o4"]),
    ({"title": "banana"}, ["o3"]),
    ({"title": "^apple"}, ["o1", "o5"]),
    ({"title": "^[Aa]pple"}, ["o1", "o2", "o5"]),
    ({"title": "^.*e$"}, ["o1", "o2"]),
    ({"title": "apple*"}, ["o1", "o5"]),
    ({"title": "*an*"}, ["o3"]),
    ({"title": "*e"}, ["o1", "o2"]),
    ({"fee": "*0"}, ["o1", "o2", "o5"]),          # globs see numbers as text
    ({"fee": "^9+$"}, ["o3"]),
    ({"or_status": "!2"}, ["o1", "o2", "o5"]),
    ({"title": "!^apple"}, ["o2", "o3", "o4"]),
    ({"tag": "!a"}, ["o2", "o3", "o4", "o5"]),    # negation includes absent
    ({"tag": "!null"}, ["o1", "o3"]),              # present
    ({"flag": "!true"}, ["o1", "o2", "o4", "o5"]),
    ({"or_status": "!0"}, ["o2", "o3", "o4"]),
    ({"fee": "[100,999)"}, ["o1", "o2"]),
    ({"fee": "(100,999]"}, ["o2", "o3"]),
    ({"fee": "[100,999]"}, ["o1", "o2", "o3"]),
    ({"fee": "(100,999)"}, ["o2"]),
    ({"fee": "[999,]"}, ["o3", "o5"]),
    ({"fee": "(,100]"}, ["o1", "o4"]),
    ({"fee": "[5.5, 6)"}, ["o4"]),
    ({"fee": "![100,1000)"}, ["o4", "o5"]),
    ({"title": "[0,10]"}, []),                       # ranges are numeric only
    ({"tag": None}, ["o2", "o4", "o5"]),             # null = absent
    ({"flag": True}, ["o3"]),
    ({"flag": False}, ["o4"]),
    ({"or_status": True}, []),
    ({"or_status": [0, 1]}, ["o1", "o2", "o5"]),
    ({"title": ["^ban", "cherry"]}, ["o3", "o4"]),
    ({"or_status": 0, "fee": "[500,]"}, ["o5"]),                       # AND
    ([{"or_status": 1}, {"tag": "b"}], ["o2", "o3"]),                  # OR of ANDs
    ([{"or_status": 0, "tag": "a"}, {"fee": "(900,1000)"}], ["o1", "o3"]),
    ({"nm": "o*", "pid": "!x"}, ["o1", "o2", "o3", "o4", "o5"]),       # reserved fields
    ({"ph": "^/orders/o[12]$"}, ["o1", "o2"]),
    ({"race": "FILE", "d0": "orders"}, ["o1", "o2", "o3", "o4", "o5"]),
    ({"missing": "x"}, []),
])
def test_query_syntax(orders, match, want):
    got = [o for o in orders.query(match) if o.get("d0") == "orders" and not o.is_dir]
    assert names(got) == want
    n_all = orders.count(match)
    assert n_all == len(orders.query(match))


def test_query_sort_skip_limit_count(orders):
    q = {"d0": "orders", "race": "FILE"}
    assert [o.nm for o in orders.query(q, sort={"fee": 1})] == ["o4", "o1", "o2", "o3", "o5"]
    assert [o.nm for o in orders.query(q, sort={"fee": -1})] == ["o5", "o3", "o2", "o1", "o4"]
    assert [o.nm for o in orders.query(q, sort={"or_status": -1, "fee": 1})] == \
        ["o4", "o3", "o2", "o1", "o5"]
    assert [o.nm for o in orders.query(q, sort={"tag": 1})] == ["o2", "o4", "o5", "o1", "o3"]
    assert [o.nm for o in orders.query(q, sort={"fee": 1}, skip=1, limit=2)] == ["o1", "o2"]
    assert [o.nm for o in orders.query(q, sort={"fee": 1}, skip=4)] == ["o5"]
    assert orders.query(q, limit=0) == []
    assert orders.count(q) == 5 and orders.count({"or_status": 2}) == 2
    assert orders.count({}) == 7                                # "/" and "/orders" too
    assert [o.nm for o in orders.query(q)] == ["o1", "o2", "o3", "o4", "o5"]   # by path
    assert orders.count([]) == 7


@pytest.mark.parametrize("match, sort, skip, limit", [
    ({"title": "^(unclosed"}, None, 0, None),
    ({"fee": "[a,b)"}, None, 0, None),
    ({"x": {"nested": 1}}, None, 0, None),
    ({"": 1}, None, 0, None),
    ({'a"b': 1}, None, 0, None),
    ("title", None, 0, None),
    ([1, 2], None, 0, None),
    ({}, {"fee": 2}, 0, None),
    ({}, {"fee": "asc"}, 0, None),
    ({}, None, -1, None),
    ({}, None, 0, -5),
    ({}, None, "1", None),
])
def test_query_errors(orders, match, sort, skip, limit):
    e = err(orders.query, match, sort=sort, skip=skip, limit=limit)
    assert e.key == "e.io.query.invalid" and e.kind == BAD_INPUT


def test_query_semantics_agree_with_reference(store_factory):
    """Random matches give the same objects on this backend as the Python predicate
    evaluated over the same documents (guards the SQL translations)."""
    from objstore.query import compile_predicate
    store = store_factory()
    rnd = random.Random(7)
    values = [0, 1, 2, 2.5, -3, "a", "ab", "b*", "x1", True, False, None, "", "10"]
    store.create("/r", "DIR")
    docs = []
    for i in range(40):
        meta = {k: rnd.choice(values) for k in ("p", "q", "s") if rnd.random() < 0.8}
        docs.append(store.create(f"/r/n{i}", meta=meta))
    conds = [0, 1, 2.5, "a", "!a", "^a", "a*", "*", "!*1", "[0,2]", "(0,2.5]", "!(,1)",
             None, True, False, [0, "a"], "10", "!", "^$", ["!a", None]]
    for _ in range(60):
        m = [{k: rnd.choice(conds) for k in rnd.sample(["p", "q", "s"], rnd.randint(1, 2))}
             for _ in range(rnd.randint(1, 2))]
        pred = compile_predicate(m)
        want = sorted(d.nm for d in docs if pred(d))
        got = sorted(o.nm for o in store.query(m) if o.get("d0") == "r" and not o.is_dir)
        assert got == want, m


# ---- expiry ---------------------------------------------------------------------------------------
def test_expiry(store):
    d = store.create("/tmp", "DIR")
    past = store.create("/tmp/old", meta={"expi": now_ms() - 1, "k": 1})
    soon = store.create("/tmp/soon", meta={"k": 1})
    future = store.create("/tmp/new", meta={"expi": now_ms() + 3_600_000, "k": 1})
    # invisible at once, on every read path
    assert store.get(past.id) is None and store.fetch("/tmp/old") is None
    assert store.fetch(f"id:{past.id}") is None
    assert [c.nm for c in store.children(d.id)] == ["new", "soon"]
    assert names(store.query({"k": 1})) == ["new", "soon"] and store.count({"k": 1}) == 2
    assert err(store.set_meta, past.id, {"a": 1}).key == "e.io.obj.noexists"
    assert err(store.read, past.id).key == "e.io.obj.noexists"
    # the name is free again
    reborn = store.create("/tmp/old", meta={"k": 2})
    assert reborn.id != past.id and store.fetch("/tmp/old").id == reborn.id
    # setting expi in the past hides it at once; a DIR takes its subtree with it
    store.set_meta(soon.id, {"expi": now_ms() - 5})
    assert store.get(soon.id) is None
    sub = store.create("/tmp/sub/leaf", parents=True)
    store.set_meta(store.fetch("/tmp/sub").id, {"expi": now_ms() - 5})
    assert store.fetch("/tmp/sub") is None and store.fetch("/tmp/sub/leaf") is None
    n = store.purge_expired()
    assert n == 3                       # soon, /tmp/sub and its leaf
    assert store.get(sub.id) is None and store.get(future.id) is not None
    assert store.purge_expired() == 0
    # removing expi makes an object permanent
    store.set_meta(future.id, {"expi": None})
    assert "expi" not in store.get(future.id)


def test_expired_children_do_not_block_delete(store):
    d = store.create("/d", "DIR")
    store.create("/d/x", meta={"expi": now_ms() - 1})
    store.delete(d.id)
    assert store.fetch("/d") is None
    assert store.count({"nm": "x"}) == 0


# ---- concurrency ----------------------------------------------------------------------------------
def test_threads_race_cas_exactly_one_wins(store_factory):
    store = store_factory()
    o = store.create("/o", meta={"or_status": 0})
    start = threading.Barrier(20)
    wins, errors = [], []

    def run(i):
        try:
            start.wait()
            if store.cas(o.id, {"or_status": 0}, {"or_status": 2, "winner": i}) is not None:
                wins.append(i)
        except Exception as e:          # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(wins) == 1
    assert store.get(o.id)["winner"] == wins[0] and store.get(o.id)["or_status"] == 2


def test_threads_incr(store_factory):
    store = store_factory()
    o = store.create("/seq")
    n = 30 if store_factory.backend == "tinydb" else 100

    def run():
        for _ in range(n):
            store.incr(o.id, "n")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(o.id)["n"] == 8 * n


def shared_only(store_factory):
    if not store_factory.shared:
        pytest.skip(f"{store_factory.backend} is private to one process")


def test_two_processes_increment_one_counter(store_factory):
    shared_only(store_factory)
    url = store_factory.new_url()
    store = store_factory(url)
    o = store.create("/seq", meta={"n": 0})
    procs = [worker("incr", url, o.id, "1000") for _ in range(2)]
    for p in procs:
        out, errs = p.communicate(timeout=240)
        assert p.returncode == 0, errs
    assert store.get(o.id)["n"] == 2000


def test_processes_race_cas_exactly_one_wins(store_factory, tmp_path):
    shared_only(store_factory)
    url = store_factory.new_url()
    store = store_factory(url)
    o = store.create("/o", meta={"or_status": 0})
    go = tmp_path / "go"
    procs = [worker("cas", url, o.id, str(go)) for _ in range(4)]
    time.sleep(1.0)                      # let them all open the store and spin
    go.write_text("go")
    results = []
    for p in procs:
        out, errs = p.communicate(timeout=60)
        assert p.returncode == 0, errs
        results.append(out.strip())
    assert sorted(results) == ["lost", "lost", "lost", "won"]
    assert store.get(o.id)["or_status"] == 2
    assert store.get(o.id)["winner"] in [p.pid for p in procs]


def test_sigkill_keeps_every_acknowledged_write(store_factory):
    shared_only(store_factory)
    url = store_factory.new_url()
    store = store_factory(url)
    store.create("/w", "DIR")
    store.close()
    p = worker("stream", url, "/w")
    acked = []
    want = 25 if store_factory.backend == "tinydb" else 200
    while len(acked) < want:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        acked.append(line.strip())
    os.kill(p.pid, signal.SIGKILL)       # in the middle of the stream
    p.wait(timeout=30)
    # anything already in the pipe was acknowledged too
    acked += [ln.strip() for ln in p.stdout.read().splitlines() if ln.strip()]
    p.stdout.close()
    p.stderr.close()
    again = store_factory(url)
    for oid in acked:
        obj = again.get(oid)
        assert obj is not None, oid
        assert again.read(oid) == b"x" * (obj["i"] % 50)
    n = again.count({"d0": "w", "race": "FILE"})
    assert n >= len(acked)
    # the store still works after the crash
    again.create("/w/after")
    assert again.fetch("/w/after") is not None


# ---- hostile input: always a StoreError, never a raw exception, nothing half-written -------------
BAD_VALUES = ["\ud800", 2 ** 70, -(2 ** 70), float("nan"), float("-inf"), object(), {1, 2},
              b"bytes", {"deep": [[[[[]]]]], "x": "\udfff"}]


def test_hostile_values_are_store_errors(store):
    f = store.create("/f", meta={"n": 1})
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    calls = []
    for bad in BAD_VALUES + [deep]:
        calls += [
            (store.create, ("/x",), {"meta": {"k": bad}}),
            (store.create, ("/x",), {"meta": {"expi": bad}}),
            (store.set_meta, (f.id, {"k": bad}), {}),
            (store.set_meta, (f.id, {"expi": bad}), {}),
            (store.cas, (f.id, {"n": bad}, {"k": 1}), {}),
            (store.cas, (f.id, {"n": 1}, {"k": bad}), {}),
            (store.incr, (f.id, "n", bad), {}),
            (store.query, ({"k": bad},), {}),
            (store.query, ({"k": [bad]},), {}),
            (store.query, ({},), {"skip": bad}),
            (store.query, ({},), {"limit": bad}),
            (store.query, ({},), {"sort": {"k": bad}}),
            (store.count, ({"k": bad},), {}),
            (store.create, (bad,), {}),
            (store.fetch, (bad,), {}),
            (store.children, (store.fetch("/").id, bad), {}),
        ]
    calls += [(store.query, ({"k": "\ud800"},), {}), (store.query, ({"\ud800": 1},), {}),
              (store.query, ({"k": "!99999999999999999999999"},), {}),
              (store.query, ({"k": "[0,99999999999999999999999]"},), {}),
              (store.create, ("/a\ud800",), {}), (store.incr, (f.id, "\ud800"), {}),
              (store.write, (f.id, ["x"]), {}), (store.move, (f.id, "/\udfff"), {})]
    for fn, args, kw in calls:
        try:
            fn(*args, **kw)
        except StoreError as e:
            assert e.key.startswith("e.io.") and "\n" not in e.line()
        # any other exception fails the test with its traceback
    assert store.get(f.id)["n"] == 1 and store.fetch("/x") is None
    assert store.count({}) == 2
    assert store.incr(f.id, "n", 2 ** 62) == 2 ** 62 + 1      # big but storable
    assert err(store.incr, f.id, "n", 2 ** 62).key == "e.io.meta.invalid"   # overflow
    assert store.get(f.id)["n"] == 2 ** 62 + 1


def test_errors_have_one_line_and_kind(store):
    e = err(store.create, "/a/b")
    assert e.line() == "e.io.obj.noexists : /a" and e.http_status == 404


def test_sqlite_threads_do_not_leak_connections(tmp_path):
    import objstore
    store = objstore.open_store(f"sqlite://{tmp_path}/leak.db")
    f = store.create("/f")

    def one():
        assert store.get(f.id) is not None

    for _ in range(300):            # a thread per request, as simple servers do
        t = threading.Thread(target=one)
        t.start()
        t.join()
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    from objstore.sqlite_backend import POOL_SIZE
    assert len(store._connections()) <= POOL_SIZE + 1   # a small pool, not one a thread
    assert fds < 200
    store.close()


def test_sqlite_concurrent_threads_share_a_bounded_pool(tmp_path):
    # a server's 32-64 request threads at once: a few connections per process, not
    # one per thread (each had its own page cache and memory map)
    import objstore
    from objstore.sqlite_backend import POOL_SIZE
    store = objstore.open_store(f"sqlite://{tmp_path}/pool.db")
    f = store.create("/f", meta={"n": 0})
    start = threading.Barrier(48)
    errors = []

    def one():
        try:
            start.wait()
            for _ in range(20):
                assert store.get(f.id) is not None
                store.incr(f.id, "n")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=one) for _ in range(48)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert store.get(f.id)["n"] == 48 * 20
    # the pool's, and the one the writers' leader uses
    assert 1 <= len(store._connections()) <= POOL_SIZE + 1
    store.close()


_GILSTATE_THREADS = r"""
import ctypes, os, sys
import objstore
store = objstore.open_store(sys.argv[1])
f = store.create("/f")
# a thread made outside Python: its Python state comes from PyGILState_Ensure and
# ends in PyGILState_Release (as granian's blocking threads do)
@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
def body(_):
    assert store.get(f.id) is not None
    store.query({"nm": {"$regex": "^f"}})      # uses the connection's REGEXP function
    return None
libc = ctypes.CDLL(None)
for _ in range(100):
    tid = ctypes.c_ulong()
    assert libc.pthread_create(ctypes.byref(tid), None, body, None) == 0
    libc.pthread_join(tid, None)
store.get(f.id)
db = os.path.realpath(store.path)
open_fds = sum(1 for fd in os.listdir("/proc/self/fd")
               if os.path.realpath(f"/proc/self/fd/{fd}") == db)
from objstore.sqlite_backend import POOL_SIZE
print("ok", open_fds, int(len(store._connections()) > POOL_SIZE))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc and pthreads")
def test_sqlite_connection_of_a_foreign_thread_survives_its_end(tmp_path):
    # The thread's connection used to be closed in the thread's final
    # PyGILState_Release; sqlite3's REGEXP function destructor re-entered
    # PyGILState_Ensure/Release there and the nested release freed the thread state
    # under the running code: a segfault (CPython 3.11, gh-119585; the granian worker
    # crash of docs/regapi.md).  Now connections belong to the store's small pool,
    # never to a thread: nothing of SQLite is freed when a thread ends.
    p = subprocess.run([sys.executable, "-c", _GILSTATE_THREADS,
                        f"sqlite://{tmp_path}/t.db"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    word, fds, orphans = p.stdout.split()
    assert word == "ok" and int(orphans) == 0
    assert int(fds) <= 3        # the main thread's connection (db, and none leaked)


def test_expired_objects_are_purged_without_being_asked(store_factory):
    store = store_factory()
    if not hasattr(store, "_last_purge"):
        pytest.skip(f"{store_factory.backend} has no opportunistic purge")
    store._last_purge = now_ms()         # a purge just ran
    old = store.create("/old", meta={"expi": now_ms() - 10})
    store._last_purge = 0                # a minute later: the next write purges
    store.create("/new")
    store._last_purge = now_ms()
    assert store.purge_expired() == 0    # already gone
    assert store.get(old.id) is None


@pytest.mark.parametrize("scheme", ["sqlite", "tinydb"])
def test_unusable_files_are_store_errors(tmp_path, scheme):
    import objstore
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00not a store at all\xff" * 100)
    (tmp_path / "adir").mkdir()
    for path in [garbage, tmp_path / "adir"]:
        with pytest.raises(StoreError) as ei:
            s = objstore.open_store(f"{scheme}://{path}")
            s.fetch("/")
        assert ei.value.key.startswith("e.io.store.") and "\n" not in ei.value.line()
    with pytest.raises(StoreError) as ei:
        objstore.open_store("nosuch:///x")
    assert ei.value.key == "e.io.store.url.invalid"


def test_tinydb_file_is_replaced_whole_and_keeps_its_mode(tmp_path):
    import json as _json
    import objstore
    path = tmp_path / "s.json"
    store = objstore.open_store(f"tinydb://{path}")
    os.chmod(path, 0o640)
    f = store.create("/f", meta={"k": 1})
    assert os.stat(path).st_mode & 0o777 == 0o640
    data = _json.loads(path.read_text())
    assert data["obj"][f.id]["k"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    # another process' change (here: another store object) is seen, not clobbered
    other = objstore.open_store(f"tinydb://{path}")
    other.set_meta(f.id, {"k": 2})
    store.set_meta(f.id, {"j": 3})
    assert other.get(f.id)["k"] == 2 and other.get(f.id)["j"] == 3


def test_open_store_default_and_env(tmp_path, monkeypatch):
    import objstore
    monkeypatch.delenv("WNSHELL_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    s = objstore.open_store()
    assert type(s).__name__ == "SQLiteStore" and s.fetch("/").is_dir
    assert (tmp_path / "xdg" / "wnshell" / "store.db").exists()
    s.close()
    monkeypatch.setenv("WNSHELL_STORE", f"tinydb://{tmp_path}/env.json")
    t = objstore.open_store()
    assert type(t).__name__ == "TinyDBStore" and (tmp_path / "env.json").exists()
    t.close()
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert objstore.default_url() == f"sqlite://{tmp_path}/h/.local/share/wnshell/store.db"


def wnshell_cli(*args, timeout=60):
    """The ``wnshell`` console script (or ``python -m wnshell``) in a subprocess."""
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "wnshell"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# ---- store URLs naming files a store must not take over (CLI and open_store) -------------
@pytest.mark.parametrize("scheme", ["tinydb", "sqlite"])
def test_fifo_is_refused_not_opened(tmp_path, scheme):
    # tinydb blocked for ever reading the FIFO; a character device such as /dev/null
    # (which the FIFO stands for here) was *replaced* by the store's JSON file (rename)
    fifo = tmp_path / "store"
    os.mkfifo(fifo)
    try:
        r = wnshell_cli("--store", f"{scheme}://{fifo}", "-c", "mkdir /x", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO as the store blocked")
    assert r.returncode == 1
    assert r.stderr.strip() == f"e.io.store.open : {fifo} is not a regular file"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["store"]      # no -journal, .lock, temp file


@pytest.mark.parametrize("scheme", ["tinydb", "sqlite"])
def test_folder_is_refused(tmp_path, scheme):
    with pytest.raises(WnError) as ei:
        open_store(f"{scheme}://{tmp_path}")
    assert ei.value.line() == f"e.io.store.open : {tmp_path} is not a regular file"


def test_tinydb_symlink_keeps_pointing_at_the_store(tmp_path):
    # every write renamed a new file over the *link*: the link became a plain file and
    # the real store (its target) silently stopped changing
    real = tmp_path / "data" / "store.json"
    real.parent.mkdir()
    link = tmp_path / "store.json"
    os.symlink(real, link)
    s = open_store(f"tinydb://{link}")
    s.create("/a", "FILE", {"v": 1})
    s.close()
    assert os.path.islink(link)
    assert '"v":1' in real.read_text()
    again = open_store(f"tinydb://{real}")
    assert again.fetch("/a")["v"] == 1
    again.close()


@pytest.mark.parametrize("scheme", ["tinydb", "sqlite"])
def test_nul_in_path_is_a_store_error(scheme):
    with pytest.raises(WnError) as ei:          # was a raw ValueError
        open_store(f"{scheme}:///tmp/a\x00b")
    assert ei.value.key == "e.io.store.url.invalid"


# ---- limits that must hold after every operation ----------------------------------------
def test_move_cannot_make_a_path_longer_than_the_limit(store):
    # a move re-roots the whole subtree: its deepest path grew past MAX_PATH and every
    # object down there became unreachable by path (fetch/rm said e.io.path.invalid)
    deep = "/a/" + "/".join(["d" * 250] * 15)              # 3,777 bytes
    leaf = store.create(deep + "/leaf", "FILE", parents=True)
    target = "/" + "x" * 250 + "/" + "y" * 250
    store.create(target, "DIR", parents=True)
    a = store.fetch("/a")
    with pytest.raises(WnError) as ei:
        store.move(a["id"], target)
    assert ei.value.key == "e.io.path.invalid" and str(MAX_PATH) in ei.value.reason
    assert store.get(leaf["id"])["ph"] == deep + "/leaf"      # nothing moved
    assert store.fetch(deep + "/leaf")["id"] == leaf["id"]
    assert store.children(store.fetch(target)["id"]) == []
    # a move that stays within the limit still works, subtree and all
    short = store.create("/s", "DIR")
    moved = store.move(a["id"], "/s/b")
    assert moved["ph"] == "/s/b"
    assert store.get(leaf["id"])["ph"] == "/s/b/" + "/".join(["d" * 250] * 15) + "/leaf"
    assert short["id"] == store.fetch("/s")["id"]


def test_move_into_a_dir_checks_the_joined_path(store):
    # moving into an existing DIR appends the object's name: that path was not checked
    deep = "/" + "/".join(["e" * 250] * 16) + "/" + "n" * 70      # 4,087 bytes
    store.create(deep, "DIR", parents=True)
    f = store.create("/" + "f" * 20, "FILE")
    with pytest.raises(WnError) as ei:                            # 4,108 bytes
        store.move(f["id"], deep)
    assert ei.value.key == "e.io.path.invalid"
    assert store.get(f["id"])["ph"] == "/" + "f" * 20
    g = store.create("/g", "FILE")
    assert len(store.move(g["id"], deep)["ph"].encode()) == 4089   # within the limit


def test_create_below_an_id_anchor_checks_the_whole_path(store):
    # "id:ID/name" is short as text; the path it names was never measured
    deep = store.create("/" + "/".join(["e" * 250] * 16), "DIR", parents=True)   # 4,016
    with pytest.raises(WnError) as ei:
        store.create(f"id:{deep['id']}/" + "n" * 100, "FILE")                     # 4,117
    assert ei.value.key == "e.io.path.invalid"
    assert store.children(deep["id"]) == []
    ok = store.create(f"id:{deep['id']}/" + "n" * 70, "FILE")
    assert len(ok["ph"].encode()) == 4087


def _expired_tree(store):
    """/tmpd (expired) with a live DIR /tmpd/sub below it: hidden from every path."""
    sub = store.create("/tmpd/sub", "DIR", parents=True)
    store.set_meta(store.fetch("/tmpd")["id"], {"expi": now_ms() - 1})
    assert store.fetch("/tmpd/sub") is None
    return sub


def test_create_below_an_expired_dir_is_not_a_silent_loss(store):
    # the parent DIR was found by its own row, alive, although an expired DIR above
    # hides it: create answered success for an object no path could ever reach, and
    # the next purge deleted it
    _expired_tree(store)
    with pytest.raises(WnError) as ei:
        store.create("/tmpd/sub/x", "FILE", content=b"important")
    assert ei.value.key == "e.io.obj.noexists"
    # with parents the expired name is free again, as at the top: a fresh tree
    x = store.create("/tmpd/sub/x", "FILE", parents=True, content=b"important")
    assert store.fetch("/tmpd/sub/x")["id"] == x["id"]
    store.purge_expired()
    assert store.read(x["id"]) == b"important"
    assert store.fetch("/tmpd").get("expi") is None


def test_move_into_an_expired_dir_is_refused(store):
    # the move succeeded into a hidden subtree; the next purge destroyed the object
    _expired_tree(store)
    f = store.create("/keep", "FILE", content=b"keep me")
    for dest in ("/tmpd/sub/", "/tmpd/sub/keep"):
        with pytest.raises(WnError) as ei:
            store.move(f["id"], dest)
        assert ei.value.key == "e.io.obj.noexists"
    store.purge_expired()
    assert store.fetch("/keep")["id"] == f["id"] and store.read(f["id"]) == b"keep me"


def test_an_expired_dir_hides_its_subtree_from_every_path_form(store):
    # the rule lives once (objstore/rules.py) for every backend: every way of naming
    # an object by path -- plain, id:OBJ, id:ANCHOR/sub -- meets it
    sub = _expired_tree(store)
    top = sub["pid"]
    for path in ("/tmpd", "/tmpd/sub", f"id:{sub['id']}", f"id:{top}/sub"):
        assert store.fetch(path) is None, path
    with pytest.raises(WnError) as ei:
        store.check(f"id:{sub['id']}")
    assert ei.value.key == "e.io.obj.noexists"
    # no parent by any path form, so nothing is created where no path could reach it
    for path in (f"id:{sub['id']}/x", f"id:{top}/sub/x", "/tmpd/sub/x"):
        with pytest.raises(WnError) as ei:
            store.create(path, "FILE")
        assert ei.value.key == "e.io.obj.noexists", path
    # and a move into it is refused however the destination is named
    f = store.create("/f", "FILE")
    for dest in (f"id:{sub['id']}/f", f"id:{sub['id']}"):
        with pytest.raises(WnError) as ei:
            store.move(f["id"], dest)
        assert ei.value.key == "e.io.obj.noexists", dest
    assert store.fetch("/f")["id"] == f["id"]


def test_below_an_expired_dir_ids_still_answer_until_the_purge(store):
    # what the rule does not cover, the same on every backend: an object whose own
    # expi has not passed answers by id (get, children, query) while only a DIR above
    # it has expired; the expired DIR itself answers nothing.  Moving the object out
    # makes it reachable by path again, and the purge then leaves it alone.
    sub = _expired_tree(store)
    leaf = store.create("/other/leaf.txt", "FILE", {"k": 7}, parents=True, content=b"data")
    assert store.get(sub["id"])["ph"] == "/tmpd/sub"
    assert store.children(sub["id"]) == []
    assert store.get(sub["pid"]) is None
    with pytest.raises(WnError) as ei:
        store.children(sub["pid"])
    assert ei.value.key == "e.io.obj.noexists"
    assert [o["ph"] for o in store.query({"nm": ["sub", "tmpd"]})] == ["/tmpd/sub"]
    assert store.count({"nm": ["sub", "tmpd"]}) == 1
    moved = store.move(sub["id"], "/saved")
    assert moved["ph"] == "/saved" and store.fetch("/saved")["id"] == sub["id"]
    assert store.move(leaf["id"], "/saved")["ph"] == "/saved/leaf.txt"
    assert store.purge_expired() == 1                     # /tmpd alone: /saved left it
    assert store.fetch("/saved/leaf.txt")["id"] == leaf["id"]
    assert store.read(leaf["id"]) == b"data"


# ---- an SQLite store whose rows were edited by hand (another tool, a bad migration) ------
@pytest.mark.parametrize("meta", ["{bad", "[1]", "null", '"text"', '{"k":1} x', '{"k":1}{"j":2}',
                                  "", " "])
def test_row_with_bad_metadata_is_a_clear_error(tmp_path, meta):
    # json.loads raised JSONDecodeError/TypeError through every read (e.cmd.internal)
    path = tmp_path / "store.db"
    s = open_store(f"sqlite://{path}")
    f = s.create("/a/f", "FILE", {"k": 1}, parents=True)
    ok = s.create("/a/g", "FILE", {"k": 2})
    with sqlite3.connect(path) as c:
        c.execute("UPDATE obj SET meta = ? WHERE id = ?", (meta, f["id"]))
    for op in (lambda: s.get(f["id"]), lambda: s.fetch("/a/f"),
               lambda: s.children(s.fetch("/a")["id"]), lambda: s.query({"nm": "f"}),
               lambda: s.set_meta(f["id"], {"k": 3})):
        with pytest.raises(WnError) as ei:
            op()
        assert ei.value.key == "e.io.store.corrupt" and f["id"] in ei.value.reason
    try:                                  # a query on metadata, answered by SQLite itself
        found = s.query({"k": 1})
    except WnError as e:
        assert e.key == "e.io.store.corrupt"
    else:
        assert found == []
    assert s.fetch("/a/g")["id"] == ok["id"]          # the rest of the store still works
    s.close()


# ---- a TinyDB store file edited by hand into something wrong: every operation answers ----
@pytest.mark.parametrize("meta", [' {"k": 5, "s": "\\u00e9"}\n', b'{"k":5,"s":"\xc3\xa9"}'])
def test_row_with_metadata_json_reads_but_never_wrote_is_read(tmp_path, meta):
    """Metadata text another tool wrote -- spaces around it, a BLOB of UTF-8 -- is read
    as JSON reads it."""
    path = tmp_path / "store.db"
    s = open_store(f"sqlite://{path}")
    f = s.create("/a/f", "FILE", {"k": 1}, parents=True)
    with sqlite3.connect(path) as c:
        c.execute("UPDATE obj SET meta = ? WHERE id = ?", (meta, f["id"]))
    for got in (s.get(f["id"]), s.fetch("/a/f"), s.query({"nm": "f"})[0]):
        assert got["k"] == 5 and got["s"] == "\u00e9" and got["ph"] == "/a/f"
    s.close()


# ---- one clear line (e.io.store.corrupt naming the file and the record), and no later ----
# ---- write may rewrite -- and so lose -- what is in the file -----------------------------
def _tinydb_fresh(tmp_path):
    path = tmp_path / "store.json"
    s = open_store(f"tinydb://{path}")
    f = s.create("/a/f", "FILE", {"k": 1}, parents=True, content=b"hello")
    s.close()
    return path, f["id"]


def _tinydb_edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
    return path.read_bytes()


TINYDB_CORRUPTIONS = {
    "expi-not-int": lambda d, oid: d["obj"][oid].update(expi="soon"),
    "lm-not-int": lambda d, oid: d["obj"][oid].update(lm="x"),
    "race-missing": lambda d, oid: d["obj"][oid].pop("race"),
    "race-unknown": lambda d, oid: d["obj"][oid].update(race="LINK"),
    "nm-not-str": lambda d, oid: d["obj"][oid].update(nm=5),
    "ph-duplicate": lambda d, oid: d["obj"].update({"zzzz": dict(d["obj"][oid], id="zzzz")}),
    "b64-missing": lambda d, oid: d["content"][oid].pop("b64"),
}


@pytest.mark.parametrize("how", list(TINYDB_CORRUPTIONS))
def test_hand_corrupted_record_is_a_clear_error_and_nothing_is_lost(tmp_path, how):
    # before: TypeError/KeyError escaped as e.cmd.internal, or a bad record was served
    # (a duplicate path silently shadowed another object)
    path, oid = _tinydb_fresh(tmp_path)
    before = _tinydb_edit(path, lambda d: TINYDB_CORRUPTIONS[how](d, oid))
    ops = [lambda s: s.fetch("/a/f"), lambda s: s.read(oid), lambda s: s.query({"k": 1}),
           lambda s: s.create("/a/g", "FILE"), lambda s: s.set_meta(oid, {"k": 2})]
    for op in ops:
        with pytest.raises(WnError) as ei:
            s = open_store(f"tinydb://{path}")      # opening may already say so
            try:
                op(s)
            finally:
                s.close()
        assert ei.value.key == "e.io.store.corrupt", (how, ei.value.line())
        named = "zzzz" if how == "ph-duplicate" else oid       # the record at fault
        assert str(path) in ei.value.reason and repr(named) in ei.value.reason
    assert path.read_bytes() == before           # no write rewrote the file


def test_content_that_is_not_base64_is_corrupt_not_empty(tmp_path):
    # garbage in a content record was decoded leniently: "cat" printed nothing
    path, oid = _tinydb_fresh(tmp_path)
    _tinydb_edit(path, lambda d: d["content"][oid].update(b64="!!!not base64"))
    s = open_store(f"tinydb://{path}")
    with pytest.raises(WnError) as ei:
        s.read(oid)
    assert ei.value.key == "e.io.store.corrupt" and oid in ei.value.reason
    s.create("/a/g", "FILE", content=b"new")      # other objects still work ...
    s.close()
    assert json.loads(path.read_text())["content"][oid]["b64"] == "!!!not base64"  # kept


def test_cli_prints_one_line(tmp_path):
    path, oid = _tinydb_fresh(tmp_path)
    _tinydb_edit(path, lambda d: d["obj"][oid].update(expi="soon"))
    r = wnshell_cli("--store", f"tinydb://{path}", "-c", "ls /a")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"e.io.store.corrupt : {path}: ")
    assert oid in lines[0]
