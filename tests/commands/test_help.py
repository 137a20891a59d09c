"""help and man read the registry; every core command has a real man page."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from wnshell.command import Command

from .conftest import one_error_line

MINE = ("cat", "ls", "mkdir", "touch", "rm", "mv", "obj", "json", "help", "man")


def test_help_lists_commands_with_summaries(run):
    from wnshell.registry import REGISTRY

    status, out, _ = run("help")
    assert status == 0
    rows = dict(line.split(None, 1) if " " in line else (line, "")
                for line in out.splitlines())
    for name in MINE:
        assert rows[name].strip() == REGISTRY.get(name).summary
    assert set(rows) == set(REGISTRY.names())


def test_help_and_man_read_the_session_registry(sh):
    """A command added to the session's registry (a child of the global one, as an
    embedding app or plugin host would) shows up in help and man at once."""
    from wnshell.registry import REGISTRY, Registry
    from wnshell.session import Session

    class Hello(Command):
        name = "zz-hello"
        summary = "a command registered at run time"
        man = "NAME\n    zz-hello - say hello\n"

        def run(self, session, args, stdin, stdout, stderr):
            stdout.write("hello\n")
            return 0

    reg = Registry(parent=REGISTRY)
    reg.register(Hello())
    session = Session(sh.store, user="demo", registry=reg)
    out = session.run("help")[1]
    row = [line for line in out.splitlines() if line.split()[0] == "zz-hello"]
    assert row and row[0].split(None, 1)[1] == "a command registered at run time"
    assert "obj" in [line.split()[0] for line in out.splitlines()]
    assert session.run("man zz-hello") == (0, "NAME\n    zz-hello - say hello\n", "")
    assert session.run("zz-hello") == (0, "hello\n", "")
    # the global registry is untouched
    assert sh.run("man zz-hello")[0] == 1


@pytest.mark.parametrize("name", MINE)
def test_man_page_is_complete(run, name):
    from wnshell.registry import REGISTRY

    cmd = REGISTRY.get(name)
    status, out, err = run(f"man {name}")
    assert status == 0 and err == ""
    assert out.startswith(f"NAME\n    {name} - ")
    for section in ("SYNOPSIS", "DESCRIPTION", "EXAMPLES"):
        assert f"\n{section}\n" in out
    for opt in cmd.options:
        assert opt in out, f"{name}: option {opt} not in the man page"
    for flag in cmd.flags:
        assert f"-{flag}" in cmd.options
    assert cmd.summary and "\n" not in cmd.summary
    # help CMD and CMD -h print the same page
    assert run(f"help {name}") == (0, out, "")
    assert run(f"{name} -h")[1] == out


def test_man_several_pages(run):
    out = run("man ls cat")[1]
    assert out.startswith("NAME\n    ls - ") and "\nNAME\n    cat - " in out


def test_man_unknown_and_missing_argument(run):
    status, out, err = run("man nosuchcmd")
    assert status == 1 and out == "" and one_error_line(err, "e.man.noexists : nosuchcmd")
    status, out, err = run("man")
    assert status == 2 and out == "" and one_error_line(err, "e.cmd.man")
    status, _, err = run("help nosuchcmd")
    assert status == 1 and one_error_line(err, "e.man.noexists")


def _wnshell():
    exe = shutil.which("wnshell", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "wnshell"]


def test_cli_runs_core_commands(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path), WNSHELL_STORE="memory://")
    script = ("mkdir -p ~/orders && obj -new '{\"nm\":\"o1\",\"or_fee\":100}' ~/orders -o -c "
              "| json -get or_fee; ls ~/orders; man json | cat")
    p = subprocess.run(_wnshell() + ["--store", "memory://", "-c", script], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:2] == ["100", "o1"] and lines[2] == "NAME"
    p = subprocess.run(_wnshell() + ["--store", "memory://", "-c", "cat ~/nothing"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == "e.io.obj.noexists : ~/nothing\n"
