"""``objstore.scoped.ScopedStore`` on every backend: a view confined to /home/demo sees,
changes and finds nothing outside it, through the Store API only."""
from __future__ import annotations

import pytest

from objstore import StoreError
from objstore.errors import BAD_INPUT, FORBIDDEN, NOT_FOUND
from objstore.scoped import ScopedStore


@pytest.fixture
def world(store):
    """A store with two users' trees and a confined view of demo's."""
    o1 = store.create("/home/demo/orders/o1", "FILE", {"or_status": 0, "total_fee": 1},
                      parents=True, content=b"mine")
    x1 = store.create("/home/other/orders/x1", "FILE", {"or_status": 0, "total_fee": 1},
                      parents=True, content=b"secret")
    # a name that only shares a prefix with the root
    near = store.create("/home/demo2/orders/n1", "FILE", {"or_status": 0},
                        parents=True, content=b"near")
    top = store.create("/etc/conf", "FILE", {"or_status": 0}, parents=True)
    view = ScopedStore(store, "/home/demo")
    return store, view, {"o1": o1, "x1": x1, "near": near, "top": top}


def noexists(fn, *a, **kw):
    with pytest.raises(StoreError) as ei:
        fn(*a, **kw)
    assert ei.value.key == "e.io.obj.noexists" and ei.value.kind == NOT_FOUND
    assert "\n" not in ei.value.line()
    return ei.value


def forbidden(fn, *a, **kw):
    with pytest.raises(StoreError) as ei:
        fn(*a, **kw)
    assert ei.value.key == "e.io.forbidden" and ei.value.kind == FORBIDDEN
    assert "\n" not in ei.value.line()
    return ei.value


def snapshot(store):
    return {o["ph"]: (dict(o), store.read(o["id"]) if o["race"] == "FILE" else None)
            for o in store.query({})}


def test_reads_inside_work(world):
    store, view, o = world
    assert view.fetch("/home/demo/orders/o1") == store.get(o["o1"].id)
    assert view.get(o["o1"].id)["ph"] == "/home/demo/orders/o1"
    assert view.fetch(f"id:{o['o1'].id}")["ph"] == "/home/demo/orders/o1"
    assert view.fetch("~/orders/o1", home="/home/demo")["id"] == o["o1"].id
    assert view.fetch("o1", cwd="/home/demo/orders")["id"] == o["o1"].id
    assert view.fetch("/home/demo")["ph"] == "/home/demo"
    assert view.read(o["o1"].id) == b"mine"
    assert [c["nm"] for c in view.children(view.fetch("/home/demo").id)] == ["orders"]
    assert view.check("/home/demo/orders/o1")["id"] == o["o1"].id
    assert view.check_id(o["o1"].id)["id"] == o["o1"].id


@pytest.mark.parametrize("path", ["/home/other/orders/x1", "/home/other", "/home", "/",
                                  "/etc/conf", "/home/demo2/orders/n1",
                                  "/home/demo/../other/orders/x1"])
def test_paths_outside_are_not_found(world, path):
    store, view, o = world
    assert store.fetch(path) is not None          # it exists...
    assert view.fetch(path) is None               # ...but not for the view
    noexists(view.check, path)


def test_ids_outside_are_not_found_and_untouched(world):
    store, view, o = world
    before = snapshot(store)
    for key in ("x1", "near", "top"):
        oid = o[key].id
        assert view.get(oid) is None
        assert view.fetch(f"id:{oid}") is None
        noexists(view.check, f"id:{oid}")
        noexists(view.check_id, oid)
        noexists(view.read, oid)
        noexists(view.write, oid, b"pwned")
        noexists(view.append, oid, b"pwned")
        noexists(view.set_meta, oid, {"or_status": 2})
        noexists(view.cas, oid, {"or_status": 0}, {"or_status": 2})
        noexists(view.cas_applied, oid, {"or_status": 0}, {"or_status": 2})
        noexists(view.incr, oid, "pay_seq")
        noexists(view.delete, oid)
        noexists(view.delete, oid, recursive=True)
        noexists(view.move, oid, "/home/demo/stolen")
    for d in ("/home/other", "/home", "/"):
        noexists(view.children, store.fetch(d).id)
    # the answer for an outside id is the answer for an id that never existed
    assert noexists(view.read, "zzzzzzzzzzzzzzzzzzzzzzzzzz").key == \
        noexists(view.read, o["x1"].id).key
    assert snapshot(store) == before


