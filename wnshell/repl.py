"""The interactive shell (prompt_toolkit).  Imported only for the REPL.

* history in ``$XDG_DATA_HOME/wnshell/history``, grey auto-suggestions from it;
* Tab completes command names (from the registry, nothing imported), a command's
  options (its ``Command.options``/``flags``) and store paths;
* syntax highlighting by a small tolerant tokenizer (no pygments);
* Enter on an incomplete text (open quote, trailing ``\\`` or ``|``, open ``$(``) adds a
  line instead of running it;
* Ctrl-C cancels the line (status 130) or the running command (status 130); Ctrl-D on
  an empty line exits with the last status; ``exit N`` exits with N;
* output that does not end with a newline (``echo -n hi``) is shown, followed by a
  marker (``⏎``) and a line break, as zsh and fish do, so the prompt cannot erase it;
* a command line still running after ~1 s shows the elapsed time on stderr (only when
  stderr is a terminal), erased before any output and when it ends;
* ``man``/``help`` output longer than the screen goes through a pager (``$PAGER``, else
  ``less -FRX``, else a built-in one; ``q`` quits) when stdout is the terminal.

Completion asks the command first: ``Command.complete(session, words, prefix)`` (see
``wnshell.command``) returns the candidates for the word being typed, or None for the
default (its declared ``options``/``flags`` after ``-`` or ``@``, else store paths).
"""
from __future__ import annotations

import os
import sys
import threading
import time

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from wnshell.parser import is_complete

STYLE = Style.from_dict({
    "command": "ansigreen bold",
    "unknown": "ansired bold",
    "option": "ansicyan",
    "string": "ansiyellow",
    "variable": "ansimagenta",
    "operator": "ansiblue bold",
    "comment": "ansibrightblack italic",
    "prompt": "ansigreen",
})

_OPS = ("&&", "||", ">>", "2>&1", ">&2", "2>>", "2>", ";", "|", ">", "<")


def history_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "wnshell", "history")


def tokenize(line: str):
    """Tolerant tokens of one line for highlighting and completion:
    ``(kind, text)`` with kind in word, string, variable, operator, comment, blank.
    Concatenating the texts gives the line back."""
    out = []
    i, n = 0, len(line)
    at_start = True
    while i < n:
        c = line[i]
        if c in " \t\r\n":
            j = i
            while j < n and line[j] in " \t\r\n":
                j += 1
            out.append(("blank", line[i:j]))
            i = j
            continue
        if c == "#" or (at_start and line.startswith("//", i)):
            out.append(("comment", line[i:]))
            break
        op = next((o for o in _OPS if line.startswith(o, i)), None)
        if op:
            out.append(("operator", op))
            i += len(op)
            at_start = op in (";", "|", "&&", "||")
            continue
        if c in "'\"":
            j = line.find(c, i + 1)
            j = n if j < 0 else j + 1
            out.append(("string", line[i:j]))
            i = j
            at_start = False
            continue
        if c == "$" and i + 1 < n:
            j = i + 1
            if line[j] == "{":
                k = line.find("}", j)
                j = n if k < 0 else k + 1
            elif line[j] == "(":
                j += 1
            elif line[j] == "<":
                k = line.find(">", j)
                j = n if k < 0 else k + 1
            else:
                while j < n and (line[j].isalnum() or line[j] in "_?@#"):
                    j += 1
            out.append(("variable", line[i:j]))
            i = j
            at_start = False
            continue
        j = i
        while j < n and line[j] not in " \t\r\n;|&<>'\"$":
            j += 1
        if j == i:
            j += 1
        out.append(("word", line[i:j]))
        i = j
        at_start = False
    return out


class ShellLexer(Lexer):
    """Highlighting: command words (green when known, red when not), options, strings,
    variables, operators, comments."""

    def __init__(self, registry):
        self.registry = registry

    def lex_document(self, document):
        known = set(self.registry.names())
        lines = document.lines

        def get_line(lineno: int):
            frags = []
            expect_cmd = True
            for kind, text in tokenize(lines[lineno]):
                if kind == "word":
                    if expect_cmd and lineno > 0 and text.startswith("-"):
                        expect_cmd = False  # a "   -opt" continuation line
                    if expect_cmd:
                        style = "class:command" if text in known else "class:unknown"
                        expect_cmd = "=" in text and not text.startswith("=")
                    elif text.startswith("-"):
                        style = "class:option"
                    else:
                        style = ""
                    frags.append((style, text))
                elif kind == "operator":
                    frags.append(("class:operator", text))
                    expect_cmd = text in (";", "|", "&&", "||")
                elif kind == "blank":
                    frags.append(("", text))
                else:
                    frags.append((f"class:{kind}", text))
                    if kind != "comment":
                        expect_cmd = False
            return frags

        return get_line


