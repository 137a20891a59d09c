"""Plans: the plainest templates, run without a ``Session`` or an ``Executor``.

A template every statement of which is one command -- no ``&&``/``||``, no pipe, no
assignment, no redirection -- named by a literal word, each argument a literal word or
a single ``${name}`` (no default) of an allowed name, and every command *pure*
(``Command.pure``: it reads only its arguments, writes only its stdout, never touches
the session, the store or the clock), compiles to a ``Plan``: the commands and their
argument templates, resolved once.

``Plan.run(tvars)`` gives the stdout the executor would give for the same variables --
an argument is the literal's text, the variable's value (already ``Expanded``: never
an option), or ``Expanded("")`` for a missing one, exactly as ``Executor.word`` makes
them -- or None when anything is not the plain success (a command failed, wrote to
stderr, or raised; a value is not a request's text): the caller then runs the template
in a session as usual, and since pure commands have no effects, running them twice is
unobservable.
"""
from __future__ import annotations

import io

from wnshell.executor import HELP_WORDS
from wnshell.nodes import Lit, Var
from wnshell.options import Expanded

EMPTY = Expanded("")    # what Executor.word gives for a variable that is not set


class Plan:
    __slots__ = ("steps",)

    def __init__(self, steps: tuple):
        # ((command, (literal str | (name,), ...)), ...)
        self.steps = steps

    def run(self, tvars) -> str | None:
        out = io.StringIO()
        err = io.StringIO()
        for cmd, spec in self.steps:
            args = []
            for a in spec:
                if type(a) is str:
                    args.append(a)
                    continue
                v = tvars.get(a[0])
                if v is None:
                    args.append(EMPTY)
                elif isinstance(v, Expanded):
                    args.append(v)
                else:                       # not what select_query gives: no plan
                    return None
            try:
                status = cmd.run(None, args, io.StringIO(""), out, err)
            except Exception:  # noqa: BLE001 - the session's run reports it properly
                return None
            if status or err.tell():
                return None
        return out.getvalue()


def compile_plan(tree, registry, names) -> Plan | None:
    """The ``Plan`` of a parsed template, or None when it is not that plain.
    ``names``: the variable names a plan may read (the values it is given)."""
    steps = []
    for item in tree.items:
        if item.rest or len(item.first.cmds) != 1:
            return None
        node = item.first.cmds[0]
        if node.assigns or node.redirs or not node.words:
            return None
        spec = []
        for w in node.words:
            if len(w.parts) != 1:
                return None
            p = w.parts[0]
            if type(p) is Lit:
                spec.append(p.text)
            elif type(p) is Var and p.default is None and p.name in names:
                spec.append((p.name,))
            else:
                return None
        name = spec[0]
        if type(name) is not str:
            return None
        try:
            cmd = registry.get(name)
        except Exception:  # noqa: BLE001 - a plugin that fails to load: no plan
            return None
        if cmd is None or getattr(cmd, "pure", False) is not True:
            return None
        rest = spec[1:]
        if rest and type(rest[0]) is str and rest[0] in HELP_WORDS \
                and not getattr(cmd, "handles_help", False):
            return None
        steps.append((cmd, tuple(rest)))
    if not steps:
        return None
    return Plan(tuple(steps))
