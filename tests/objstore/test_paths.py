"""Path resolution, name rules and ids (pure functions, no store)."""
from __future__ import annotations

import re

import pytest

from objstore import StoreError
from objstore.paths import check_name, is_id, new_id, resolve


@pytest.mark.parametrize("path, cwd, home, want", [
    ("/a/b", "/", None, "/a/b"),
    ("/", "/x", None, "/"),
    ("/a//b/", "/", None, "/a/b"),
    ("/a/./b/../c", "/", None, "/a/c"),
    ("/..", "/", None, "/"),
    ("/../../etc", "/", None, "/etc"),
    ("b", "/a", None, "/a/b"),
    ("./b", "/a", None, "/a/b"),
    ("..", "/a/b", None, "/a"),
    ("../../../../x", "/a/b", None, "/x"),
    (".", "/a/b", None, "/a/b"),
    ("~", "/", "/home/demo", "/home/demo"),
    ("~/orders/o1", "/x", "/home/demo", "/home/demo/orders/o1"),
    ("~/../other", "/", "/home/demo", "/home/other"),
    ("~x", "/a", "/home/demo", "/a/~x"),          # only ~ and ~/ expand
    ("id:abc", "/", None, "id:abc"),
    ("id:abc/x/./y/..", "/", None, "id:abc/x"),
    ("id:abc/../x", "/", None, "id:abc/../x"),     # resolved by the store from abc's ph
    ("x/y", "id:abc/d", None, "id:abc/d/x/y"),
    ("a b/ü.txt", "/", None, "/a b/ü.txt"),
    # each case of resolve's text-only shortcut, and its edges
    ("/home/demo/.regapi/tmp", "/", None, "/home/demo/.regapi/tmp"),
    ("/a/.", "/", None, "/a"),
    ("/a/..", "/", None, "/"),
    ("/a/.../..b", "/", None, "/a/.../..b"),
    ("/ü/x", "/", None, "/ü/x"),
    ("/a\u2028b\x80", "/", None, "/a\u2028b\x80"),     # only ASCII controls are refused
    ("/" + "x" * 254, "/", None, "/" + "x" * 254),
    ("/" + "x" * 255, "/", None, "/" + "x" * 255),
    ("/" + "x" * 200 + "/" + "y" * 200, "/", None, "/" + "x" * 200 + "/" + "y" * 200),
    ("id:a_B-9", "/x", None, "id:a_B-9"),
    ("id:" + "a" * 64, "/", None, "id:" + "a" * 64),
    ("id:abc/x/y", "/", None, "id:abc/x/y"),
    ("id:abc/..x/.y", "/", None, "id:abc/..x/.y"),
    ("id:abc/x//y", "/", None, "id:abc/x/y"),
    ("id:abc/x/..", "/", None, "id:abc"),
    ("id:abc/", "/", None, "id:abc"),
    ("o 1/x", "/home/demo", None, "/home/demo/o 1/x"),
    ("x", "/", None, "/x"),
    ("x", None, None, "/x"),
    ("x", "~", "/home/demo", "/home/demo/x"),
    ("x", "/a//b/", None, "/a/b/x"),
    ("x/", "/a", None, "/a/x"),
    ("x//y", "/a", None, "/a/x/y"),
    ("x/./y/..", "/a", None, "/a/x"),
    ("..x", "/a", None, "/a/..x"),
    ("i", "/a", None, "/a/i"),
    ("id", "/a", None, "/a/id"),
    ("idx:y", "id:abc", None, "id:abc/idx:y"),
    ("~/a/b", "/x", "/", "/a/b"),
    ("~/a", "/x", "/é", "/é/a"),
    ("~/a", "/x", "/h//d/", "/h/d/a"),
    ("~/a/", "/x", "/h", "/h/a"),
    ("~/", "/x", "/h", "/h"),
    ("~/.", "/x", "/h", "/h"),
    ("~/a", "/x", "rel", "/rel/a"),
    ("~/a", "/x", "id:abc", "id:abc/a"),
])
def test_resolve(path, cwd, home, want):
    assert resolve(path, cwd=cwd, home=home) == want


@pytest.mark.parametrize("path, home", [
    ("", None),
    ("/a/\x00b", None),
    ("/a\nb", None),
    ("/a/\x7f", None),
    ("~/x", None),                 # no home
    ("id:", None),
    ("id:a b/x", None),
    ("id:a/b\x01", None),
    ("/" + "x" * 256, None),       # name too long
    (123, None),
    ("id:abc\n", None),             # an id's regex alone would let the newline through
    ("id:" + "a" * 65, None),
    ("id:a.b", None),
    ("id:/x", None),
    ("id:a.b/x", None),
    ("id:" + "a" * 65 + "/x", None),
    ("id:abc/x\ud800", None),
    ("/\ud800", None),
    ("\ud800", None),
    ("/" + "x" * 255 + "/" + "y" * 256, None),
    ("/" + "x" * (4097 - 1), None),
    ("~/" + "y" * 100, "/" + "/".join(["x" * 200] * 20)),   # below the home: too long
])
def test_resolve_rejects(path, home):
    with pytest.raises(StoreError) as ei:
        resolve(path, cwd="/", home=home)
    assert ei.value.key == "e.io.path.invalid"
    assert "\n" not in ei.value.line()


