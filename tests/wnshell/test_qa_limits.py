"""Hostile shell text (QA): deep nesting is one syntax-error line, never a
RecursionError; errors inside backticks name the script's line."""
from __future__ import annotations

import pytest

from wnshell.command import Command


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


def test_assignment_takes_the_status_of_its_substitution(run):
    assert run("x=$(false); echo $?") == (0, "1\n", "")
    assert run("x=$(exit 3); echo $?") == (0, "3\n", "")
    assert run("x=$(true); echo $?") == (0, "0\n", "")
    assert run("false; x=1; echo $?") == (0, "0\n", "")
    assert run("x=$(false) && echo no || echo failed")[1] == "failed\n"


class _HalfThenCtrlC(Command):
    """Writes part of its output, then the user presses Ctrl-C."""
    name = "halfway"

    def run(self, session, args, stdin, stdout, stderr):
        stdout.write("partial output\n")
        raise KeyboardInterrupt


def _session_with(cmd):
    from objstore import open_store
    from wnshell import registry
    from wnshell.session import Session
    reg = registry.Registry(parent=registry.REGISTRY)
    reg.register(cmd)
    return Session(open_store("memory://"), registry=reg)


def test_ctrl_c_leaves_no_half_written_object():
    s = _session_with(_HalfThenCtrlC())
    assert s.run("echo whole > f")[0] == 0
    assert s.run("halfway > f")[0] == 130                      # existing: untouched
    assert s.run("cat f") == (0, "whole\n", "")
    assert s.run("halfway >> f")[0] == 130
    assert s.run("cat f") == (0, "whole\n", "")
    assert s.run("halfway > new")[0] == 130                    # created for it: gone
    assert s.store.fetch("/home/demo/new") is None
    assert s.run("echo ok > new; cat new") == (0, "ok\n", "")


@pytest.mark.parametrize("bad, more", [
    ("echo $(echo a", True),       # open $( : everything after it is inside
    ('echo "open', True),
    ("echo a |", False),           # a trailing operator: only blank lines follow
    ("echo a &&", False),
    ("echo a ||", False),
])
def test_piped_script_error_names_the_line_it_is_on(cli, bad, more):
    """A syntax error on line 50 of a piped script says line 50, not the last line."""
    after = "".join(f"echo m{i}\n" for i in range(10)) if more else ""
    text = "".join(f"echo l{i}\n" for i in range(1, 50)) + bad + "\n" + after + "\n\n"
    p = cli(store="memory://", input=text)
    assert p.returncode == 2 and p.stdout == ""          # nothing ran
    assert p.stderr.startswith("e.cmd.syntax : ") and p.stderr.count("\n") == 1
    assert "(line 50)" in p.stderr, p.stderr


@pytest.mark.parametrize("text", ["echo a 3>x", "echo a 12>x", "echo a 3<x", "echo a 9>>x"])
def test_other_file_descriptors_are_a_syntax_error(sh, run, text):
    """In sh, 3>x redirects fd 3; read as the argument "3", x silently got "a 3"."""
    status, out, err = run(text)
    assert status == 2 and out == "" and err.startswith("e.cmd.syntax : ")
    assert sh.store.fetch("/home/demo/x") is None


def test_digits_that_are_not_a_redirection_stay_words(run):
    assert run("echo a3>x; cat x") == (0, "a3\n", "")
    assert run("echo 3 > x; cat x") == (0, "3\n", "")
    assert run("echo 1.5>x; cat x") == (0, "1.5\n", "")
    assert run("echo hi > f; cat 0< f; cat 1>g f; cat g") == (0, "hi\nhi\n", "")
