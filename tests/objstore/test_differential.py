"""Random operation sequences give the same results on every backend as on memory://.

Each step runs the same operation (objects named by path, since ids differ) on the
backend under test and on a reference memory store, and compares the outcome (result
or error key) and then the whole tree (paths, races, metadata, content hashes).
"""
from __future__ import annotations

import os
import random

import pytest

import objstore
from objstore import StoreError

NAMES = ["a", "b", "c.txt", "d.json"]
VOLATILE = ("id", "pid", "ct", "lm")


def rand_path(rnd: random.Random) -> str:
    return "/" + "/".join(rnd.choice(NAMES) for _ in range(rnd.randint(1, 3)))


def rand_meta(rnd: random.Random) -> dict:
    vals = [0, 1, 2, -5, 2.5, "x", "", "y*", True, False, None, [1, "a"], {"k": [None]}]
    return {rnd.choice(["p", "q", "r", "s"]): rnd.choice(vals) for _ in range(rnd.randint(0, 3))}


def snapshot(store) -> list:
    out = []
    for o in store.query({}, sort={"ph": 1}):
        d = {k: v for k, v in o.items() if k not in VOLATILE}
        out.append(d)
    return out


def outcome(fn):
    try:
        res = fn()
    except StoreError as e:
        return ("error", e.key)
    if isinstance(res, dict):
        return ("obj", {k: v for k, v in res.items() if k not in VOLATILE})
    if isinstance(res, list):
        return ("list", [o["ph"] for o in res])
    return ("value", res)


def step(rnd: random.Random):
    """One random operation as ``f(store) -> result`` (same choices for every store)."""
    kind = rnd.choice(["create", "create", "create", "set", "cas", "incr", "write", "append",
                       "read", "move", "delete", "children", "query"])
    path = rand_path(rnd)
    meta = rand_meta(rnd)

    def oid(store, p=path):
        o = store.fetch(p)
        return o["id"] if o else "z" * 26

    if kind == "create":
        race = rnd.choice(["FILE", "DIR"])
        parents = rnd.random() < 0.5
        content = rnd.choice([None, b"", b"hello"]) if race == "FILE" else None
        return kind, lambda s: s.create(path, race, meta, parents=parents, content=content)
    if kind == "set":
        return kind, lambda s: s.set_meta(oid(s), meta)
    if kind == "cas":
        expect = rand_meta(rnd)
        return kind, lambda s: s.cas(oid(s), expect, meta)
    if kind == "incr":
        key = rnd.choice(["n", "p"])
        delta = rnd.choice([1, 3, -2])
        return kind, lambda s: s.incr(oid(s), key, delta)
    if kind in ("write", "append"):
        data = rnd.choice([b"", b"abc", "ü".encode()])
        return kind, lambda s: getattr(s, kind)(oid(s), data)
    if kind == "read":
        return kind, lambda s: s.read(oid(s))
    if kind == "move":
        dest = rand_path(rnd)
        return kind, lambda s: s.move(oid(s), dest)
    if kind == "delete":
        rec = rnd.random() < 0.5
        return kind, lambda s: s.delete(oid(s), recursive=rec)
    if kind == "children":
        glob = rnd.choice([None, "*", "*.txt", "?"])
        return kind, lambda s: s.children(oid(s), glob)
    match = [rand_meta(rnd) for _ in range(rnd.randint(1, 2))]
    srt = rnd.choice([None, {"p": 1}, {"q": -1, "ph": 1}])
    limit = rnd.choice([None, 3])
    return kind, lambda s: s.query(match, sort=srt, limit=limit)


# more seeds: WN_DIFF_SEEDS=60 pytest tests/objstore/test_differential.py
@pytest.mark.parametrize("seed", range(int(os.environ.get("WN_DIFF_SEEDS", "4"))))
def test_backend_matches_memory(store_factory, seed):
    if store_factory.backend == "memory":
        pytest.skip("memory is the reference")
    store = store_factory()
    ref = objstore.open_store("memory://")
    rnd = random.Random(seed)
    n_steps = 60 if store_factory.backend == "tinydb" else 150
    for i in range(n_steps):
        kind, op = step(rnd)
        want = outcome(lambda: op(ref))
        got = outcome(lambda: op(store))
        assert got == want, (i, kind)
        if i % 10 == 9 or kind in ("move", "delete"):
            assert snapshot(store) == snapshot(ref), (i, kind)
    assert snapshot(store) == snapshot(ref)
