"""The syntax tree built by ``wnshell.parser.parse`` and run by ``wnshell.executor``.

The tree is immutable in practice and holds no session state, so a parsed template can
be cached and run many times with different variables.

    Script(items=[AndOr], source, starts) statements separated by ``;`` or newline;
                                          starts: each one's offset in the text
    AndOr(first=Pipeline, rest=[(op, Pipeline)])   op is "&&" or "||"
    Pipeline(cmds=[Simple])               ``a | b | c``
    Simple(assigns=[(name, Word)], words=[Word], redirs=[Redir])
    Redir(fd, op, target)                 op ">", ">>", "<" (target a Word) or
                                          ">&" (target an int fd)
    Word(parts=[Lit | Var | Sub])         one argument; parts are concatenated
    Lit(text, quoted)                     literal text
    Var(name, default)                    ``$X ${X} ${X?d} $<X>``; default None or [parts]
    Sub(body)                             ``$(...)`` / backticks; body a Script
"""
from __future__ import annotations


class Node:
    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


class Lit(Node):
    __slots__ = ("text", "quoted")

    def __init__(self, text: str, quoted: bool = False):
        self.text = text
        self.quoted = quoted


class Var(Node):
    __slots__ = ("name", "default")

    def __init__(self, name: str, default: list | None = None):
        self.name = name
        self.default = default


class Sub(Node):
    __slots__ = ("body",)

    def __init__(self, body: "Script"):
        self.body = body


class Word(Node):
    __slots__ = ("parts",)

    def __init__(self, parts: list):
        self.parts = parts


class Redir(Node):
    __slots__ = ("fd", "op", "target")

    def __init__(self, fd: int, op: str, target):
        self.fd = fd
        self.op = op
        self.target = target


class Simple(Node):
    __slots__ = ("assigns", "words", "redirs")

    def __init__(self, assigns: list, words: list, redirs: list):
        self.assigns = assigns
        self.words = words
        self.redirs = redirs


class Pipeline(Node):
    __slots__ = ("cmds",)

    def __init__(self, cmds: list):
        self.cmds = cmds


class AndOr(Node):
    __slots__ = ("first", "rest")

    def __init__(self, first: Pipeline, rest: list):
        self.first = first
        self.rest = rest


class Script(Node):
    """``starts``: the offset of each item in the parsed text (error locations)."""

    __slots__ = ("items", "source", "starts")

    def __init__(self, items: list, source: str = "", starts: list | None = None):
        self.items = items
        self.source = source
        self.starts = starts


# ---- what a tree holds (asked by regapi, never re-derived there) ----------------------
def walk(node):
    """Every node of a tree, and the lists inside it (depth first, any order)."""
    stack = [node]
    while stack:
        x = stack.pop()
        yield x
        if isinstance(x, Var):
            if x.default:
                stack.extend(x.default)
        elif isinstance(x, Word):
            stack.extend(x.parts)
        elif isinstance(x, Sub):
            stack.append(x.body)
        elif isinstance(x, Script):
            stack.extend(x.items)
        elif isinstance(x, AndOr):
            stack.append(x.first)
            stack.extend(p for _, p in x.rest)
        elif isinstance(x, Pipeline):
            stack.extend(x.cmds)
        elif isinstance(x, Simple):
            stack.extend(w for _, w in x.assigns)
            stack.extend(x.words)
            stack.extend(r.target for r in x.redirs if isinstance(r.target, Node))
        elif isinstance(x, (list, tuple)):
            stack.extend(x)


def variables(tree) -> frozenset:
    """The names of every variable the tree may expand (words, assignments,
    redirection targets, defaults, ``$(...)`` bodies)."""
    return frozenset(x.name for x in walk(tree) if isinstance(x, Var))


def command_names(tree):
    """The set of command names the tree can run, or None when one of them is only
    known at run time (a name made by an expansion: ``$cmd args``)."""
    names = set()
    for x in walk(tree):
        if isinstance(x, Simple) and x.words:
            parts = x.words[0].parts
            if not parts or not all(isinstance(p, Lit) for p in parts):
                return None
            names.add("".join(p.text for p in parts))
    return names
