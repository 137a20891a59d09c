"""Parser: tokens -> syntax tree (``wnshell.nodes``).

Grammar::

    script   := sep* [and_or (sep+ and_or)*] sep*        sep := ";" | newline
    and_or   := pipeline (("&&" | "||") newline* pipeline)*
    pipeline := command ("|" newline* command)*
    command  := (assignment | word | redirection)+       assignments only before words
    redirection := (">" | ">>" | "<" | "2>" | "2>>") word | ">&1" | "2>&1" | ">&2"

``parse(text)`` returns a ``Script`` that holds no session state: cache it and run it
many times with ``session.run_ast``.
"""
from __future__ import annotations

from wnshell.errors import ShellSyntaxError
from wnshell.lexer import Lexer
from wnshell.nodes import AndOr, Lit, Pipeline, Script, Simple, Word

__all__ = ["parse", "Parser", "is_complete", "ShellSyntaxError"]

_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_NEXT = _NAME_FIRST | frozenset("0123456789")


def _assignment(word: Word):
    """``NAME=value`` (NAME literal and unquoted) -> (name, value Word), else None."""
    first = word.parts[0] if word.parts else None
    if not isinstance(first, Lit) or first.quoted:
        return None
    text = first.text
    eq = text.find("=")
    if eq <= 0 or text[0] not in _NAME_FIRST or any(c not in _NAME_NEXT for c in text[:eq]):
        return None
    rest = text[eq + 1:]
    parts = ([Lit(rest)] if rest else []) + word.parts[1:]
    return text[:eq], Word(parts or [Lit("", True)])


class Parser:
    def __init__(self, lexer: Lexer):
        self.lx = lexer
        self.tok = lexer.next()

    def advance(self) -> None:
        self.tok = self.lx.next()

    def _is_op(self, *ops: str) -> bool:
        return self.tok[0] == "OP" and self.tok[1] in ops

    def _err(self, reason: str, incomplete: bool = False) -> ShellSyntaxError:
        return self.lx.error(reason, self.tok[2], incomplete)

    def _skip_newlines(self) -> None:
        while self._is_op("\n"):
            self.advance()

    def script(self, until: str | None = None) -> Script:
        items: list[AndOr] = []
        starts: list[int] = []
        start = self.tok[2]
        while True:
            while self._is_op(";", "\n"):
                self.advance()
            kind, value, _ = self.tok
            if kind == "EOF":
                if until:
                    raise self._err("unterminated $(", incomplete=True)
                break
            if kind == "OP" and value == until:
                # leave the lexer right after ")"; the caller resumes the outer word
                break
            starts.append(self.tok[2])
            items.append(self.and_or())
            if not (self._is_op(";", "\n") or self.tok[0] == "EOF" or self._is_op(until or "")):
                raise self._err(f"unexpected {self.tok[1]!r}")
        return Script(items, self.lx.text[start:self.tok[2]] if until else self.lx.text,
                      starts)

    def and_or(self) -> AndOr:
        first = self.pipeline()
        rest = []
        while self._is_op("&&", "||"):
            op, op_pos = self.tok[1], self.tok[2]
            self.advance()
            self._skip_newlines()
            if self.tok[0] == "EOF":      # reported on the operator's line
                raise self.lx.error(f"nothing after {op}", op_pos, incomplete=True)
            rest.append((op, self.pipeline()))
        return AndOr(first, rest)

    def pipeline(self) -> Pipeline:
        cmds = [self.command()]
        while self._is_op("|"):
            op_pos = self.tok[2]
            self.advance()
            self._skip_newlines()
            if self.tok[0] == "EOF":      # reported on the operator's line
                raise self.lx.error("nothing after |", op_pos, incomplete=True)
            cmds.append(self.command())
        return Pipeline(cmds)

    def command(self) -> Simple:
        assigns, words, redirs = [], [], []
        while True:
            kind, value, _ = self.tok
            if kind == "WORD":
                a = None if words else _assignment(value)
                if a:
                    assigns.append(a)
                else:
                    words.append(value)
                self.advance()
            elif kind == "REDIR":
                self.advance()
                if value.op != ">&":
                    if self.tok[0] != "WORD":
                        raise self._err(f"missing file name after {value.op}",
                                        incomplete=self.tok[0] == "EOF")
                    value = type(value)(value.fd, value.op, self.tok[1])
                    self.advance()
                redirs.append(value)
            else:
                break
        if not (assigns or words or redirs):
            if self.tok[0] == "EOF":
                raise self._err("missing command", incomplete=True)
            raise self._err(f"unexpected {self.tok[1]!r}" if self.tok[1] != "\n"
                            else "unexpected newline")
        return Simple(assigns, words, redirs)


def parse(text: str) -> Script:
    """Parse shell text into a ``Script``; raises ``ShellSyntaxError`` (e.cmd.syntax)."""
    try:
        return Parser(Lexer(text)).script()
    except RecursionError:  # a last guard: the lexer limits nesting (MAX_DEPTH)
        raise ShellSyntaxError("nested too deeply") from None


def is_complete(text: str) -> bool:
    """False when ``text`` ends inside a quote, after ``\\`` or ``|``/``&&``/``||``, or
    inside ``$(``: the REPL asks for another line.  True otherwise (even when the text
    has another syntax error: running it reports that error)."""
    try:
        parse(text)
    except ShellSyntaxError as e:
        return not e.incomplete
    return True
