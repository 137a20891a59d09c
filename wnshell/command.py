"""The command contract.  Built-ins and third-party plugins implement ``Command``.

A command module exposes an instance; pyproject's entry-point group
``wnshell.commands`` maps the command name to ``"module:ATTRIBUTE"``, and the registry
imports the module only when the command is first looked up (start-up time matters).

    class Echo(Command):
        name = "echo"
        summary = "print arguments"
        flags = "ne"                  # single-letter boolean flags (-n, -e, -ne)
        options = {"-n": "no trailing newline", "-e": "interpret backslash escapes"}
        man = '''...'''               # the man page text (``man echo``, ``echo -h``)

        def run(self, session, args, stdin, stdout, stderr) -> int:
            ...

* ``args``: the expanded argument words (list[str]), command name excluded.
* ``stdin``: a readable text stream; ``stdout``/``stderr``: writable text streams.
* Return the exit status.  Never print to the process, never ``sys.exit``.
* Raise ``objstore.errors.WnError`` for failures: the runner prints ``e.key : reason``
  to stderr, sets ``session.last_error`` and returns status 1 (2 for kind bad_input
  raised as usage errors via ``UsageError``).
* ``blocks``: declare whether the command can wait (see the attribute below);
  ``pure``: whether it needs nothing but its arguments (see below).
* Completion at the prompt (optional): ``complete(session, words, prefix)`` returns
  the candidates for the word being typed -- strings or ``(text, help)`` pairs --
  given the words before it (command name excluded); the REPL keeps those starting
  with ``prefix``.  Return None for the default: the declared ``options``/``flags``
  after ``-`` or ``@`` (``httpc @he<Tab>``), store paths elsewhere.
* Long text for a reader (a manual, a listing): call ``session.pager(text, stdout)``
  when the session has one (``getattr(session, "pager", None)``); it returns False
  when it did not page (not a terminal, or short text) and the command writes the
  text itself.
* Use ``session`` for everything else: ``session.store``, ``session.user``,
  ``session.home``, ``session.cwd``, ``session.env``, ``session.resolve(path)``,
  ``session.run(text, stdin)`` to call other commands.
"""
from __future__ import annotations

# No ``typing`` import at run time (start-up time matters); annotations are strings.


class Command:
    name: str = ""
    summary: str = ""
    flags: str = ""                 # declared single-letter boolean flags
    options: dict[str, str] = {}    # "-opt" -> one-line help (drives completion, -h)
    man: str = ""
    # True when the command gives -h/--help a meaning of its own (httpc: -h prints the
    # headers); otherwise the runner answers a leading -h/--help with the help text.
    handles_help: bool = False
    # Can run() wait on something outside memory and the store (the network, another
    # process)?  Declared by each command, read by servers (regapi) to decide whether a
    # template may run on the request thread:
    #   False       never waits (echo, cat, obj ...)
    #   "deadline"  may wait, but never past session.remaining() (httpc, weixin: the
    #               request's remaining time is their timeout)
    #   True        may wait without bound -- the default for a command that does not
    #               say (a server then runs it where a deadline can still answer)
    blocks: bool | str = True
    # Does run() read only its arguments and write only its stdout and stderr -- no
    # session (it may be given None), no store, no clock, no stdin -- so that running
    # it again gives the same and changes nothing?  A template of such commands alone
    # runs as a ``wnshell.plan.Plan``, without a session (echo).
    pure: bool = False

    # complete(self, session, words, prefix) -> list | None: see above (not defined
    # here, so the REPL can tell a command that completes from one that does not)

    def run(self, session: "Session", args: list[str], stdin: TextIO,
            stdout: TextIO, stderr: TextIO) -> int:  # pragma: no cover - interface
        raise NotImplementedError
