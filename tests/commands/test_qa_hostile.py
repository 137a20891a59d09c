"""QA: hostile input to the core commands is one error line, and the session's home
stays where it is."""
from __future__ import annotations

import pytest


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


@pytest.mark.parametrize("cmd", ["mv ~ /elsewhere", "mv /home /elsewhere",
                                 "cd /; mv home h2", "mkdir ~/d /tmp2; mv ~/d ~ /tmp2"])
def test_mv_never_moves_the_home_away(sh, run, cmd):
    status, _, err = run(cmd)
    assert status == 1 and "e.io.mv.home : " in err, err
    assert sh.store.fetch("/home/demo") is not None
    assert run("cd ~; touch still-here")[0] == 0


def test_mv_inside_the_home_still_works(sh, run):
    assert run("mkdir ~/a; mv ~/a ~/b; ls ~")[1] == "b\n"
