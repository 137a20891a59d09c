"""Hostile shell text (QA): deep nesting is one syntax-error line, never a
RecursionError; errors inside backticks name the script's line."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("text", [
    "echo " + "$(" * 100_000,                                # 100k open $(
    "echo " + "$(echo " * 2000 + "hi" + ")" * 2000,          # valid but absurdly deep
    "echo " + "${a?" * 5000 + "x" + "}" * 5000,              # nested defaults
])
def test_deep_nesting_is_a_syntax_error_line(run, text):
    status, out, err = run(text)
    assert status == 2 and out == ""
    assert err.startswith("e.cmd.syntax : ") and err.count("\n") == 1


def test_reasonable_nesting_still_runs(run):
    assert run("echo " + "$(echo " * 40 + "hi" + ")" * 40) == (0, "hi\n", "")
    assert run("echo " + "${a?" * 40 + "x" + "}" * 40) == (0, "x\n", "")


def test_deep_nesting_from_the_cli_is_one_line(cli, tmp_path):
    script = tmp_path / "deep.wn"
    script.write_text("echo " + "$(" * 200_000 + "\n")
    p = cli(str(script), store="memory://")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("e.cmd.syntax : ") and p.stderr.count("\n") == 1


def test_errors_inside_backticks_name_the_scripts_line(run):
    text = "echo a\n\n\necho `echo\n\necho \"x`\n"
    status, _, err = run(text)
    assert status == 2 and "(line 6)" in err, err
    text = "echo `echo a\n`\necho `echo b\n`\necho `echo c >&5`\n"
    status, _, err = run(text)
    assert status == 2 and "(line 5)" in err, err
