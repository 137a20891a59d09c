"""QA: the CLI when its reader goes away, and scripts saved with a UTF-8 BOM."""
from __future__ import annotations

import os
import subprocess
import sys


def test_closed_stdout_stops_the_script_quietly(tmp_path):
    """``wnshell ... | head -1``: like a shell killed by SIGPIPE -- status 141, no
    error line per remaining command, the rest of the script does not run."""
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.pop("WNSHELL_STORE", None)
    r, w = os.pipe()
    os.close(r)                                    # nobody will ever read stdout
    script = "echo one\necho two\necho three\n" * 3
    p = subprocess.run([sys.executable, "-m", "wnshell.cli", "--store", "memory://",
                        "-c", script], stdout=w, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=60)
    os.close(w)
    assert p.returncode == 141
    assert p.stderr == ""


def test_many_lines_into_a_closed_pipe_give_no_error_flood(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.pop("WNSHELL_STORE", None)
    cmd = (f"yes 'echo x' | head -n 20000 | {sys.executable} -m wnshell.cli "
           f"--store memory:// | head -n 1")
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.stdout == "x\n"
    assert p.stderr.count("\n") <= 1, p.stderr[:300]


def test_script_with_a_utf8_bom(cli, tmp_path):
    script = tmp_path / "bom.wn"
    script.write_bytes(b"\xef\xbb\xbfecho hi\n")
    p = cli(str(script), store="memory://")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hi\n", "")
    p = cli(store="memory://", input="\ufeffecho piped\n")
    assert (p.returncode, p.stdout, p.stderr) == (0, "piped\n", "")
