"""Built-in commands of the shell itself: echo, true, false, exit, export, env, cd, pwd,
set.

They register through the same entry-point group as any plugin (see pyproject.toml).
"""
from __future__ import annotations

from wnshell.command import Command
from wnshell.errors import NOT_FOUND, UsageError, WnError
from wnshell.options import Expanded


def _is_name(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(
        c.isalnum() or c == "_" for c in name) and name.isascii()


def _quote(value: str) -> str:
    """Quote a value so the shell reads it back unchanged."""
    if value and all(c.isalnum() or c in "@%+=:,./-_" for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "e": "\x1b", "0": "\0"}


def _unescape(text: str) -> tuple[str, bool]:
    """``echo -e``: backslash escapes; ``\\c`` stops the output.  Returns (text, stop)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out), True
        if nxt in ("x", "u") and i + 2 < n:
            width = 2 if nxt == "x" else 4
            digits = ""
            j = i + 2
            while j < n and len(digits) < width and text[j] in "0123456789abcdefABCDEF":
                digits += text[j]
                j += 1
            if digits:
                out.append(chr(int(digits, 16)))
                i = j
                continue
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
        else:
            out.append("\\" + nxt)
        i += 2
    return "".join(out), False


class Echo(Command):
    name = "echo"
    blocks = False                  # memory and the store only
    pure = True                     # its arguments in, its stdout out (wnshell.plan)
    summary = "print the arguments, joined by one space"
    flags = "ne"
    options = {"-n": "no trailing newline", "-e": "interpret backslash escapes (\\n \\t \\\\ ...)"}
    man = """\
echo - print the arguments

usage: echo [-n] [-e] [ARG...]

Prints the ARGs joined by one space, then a newline.
  -n   no trailing newline
  -e   interpret backslash escapes: \\n \\t \\r \\\\ \\xHH \\uHHHH, \\c stops output
Leading -n/-e/-ne/-en words are options; anything else (and any word whose text
comes from a variable, e.g. `echo $X` with X=-n) is printed as it is.

  echo hello world          -> hello world
  echo -n $JSON | json      (no newline after the JSON)
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        newline, escapes = True, False
        i = 0
        while i < len(args):
            a = args[i]
            if isinstance(a, Expanded) or len(a) < 2 or a[0] != "-" or \
                    any(c not in "ne" for c in a[1:]):
                break
            newline = newline and "n" not in a
            escapes = escapes or "e" in a
            i += 1
        text = " ".join(args[i:])
        if escapes:
            text, stop = _unescape(text)
            if stop:
                newline = False
        stdout.write(text + ("\n" if newline else ""))
        return 0


class TrueCmd(Command):
    name = "true"
    blocks = False                  # memory and the store only
    pure = True
    summary = "do nothing, successfully (status 0)"
    man = "true - do nothing, successfully\n\nusage: true\n\nExit status 0.\n"

    def run(self, session, args, stdin, stdout, stderr) -> int:
        return 0


class FalseCmd(Command):
    name = "false"
    blocks = False                  # memory and the store only
    summary = "do nothing, unsuccessfully (status 1)"
    man = "false - do nothing, unsuccessfully\n\nusage: false\n\nExit status 1.\n"

    def run(self, session, args, stdin, stdout, stderr) -> int:
        return 1


class Exit(Command):
    name = "exit"
    blocks = False                  # memory and the store only
    summary = "stop the script (or the shell) with a status"
    man = """\
exit - stop the script or the interactive shell

usage: exit [N]

Stops running commands; the status is N (0-255), or the last command's status.
Inside $(...) it stops only that substitution.
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        if len(args) > 1:
            raise UsageError("e.cmd.exit.args", "too many arguments")
        if args:
            try:
                status = int(args[0]) & 0xFF
            except ValueError:
                raise UsageError("e.cmd.exit.badstatus", args[0]) from None
        else:
            status = session.last_status
        session.exit_requested = status
        return status


class Export(Command):
    name = "export"
    blocks = False                  # memory and the store only
    summary = "set environment variables (K=V), or list them"
    man = """\
export - set variables of the session's environment

usage: export [NAME=VALUE | NAME]...

export K=V sets K (the value is one word: `export X=$JSON` keeps it whole).
export K alone makes sure K exists (empty when it was unset).
Without arguments, lists every variable as `export K=V` lines that read back.
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        if not args:
            for k in sorted(session.env):
                stdout.write(f"export {k}={_quote(str(session.env[k]))}\n")
            return 0
        pending = {}
        for a in args:
            name, eq, value = a.partition("=")
            if not _is_name(name):
                raise UsageError("e.cmd.export.badname", name or a)
            if eq and type(a) is not str:       # keep a request value's marks
                from wnshell.provenance import spans_of, mark
                cut = len(name) + 1
                value = mark(value, [(max(x - cut, 0), max(y - cut, 0))
                                     for x, y in spans_of(a) if y >= cut])
            pending[name] = value if eq else session.env.get(name, "")
        session.env.update(pending)
        return 0


class Env(Command):
    name = "env"
    blocks = False                  # memory and the store only
    summary = "print the environment, one K=V a line"
    man = "env - print the session's environment\n\nusage: env\n\nOne K=V line per variable, sorted by name.\n"

    def run(self, session, args, stdin, stdout, stderr) -> int:
        if args:
            raise UsageError("e.cmd.env.args", "env takes no arguments")
        for k in sorted(session.env):
            stdout.write(f"{k}={session.env[k]}\n")
        return 0


class Cd(Command):
    name = "cd"
    blocks = False                  # memory and the store only
    summary = "change the current directory"
    man = """\
cd - change the current directory

usage: cd [DIR]

Without DIR, goes home (~).  `cd -` goes back to the previous directory.
DIR may be absolute, relative, ~/..., or id:ID.
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        if len(args) > 1:
            raise UsageError("e.cmd.cd.args", "too many arguments")
        target = args[0] if args else "~"
        if target == "-":
            target = session.env.get("OLDPWD") or session.cwd
        path = session.resolve(target)
        obj = session.store.fetch(path)
        if obj is None:
            raise WnError("e.io.obj.noexists", target, NOT_FOUND)
        if obj.get("race") != "DIR":
            raise WnError("e.io.obj.notdir", target)
        session.env["OLDPWD"] = session.cwd
        session.cwd = obj["ph"]
        session.env["PWD"] = session.cwd
        return 0


class Pwd(Command):
    name = "pwd"
    blocks = False                  # memory and the store only
    summary = "print the current directory"
    man = "pwd - print the current directory\n\nusage: pwd\n"

    def run(self, session, args, stdin, stdout, stderr) -> int:
        stdout.write(session.cwd + "\n")
        return 0


class Set(Command):
    name = "set"
    summary = "set shell options: set -e stops at the first failing command"
    options = {"-e": "stop at the first command that fails (errexit)",
               "+e": "do not stop (the default)"}
    handles_help = False
    man = """\
set - shell options

usage: set [-e | +e | -o errexit | +o errexit]...

  set -e    from now on, the first command that fails stops the script (or the
            rest of the line at the prompt) with that command's status; a command
            that fails on the left of && or || does not stop it, as in sh
  set +e    back to the default: keep going after a failure
  set       print the options as `set -e` / `set +e`

`wnshell -e SCRIPT` starts a script with set -e.

  set -e
  obj ~/orders/o1 -u '{or_status: 1}'     # a missing order stops here
  echo updated
"""

    def run(self, session, args, stdin, stdout, stderr) -> int:
        if not args:
            stdout.write("set -e\n" if getattr(session, "errexit", False) else "set +e\n")
            return 0
        pending = getattr(session, "errexit", False)
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-e", "+e"):
                pending = a == "-e"
            elif a in ("-o", "+o") and i + 1 < len(args) and args[i + 1] == "errexit":
                pending = a == "-o"
                i += 1
            else:
                raise UsageError("e.cmd.set.option", f"unknown option {a} (set -e or +e)")
            i += 1
        session.errexit = pending
        return 0


ECHO = Echo()
TRUE = TrueCmd()
FALSE = FalseCmd()
EXIT = Exit()
EXPORT = Export()
ENV = Env()
CD = Cd()
PWD = Pwd()
SET = Set()
