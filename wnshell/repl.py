"""The interactive shell (prompt_toolkit).  Imported only for the REPL.

* history in ``$XDG_DATA_HOME/wnshell/history``, grey auto-suggestions from it;
* Tab completes command names (from the registry, nothing imported), a command's
  options (its ``Command.options``/``flags``) and store paths;
* syntax highlighting by a small tolerant tokenizer (no pygments);
* Enter on an incomplete text (open quote, trailing ``\\`` or ``|``, open ``$(``) adds a
  line instead of running it;
* Ctrl-C cancels the line (status 130) or the running command (status 130); Ctrl-D on
  an empty line exits with the last status; ``exit N`` exits with N.
"""
from __future__ import annotations

import os
import sys

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
        if word.startswith("-"):
            cmd = self.session.registry.get(cmd_words[0])
            if cmd is None:
                return
            opts = dict(getattr(cmd, "options", None) or {})
            for f in getattr(cmd, "flags", "") or "":
                opts.setdefault("-" + f, "")
            for opt in sorted(opts):
                if opt.startswith(word):
                    yield Completion(opt, start_position=-len(word),
                                     display_meta=opts[opt] or None)
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


def make_prompt_session(session, *, input=None, output=None, history=None) -> PromptSession:
    if history is None:
        path = history_path()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            history = FileHistory(path)
        except OSError:
            history = InMemoryHistory()
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


def run_repl(session, *, input=None, output=None, stdout=None, stderr=None,
             history=None) -> int:
    """Read-eval-print until Ctrl-D or ``exit``; returns the exit status."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    ps = make_prompt_session(session, input=input, output=output, history=history)
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
        try:
            session.run(text, "", stdout=stdout, stderr=stderr)
        except KeyboardInterrupt:  # between commands, outside the runner
            session.last_status = 130
        try:
            stdout.flush()
            stderr.flush()
        except Exception:  # pragma: no cover
            pass
        if session.exit_requested is not None:
            return session.exit_requested
    return session.last_status
