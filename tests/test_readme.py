"""README.md's "A first session" is what the shell prints, character for character.

The block is read from the README: ``$ wnshell`` then the banner line, then for each
``demo:~$ CMD`` line the lines up to the next prompt are CMD's output.  The commands run
in the REPL (prompt_toolkit's pipe input, the default SQLite store under a throwaway
HOME), stdout and stderr into one stream as on a terminal.
"""
from __future__ import annotations

import io
import os
import re

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "demo:~$ "


def first_session() -> list[str]:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    m = re.search(r"## A first session\n\n```console\n(.*?)```", text, re.S)
    assert m, "README.md has no 'A first session' console block"
    return m.group(1).splitlines()


def test_readme_first_session_is_what_the_shell_prints(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("WNSHELL_STORE", raising=False)
    lines = first_session()
    assert lines[0] == "$ wnshell"
    banner, rest = lines[1], lines[2:]
    commands, expected = [], ""
    for line in rest:
        if line.startswith(PROMPT):
            commands.append(line[len(PROMPT):])
        else:
            expected += line + "\n"

    from wnshell.cli import main
    from wnshell.environment import Environment
    screen = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text("".join(c + "\r" for c in commands))
        env = Environment(stdin=io.StringIO(), stdin_isatty=True, stdout=screen,
                          stderr=screen, vars={}, prompt_input=inp,
                          prompt_output=DummyOutput())
        status = main([], env)                       # `$ wnshell`, as the README types it
    assert commands[-1] == "exit" and status == 0
    assert screen.getvalue() == banner + "\n" + expected
    # and the store is the default one the banner names
    assert os.path.exists(tmp_path / ".local" / "share" / "wnshell" / "store.db")