def option_table(cmd) -> dict:
    """A command's declared options (``-x`` and ``@x`` keys) and flags -> help, sorted."""
    opts = {k: v for k, v in (getattr(cmd, "options", None) or {}).items()
            if k[:1] in ("-", "@")}
    for f in getattr(cmd, "flags", "") or "":
        opts.setdefault("-" + f, "")
    return dict(sorted(opts.items()))


class ShellCompleter(Completer):
    """Command names at a command position, the command's options after ``-``, store
    paths elsewhere."""

    def __init__(self, session):
        self.session = session

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        toks = [t for t in tokenize(text.split("\n")[-1]) if t[0] != "blank"]
        ends_blank = not text or text[-1] in " \t\n"
        word = "" if ends_blank or not toks or toks[-1][0] not in ("word", "string") \
            else toks[-1][1]
        before = toks if ends_blank or not word else toks[:-1]
        # the words of the current command so far
        cmd_words: list[str] = []
        for kind, t in before:
            if kind == "operator" and t in (";", "|", "&&", "||"):
                cmd_words = []
            elif kind in ("word", "string", "variable"):
                cmd_words.append(t)
        cmd_words = [w for w in cmd_words if not (not cmd_words.index(w) and "=" in w)]
        if not cmd_words:
            for name in self.session.registry.names():
                if name.startswith(word):
                    yield Completion(name, start_position=-len(word), display_meta="command")
            return
        try:
            cmd = self.session.registry.get(cmd_words[0])
        except Exception:  # completion must never break the prompt
            cmd = None
        if cmd is not None:
            hook = getattr(cmd, "complete", None)
            try:
                found = hook(self.session, cmd_words[1:], word) if hook else None
            except Exception:  # a plugin's completion must never break the prompt
                found = None
            if found is not None:
                for item in found:
                    text, meta = (item, None) if isinstance(item, str) else item
                    if text.startswith(word):
                        yield Completion(text, start_position=-len(word),
                                         display_meta=meta or None)
                return
        if word[:1] in ("-", "@"):
            if cmd is None:
                return
            for opt, meta in option_table(cmd).items():
                if opt.startswith(word):
                    yield Completion(opt, start_position=-len(word), display_meta=meta or None)
            return
        yield from self._paths(word)

    def _paths(self, word: str):
        if word[:1] in "'\"":
            return
        s = self.session
        if "/" in word:
            dir_part, prefix = word.rsplit("/", 1)
            dir_path = dir_part or "/"
        else:
            dir_part, prefix, dir_path = None, word, "."
        try:
            obj = s.store.fetch(s.resolve(dir_path))
            if obj is None or obj.get("race") != "DIR":
                return
            kids = s.store.children(obj["id"])
        except Exception:  # completion must never break the prompt
            return
        for kid in kids:
            nm = kid.get("nm", "")
            if nm.startswith(prefix) and (prefix.startswith(".") or not nm.startswith(".")):
                suffix = "/" if kid.get("race") == "DIR" else ""
                yield Completion(nm + suffix, start_position=-len(prefix),
                                 display_meta="dir" if suffix else None)


def _common_prefix(words: list[str]) -> str:
    return os.path.commonprefix(words) if words else ""


def _key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("tab")
    def _tab(event):
        """Bash-like and synchronous: a unique completion is inserted at once, several
        extend the common prefix, else the menu opens (Tab again cycles)."""
        buf = event.current_buffer
        if buf.complete_state is not None:
            buf.complete_next()
            return
        if buf.completer is None:
            return
        from prompt_toolkit.completion import CompleteEvent
        comps = list(buf.completer.get_completions(
            buf.document, CompleteEvent(completion_requested=True)))
        if not comps:
            return
        if len(comps) == 1:
            c = comps[0]
            buf.delete_before_cursor(-c.start_position)
            buf.insert_text(c.text + ("" if c.text.endswith("/") else " "))
            return
        typed = -comps[0].start_position
        prefix = _common_prefix([c.text for c in comps])
        if all(-c.start_position == typed for c in comps) and len(prefix) > typed:
            buf.delete_before_cursor(typed)
            buf.insert_text(prefix)
            return
        buf.start_completion(select_first=False)

    @kb.add("enter")
    def _enter(event):
        buf = event.current_buffer
        state = buf.complete_state
        if state is not None and state.current_completion is not None:
            buf.apply_completion(state.current_completion)
            return
        if is_complete(buf.text):
            buf.validate_and_handle()
        else:
            buf.insert_text("\n")

    return kb


