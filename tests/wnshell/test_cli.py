"""The wnshell command line: -c, script files, piped stdin -- in this process through
``main(argv, Environment)`` (fixture ``cli_inproc``), and in real subprocesses where the
process itself matters (start-up imports, stream order, exit codes, ``-e``)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.wnshell.conftest import REPO


def test_dash_c(cli_inproc):
    p = cli_inproc("-c", "echo hi $0 $1; echo $#", "zero", "one")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hi zero one\n1\n", "")


def test_exit_status_is_the_last_commands(cli_inproc):
    assert cli_inproc("-c", "true; false").returncode == 1
    assert cli_inproc("-c", "exit 7; echo no").returncode == 7
    p = cli_inproc("-c", "nosuch")
    assert (p.returncode, p.stderr) == (127, "e.cmd.notfound : nosuch\n")
    p = cli_inproc("-c", "echo 'open")
    assert p.returncode == 2 and p.stderr.startswith("e.cmd.syntax : ")
    assert "Traceback" not in p.stderr


def test_script_file_with_args(cli_inproc, tmp_path):
    script = tmp_path / "s.wn"
    script.write_text("# a script\necho $0 $1 \"$2\"\necho a \\\n  b\n"
                      "echo c\n   -d\nexit 3\n", encoding="utf-8")
    p = cli_inproc(str(script), "x", "y z")
    assert p.returncode == 3
    assert p.stdout == f"{script} x y z\na b\nc -d\n"
    p = cli_inproc(str(tmp_path / "missing.wn"))
    assert p.returncode == 127 and p.stderr.startswith("e.cmd.script.noexists")


def test_piped_stdin_runs_without_prompt(cli_inproc):
    p = cli_inproc(input="echo one\nfalse\necho two | cat\n")
    assert (p.returncode, p.stdout, p.stderr) == (0, "one\ntwo\n", "")
    p = cli_inproc(input="echo x; false\n")
    assert p.returncode == 1


def test_dash_c_commands_read_process_stdin(cli_inproc):
    assert cli_inproc("-c", "cat | cat", input="piped data\n").stdout == "piped data\n"


def test_store_and_user_options(cli_inproc, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    p = cli_inproc("--user", "bob", "-c", "echo kept > note; pwd", store=url)
    assert p.stdout == "/home/bob\n"
    p = cli_inproc("--user", "bob", "-c", "cat ~/note", store=url)
    assert p.stdout == "kept\n"
    # default store: SQLite in $XDG_DATA_HOME/wnshell/
    assert cli_inproc("-c", "echo d > f").returncode == 0
    assert (tmp_path / "xdg" / "wnshell").is_dir()
    assert cli_inproc("-c", "cat f").stdout == "d\n"


def test_bad_invocations(cli_inproc):
    p = cli_inproc("--bogus")
    assert p.returncode == 2 and p.stderr.startswith("e.cmd.wnshell.usage : unknown option")
    p = cli_inproc("-c")
    assert p.returncode == 2
    p = cli_inproc("--store", "nope:///x", "-c", "echo")
    assert p.returncode == 1 and p.stderr.startswith("e.io.store")
    p = cli_inproc("--user", "a/b", "-c", "echo")
    assert p.returncode == 1 and p.stderr.startswith("e.cmd.user.invalid")
    assert cli_inproc("--help").stdout.startswith("usage: wnshell")


def test_non_interactive_modes_stay_lean(tmp_path):
    """-c must not import prompt_toolkit, requests, or command modules it does not use."""
    code = ("import sys\nfrom wnshell.cli import main\n"
            "st = main(['--store', 'memory://', '-c', 'echo hi'])\n"
            "heavy = [m for m in ('prompt_toolkit', 'requests', 'commands.fs', 'commands.obj',"
            " 'commands.json_cmd', 'commands.help', 'commands.httpc', 'commands.weixin',"
            " 'importlib.metadata', 'wnshell.repl') if m in sys.modules]\n"
            "print(st, heavy)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert p.stdout == "hi\n0 []\n", p.stderr


def test_dash_c_on_the_default_store_stays_lean(tmp_path):
    """Opening the default SQLite store and running -c must not import what only some
    commands need: urllib.parse (store URLs are read by hand), dataclasses/inspect
    (query conditions), typing, hashlib (content writes), mimetypes (file creation),
    secrets (new ids: os.urandom is enough), contextlib/threading/weakref (the SQLite
    store uses their C parts), importlib.  Each costs start-up time (issue 3)."""
    import os
    lean = ("urllib.parse", "ipaddress", "dataclasses", "inspect", "typing", "hashlib",
            "mimetypes", "secrets", "contextlib", "threading", "weakref", "importlib",
            "prompt_toolkit", "importlib.metadata")
    # only what main() imports counts (a sitecustomize may have imported more)
    code = ("import sys\nbefore = set(sys.modules)\nfrom wnshell.cli import main\n"
            "st = main(sys.argv[2:])\n"
            "print(st, [m for m in sys.argv[1].split() if m in sys.modules"
            " and m not in before])\n")
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.pop("WNSHELL_STORE", None)
    db = tmp_path / "xdg" / "wnshell" / "store.db"
    for args in (["-c", "echo hi"],                       # makes the store and the home
                 ["-c", "echo hi"],                       # the common case: all there
                 ["--store", f"sqlite://{db}", "-c", "echo hi"]):
        p = subprocess.run([sys.executable, "-c", code, " ".join(lean)] + args,
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
        assert p.stdout == "hi\n0 []\n", (args, p.stdout, p.stderr)


def test_output_and_errors_keep_their_order(tmp_path):
    import os
    out = tmp_path / "out.txt"
    with open(out, "w") as f:
        p = subprocess.run([sys.executable, "-m", "wnshell.cli", "--store", "memory://", "-c",
                            "echo a; nosuch; echo b"], stdout=f, stderr=subprocess.STDOUT,
                           cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED=""), timeout=60)
    assert p.returncode == 0
    assert out.read_text() == "a\ne.cmd.notfound : nosuch\nb\n"


def wnshell(*args, stdin="", env_vars=None, tmp=None):
    """``wnshell ARGS`` in this process (wnshell.cli.main with an injected Environment):
    ``(ExitStatus, stdout, stderr)``."""
    import io
    from wnshell.cli import main
    from wnshell.environment import Environment
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdin=io.StringIO(stdin), stdout=out, stderr=err,
                      vars=dict(env_vars or {}), data_dir=str(tmp) if tmp else None)
    status = main(list(args), env)
    return status, out.getvalue(), err.getvalue()


def test_main_returns_an_exit_status_in_process(tmp_path):
    from wnshell.environment import ExitStatus
    status, out, err = wnshell("--store", "memory://", "-c", "echo hi $1", "zero", "one")
    assert (status, out, err) == (ExitStatus.SUCCESS, "hi one\n", "")
    status, _, _ = wnshell("--store", "memory://", "-c", "exit 7")
    assert status == 7 and isinstance(status, ExitStatus) and status.name == "STATUS_7"
    assert wnshell("--store", "memory://", "-c", "nosuch")[0] is ExitStatus.NOT_FOUND
    assert wnshell("--bogus")[0] is ExitStatus.USAGE
    # piped text on stdin; the default store in the injected data dir
    status, out, _ = wnshell(stdin="echo a > ~/f\ncat ~/f\n", tmp=tmp_path)
    assert (status, out) == (ExitStatus.SUCCESS, "a\n")
    assert (tmp_path / "wnshell" / "store.db").exists()
    status, out, _ = wnshell(stdin="cat ~/f", env_vars={"WNSHELL_STORE": "memory://"},
                             tmp=tmp_path)
    assert status == 1                                   # WNSHELL_STORE from env.vars


def test_repl_mode_in_process(tmp_path):
    """No pty: the Environment says stdin is a terminal and brings prompt_toolkit's
    pipe input; the banner, the commands' output and the history file are there."""
    import io
    import stat
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from wnshell.cli import main
    from wnshell.environment import Environment
    out, err = io.StringIO(), io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text("echo -n hi\rojb\rexit 4\r")
        env = Environment(stdin=io.StringIO(), stdin_isatty=True, stdout=out, stderr=err,
                          vars={}, data_dir=str(tmp_path), prompt_input=inp,
                          prompt_output=DummyOutput())
        status = main(["--store", "memory://"], env)
    assert status == 4
    assert out.getvalue() == ("wnshell 0.1.0 \u00b7 store memory:// \u00b7 help, man CMD\n"
                              "hi\u23ce\n")
    assert err.getvalue() == "e.cmd.notfound : ojb (did you mean obj?)\n"
    history = tmp_path / "wnshell" / "history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600 and "ojb" in history.read_text()


