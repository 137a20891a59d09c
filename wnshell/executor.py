"""Executor: runs a syntax tree (``wnshell.nodes``) in a ``Session``.

* Expansion happens here, when a command runs.  Each word gives exactly one argument
  (``"$@"``/``$@`` alone, the script's arguments, is the one exception); a value is
  never lexed again nor split, and an unset variable gives the empty string.
* Pipelines run their commands one after the other: each command's stdout, buffered in
  memory, is the next one's stdin.  Simple and deterministic.
* Redirections go to store objects resolved by ``session.resolve``: ``>`` creates or
  overwrites a FILE (and its missing parent directories, as Walnut does), ``>>``
  appends, ``<`` reads; ``2>&1``/``>&2`` join the streams.
* Provenance: values that arrive marked as coming from a request
  (``wnshell.provenance.FromRequest``) keep their marks through words, assignments and
  ``$(...)``, so that path resolution can refuse a request value that climbs out of
  the template's path (``Session.resolve``).
* With a ``session.deadline``, no command starts after it (``e.cmd.timeout``).
* ``session.errexit`` (``set -e``, ``wnshell -e``): the first statement that fails stops
  the run, unless it failed on the left of ``&&``/``||`` (as in sh).
* ``session.script_name`` (a script file): errors are prefixed ``FILE:LINE: ``.
* A ``WnError`` from a command becomes one line ``e.key : reason`` on the command's
  stderr (status 1, or the error's ``status``: 2 for usage and syntax errors); an
  unknown command is ``e.cmd.notfound : NAME`` (127, with "did you mean X?" when a
  known name is close); any other exception is
  ``e.cmd.internal`` with no traceback (set WNSHELL_DEBUG=1 to see it).
"""
from __future__ import annotations

import io
import os
import time

from wnshell.errors import INTERNAL, BAD_INPUT, WnError, status_of
from wnshell.nodes import Lit, Sub, Var
from wnshell.options import Expanded
from wnshell import provenance, template


# a leading literal one of these asks a command for its help (unless it handles_help)
HELP_WORDS = ("-h", "--help")


