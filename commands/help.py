"""``help`` and ``man``: what the command registry knows, as text."""
from __future__ import annotations

from objstore.errors import NOT_FOUND, WnError
from wnshell.command import Command

from commands.fs import parse, usage


def _registry(session):
    reg = getattr(session, "registry", None)
    if reg is None:
        from wnshell.registry import REGISTRY as reg
    return reg


def _page(cmd) -> str:
    from wnshell.registry import help_text
    return help_text(cmd)


def _show(session, text: str, stdout) -> None:
    """Through the session's pager when the shell gave it one (the REPL does, for its
    terminal; it pages only text longer than the screen), else straight to stdout."""
    pager = getattr(session, "pager", None)
    if pager is None or not pager(text, stdout):
        stdout.write(text)


def _complete_names(session, words, prefix):
    """``man o<Tab>``, ``help o<Tab>``: command names, not store paths."""
    return [nm for nm in _registry(session).names() if nm.startswith(prefix)]


def _man_pages(session, names, stdout) -> int:
    reg = _registry(session)
    pages = []
    for nm in names:
        cmd = reg.get(nm)
        if cmd is None:
            raise WnError("e.man.noexists", nm, NOT_FOUND)
        pages.append(_page(cmd))
    _show(session, "\n".join(pages), stdout)
    return 0


class Help(Command):
    name = "help"
    blocks = False                  # memory and the store only
    summary = "list the commands with a one-line summary each (help CMD: its man page)"
    options: dict[str, str] = {}
    man = """NAME
    help - list the available commands

SYNOPSIS
    help
    help CMD...

DESCRIPTION
    Without CMD, prints every command the registry knows -- the built-ins and those
    of installed plugins (entry-point group wnshell.commands) -- one per line, sorted,
    with its summary.  A plugin that fails to load is listed as "(failed to load)".
    With CMD, prints that command's man page, as man CMD does.

    Every command also answers -h / --help with its man page.

EXAMPLES
    help
    help obj
    help | cat

ERRORS
    e.man.noexists : CMD    no such command (status 1)
"""

    def complete(self, session, words, prefix):
        return _complete_names(session, words, prefix)

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args)
        if opts.opts:
            raise usage("e.cmd.help.option", "unknown option " + opts.typed(next(iter(opts.opts))))
        if opts.args:
            return _man_pages(session, opts.args, stdout)
        reg = _registry(session)
        rows = []
        for nm in reg.names():
            cmd = reg.get(nm)
            summary = (getattr(cmd, "summary", "") or "") if cmd is not None \
                else "(failed to load)"
            rows.append((nm, " ".join(summary.split())))
        width = max((len(nm) for nm, _ in rows), default=0)
        _show(session, "".join(f"{nm.ljust(width)}  {s}".rstrip() + "\n" for nm, s in rows),
              stdout)
        return 0


class Man(Command):
    name = "man"
    blocks = False                  # memory and the store only
    summary = "print a command's manual page"
    options: dict[str, str] = {}
    man = """NAME
    man - print a command's manual page

SYNOPSIS
    man CMD...

DESCRIPTION
    Prints the manual page of each CMD (name, synopsis, description, options,
    examples, errors), separated by a blank line.  The same text is what CMD -h
    prints.  Use help to list the commands.

EXAMPLES
    man obj
    man ls json

ERRORS
    e.man.noexists : CMD     no such command (status 1; unlike running an unknown
                             command, which is e.cmd.notfound with status 127)
    man without CMD is a usage error (status 2)
"""

    def complete(self, session, words, prefix):
        return _complete_names(session, words, prefix)

    def run(self, session, args, stdin, stdout, stderr) -> int:
        opts = parse(args)
        if opts.opts:
            raise usage("e.cmd.man.option", "unknown option " + opts.typed(next(iter(opts.opts))))
        if not opts.args:
            raise usage("e.cmd.man.args", "man CMD (help lists the commands)")
        return _man_pages(session, opts.args, stdout)


HELP = Help()
MAN = Man()
