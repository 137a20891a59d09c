"""Lexer: shell text -> tokens.  Words come out already split into parts
(``Lit``/``Var``/``Sub``); ``$(...)`` and backticks are parsed recursively into
sub-trees here, so nothing is ever re-lexed at run time.

Tokens are tuples ``(kind, value, pos)``:
  ("WORD", Word, pos)
  ("OP", ";" | "\\n" | "&&" | "||" | "|" | ")", pos)
  ("REDIR", Redir, pos)   -- for ">", ">>", "<" the target word follows as a WORD token
  ("EOF", None, pos)
"""
from __future__ import annotations

from wnshell.errors import ShellSyntaxError
from wnshell.nodes import Lit, Redir, Sub, Var, Word
from wnshell import template

BLANKS = " \t\r"
# $( ... ), backticks and ${k?default} may nest this deep; deeper text is a syntax
# error (one line), never a RecursionError
MAX_DEPTH = 64
# characters that end an unquoted word
_WORD_END = frozenset(" \t\r\n;&|<>")
_BARE_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_BARE_NEXT = _BARE_FIRST | frozenset("0123456789")
_SPECIAL = frozenset("?@#*0123456789")


class Lexer:
    def __init__(self, text: str, *, line_base: int = 0, depth: int = 0):
        self.text = text
        # lines before this text (a backtick body reports the script's line numbers)
        self.line_base = line_base
        # how many $( / ` / ${?} this text sits inside
        self.depth = depth
        self.pos = 0
        self.n = len(text)
        # one counter of open "(" per enclosing $( ... ); empty at top level
        self.parens: list[int] = []
        # True where a new command may begin (start, after ; newline && || |)
        self.cmd_start = True

    # ---- helpers ------------------------------------------------------------------
    def line_of(self, pos: int) -> int:
        return self.line_base + self.text.count("\n", 0, pos) + 1

    def error(self, reason: str, pos: int, incomplete: bool = False) -> ShellSyntaxError:
        return ShellSyntaxError(f"{reason} (line {self.line_of(pos)})", incomplete)

    def _enter(self, pos: int) -> None:
        if self.depth >= MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep", pos)
        self.depth += 1

    def _continues_with_dash(self, j: int) -> bool:
        """After a newline at j-1: does the next line start with blanks then '-'?"""
        k = j
        while k < self.n and self.text[k] in " \t":
            k += 1
        return k > j and k < self.n and self.text[k] == "-"

    # ---- tokens -------------------------------------------------------------------
    def next(self) -> tuple:
        text, n = self.text, self.n
        while True:
            # blanks and backslash-newline continuations
            while self.pos < n:
                c = text[self.pos]
                if c in BLANKS:
                    self.pos += 1
                elif c == "\\" and text.startswith("\n", self.pos + 1):
                    self.pos += 2
                else:
                    break
            if self.pos >= n:
                return ("EOF", None, self.pos)
            c = text[self.pos]
            start = self.pos
            if c == "#" or (c == "/" and self.cmd_start and text.startswith("//", start)):
                end = text.find("\n", start)
                self.pos = n if end < 0 else end
                continue
            if c == "\n":
                self.pos += 1
                # extension: "\n   -opt" continues the command above
                if not self.cmd_start and self._continues_with_dash(self.pos):
                    continue
                self.cmd_start = True
                return ("OP", "\n", start)
            if c == ";":
                self.pos += 1
                self.cmd_start = True
                return ("OP", ";", start)
            if c == "&":
                if text.startswith("&&", start):
                    self.pos += 2
                    self.cmd_start = True
                    return ("OP", "&&", start)
                raise self.error("background jobs (&) are not supported", start)
            if c == "|":
                if text.startswith("||", start):
                    self.pos += 2
                    self.cmd_start = True
                    return ("OP", "||", start)
                self.pos += 1
                self.cmd_start = True
                return ("OP", "|", start)
            if c == ")" and self.parens and self.parens[-1] == 0:
                self.pos += 1
                return ("OP", ")", start)
            self.cmd_start = False
            # redirections: [12]>, [12]>>, [12]>&N, <
            fd = None
            if c in "12" and text.startswith(">", start + 1):
                fd = int(c)
                self.pos += 1
                c = ">"
            if c == ">":
                p = self.pos + 1
                if text.startswith(">", p):
                    self.pos = p + 1
                    return ("REDIR", Redir(fd or 1, ">>", None), start)
                if text.startswith("&", p):
                    q = p + 1
                    if q < n and text[q] in "12" and (q + 1 >= n or text[q + 1] in _WORD_END
                                                      or (self.parens and text[q + 1] == ")")):
                        self.pos = q + 1
                        return ("REDIR", Redir(fd or 1, ">&", int(text[q])), start)
                    raise self.error("bad redirection, only >&1 and >&2", start)
                self.pos = p
                return ("REDIR", Redir(fd or 1, ">", None), start)
            if c == "<":
                self.pos += 1
                return ("REDIR", Redir(0, "<", None), start)
            if c == "0" and text.startswith("<", start + 1):      # 0< is <
                self.pos += 2
                return ("REDIR", Redir(0, "<", None), start)
            if c.isdigit():
                # "3>x", "12>x", "3<x": a file-descriptor redirection in sh; reading
                # "3" as an argument would silently send other text to x
                q = start
                while q < n and text[q] in "0123456789":
                    q += 1
                if q < n and text[q] in "<>":
                    raise self.error(f"redirection of file descriptor {text[start:q]} is "
                                     "not supported (only <, >, >>, 2>, 2>>, 2>&1, >&2)",
                                     start)
            return ("WORD", self.word(), start)

    # ---- words --------------------------------------------------------------------
    def word(self) -> Word:
        text, n = self.text, self.n
        parts: list = []
        buf: list[str] = []

        def flush():
            if buf:
                parts.append(Lit("".join(buf)))
                buf.clear()

        while self.pos < n:
            c = text[self.pos]
            if c in _WORD_END:
                break
            if c == ")" and self.parens:
                if self.parens[-1] == 0:
                    break
                self.parens[-1] -= 1
            elif c == "(" and self.parens:
                self.parens[-1] += 1
            if c == "\\":
                if self.pos + 1 >= n:
                    raise self.error("trailing backslash", self.pos, incomplete=True)
                nxt = text[self.pos + 1]
                self.pos += 2
                if nxt != "\n":
                    buf.append(nxt)
                continue
            if c == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise self.error("unterminated '", self.pos, incomplete=True)
                flush()
                parts.append(Lit(text[self.pos + 1:end], True))
                self.pos = end + 1
                continue
            if c == '"':
                flush()
                parts.extend(self.double_quoted())
                continue
            if c == "$":
                part = self.dollar()
                if part is not None:
                    flush()
                    parts.append(part)
                    continue
                buf.append("$")
                self.pos += 1
                continue
            if c == "`":
                flush()
                parts.append(self.backtick())
                continue
            buf.append(c)
            self.pos += 1
        flush()
        return Word(parts)

    def double_quoted(self) -> list:
        """At an opening double quote; returns the parts (literals marked quoted)."""
        text, n = self.text, self.n
        start = self.pos
        self.pos += 1
        parts: list = []
        buf: list[str] = []

        def flush():
            if buf:
                parts.append(Lit("".join(buf), True))
                buf.clear()

        while True:
            if self.pos >= n:
                raise self.error('unterminated "', start, incomplete=True)
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                break
            if c == "\\" and self.pos + 1 < n and text[self.pos + 1] in '$`"\\\n':
                if text[self.pos + 1] != "\n":
                    buf.append(text[self.pos + 1])
                self.pos += 2
                continue
            if c == "$":
                part = self.dollar()
                if part is not None:
                    flush()
                    parts.append(part)
                    continue
            if c == "`":
                flush()
                parts.append(self.backtick())
                continue
            buf.append(c)
            self.pos += 1
        flush()
        if not parts:
            parts.append(Lit("", True))  # "" is an (empty) argument
        return parts

    def dollar(self):
        """At a '$'.  Returns a Var/Sub part, or None when the '$' is literal."""
        text, n = self.text, self.n
        start = self.pos
        p = start + 1
        if p >= n:
            return None
        c = text[p]
        if c == "{":
            return self.braced(start)
        if c == "(":
            return self.command_sub(start)
        if c == "<":
            end = template.scan_name(text, p + 1)
            if end > p + 1 and end < n and text[end] == ">":
                self.pos = end + 1
                return Var(text[p + 1:end])
            return None
        if c in _SPECIAL:
            self.pos = p + 1
            return Var(c)
        if c in _BARE_FIRST:
            q = p + 1
            while q < n and text[q] in _BARE_NEXT:
                q += 1
            self.pos = q
            return Var(text[p:q])
        return None

    def braced(self, start: int) -> Var:
        text, n = self.text, self.n
        p = start + 2
        end = template.scan_name(text, p)
        if end == p and end < n and text[end] in _SPECIAL:
            end += 1
        if end >= n:
            raise self.error("unterminated ${", start, incomplete=True)
        name = text[p:end]
        if not name:
            raise self.error("bad substitution", start)
        if text[end] == "}":
            self.pos = end + 1
            return Var(name)
        if text[end] != "?":
            if text.find("}", end) < 0:
                raise self.error("unterminated ${", start, incomplete=True)
            raise self.error(f"bad substitution ${{{name}{text[end]}", start)
        # ${name?default}: default is a word (quotes and expansions allowed) up to "}"
        self._enter(start)
        try:
            parts = self._braced_default(start, end)
        finally:
            self.depth -= 1
        return Var(name, parts)

    def _braced_default(self, start: int, end: int) -> list:
        text, n = self.text, self.n
        self.pos = end + 1
        parts: list = []
        buf: list[str] = []

        def flush():
            if buf:
                parts.append(Lit("".join(buf), True))
                buf.clear()

        while True:
            if self.pos >= n:
                raise self.error("unterminated ${", start, incomplete=True)
            c = text[self.pos]
            if c == "}":
                self.pos += 1
                break
            if c == "\\" and self.pos + 1 < n:
                buf.append(text[self.pos + 1])
                self.pos += 2
            elif c == "'":
                q = text.find("'", self.pos + 1)
                if q < 0:
                    raise self.error("unterminated '", self.pos, incomplete=True)
                buf.append(text[self.pos + 1:q])
                self.pos = q + 1
            elif c == '"':
                flush()
                parts.extend(self.double_quoted())
            elif c == "$" and (part := self.dollar()) is not None:
                flush()
                parts.append(part)
            elif c == "`":
                flush()
                parts.append(self.backtick())
            else:
                buf.append(c)
                self.pos += 1
        flush()
        return parts

    def command_sub(self, start: int) -> Sub:
        from wnshell.parser import Parser  # cyclic by nature: $( ... ) holds a script
        self._enter(start)
        self.pos = start + 2
        saved = self.cmd_start
        self.cmd_start = True
        self.parens.append(0)
        try:
            body = Parser(self).script(until=")")
        except ShellSyntaxError as e:
            if e.incomplete and e.reason.startswith("unterminated $( "):
                # reported where this $( opens, not at the end of the text
                raise self.error("unterminated $(", start, incomplete=True) from None
            raise
        finally:
            self.parens.pop()
            self.cmd_start = saved
            self.depth -= 1
        return Sub(body)

    def backtick(self) -> Sub:
        from wnshell.parser import Parser
        text, n = self.text, self.n
        start = self.pos
        if self.depth >= MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep", start)
        p = start + 1
        buf: list[str] = []
        while True:
            if p >= n:
                raise self.error("unterminated `", start, incomplete=True)
            c = text[p]
            if c == "`":
                break
            if c == "\\" and p + 1 < n and text[p + 1] in "`\\$":
                buf.append(text[p + 1])
                p += 2
                continue
            buf.append(c)
            p += 1
        self.pos = p + 1
        try:
            inner = Lexer("".join(buf), line_base=self.line_of(start) - 1,
                          depth=self.depth + 1)
            body = Parser(inner).script()
        except ShellSyntaxError as e:
            raise ShellSyntaxError(f"in `...`: {e.reason}", e.incomplete) from None
        return Sub(body)
