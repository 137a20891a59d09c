"""Templates: ``${k}``, ``${k?default}``, ``${k?}`` and ``$<k>`` (alias of ``${k}``).

One module for the shell and for ``.regapi``:

* **Command templates** (a ``.regapi`` file's content) are shell text.  Parse them once
  with ``wnshell.parser.parse(text)`` and run the tree with
  ``session.run_ast(tree, stdin, template_vars=values)``.  Each ``${k}`` is then looked
  up in ``template_vars`` first (then in the session's env) and becomes *one literal
  part of a word*: a value is never lexed, never split, never turned into an option, so
  no value can add a command or an argument.

This module holds what the lexer (names) and the executor (values) share; it imports
neither, so there is no cycle lexer -> parser -> template.

Names inside ``${...}`` and ``$<...>`` may hold letters, digits and ``_ - .``
(``${http-qs-id}``).  An unknown name without a default renders as the empty string.
"""
from __future__ import annotations

# (no typing import at run time: start-up time matters; annotations are strings)

__all__ = ["scan_name", "is_name", "to_text", "lookup"]


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c in "_-."


def scan_name(text: str, pos: int) -> int:
    """Index just past the run of template-name characters starting at ``pos``."""
    n = len(text)
    while pos < n and _is_name_char(text[pos]):
        pos += 1
    return pos


def is_name(name: str) -> bool:
    return bool(name) and scan_name(name, 0) == len(name)


def to_text(value: Any) -> str:
    """A variable's value as text: strings as they are, numbers with ``str``, booleans
    and None as JSON (``true``/``false``/``null`` -- Walnut is Java), lists and dicts
    as compact JSON."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    import json
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def lookup(name: str, template_vars: Mapping[str, Any] | None,
           env: Mapping[str, Any] | None) -> str | None:
    """``template_vars`` first, then ``env``; None when neither has the name."""
    if template_vars is not None and name in template_vars:
        return to_text(template_vars[name])
    if env is not None and name in env:
        return to_text(env[name])
    return None