def test_id_anchors_cannot_climb_out(world):
    store, view, o = world
    mine = o["o1"].id
    # ``id:<inside>/../../other/...`` resolves outside: not found
    assert view.fetch(f"id:{mine}/../../../other/orders/x1") is None
    assert view.fetch(f"id:{mine}/..")["ph"] == "/home/demo/orders"
    # an outside anchor is not found even when the path would lead back inside
    assert view.fetch(f"id:{o['x1'].id}/../../../demo/orders/o1") is None
    before = snapshot(store)
    forbidden(view.create, f"id:{mine}/../../../other/planted")
    noexists(view.create, f"id:{o['x1'].id}/../planted")
    assert snapshot(store) == before


def test_writes_outside_are_forbidden_and_change_nothing(world):
    store, view, o = world
    before = snapshot(store)
    forbidden(view.create, "/home/other/orders/planted", "FILE", {"or_status": 0})
    forbidden(view.create, "/home/other/new/deep", "DIR", parents=True)
    forbidden(view.create, "/home/demo2/x")
    forbidden(view.create, "/etc/x", content=b"x")
    forbidden(view.create, "../other/x", cwd="/home/demo")
    forbidden(view.move, o["o1"].id, "/home/other/orders/")
    forbidden(view.move, o["o1"].id, "/tmp/o1", )
    forbidden(view.move, o["o1"].id, "~/../demo2/o1", home="/home/demo")
    assert snapshot(store) == before


def test_writes_inside_work(world):
    store, view, o = world
    f = view.create("/home/demo/orders/o2", "FILE", {"total_fee": 5}, content=b"hi")
    assert store.fetch("/home/demo/orders/o2")["total_fee"] == 5
    d = view.create("~/a/b", "DIR", parents=True, home="/home/demo")
    assert d["ph"] == "/home/demo/a/b"
    assert view.create(f"id:{d.id}/c.txt")["ph"] == "/home/demo/a/b/c.txt"
    assert view.set_meta(f.id, {"k": 1})["k"] == 1
    assert view.cas(f.id, {"k": 1}, {"k": 2})["k"] == 2
    assert view.incr(f.id, "n") == 1
    view.write(f.id, b"abc")
    view.append(f.id, b"def")
    assert store.read(f.id) == b"abcdef"
    moved = view.move(f.id, "/home/demo/a")        # into an existing DIR
    assert moved["ph"] == "/home/demo/a/o2"
    view.delete(d.id, recursive=True)
    assert store.fetch("/home/demo/a/b") is None
    view.delete(moved.id)
    assert view.get(moved.id) is None


def test_fresh_view_checks_ids_it_did_not_see(world):
    """Writes by id on a new view (nothing cached) still reach inside objects and
    only those."""
    store, _, o = world
    view = ScopedStore(store, "/home/demo")
    assert view.set_meta(o["o1"].id, {"seen": 1})["seen"] == 1
    view2 = ScopedStore(store, "/home/other")
    noexists(view2.set_meta, o["o1"].id, {"seen": 2})
    assert store.get(o["o1"].id)["seen"] == 1


def test_query_and_count_see_only_the_subtree(world):
    store, view, o = world
    everything = {o["ph"] for o in store.query({})}
    assert "/home/other/orders/x1" in everything and "/etc/conf" in everything
    mine = {x["ph"] for x in view.query({})}
    assert mine == {"/home/demo", "/home/demo/orders", "/home/demo/orders/o1"}
    assert view.count({}) == 3 == view.count([])
    assert [x["ph"] for x in view.query({"or_status": 0})] == ["/home/demo/orders/o1"]
    assert view.count({"or_status": 0}) == 1
    # OR branches: each one is confined
    assert {x["ph"] for x in view.query([{"or_status": 0}, {"nm": "x1"}, {"nm": "conf"}])} \
        == {"/home/demo/orders/o1"}
    # the caller's own ph condition is ANDed with the scope, never replaces it
    assert view.query({"ph": "/home/other/orders/x1"}) == []
    assert view.query({"ph": "^/home/"}) and all(
        x["ph"].startswith("/home/demo") and not x["ph"].startswith("/home/demo2")
        for x in view.query({"ph": "^/home/"}))
    assert view.count({"ph": "^/home/other"}) == 0
    assert view.query({"id": o["x1"].id}) == [] and view.count({"id": o["x1"].id}) == 0
    # d0/d1 conditions are decided against the root's own values
    assert view.query({"d1": "other"}) == [] and view.count({"d1": "other"}) == 0
    assert view.query({"d1": "!demo"}) == []
    assert {x["ph"] for x in view.query({"d1": "demo", "or_status": 0})} == \
        {"/home/demo/orders/o1"}
    assert view.count([{"d1": "other"}, {"nm": "o1"}]) == 1
    # sort, skip and limit apply to the confined result
    view.create("/home/demo/orders/o0", meta={"or_status": 0})
    got = view.query({"or_status": 0}, sort={"nm": -1}, skip=1, limit=5)
    assert [x["nm"] for x in got] == ["o0"]


