"""The REPL through prompt_toolkit's pipe input and DummyOutput."""
from __future__ import annotations

import io
import threading
import time

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from objstore import open_store
from wnshell.command import Command
from wnshell.registry import REGISTRY, Registry
from wnshell.repl import ShellLexer, run_repl
from wnshell.session import Session


class Interrupt(Command):
    name = "interrupt"

    def run(self, session, args, stdin, stdout, stderr):
        raise KeyboardInterrupt          # what SIGINT does to a running command


class Show(Command):
    name = "show"
    options = {"-alpha": "first", "-beta": "second"}

    def run(self, session, args, stdin, stdout, stderr):
        stdout.write(" ".join(args) + "\n")
        return 0


def new_session():
    reg = Registry(parent=REGISTRY)
    reg.register(Interrupt())
    reg.register(Show())
    s = Session(open_store("memory://"), registry=reg)
    s.run("mkdir -p ~/orders/o1; echo note > ~/notes")
    return s


class Driver:
    """Runs the REPL in a thread; ``type`` sends keys, ``wait`` waits for output."""

    def __init__(self, session, history=None):
        self.session = session
        self.out, self.err = io.StringIO(), io.StringIO()
        self._cm = create_pipe_input()
        self.inp = self._cm.__enter__()
        self.result = {}
        self.thread = threading.Thread(target=self._run, args=(history,), daemon=True)
        self.thread.start()

    def _run(self, history):
        self.result["status"] = run_repl(self.session, input=self.inp, output=DummyOutput(),
                                         stdout=self.out, stderr=self.err,
                                         history=history or InMemoryHistory())

    def type(self, keys, expect=None, timeout=10.0):
        self.inp.send_text(keys)
        if expect is not None:
            end = time.monotonic() + timeout
            while expect not in self.out.getvalue():
                if time.monotonic() > end:
                    raise AssertionError(f"never saw {expect!r} in {self.out.getvalue()!r}")
                time.sleep(0.01)

    def finish(self, keys="\x04", timeout=10.0) -> int:
        self.inp.send_text(keys)
        self.thread.join(timeout)
        self._cm.__exit__(None, None, None)
        assert not self.thread.is_alive()
        return self.result["status"]


def test_run_lines_and_exit_status():
    d = Driver(new_session())
    d.type("echo hi\r", expect="hi\n")
    d.type("false\r")
    assert d.finish("\x04") == 1                        # Ctrl-D: the last status
    d = Driver(new_session())
    assert d.finish("exit 4\r") == 4


def test_tab_completes_commands_options_and_paths():
    d = Driver(new_session())
    d.type("ec\thi\r", expect="hi\n")                   # command name
    d.type("show -al\t-b\t\r", expect="-alpha -beta\n")  # options from Command.options
    d.type("cat ~/no\t\r", expect="note\n")             # store path (FILE)
    d.type("ls ~/ord\t\r", expect="o1\n")              # a DIR completes with a /
    d.finish()
    assert d.err.getvalue() == ""


def test_completer_directly():
    from prompt_toolkit.completion import CompleteEvent
    from wnshell.repl import ShellCompleter
    c = ShellCompleter(new_session())

    def texts(line):
        return [x.text for x in c.get_completions(Document(line), CompleteEvent(True))]

    assert texts("ls ~/ord") == ["orders/"]
    assert texts("ls ~/orders/") == ["o1/"]
    assert "echo" in texts("ec") and "exit" not in texts("ec")
    assert texts("echo a | sh") == ["show"]
    assert texts("show -") == ["-alpha", "-beta"]
    assert texts("echo -") == ["-e", "-n"]
    assert texts("cat /nope/") == []


def test_ctrl_c_cancels_the_line_and_the_running_command():
    d = Driver(new_session())
    d.type("echo never\x03")
    d.type("echo status=$?\r", expect="status=130\n")
    d.type("interrupt; echo not-reached\r")
    d.type("echo after=$?\r", expect="after=130\n")
    assert "never" not in d.out.getvalue() and "not-reached" not in d.out.getvalue()
    d.finish()


