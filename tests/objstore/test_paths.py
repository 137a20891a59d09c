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