def test_bad_queries_are_still_bad_input(world):
    store, view, o = world
    for bad in ("x", 5, [5], {"k": object()}, {"": 1}):
        with pytest.raises(StoreError) as ei:
            view.query(bad)
        assert ei.value.kind == BAD_INPUT and ei.value.key == "e.io.query.invalid"
    with pytest.raises(StoreError) as ei:
        view.query({"d1": "other"}, sort={"x": 3})
    assert ei.value.kind == BAD_INPUT


def test_root_needs_two_segments(store):
    for root in ("/", "/home", "id:abc"):
        with pytest.raises(StoreError) as ei:
            ScopedStore(store, root)
        assert ei.value.kind == BAD_INPUT


# ---- hidden subtrees and objects held in memory (a .regapi request's view) -------------------
def test_hidden_subtrees_are_like_the_outside(store):
    conf = store.create("/home/demo/.weixin/xxx/wxconf", "FILE", parents=True, content=b"k")
    api = store.create("/home/demo/.regapi/api/pay", "FILE", parents=True, content=b"t")
    store.create("/home/demo/orders/o1", "FILE", {"n": 1}, parents=True)
    view = ScopedStore(store, "/home/demo", hide=(".weixin", ".regapi"))
    for oid in (conf["id"], api["id"]):
        assert view.get(oid) is None
        noexists(view.read, oid)
        noexists(view.write, oid, b"x")
        noexists(view.set_meta, oid, {"a": 1})
    assert view.fetch("/home/demo/.weixin/xxx/wxconf") is None
    assert view.fetch("/home/demo/.weixin") is None
    home = view.fetch("/home/demo")
    assert sorted(c["nm"] for c in view.children(home["id"])) == ["orders"]
    assert [o["nm"] for o in view.query({})] != [] and all(
        not o["ph"].startswith(("/home/demo/.weixin", "/home/demo/.regapi"))
        for o in view.query({}))
    assert view.count({"nm": "wxconf"}) == 0 and view.query({"nm": "pay"}) == []
    for path in ("/home/demo/.regapi/api/evil", "/home/demo/.weixin/x"):
        with pytest.raises(StoreError) as ei:
            view.create(path, "FILE", parents=True)
        assert ei.value.kind == FORBIDDEN
    o1 = view.fetch("/home/demo/orders/o1")
    with pytest.raises(StoreError):
        view.move(o1["id"], "/home/demo/.regapi/api/o1")
    # skip and limit count visible objects only
    for i in range(5):
        store.create(f"/home/demo/.regapi/tmp/r{i}", "FILE", {"n": 1}, parents=True)
    assert [o["nm"] for o in view.query({"n": 1}, limit=1)] == ["o1"]
    assert view.query({"n": 1}, skip=1, limit=3) == []
    # the owner's view of the same root sees everything below it
    assert view.unhidden.read(conf["id"]) == b"k"
    # a granted id is visible, nothing else of its tree
    view.grant(api["id"])
    assert view.read(api["id"]) == b"t" and view.get(conf["id"]) is None


def test_held_objects_exist_only_in_their_view(store):
    from objstore.base import WnObj
    doc = WnObj({"id": "reqobj1", "nm": "reqobj1", "ph": "/home/demo/.regapi/tmp/reqobj1",
                 "race": "FILE", "len": 4, "http-method": "POST"})
    view = ScopedStore(store, "/home/demo", hide=(".regapi",), held=[(doc, b"body")])
    other = ScopedStore(store, "/home/demo", hide=(".regapi",))
    assert view.get("reqobj1")["http-method"] == "POST"
    assert view.fetch("id:reqobj1")["len"] == 4 and view.read("reqobj1") == b"body"
    assert view.set_meta("reqobj1", {"seen": 1})["seen"] == 1
    assert view.append("reqobj1", b"!")["len"] == 5 and view.read("reqobj1") == b"body!"
    assert view.query({"http-method": "POST"}) == []            # never in a query
    assert other.get("reqobj1") is None and store.get("reqobj1") is None
    noexists(other.read, "reqobj1")
    view.delete("reqobj1")
    assert view.get("reqobj1") is None


