"""The ``wnshell`` console script.

    wnshell [--store URL] [--user NAME] -c TEXT [ARG0 ARGS...]   run TEXT
    wnshell [--store URL] [--user NAME] FILE [ARGS...]           run a script file
    ... | wnshell [--store URL] [--user NAME]                    run text from stdin
    wnshell [--store URL] [--user NAME]                          REPL on a terminal
    wnshell SUBCOMMAND ...             a subcommand of the entry-point group
                                       wnshell.subcommands (regapi adds serve, demo, sync)

``--confine`` runs the session confined to ``/home/NAME`` (as every ``.regapi`` request
is): nothing outside it can be read, changed or found.  Without it the local user owns
the whole store.

``main(argv, env)`` takes a ``wnshell.environment.Environment`` (streams, isatty, env
vars, data dir; default: this process) and returns an ``ExitStatus``, so tests run the
CLI and the REPL in-process.  This module imports nothing above the shell: a subcommand is found by name in the
entry-point group and only its module is imported, as commands are.  The process exits
with the last command's status (or ``exit N``).  Only the REPL imports
prompt_toolkit; everything here stays lazy because start-up time matters.
"""
from __future__ import annotations

import os
import sys

USAGE = """\
usage: wnshell [--store URL] [--user NAME] [--confine] [-e] [-c TEXT [ARG0 ARG...] | FILE [ARG...]]
       wnshell serve|demo|sync [...]   (wnshell.subcommands entry points; SUBCOMMAND --help)

  -c TEXT       run TEXT (ARG0 ARG... become $0 $1 ...)
  FILE          run the script FILE from the OS filesystem ($0 = FILE, $1 ...)
  (no FILE)     run commands from stdin, or an interactive shell on a terminal
  --store URL   store URL (sqlite:///path.db, tinydb:///path.json, memory://,
                postgresql://...); default: env WNSHELL_STORE, else
                $XDG_DATA_HOME/wnshell/store.db
  --user NAME   the session's user (default demo); /home/NAME is created if missing
  --confine     see and change only /home/NAME (as .regapi requests do); objects
                elsewhere read as missing, writes there are forbidden
  -e            stop at the first command that fails (as `set -e` does)
  -h, --help    this help
  --version     print the version

The interactive shell keeps its history in $XDG_DATA_HOME/wnshell/history
(default ~/.local/share/wnshell/history), created readable by you only (0600):
lines typed at the prompt may hold keys.
"""

def _subcommand(name: str):
    """The ``main(argv) -> int`` registered for ``wnshell NAME`` in the entry-point group
    ``wnshell.subcommands``, else None.  Only a plain word can name one (never an
    option or a path)."""
    if not name or name[0] == "-" or "/" in name or "." in name:
        return None
    from wnshell.registry import SUBCOMMANDS_GROUP, entry_points
    spec = entry_points(SUBCOMMANDS_GROUP).get(name)
    if spec is None:
        return None
    mod_name, _, attr = spec.partition(":")
    __import__(mod_name.strip())
    obj = sys.modules[mod_name.strip()]
    for a in (attr.strip() or "main").split("."):
        obj = getattr(obj, a)
    return obj


def _parse_argv(argv: list[str]):
    """-> (opts dict, mode, rest) or raises ValueError(message)."""
    opts = {"store": None, "user": "demo", "confine": False, "errexit": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            return opts, "help", []
        if a == "--version":
            return opts, "version", []
        if a == "-e":
            opts["errexit"] = True
            i += 1
            continue
        if a == "--confine":
            opts["confine"] = True
            i += 1
            continue
        if a in ("--store", "--user"):
            if i + 1 >= len(argv):
                raise ValueError(f"{a} needs a value")
            opts[a[2:]] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--store=") or a.startswith("--user="):
            k, _, v = a[2:].partition("=")
            opts[k] = v
            i += 1
            continue
        if a == "-c":
            if i + 1 >= len(argv):
                raise ValueError("-c needs a command text")
            return opts, "command", argv[i + 1:]
        if a == "--":
            i += 1
            break
        if a.startswith("-") and a != "-":
            raise ValueError(f"unknown option {a} (wnshell --help lists them)")
        break
    rest = argv[i:]
    if rest and rest[0] != "-":
        return opts, "file", rest
    return opts, "stdin", rest[1:] if rest else []


def _session(opts, env):
    from objstore import open_store
    from wnshell.session import Session
    store = open_store(opts["store"] or env.default_store_url())
    return Session(store, user=opts["user"], confine=opts["confine"])


def version() -> str:
    """The installed distribution's version (importlib.metadata: only when asked)."""
    try:
        from importlib.metadata import version as _v
        return _v("wnshell")
    except Exception:  # running from a source tree that is not installed
        return "unknown"


def _shown_url(url: str) -> str:
    """A store URL for the banner: no password; the home folder as ``~``."""
    import re
    url = re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)
    home = os.path.expanduser("~").rstrip("/")
    scheme, sep, rest = url.partition("://")
    if sep and home and home != "~" and rest.startswith(home + "/"):
        url = f"{scheme}://~{rest[len(home):]}"
    return url