def test_version():
    assert wnshell("--version") == (0, "wnshell 0.1.0\n", "")


def test_help_says_where_the_history_is():
    out = wnshell("--help")[1]
    assert "$XDG_DATA_HOME/wnshell/history" in out and "0600" in out


def test_runtime_errors_in_a_script_carry_file_and_line(tmp_path):
    script = tmp_path / "deploy.wn"
    script.write_text("echo one\n\n# a comment\nojb ~\necho two; cat ~/nope\n"
                      "echo $(cat ~/gone)\n", encoding="utf-8")
    status, out, err = wnshell("--store", "memory://", str(script))
    assert out == "one\ntwo\n\n"
    assert err == (f"{script}:4: e.cmd.notfound : ojb (did you mean obj?)\n"
                   f"{script}:5: e.io.obj.noexists : ~/nope\n"
                   f"{script}:6: e.io.obj.noexists : ~/gone\n")
    # -c and piped text have no file: the plain line
    assert wnshell("--store", "memory://", "-c", "cat ~/nope")[2] == \
        "e.io.obj.noexists : ~/nope\n"


def test_dash_e_stops_a_script_at_the_first_failure(cli, tmp_path):
    script = tmp_path / "s.wn"
    script.write_text("echo a\ncat ~/nope\necho b\n", encoding="utf-8")
    p = cli("-e", str(script))                             # the real process, once
    assert (p.returncode, p.stdout) == (1, "a\n")
    assert p.stderr == f"{script}:2: e.io.obj.noexists : ~/nope\n"
    assert wnshell("--store", "memory://", str(script))[1] == "a\nb\n"  # without -e
    assert wnshell("--store", "memory://", "-e", "-c", "false; echo no")[:2] == (1, "")
    assert wnshell("--store", "memory://", "-c", "set -e; echo a; false; echo no")[:2] == \
        (1, "a\n")


