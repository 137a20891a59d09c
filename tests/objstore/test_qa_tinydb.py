"""QA: a TinyDB store file edited by hand into something wrong.  Every operation must
answer one clear line (e.io.store.corrupt naming the file and the record), and no later
write may rewrite -- and so lose -- what is in the file."""
import json
import os
import subprocess
import sys

import pytest

from objstore import open_store
from objstore.errors import WnError


def _fresh(tmp_path):
    path = tmp_path / "store.json"
    s = open_store(f"tinydb://{path}")
    f = s.create("/a/f", "FILE", {"k": 1}, parents=True, content=b"hello")
    s.close()
    return path, f["id"]


def _edit(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
    return path.read_bytes()


CORRUPTIONS = {
    "expi-not-int": lambda d, oid: d["obj"][oid].update(expi="soon"),
    "lm-not-int": lambda d, oid: d["obj"][oid].update(lm="x"),
    "race-missing": lambda d, oid: d["obj"][oid].pop("race"),
    "race-unknown": lambda d, oid: d["obj"][oid].update(race="LINK"),
    "nm-not-str": lambda d, oid: d["obj"][oid].update(nm=5),
    "ph-duplicate": lambda d, oid: d["obj"].update({"zzzz": dict(d["obj"][oid], id="zzzz")}),
    "b64-missing": lambda d, oid: d["content"][oid].pop("b64"),
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_hand_corrupted_record_is_a_clear_error_and_nothing_is_lost(tmp_path, how):
    # before: TypeError/KeyError escaped as e.cmd.internal, or a bad record was served
    # (a duplicate path silently shadowed another object)
    path, oid = _fresh(tmp_path)
    before = _edit(path, lambda d: CORRUPTIONS[how](d, oid))
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
    path, oid = _fresh(tmp_path)
    _edit(path, lambda d: d["content"][oid].update(b64="!!!not base64"))
    s = open_store(f"tinydb://{path}")
    with pytest.raises(WnError) as ei:
        s.read(oid)
    assert ei.value.key == "e.io.store.corrupt" and oid in ei.value.reason
    s.create("/a/g", "FILE", content=b"new")      # other objects still work ...
    s.close()
    assert json.loads(path.read_text())["content"][oid]["b64"] == "!!!not base64"  # kept


def test_cli_prints_one_line(tmp_path):
    path, oid = _fresh(tmp_path)
    _edit(path, lambda d: d["obj"][oid].update(expi="soon"))
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "wnshell"]
    r = subprocess.run(cmd + ["--store", f"tinydb://{path}", "-c", "ls /a"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"e.io.store.corrupt : {path}: ")
    assert oid in lines[0]
