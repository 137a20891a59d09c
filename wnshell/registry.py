"""The command registry.

Commands come from the entry-point group ``wnshell.commands`` (built-ins use it too)
and from ``register(cmd)``.  Start-up stays cheap: the registry reads only the *names*
(each distribution's ``entry_points.txt``) and imports a command's module the first
time that command is looked up.

Why not ``importlib.metadata`` for the names: importing it costs about 40 ms, three
times a whole ``python -c pass``; the entry-point files are plain INI text, found next
to each installed distribution on ``sys.path``.  ``importlib.metadata`` is still the
fallback when a name is not found that way (zipped eggs, custom finders).

A plugin whose module fails to import gives one warning line on the process's stderr;
the shell keeps working and the command reads as not found.
"""
from __future__ import annotations

import os
import sys

from wnshell.command import Command

GROUP = "wnshell.commands"
SUBCOMMANDS_GROUP = "wnshell.subcommands"   # wnshell NAME ...: serve, demo, sync (regapi)

__all__ = ["Registry", "REGISTRY", "register", "get", "names", "help_text", "GROUP",
           "SUBCOMMANDS_GROUP", "entry_points"]

_GROUPS: dict[str, dict[str, str]] | None = None


def entry_points(group: str) -> dict[str, str]:
    """name -> "module:attr" of an entry-point group, from one scan of ``sys.path``
    shared by every group (the CLI's subcommands and the registry's commands)."""
    global _GROUPS
    if _GROUPS is None:
        _GROUPS = _scan_all_entry_points()
    return dict(_GROUPS.get(group, {}))


def _scan_all_entry_points() -> dict[str, dict[str, str]]:
    """{group: {name: "module:attr"}} from ``*.dist-info``/``*.egg-info`` on
    ``sys.path``.  The first distribution on ``sys.path`` wins, as with
    ``importlib.metadata``."""
    found: dict[str, dict[str, str]] = {}
    seen_dists: set[str] = set()
    for entry in sys.path:
        try:
            it = os.scandir(entry or ".")
        except OSError:
            continue
        with it:
            for de in it:
                nm = de.name
                if not (nm.endswith(".dist-info") or nm.endswith(".egg-info")):
                    continue
                dist = nm.rsplit(".", 1)[0].split("-", 1)[0].lower().replace("_", "-")
                if dist in seen_dists:
                    continue
                try:
                    with open(os.path.join(de.path, "entry_points.txt"),
                              encoding="utf-8") as f:
                        text = f.read()
                except OSError:
                    continue
                seen_dists.add(dist)
                if "[wnshell." not in text:      # only our groups are read
                    continue
                section = None
                for line in text.splitlines():
                    line = line.strip()
                    if not line or line[0] in "#;":
                        continue
                    if line[0] == "[":
                        name = line.strip("[]").strip()
                        section = found.setdefault(name, {}) \
                            if name.startswith("wnshell.") else None
                        continue
                    if section is not None and "=" in line:
                        k, v = line.split("=", 1)
                        section.setdefault(k.strip(), v.strip())
    return found


def help_text(cmd: Command) -> str:
    """What ``CMD -h`` prints: the man page, else summary and options."""
    man = (getattr(cmd, "man", "") or "").strip("\n")
    if man:
        return man.rstrip() + "\n"
    lines = [f"{cmd.name} - {cmd.summary}".rstrip(" -")]
    options = getattr(cmd, "options", None) or {}
    if options:
        lines.append("")
        lines.append("options:")
        width = max(len(k) for k in options)
        for k, v in options.items():
            lines.append(f"  {k.ljust(width)}  {v}")
    return "\n".join(lines) + "\n"


class Registry:
    """Name -> Command.  ``parent``: another registry consulted for unknown names (a
    test or an embedding app can add or override commands without touching the
    global one)."""

    def __init__(self, parent: "Registry | None" = None, entry_points: bool | None = None):
        self.parent = parent
        self._cmds: dict[str, Command] = {}
        self._failed: set[str] = set()
        self._use_eps = (parent is None) if entry_points is None else entry_points
        self._eps: dict[str, str] | None = None
        self._slow_done = False

    # ---- registration ---------------------------------------------------------------
    def register(self, cmd, name: str | None = None) -> Command:
        """Add (or replace) a command: a ``Command`` instance or class.  Returns it."""
        if isinstance(cmd, type):
            cmd = cmd()
        nm = name or getattr(cmd, "name", "")
        if not nm or not callable(getattr(cmd, "run", None)):
            raise ValueError("a command needs a name and a run() method")
        self._cmds[nm] = cmd
        self._failed.discard(nm)
        return cmd

    def unregister(self, name: str) -> None:
        self._cmds.pop(name, None)

    # ---- lookup ---------------------------------------------------------------------
    def _entry_points(self) -> dict[str, str]:
        if self._eps is None:
            self._eps = entry_points(GROUP) if self._use_eps else {}
        return self._eps

    def _load(self, name: str, spec: str) -> Command | None:
        mod_name, _, attr = spec.partition(":")
        try:
            mod_name = mod_name.strip()
            __import__(mod_name)        # = importlib.import_module; importing importlib
            obj = sys.modules[mod_name]  # costs start-up time
            for a in attr.strip().split(".") if attr.strip() else []:
                obj = getattr(obj, a)
            if isinstance(obj, type):
                obj = obj()
            if not callable(getattr(obj, "run", None)):
                raise TypeError(f"{spec} is not a command")
        except Exception as e:  # any plugin failure: warn, keep the shell alive
            self._failed.add(name)
            reason = " ".join(str(e).split())[:160]
            sys.stderr.write(f"wnshell: warning: command {name!r} ({spec}) failed to load: "
                             f"{type(e).__name__}: {reason}\n")
            return None
        if not getattr(obj, "name", ""):
            try:
                obj.name = name
            except Exception:  # pragma: no cover - frozen objects
                pass
        self._cmds[name] = obj
        return obj

    def get(self, name: str) -> Command | None:
        cmd = self._cmds.get(name)
        if cmd is not None:
            return cmd
        if name in self._failed:
            return None
        if self._use_eps:
            spec = self._entry_points().get(name)
            if spec is None:
                spec = self._slow_lookup(name)
            if spec is not None:
                return self._load(name, spec)
        if self.parent is not None:
            return self.parent.get(name)
        return None

    def _slow_lookup(self, name: str) -> str | None:
        """Fallback for distributions the fast scan cannot see."""
        if self._slow_done:
            return None
        self._slow_done = True
        eps = self._entry_points()
        try:
            from importlib.metadata import entry_points
            for ep in entry_points(group=GROUP):
                eps.setdefault(ep.name, ep.value)
        except Exception:  # pragma: no cover - broken metadata must not kill the shell
            pass
        return eps.get(name)

    def names(self) -> list[str]:
        """Every known command name (nothing is imported), sorted."""
        out = set(self._cmds)
        if self._use_eps:
            out.update(self._entry_points())
        if self.parent is not None:
            out.update(self.parent.names())
        return sorted(out)

    def commands(self) -> list[Command]:
        """Every command that loads (imports them all; for ``help``)."""
        cmds = []
        for nm in self.names():
            c = self.get(nm)
            if c is not None:
                cmds.append(c)
        return cmds


REGISTRY = Registry()


def register(cmd, name: str | None = None) -> Command:
    """Public API for plugins and tests: add a command to the global registry."""
    return REGISTRY.register(cmd, name)


def get(name: str) -> Command | None:
    return REGISTRY.get(name)


def names() -> list[str]:
    return REGISTRY.names()
