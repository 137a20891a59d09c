"""QA of the store API on every backend: limits that must hold after every operation."""
import pytest

from objstore.errors import WnError
from objstore.paths import MAX_PATH


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
    from objstore.common import now_ms
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