@pytest.mark.parametrize("nm", ["", "a/b", ".", "..", "a\x00", "tab\there", "x" * 256, None])
def test_bad_names(nm):
    with pytest.raises(StoreError) as ei:
        check_name(nm)
    assert ei.value.key == "e.io.path.invalid"


def test_good_names():
    for nm in ["a", ".hidden", "o 1.txt", "订单", "x" * 255, "~x", "a..b"]:
        assert check_name(nm) == nm


def test_ids_are_26_lowercase_url_safe_and_unique():
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    import base64
    for i in ids:
        assert re.fullmatch(r"[a-z2-7]{26}", i)
        assert is_id(i)
        # base32 of 128 bits, as base64.b32encode spells it (unpadded, lowercase)
        raw = base64.b32decode(i.upper() + "======")
        assert len(raw) == 16 and base64.b32encode(raw).decode().rstrip("=").lower() == i
    assert not is_id("a/b") and not is_id("") and not is_id(None)


def test_ids_are_unique_across_threads():
    """Ids come from a per-process buffer of random bytes: threads taking ids at once
    never get the same bytes."""
    import threading
    got: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def take(out):
        start.wait()
        for _ in range(5000):
            out.append(new_id())
    threads = [threading.Thread(target=take, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in got for i in out]
    assert len(every) == 40000 and len(set(every)) == 40000


def test_forked_child_never_repeats_the_parents_ids():
    """A forked worker drops the random bytes it inherited: its ids and the parent's
    next ids have nothing in common (without that, both would spell the same ids)."""
    import os
    new_id()                             # the parent's buffer is filled and part used
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                         # the child: its ids to the parent, then exit
        try:
            os.close(r)
            os.write(w, " ".join(new_id() for _ in range(300)).encode())
        finally:
            os._exit(0)
    os.close(w)
    parent = {new_id() for _ in range(300)}
    with os.fdopen(r, "rb") as f:
        child = set(f.read().decode().split())
    os.waitpid(pid, 0)
    assert len(child) == 300 and len(parent) == 300
    assert not parent & child


def test_resolve_shortcut_agrees_with_the_rules():
    """resolve decides common paths on their text alone: for every mix of segments,
    cwd and home it answers as the full rules (``_resolve``) do, result or error."""
    import itertools
    import random

    from objstore import paths

    segs = ["a", ".", "..", "", "~", "~x", "id:abc", "id:", "i", "é", "a b", "\x01", "\x7f",
            "x" * 255, "x" * 256, "\u2028", "\ud800", ".h", "a\nb"]
    cwds = ["/", "/home/demo", "/home/demo/", "id:abc", "id:abc/d", "id:abc/..", "x", None,
            "~", "~/y", "", "id:b c", "/\x01"]
    homes = [None, "/home/demo", "~", "rel", "id:abc/h", "/", "/é", "/home/demo/",
             "/" + "/".join(["x" * 200] * 20)]

    def outcome(fn, *args):
        try:
            return fn(*args)
        except StoreError as e:
            return (e.key, e.reason)
    rnd = random.Random(10)
    cases = [("/".join(p), c, h) for p in itertools.product(segs[:8], repeat=2)
             for c in cwds[:4] for h in homes[:2]]
    for _ in range(4000):
        p = "/".join(rnd.choice(segs) for _ in range(rnd.randint(1, 4)))
        cases.append((rnd.choice(["", "/"]) + p, rnd.choice(cwds), rnd.choice(homes)))
    for p, c, h in cases:
        assert outcome(resolve, p, c, h) == outcome(paths._resolve, p, c, h), (p, c, h)


@pytest.mark.parametrize("ph, want", [
    ("/", (None, None)), ("/a", ("a", None)), ("/a/b", ("a", "b")), ("/a/b/c/d", ("a", "b")),
    ("/a/", ("a", None)), ("/a//b", ("a", "b")), ("//a", ("a", None)), ("a/b", ("a", "b")),
    ("", (None, None)), ("/home/demo/.regapi/tmp/x", ("home", "demo")),
])
def test_d0_d1_are_the_first_two_names(ph, want):
    from objstore.paths import d0_d1
    assert d0_d1(ph) == want
