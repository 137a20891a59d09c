"""json: pretty/compact a JSON stream, -get, -e; bad input is one line and prints nothing."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import one_error_line

DOC = '{"a": {"b": [1, "two", {"c": null}]}, "s": "咖啡 x", "n": 1.5, "t": true, "k.dot": 7}'


def test_pretty_default_and_compact(run):
    status, out, err = run("json", stdin=DOC)
    assert status == 0 and err == ""
    assert out == json.dumps(json.loads(DOC), indent=2, ensure_ascii=False) + "\n"
    status, out, _ = run("json -c", stdin=DOC)
    assert out == json.dumps(json.loads(DOC), separators=(",", ":"), ensure_ascii=False) + "\n"
    assert "咖啡" in out


def test_stream_of_values(run):
    status, out, _ = run("json -c", stdin='{"a":1}\n[2, 3]\n"s" 4 {"b":{}}')
    assert status == 0
    assert out == '{"a":1}\n[2,3]\n"s"\n4\n{"b":{}}\n'


def test_get_values(run):
    cases = {
        "a.b.0": "1\n",
        "a.b.1": "two\n",                 # strings print raw
        "a.b.-1.c": "null\n",
        "s": "咖啡 x\n",
        "n": "1.5\n",
        "t": "true\n",
        "k.dot": "7\n",                   # a top-level key holding a dot
    }
    for key, want in cases.items():
        assert run(f"json -get {key}", stdin=DOC) == (0, want, ""), key
    status, out, _ = run("json -get a -c", stdin=DOC)
    assert json.loads(out) == {"b": [1, "two", {"c": None}]} and out.count("\n") == 1
    status, out, _ = run("json -get a.b", stdin=DOC)
    assert json.loads(out) == [1, "two", {"c": None}] and out.startswith("[\n  1,")


def test_get_missing_key(run):
    for key in ("nope", "a.b.9", "a.b.x", "s.0"):
        status, out, err = run(f"json -get {key}", stdin=DOC)
        assert status == 1 and out == "", key
        assert one_error_line(err, "e.json.nokey") and key in err


def test_get_in_pipeline_and_substitution(sh, run):
    o = sh.store.create("/home/demo/o1", "FILE", {"or_status": "PAID", "prepay_id": "wx 123"},
                        parents=True)
    assert run("obj ~/o1 | json -get or_status") == (0, "PAID\n", "")
    status, out, _ = run('export P=$(obj ~/o1 | json -get prepay_id); echo "[$P]"')
    assert (status, out) == (0, "[wx 123]\n")
    assert run("obj ~/o1 -c | json -get id")[1] == o.id + "\n"


def test_pick_keys(run):
    status, out, _ = run("json -c -e '^[an]$'", stdin=DOC)
    assert json.loads(out) == {"a": {"b": [1, "two", {"c": None}]}, "n": 1.5}
    status, out, _ = run("json -c -e '^x'", stdin='[{"x":1,"y":2},3]')
    assert json.loads(out) == [{"x": 1}, 3]


def test_invalid_json_prints_nothing(run):
    for bad in ('{"a":', "{'a':1}", '{"a":1} {', "NaN", "[1, Infinity]", "hello", "   "):
        status, out, err = run("json", stdin=bad)
        assert status == 1 and out == "", bad
        assert one_error_line(err, "e.json.invalid"), (bad, err)


def test_usage_errors(run):
    for text in ("json -get", "json ~/file", "json -zz 1"):
        status, out, err = run(text, stdin="{}")
        assert status == 2 and out == "", text
        assert one_error_line(err, "e.cmd.json"), (text, err)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_roundtrip_property(value):
    from objstore import open_store
    from wnshell.session import Session

    sh = Session(open_store("memory://"), user="demo")
    text = json.dumps(value)
    for cmd in ("json", "json -c"):
        status, out, err = sh.run(cmd, stdin=text)
        assert status == 0, err
        assert json.loads(out) == value


def test_cli_json_from_process_stdin(tmp_path):
    import os
    import subprocess

    from .test_help import _wnshell

    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path), WNSHELL_STORE="memory://")
    p = subprocess.run(_wnshell() + ["-c", "json -get a.b"], input='{"a":{"b":"x y"}}',
                       env=env, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (0, "x y\n", "")
    p = subprocess.run(_wnshell() + ["-c", "json"], input='{"a":', env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("e.json.invalid : ") and p.stderr.count("\n") == 1


@pytest.mark.parametrize("cmd, stdin", [
    ("json", "[" * 100_000),
    ("json -c", "[" * 5000 + "]" * 5000),
    ("json -get a", '{"a":' + "[" * 50_000),
    ("touch f; obj f -u", "[" * 100_000),
])
def test_deeply_nested_json_is_invalid_not_internal(run, cmd, stdin):
    status, out, err = run(cmd, stdin)
    assert status == 1 and out == ""
    assert "e.json.invalid : " in err and "nested too deeply" in err, err
    assert "e.cmd.internal" not in err