def _banner(opts, env=None) -> str:
    from wnshell.environment import Environment
    url = opts["store"] or (env or Environment()).default_store_url()
    return f"wnshell {version()} \u00b7 store {_shown_url(url)} \u00b7 help, man CMD"


def _fix_streams() -> None:
    """Unencodable text is replaced, not fatal; stdout is line-buffered so that output
    and error lines keep their order when both go to one file (one flush per write
    that holds a newline, not per line)."""
    for s in (sys.stdout, sys.stderr):
        try:
            s.reconfigure(errors="replace", line_buffering=True)
        except Exception:  # pragma: no cover - replaced streams
            pass


def main(argv: list[str] | None = None, env=None) -> "ExitStatus":
    """Run the ``wnshell`` command line in ``env`` (default: this process); returns the
    exit status as an ``ExitStatus`` (an int), never raises."""
    from wnshell.environment import Environment, ExitStatus
    env = Environment() if env is None else env
    try:
        return ExitStatus(_main(argv, env))
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except Exception as e:  # a bug or a broken environment: one line, no traceback
        if env.vars.get("WNSHELL_DEBUG"):
            raise
        env.err(f"e.cmd.internal : wnshell: {type(e).__name__}")
        return ExitStatus.ERROR


def _main(argv: list[str] | None, env) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sub = _subcommand(argv[0]) if argv else None
    if sub is not None:
        return sub(argv)
    try:
        opts, mode, rest = _parse_argv(argv)
    except ValueError as e:
        env.err(f"e.cmd.wnshell.usage : {e}")
        env.err(USAGE)
        return 2
    if mode == "help":
        env.stdout.write(USAGE)
        return 0
    if mode == "version":
        env.stdout.write(f"wnshell {version()}\n")
        return 0
    if env.is_process:
        _fix_streams()

    from objstore.errors import WnError
    if mode == "file":
        path = rest[0]
        try:
            with open(path, encoding="utf-8-sig") as f:   # a BOM is not a command
                text = f.read()
        except OSError as e:
            env.err(f"e.cmd.script.noexists : {path}: {e.strerror or type(e).__name__}")
            return 127
        except UnicodeDecodeError:
            env.err(f"e.cmd.script.encoding : {path} is not UTF-8 text")
            return 2
        argv0 = rest
    elif mode == "command":
        text = rest[0]
        argv0 = rest[1:] or ["wnshell"]
    else:
        argv0 = ["wnshell"] + rest
        if not rest and env.stdin is not None and env.stdin_isatty:
            mode, text = "interactive", ""
        else:
            text = env.stdin.read() if env.stdin is not None else ""
            text = text[1:] if text.startswith("\ufeff") else text   # a BOM is not a command

    try:
        session = _session(opts, env)
    except WnError as e:
        env.err(e.line())
        return 1
    session.argv = argv0
    session.errexit = opts["errexit"]
    if mode == "file":
        session.script_name = rest[0]
    if mode == "interactive":
        from wnshell.repl import run_repl
        try:
            return run_repl(session, input=env.prompt_input, output=env.prompt_output,
                            stdout=env.stdout, stderr=env.stderr,
                            history_file=env.history_path(), banner=_banner(opts, env))
        finally:
            session.store.close()
    # -c and scripts: commands read the process's stdin (lazily, only if they do);
    # when the script itself came from stdin, commands get empty stdin.
    stdin = env.stdin if (mode != "stdin" and env.stdin is not None) else ""
    try:
        status, _, _ = session.run(text, stdin, stdout=env.stdout, stderr=env.stderr)
        env.stdout.flush()
    except BrokenPipeError:
        if env.is_process:
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:  # pragma: no cover
                pass
        return 141
    finally:
        try:
            session.store.close()
        except Exception:  # pragma: no cover - closing must not change the status
            pass
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