def _prompt(session):
    cwd = session.cwd
    if cwd == session.home or cwd.startswith(session.home + "/"):
        cwd = "~" + cwd[len(session.home):]
    return [("class:prompt", f"{session.user}:{cwd}$ ")]


def _open_history(path: str | None = None) -> "FileHistory | InMemoryHistory":
    """The history file, created 0600 in a 0700 folder: lines typed at the prompt may
    hold keys and tokens."""
    path = path or history_path()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        return FileHistory(path)
    except OSError:
        return InMemoryHistory()


def make_prompt_session(session, *, input=None, output=None, history=None,
                        history_file: str | None = None) -> PromptSession:
    if history is None:
        history = _open_history(history_file)
    return PromptSession(
        multiline=True,
        key_bindings=_key_bindings(),
        completer=ShellCompleter(session),
        complete_while_typing=False,
        lexer=ShellLexer(session.registry),
        auto_suggest=AutoSuggestFromHistory(),
        history=history,
        style=STYLE,
        include_default_pygments_style=False,
        prompt_continuation=lambda width, line_number, wrap_count: "> ".rjust(width),
        input=input,
        output=output,
    )


# ---- the terminal between prompts ---------------------------------------------------
class _Screen:
    """What stdout and stderr of the REPL share: whether the cursor is at the start of a
    line, and the elapsed-time indicator that must be erased before any output."""

    def __init__(self, err_stream):
        self.lock = threading.Lock()
        self.at_line_start = True
        self.wrote = False
        self.err = err_stream
        self.indicator = False
        self.paused = False      # a pager owns the terminal: no indicator until the prompt

    def erase_indicator(self) -> None:
        if self.indicator:
            self.err.write("\r\x1b[K")
            self.indicator = False


class _TerminalStream:
    """A REPL stream as commands see it: tracks the last character written."""

    def __init__(self, stream, screen: _Screen):
        self._stream = stream
        self._screen = screen

    def write(self, text: str) -> int:
        if not text:
            return 0
        sc = self._screen
        with sc.lock:
            sc.erase_indicator()
            n = self._stream.write(text)
            sc.at_line_start = text.endswith("\n")
            sc.wrote = True
        return n

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        try:
            return bool(self._stream.isatty())
        except Exception:
            return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _no_newline_marker(stream) -> str:
    enc = (getattr(stream, "encoding", None) or "utf-8")
    try:
        "\u23ce".encode(enc)
        mark = "\u23ce"
    except (LookupError, UnicodeEncodeError):
        mark = "%"
    try:
        tty = stream.isatty()
    except Exception:
        tty = False
    return f"\x1b[7m{mark}\x1b[0m\n" if tty else mark + "\n"


class _ElapsedTicker:
    """After ``delay`` seconds, shows ``[1.2s]`` on stderr (a terminal) and updates it
    until stopped; never over a partly written line."""

    def __init__(self, screen: _Screen, delay: float = 1.0, every: float = 0.2):
        self.screen = screen
        self.delay = delay
        self.every = every
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        sc = self.screen
        while not self._stop.is_set():
            with sc.lock:
                if self._stop.is_set() or sc.paused:
                    break
                if sc.at_line_start:
                    try:
                        sc.err.write(f"\r\x1b[2m[{time.monotonic() - self.start:.1f}s]"
                                     "\x1b[0m\x1b[K")
                        sc.err.flush()
                        sc.indicator = True
                    except Exception:  # the terminal went away: stop quietly
                        return
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        with self.screen.lock:
            try:
                self.screen.erase_indicator()
                self.screen.err.flush()
            except Exception:  # pragma: no cover - terminal gone
                pass


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