def test_incomplete_text_asks_for_more_lines():
    d = Driver(new_session())
    d.type('echo "a\rb"\r', expect="a\nb\n")
    d.type("echo x \\\r y |\r cat\r", expect="x y\n")
    d.type("echo 'bad\x03")                            # Ctrl-C gives up the block
    d.type("echo ok\r", expect="ok\n")
    d.finish()


def test_errors_go_to_stderr_one_line():
    d = Driver(new_session())
    d.type("nosuch\r")
    d.type("echo done\r", expect="done\n")
    d.finish()
    assert d.err.getvalue() == "e.cmd.notfound : nosuch\n"


def test_history_file_persists_and_up_recalls(tmp_path):
    path = str(tmp_path / "history")
    d = Driver(new_session(), FileHistory(path))
    d.type("echo first-line\r", expect="first-line\n")
    d.finish()
    assert "echo first-line" in open(path, encoding="utf-8").read()

    d = Driver(new_session(), FileHistory(path))
    time.sleep(0.5)                                     # history loads in the background
    d.type("\x1b[A")
    time.sleep(0.2)
    d.type("\r", expect="first-line\n")
    # auto-suggest from history: type a prefix, accept the grey suggestion with ->
    d.type("echo fir")
    time.sleep(0.5)                                     # suggestions are computed async
    d.type("\x1b[C")
    time.sleep(0.2)
    d.type("\r", expect="first-line\nfirst-line\n")
    d.finish()


def test_history_path_is_in_xdg_data_dir(monkeypatch, tmp_path):
    from wnshell.repl import history_path
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert history_path() == str(tmp_path / "wnshell" / "history")


def test_highlighting():
    s = new_session()
    get_line = ShellLexer(s.registry).lex_document(
        Document("echo -n $X 'q' | nosuch > f # note"))
    frags = [(style, text) for style, text in get_line(0) if text.strip()]
    assert frags == [("class:command", "echo"), ("class:option", "-n"),
                     ("class:variable", "$X"), ("class:string", "'q'"),
                     ("class:operator", "|"), ("class:unknown", "nosuch"),
                     ("class:operator", ">"), ("", "f"), ("class:comment", "# note")]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs a pty")
def test_cli_on_a_terminal_is_the_repl(tmp_path):
    """`wnshell` with no arguments on a pty: a prompt, a command, `exit 3`."""
    import os
    import pty
    import select
    import sys
    from tests.wnshell.conftest import REPO

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(REPO)
        os.environ.update(TERM="xterm", XDG_DATA_HOME=str(tmp_path))
        os.execv(sys.executable, [sys.executable, "-m", "wnshell.cli", "--store",
                                  "memory://", "--user", "tty"])
    buf = b""

    def read_until(token, timeout=20):
        nonlocal buf
        end = time.monotonic() + timeout
        while token not in buf and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    buf += os.read(fd, 4096)
                except OSError:
                    break
        return token in buf

    done = False
    try:
        assert read_until(b"tty:~$"), buf
        os.write(fd, b"echo hel''lo-tty\r")
        assert read_until(b"hello-tty\r\n"), buf
        os.write(fd, b"exit 3\r")
        _, status = os.waitpid(pid, 0)
        done = True
        assert os.waitstatus_to_exitcode(status) == 3
        assert os.path.exists(tmp_path / "wnshell" / "history")
    finally:
        if not done:
            import signal
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)



# ---- the terminal between prompts (issue 15) ------------------------------------------
class Slow(Command):
    name = "slow"

    def run(self, session, args, stdin, stdout, stderr):
        time.sleep(float(args[0]) if args else 1.5)
        stdout.write("slept\n")
        return 0