def test_held_object_fields_are_made_on_first_use_and_once(store):
    """A held object given as a callable (a request's object, whose metadata is built
    from the request only if something looks at it): its body is read without it,
    its fields are made once, when first looked at, and then behave as any held
    object's."""
    from objstore.base import WnObj
    made = []

    class Lazy:
        id = "reqobj3"

        def __call__(self):
            made.append(1)
            return WnObj({"id": "reqobj3", "nm": "reqobj3", "race": "FILE", "len": 4,
                          "ph": "/home/demo/.regapi/tmp/reqobj3", "http-method": "POST"})
    view = ScopedStore(store, "/home/demo", hide=(".regapi",), held=[(Lazy(), b"body")])
    assert view.is_held("reqobj3") and not view.is_held("other") and not view.is_held(3)
    assert view.read("reqobj3") == b"body" and made == []
    assert view.fetch("id:reqobj3")["http-method"] == "POST" and made == [1]
    assert view.set_meta("reqobj3", {"seen": 1})["seen"] == 1
    assert view.get("reqobj3")["seen"] == 1 and made == [1]
    assert ScopedStore(store, "/home/demo").get("reqobj3") is None
    assert not ScopedStore(store, "/home/demo").is_held("reqobj3")


def test_held_objects_are_copied_out_deeply(store):
    """What get/fetch/set_meta return of a held object may be changed at any depth by
    the caller: the view's own copy stays as it was."""
    from objstore.base import WnObj
    doc = WnObj({"id": "reqobj2", "nm": "reqobj2", "ph": "/home/demo/.regapi/tmp/reqobj2",
                 "race": "FILE", "len": 0, "args": ["a", "b"],
                 "deep": {"l": [1, {"x": [2.5, None, True]}], "s": "t"}})
    view = ScopedStore(store, "/home/demo", hide=(".regapi",), held=[(doc, b"")])
    want = {"l": [1, {"x": [2.5, None, True]}], "s": "t"}
    for got in (view.get("reqobj2"), view.fetch("id:reqobj2"),
                view.set_meta("reqobj2", {"k": 1})):
        assert got["deep"] == want and got["args"] == ["a", "b"]
        got["args"].append("c")
        got["deep"]["l"][1]["x"].append(0)
        got["deep"]["s"] = "changed"
        got["deep"]["l"].pop(0)
    again = view.get("reqobj2")
    assert again["deep"] == want and again["args"] == ["a", "b"] and again["k"] == 1


def test_scope_edges_are_whole_names(store):
    """The root and each hidden subtree are whole path names: a sibling whose name
    merely starts the same is another object (outside, or visible); the hidden DIR
    itself is hidden; a grant never reaches outside the root."""
    made = {ph: store.create(ph, race, parents=True) for ph, race in [
        ("/home/demo", "DIR"), ("/home/demo/.weixin", "DIR"), ("/home/demo/.weixinx", "FILE"),
        ("/home/demo/.weixin/x", "FILE"), ("/home/demox/f", "FILE"), ("/home/dem", "FILE"),
        ("/home/demo/o", "FILE")]}
    view = ScopedStore(store, "/home/demo", hide=(".weixin",))
    visible = {ph for ph, o in made.items() if view.get(o["id"]) is not None}
    assert visible == {"/home/demo", "/home/demo/.weixinx", "/home/demo/o"}
    assert {ph for ph in made if view.fetch(ph) is not None} == visible
    assert {ph for ph, o in made.items() if view.fetch("id:" + o["id"]) is not None} == visible
    view.grant(made["/home/demox/f"]["id"])
    view.grant(made["/home/demo/.weixin"]["id"])
    assert view.get(made["/home/demox/f"]["id"]) is None
    assert view.get(made["/home/demo/.weixin"]["id"])["ph"] == "/home/demo/.weixin"
    assert view.get(made["/home/demo/.weixin/x"]["id"]) is None