def test_unknown_options_are_echoed_as_typed():
    assert wnshell("--store", "memory://", "-c", "obj ~ --update '{a:1}'") == \
        (2, "", "e.cmd.obj.option : unknown option --update\n")
    assert wnshell("--store", "memory://", "-c", "ls -zz")[2] == \
        "e.cmd.ls.option : unknown option -zz\n"
    assert wnshell("--bogus")[2].startswith("e.cmd.wnshell.usage : unknown option --bogus")


def test_a_number_out_of_range_is_a_clear_error():
    status, _, err = wnshell("--store", "memory://", "-c",
                             "mkdir ~/o; obj -new '{nm: \"a\", total_fee: 1e999}' ~/o")
    assert status == 1
    assert err == ("e.json.invalid : -new: number 1e999 is out of range "
                   "(JSON numbers here must be finite)\n")
    err = wnshell("--store", "memory://", "-c", "echo '{\"total_fee\": 1e999}' | json")[2]
    assert err == ("e.json.invalid : number 1e999 is out of range "
                   "(JSON numbers here must be finite)\n")


def test_layers_import_only_layers_below():
    """wnerrors < objstore < wnshell < commands < regapi, wxpay standalone (on wnerrors
    only): no module imports a layer above it (the CLI finds serve/demo/sync through
    the wnshell.subcommands entry points)."""
    import ast
    import os
    above = {"wnerrors": {"objstore", "wnshell", "commands", "regapi", "wxpay"},
             "objstore": {"wnshell", "commands", "regapi"},
             "wnshell": {"commands", "regapi"},
             "commands": {"regapi"},
             "wxpay": {"objstore", "wnshell", "commands", "regapi"}}   # standalone
    found = []
    for pkg, banned in above.items():
        for dirpath, _, files in os.walk(os.path.join(REPO, pkg)):
            for fn in files:
                if not fn.endswith(".py"):
                    continue
                path = os.path.join(dirpath, fn)
                tree = ast.parse(open(path, encoding="utf-8").read())
                for node in ast.walk(tree):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                        else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                    for n in names:
                        if n.split(".")[0] in banned:
                            found.append(f"{os.path.relpath(path, REPO)} imports {n}")
    assert found == []


def test_subcommands_come_from_entry_points(cli):
    from wnshell.registry import SUBCOMMANDS_GROUP, entry_points
    assert set(entry_points(SUBCOMMANDS_GROUP)) >= {"serve", "demo", "sync"}
    p = cli("sync", "--help")
    assert p.returncode == 0 and "usage: wnshell sync" in p.stdout


# ---- when the reader goes away; scripts saved with a UTF-8 BOM ------------------------
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