class Pager:
    """``session.pager(text, stdout) -> bool``: pages ``text`` when ``stdout`` is the
    REPL's own terminal stream (not a pipe or a redirection) and the text is longer than
    the screen; returns False (the caller writes the text itself) otherwise.

    ``$PAGER`` when set (empty or ``cat``: no paging), else ``less -FRX`` when
    installed, else a built-in pager: space the next page, Enter the next line, ``q``
    quits."""

    def __init__(self, terminal: _TerminalStream, real_stdout, real_stdin, screen=None):
        self.terminal = terminal
        self.stdout = real_stdout
        self.stdin = real_stdin
        self.screen = screen

    def __call__(self, text: str, stdout) -> bool:
        if stdout is not self.terminal or not _isatty(self.stdout) \
                or not _isatty(self.stdin):
            return False
        import shutil
        rows = shutil.get_terminal_size((80, 24)).lines
        if text.count("\n") < rows - 1:
            return False
        pager = os.environ.get("PAGER")
        if pager is not None:
            if not pager.strip() or pager.strip() == "cat":
                return False
            cmd, shell = pager, True
        else:
            less = shutil.which("less")
            cmd, shell = ([less, "-FRX"], False) if less else (None, False)
        if self.screen is not None:        # the elapsed-time indicator must not draw
            with self.screen.lock:          # over the pager (nor count the reading)
                self.screen.paused = True
                self.screen.erase_indicator()
        self.stdout.flush()
        if cmd is not None:
            import subprocess
            try:
                subprocess.run(cmd, shell=shell, input=text.encode("utf-8", "replace"),
                               check=False)
                return True
            except OSError:
                pass
        self._builtin(text, rows)
        return True

    def _builtin(self, text: str, rows: int) -> None:
        import termios
        import tty
        lines = text.splitlines(True)
        fd = self.stdin.fileno()
        saved = termios.tcgetattr(fd)
        out = self.stdout
        i, step = 0, rows - 1
        prompt = "\x1b[7m-- more (space: page, enter: line, q: quit) --\x1b[0m"
        # one key at a time, no echo, for the whole pager; TCSANOW keeps keys typed
        # ahead (TCSAFLUSH, tty's default, would drop them)
        tty.setcbreak(fd, termios.TCSANOW)
        try:
            while True:
                out.write("".join(lines[i:i + step]))
                i += step
                if i >= len(lines):
                    break
                out.write(prompt)
                out.flush()
                key = os.read(fd, 1)
                out.write("\r\x1b[K")
                if key in (b"q", b"Q", b"\x03", b"\x04", b""):
                    break
                step = 1 if key in (b"\r", b"\n") else rows - 1
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            out.flush()


def run_repl(session, *, input=None, output=None, stdout=None, stderr=None,
             history=None, history_file: str | None = None,
             banner: str | None = None) -> int:
    """Read-eval-print until Ctrl-D or ``exit``; returns the exit status.  ``banner``
    is printed once, before the first prompt.  ``history``: a prompt_toolkit History,
    else the file ``history_file`` (default ``history_path()``)."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    screen = _Screen(stderr)
    term_out = _TerminalStream(stdout, screen)
    term_err = _TerminalStream(stderr, screen)
    session.pager = Pager(term_out, stdout, sys.stdin if input is None else None, screen)
    show_elapsed = _isatty(stderr)
    marker = _no_newline_marker(stdout)
    ps = make_prompt_session(session, input=input, output=output, history=history,
                             history_file=history_file)
    if banner:
        stdout.write(banner.rstrip("\n") + "\n")
        stdout.flush()
    while True:
        try:
            text = ps.prompt(lambda: _prompt(session))
        except KeyboardInterrupt:
            session.last_status = 130
            continue
        except EOFError:
            break
        if not text.strip():
            continue
        screen.at_line_start, screen.wrote, screen.paused = True, False, False
        ticker = _ElapsedTicker(screen) if show_elapsed else None
        try:
            session.run(text, "", stdout=term_out, stderr=term_err)
        except KeyboardInterrupt:  # between commands, outside the runner
            session.last_status = 130
        finally:
            if ticker is not None:
                ticker.stop()
        try:
            if not screen.at_line_start:
                stdout.write(marker)     # keep "echo -n hi" visible above the prompt
                screen.at_line_start = True
            stdout.flush()
            stderr.flush()
        except Exception:  # pragma: no cover
            pass
        if session.exit_requested is not None:
            return session.exit_requested
    return session.last_status