class TtyBuffer(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def test_output_without_a_final_newline_is_kept_with_a_marker():
    d = Driver(new_session())
    d.type("echo -n hello\r", expect="hello\u23ce\n")
    d.type("echo whole\r", expect="whole\n")
    d.finish()
    assert d.out.getvalue() == "hello\u23ce\nwhole\n"   # no marker after a whole line


def test_a_long_command_shows_the_elapsed_time_on_a_terminal_only():
    s = new_session()
    s.registry.register(Slow())
    err = TtyBuffer()
    out = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text("slow 2.5\rslow 0.1\r\x04")
        run_repl(s, input=inp, output=DummyOutput(), stdout=out, stderr=err,
                 history=InMemoryHistory())
    shown = err.getvalue()
    import re
    ticks = [float(x) for x in re.findall(r"\[(\d+\.\d)s\]", shown)]
    assert ticks and 1.0 <= ticks[0] < 2.0 and ticks == sorted(ticks), shown
    assert shown.endswith("\r\x1b[K")                  # erased when the command ended
    assert shown.count("\r\x1b[K") >= 1 and out.getvalue() == "slept\nslept\n"
    # not a terminal: never
    err2 = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text("slow 1.3\r\x04")
        run_repl(s, input=inp, output=DummyOutput(), stdout=io.StringIO(), stderr=err2,
                 history=InMemoryHistory())
    assert err2.getvalue() == ""


def test_elapsed_time_never_in_dash_c(cli):
    r = cli("-c", "echo hi")
    assert r.stderr == "" and r.stdout == "hi\n"


def _texts(session, line):
    from prompt_toolkit.completion import CompleteEvent
    from wnshell.repl import ShellCompleter
    c = ShellCompleter(session)
    return [x.text for x in c.get_completions(Document(line), CompleteEvent(True))]


def test_completion_of_the_headline_commands():
    s = new_session()
    s.run("mkdir -p ~/.weixin/acme ~/.weixin/beta; echo x > ~/.weixin/notadir")
    assert _texts(s, "weixin ") == ["acme", "beta"]            # accounts in ~/.weixin/
    assert _texts(s, "weixin b") == ["beta"]
    from commands.weixin import HANDLER_OPTIONS, HANDLERS
    assert set(HANDLER_OPTIONS) == set(HANDLERS)                  # each declares its options
    assert _texts(s, "weixin acme ") == list(HANDLERS)           # every handler, in order
    assert _texts(s, "weixin acme or") == ["order"]
    assert _texts(s, "weixin acme order -") == [
        "-client_ip", "-close", "-limit", "-openid", "-openid_key", "-query", "-result",
        "-submit", "-sweep", "-trade_type"]
    assert _texts(s, "weixin acme order -sub") == ["-submit"]
    assert _texts(s, "weixin acme pay -") == ["-json", "-order"]
    assert _texts(s, "help o") == ["obj"]                      # a command, not ~/orders
    assert _texts(s, "man ec") == ["echo"]
    assert "show" in _texts(s, "man ")
    assert _texts(s, "httpc POST http://x/ @") == ["@body", "@header", "@query", "@timeout"]
    assert _texts(s, "httpc http://x/ @he") == ["@header"]
    assert _texts(s, "cat ~/ord") == ["orders/"]               # paths still complete


def test_third_party_commands_declare_their_completion():
    class Deploy(Command):
        name = "deploy"
        options = {"-env": "target", "@tag": "a tag"}

        def complete(self, session, words, prefix):
            if not words:
                return [("staging", "test servers"), ("prod", "live")]
            return None                                       # the default after that

        def run(self, session, args, stdin, stdout, stderr):
            stdout.write(" ".join(args) + "\n")
            return 0

    s = new_session()
    s.registry.register(Deploy())
    assert _texts(s, "deploy ") == ["staging", "prod"]
    assert _texts(s, "deploy st") == ["staging"]
    assert _texts(s, "deploy prod -") == ["-env"]
    assert _texts(s, "deploy prod @") == ["@tag"]
    assert _texts(s, "deploy prod ~/no") == ["notes"]
    d = Driver(s)
    d.type("deploy s\t-e\t\r", expect="staging -env\n")
    d.finish()


def test_a_completion_that_fails_does_not_break_the_prompt():
    class Broken(Command):
        name = "broken"

        def complete(self, session, words, prefix):
            raise RuntimeError("bug")

        def run(self, session, args, stdin, stdout, stderr):
            return 0

    s = new_session()
    s.registry.register(Broken())
    assert _texts(s, "broken ~/no") == ["notes"]              # falls back to the default


def test_man_is_not_paged_when_stdout_is_not_a_terminal():
    from commands.obj import OBJ
    from wnshell.registry import help_text
    d = Driver(new_session())
    d.type("man obj\r", expect="EXAMPLES")
    d.type("echo end\r", expect="end\n")
    d.finish()
    assert d.out.getvalue() == help_text(OBJ) + "end\n"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs a pty")
def test_pty_banner_pager_and_history_mode(tmp_path):
    """On a terminal: a one-line banner; ``man obj`` (longer than 24 rows) stops at a
    "more" line and ``q`` quits it; the history file is created 0600."""
    import os
    import stat
    import sys
    from tests.wnshell.conftest import REPO
    with PtyShell(tmp_path, env={"PATH": os.path.dirname(sys.executable)}) as t:
        assert t.read_until(b"tty:~$"), t.buf
        import re
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", t.buf.decode("utf-8", "replace"))
        first = plain.splitlines()[0]
        assert first == "wnshell 0.1.0 \u00b7 store memory:// \u00b7 help, man CMD", first
        t.send(b"man obj\r")
        assert t.read_until(b"-- more"), t.buf
        assert b"ERRORS" not in t.buf                         # the end is not shown yet
        t.mark()
        t.read_until(b"never", timeout=1.5)                   # the pager waits for a key
        assert b"s]" not in t.buf, t.buf                      # no elapsed time over it
        t.send(b"q")
        t.mark()
        assert t.read_until(b"tty:~$"), t.buf
        t.send(b"echo -n nonl\r")
        assert t.read_until(b"nonl\x1b[7m\xe2\x8f\x8e\x1b[0m"), t.buf
        t.send(b"exit 0\r")
        assert t.wait() == 0
    path = tmp_path / "wnshell" / "history"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "man obj" in path.read_text(encoding="utf-8")


class PtyShell:
    """``wnshell --store memory:// --user tty`` on a 80x24 pty."""

    def __init__(self, tmp_path, env=None):
        self.tmp_path, self.env = tmp_path, env or {}
        self.buf = b""

    def __enter__(self):
        import fcntl
        import os
        import pty
        import struct
        import sys
        import termios
        from tests.wnshell.conftest import REPO
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            os.chdir(REPO)
            os.environ.update(TERM="xterm", XDG_DATA_HOME=str(self.tmp_path), **self.env)
            os.environ.pop("PAGER", None)
            os.execv(sys.executable, [sys.executable, "-m", "wnshell.cli", "--store",
                                      "memory://", "--user", "tty"])
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.pid, self.fd, self.done = pid, fd, False
        return self

    def send(self, data: bytes) -> None:
        import os
        os.write(self.fd, data)

    def mark(self) -> None:
        self.buf = b""

    def read_until(self, token: bytes, timeout: float = 20) -> bool:
        import os
        import select
        end = time.monotonic() + timeout
        while token not in self.buf and time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except OSError:
                    break
        return token in self.buf

    def wait(self) -> int:
        import os
        _, status = os.waitpid(self.pid, 0)
        self.done = True
        return os.waitstatus_to_exitcode(status)

    def __exit__(self, *exc):
        import os
        import signal
        if not self.done:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