class ExitShell(Exception):
    """Raised after ``exit N`` ran: unwinds to the nearest ``run_ast``."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Executor:
    # the run's state starts as these class defaults (an executor is made per run: a
    # .regapi request makes one, so its __init__ sets only what each run must give)
    sub_status = None      # status of the latest $(...) / `...` (None: none since reset)
    # how many request-marked values were expanded so far (a $(...) whose body
    # expanded one gives request-marked output)
    request_reads = 0
    source = None          # the top script's text, for error locations
    pos = None             # offset of the statement running now
    exempt = False         # the last and_or failed left of && / || (set -e)

    def __init__(self, session, template_vars=None):
        self.session = session
        self.tvars = template_vars

    # ---- tree ---------------------------------------------------------------------
    def script(self, node, inp, out, err) -> int:
        status = 0
        if self.source is None:
            self.source = node.source
        starts = node.starts
        for i, item in enumerate(node.items):
            if starts:
                self.pos = starts[i]
            cmds = item.first.cmds
            if not item.rest and len(cmds) == 1:    # one command: and_or and pipeline's
                status = self.simple(cmds[0], inp, out, err)    # work, without them
                self.session.last_status = status
                self.exempt = False
            else:
                status = self.and_or(item, inp, out, err)
            if status != 0 and not self.exempt and getattr(self.session, "errexit", False):
                raise ExitShell(status)
        return status

    def and_or(self, node, inp, out, err) -> int:
        status = self.pipeline(node.first, inp, out, err)
        ran_last = not node.rest
        for i, (op, pl) in enumerate(node.rest):
            if (op == "&&") == (status == 0):
                status = self.pipeline(pl, inp, out, err)
                ran_last = i == len(node.rest) - 1
            else:
                ran_last = False
        self.exempt = not ran_last
        return status

    def pipeline(self, node, inp, out, err) -> int:
        cmds = node.cmds
        cur = inp
        status = 0
        last = len(cmds) - 1
        for i, cmd in enumerate(cmds):
            if i < last:
                buf = io.StringIO()
                status = self.simple(cmd, cur, buf, err)
                cur = io.StringIO(buf.getvalue())
            else:
                status = self.simple(cmd, cur, out, err)
        self.session.last_status = status
        return status

    # ---- expansion ----------------------------------------------------------------
    def var(self, part: Var, err) -> str:
        s = self.session
        name = part.name
        value = None
        if name == "?":
            value = str(s.last_status)
        elif name.isdigit():
            k = int(name)
            value = s.argv[k] if k < len(s.argv) else None
        elif name in ("@", "*"):
            value = " ".join(s.argv[1:])
        elif name == "#":
            value = str(max(len(s.argv) - 1, 0))
        else:
            tvars = self.tvars
            if tvars is not None and name in tvars and isinstance(tvars[name], str):
                value = tvars[name]         # text already (what to_text gives back)
            else:
                value = template.lookup(name, tvars, s.env)
        if value is None:
            if part.default is not None:
                return self.parts_text(part.default, err)
            return ""
        if isinstance(value, provenance.FromRequest):
            self.request_reads += 1
        return value

    def sub(self, part: Sub, err) -> str:
        s = self.session
        buf = io.StringIO()
        saved_exit = s.exit_requested
        s.exit_requested = None
        reads = self.request_reads
        try:
            status = self.script(part.body, io.StringIO(""), buf, err)
        except ExitShell as e:
            status = e.status
        finally:
            s.exit_requested = saved_exit
        s.last_status = status
        self.sub_status = status
        text = buf.getvalue().rstrip("\n")
        if self.request_reads != reads:     # its output may carry a request value
            return provenance.mark(text, ((0, len(text)),))
        return text

    def parts_text(self, parts, err) -> str:
        if len(parts) == 1:                 # the common ${k} / literal word
            p = parts[0]
            if isinstance(p, Lit):
                return p.text
            return self.var(p, err) if isinstance(p, Var) else self.sub(p, err)
        out = []
        marked = False
        for p in parts:
            if isinstance(p, Lit):
                out.append(p.text)
                continue
            v = self.var(p, err) if isinstance(p, Var) else self.sub(p, err)
            if isinstance(v, provenance.FromRequest):
                marked = True
            out.append(v)
        return provenance.join(out) if marked else "".join(out)

    def word(self, word, err) -> list[str]:
        parts = word.parts
        if len(parts) == 1:
            p = parts[0]
            if type(p) is Lit:              # a literal word: itself
                return [p.text]
            if type(p) is Var:              # ${k}: its value (no parts_text call)
                if p.name == "@":
                    return [Expanded(a) for a in self.session.argv[1:]]
                text = self.var(p, err)
            else:
                text = self.sub(p, err)
        else:
            text = self.parts_text(parts, err)
            for p in parts:
                if isinstance(p, Lit):
                    if p.text:
                        return [text]       # leading text the template wrote
                    continue
                break
            else:
                return [text]               # empty literals only
        # leading text came from an expansion: never an option
        if isinstance(text, Expanded):      # a whole request value already is
            return [text]
        return [provenance.mark(text, provenance.spans_of(text), expanded=True)]

    # ---- store objects for redirections ---------------------------------------------
    def _path(self, word, err) -> str:
        path = self.parts_text(word.parts, err)
        if not path:
            raise WnError("e.cmd.redirect.nopath", "empty file name", BAD_INPUT)
        return path

    def _open_for_write(self, path: str):
        s = self.session
        sp = s.resolve(path)
        obj = s.store.fetch(sp)
        if obj is None:
            return s.store.create(sp, "FILE", parents=True)["id"], True
        if obj.get("race") == "DIR":
            raise WnError("e.io.obj.notfile", path, BAD_INPUT)
        return obj["id"], False

    def _read(self, path: str) -> str:
        s = self.session
        obj = s.store.check(s.resolve(path))
        if obj.get("race") == "DIR":
            raise WnError("e.io.obj.notfile", path, BAD_INPUT)
        return s.store.read(obj["id"]).decode("utf-8", "replace")

    # ---- one command ----------------------------------------------------------------
    def fail(self, e: WnError, stream) -> int:
        self.session.last_error = e
        stream.write(self._where() + e.line() + "\n")
        return status_of(e)

    def _where(self) -> str:
        """``FILE:LINE: `` for the top level of a script file, else empty."""
        s = self.session
        name = getattr(s, "script_name", None)
        if not name or self.pos is None or self.source is None or s._depth != 1:
            return ""
        return f"{name}:{self.source.count(chr(10), 0, self.pos) + 1}: "

    def simple(self, node, inp, out, err) -> int:
        s = self.session
        self.sub_status = None
        args: list[str] = []
        for w in node.words:
            args.extend(self.word(w, err))
        if args and not node.redirs and not node.assigns:
            # the usual command: no output to store, no variable to set or restore
            status = self.call(args, (), {0: inp, 1: out, 2: err})
            if s.exit_requested is not None:
                raise ExitShell(s.exit_requested)
            return status
        assigns = [(name, self.parts_text(w.parts, err)) for name, w in node.assigns]
        sub_status = self.sub_status
        fds = {0: inp, 1: out, 2: err}
        sinks = []  # (buffer, object id, append, created here)
        try:
            for r in node.redirs:
                if r.op == ">&":
                    fds[r.fd] = fds[r.target]
                elif r.op == "<":
                    fds[0] = io.StringIO(self._read(self._path(r.target, err)))
                else:
                    oid, created = self._open_for_write(self._path(r.target, err))
                    buf = io.StringIO()
                    sinks.append((buf, oid, r.op == ">>", created))
                    fds[r.fd] = buf
        except WnError as e:
            return self.fail(e, fds[2])

        status = 0
        finished = False
        try:
            if not args:
                s.env.update(assigns)
                # "x=$(cmd)" has the status of its last substitution, as in sh
                status = 0 if sub_status is None else sub_status
            else:
                status = self.call(args, assigns, fds)
            finished = True
        except ExitShell:
            finished = True
            raise
        finally:
            if finished:
                failed = self._flush_sinks(sinks, fds)
                if failed is not None:
                    status = failed
            else:
                # interrupted (Ctrl-C): no half-written object -- existing objects keep
                # their content, objects created for this command are removed
                self._drop_sinks(sinks)
        if s.exit_requested is not None:
            raise ExitShell(s.exit_requested)
        return status

    def _flush_sinks(self, sinks, fds):
        """Write the redirected output; the status of a failed write, else None."""
        s = self.session
        failed = None
        for buf, oid, append, _created in sinks:
            data = buf.getvalue().encode("utf-8")
            try:
                if append:
                    if data:
                        s.store.append(oid, data)
                else:
                    s.store.write(oid, data)
            except WnError as e:
                failed = self.fail(e, fds[2])
        return failed

    def _drop_sinks(self, sinks) -> None:
        for _buf, oid, _append, created in sinks:
            if created:
                try:
                    self.session.store.delete(oid)
                except Exception:  # already gone: nothing to undo
                    pass

    def call(self, args, assigns, fds) -> int:
        s = self.session
        name = args[0]
        if s.deadline is not None and time.monotonic() > s.deadline:
            try:
                s.check_deadline()
            except WnError as e:
                return self.fail(e, fds[2])
        cmd = s.registry.get(name)
        if cmd is None:
            self.fail(WnError("e.cmd.notfound", name + _did_you_mean(name, s.registry),
                              INTERNAL), fds[2])
            return 127
        saved = None
        if assigns:
            saved = {}
            for k, v in assigns:
                saved[k] = s.env.get(k)
                s.env[k] = v
        try:
            rest = args[1:]
            if (rest and rest[0] in HELP_WORDS and not isinstance(rest[0], Expanded)
                    and not getattr(cmd, "handles_help", False)):
                from wnshell.registry import help_text
                fds[1].write(help_text(cmd))
                return 0
            status = cmd.run(s, rest, fds[0], fds[1], fds[2])
            return 0 if status is None else int(status)
        except WnError as e:
            return self.fail(e, fds[2])
        except (KeyboardInterrupt, ExitShell):
            raise
        except BrokenPipeError:
            # the reader of our stdout went away (wnshell ... | head -1): stop the
            # whole run, like a shell killed by SIGPIPE; the CLI exits 141
            raise
        except Exception as e:
            if os.environ.get("WNSHELL_DEBUG"):
                import traceback
                traceback.print_exc()
            return self.fail(WnError("e.cmd.internal", f"{name}: {type(e).__name__}",
                                     INTERNAL), fds[2])
        finally:
            if saved:
                for k, v in saved.items():
                    if v is None:
                        s.env.pop(k, None)
                    else:
                        s.env[k] = v


def _did_you_mean(name: str, registry) -> str:
    """`` (did you mean obj?)`` for ``ojb``: the known name within one typo (a letter
    added, dropped, changed, or two swapped; two typos for names of 8+ letters)."""
    if not name or len(name) > 40:
        return ""
    allowed = max(1, len(name) // 4)
    best = None
    for known in registry.names():
        d = _typos(name, known)
        if 0 < d <= allowed and (best is None or d < best[0]):
            best = (d, known)
    return f" (did you mean {best[1]}?)" if best else ""


def _typos(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Levenshtein plus adjacent swaps)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]
