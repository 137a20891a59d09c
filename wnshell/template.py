"""Templates: ``${k}``, ``${k?default}``, ``${k?}`` and ``$<k>`` (alias of ``${k}``).

One module for the shell and for ``.regapi``:

* **Command templates** (a ``.regapi`` file's content) are shell text.  Parse them once
  with ``compile(text)`` (= ``wnshell.parser.parse``) and run the tree with
  ``session.run_ast(tree, stdin, template_vars=values)``.  Each ``${k}`` is then looked
  up in ``template_vars`` first (then in the session's env) and becomes *one literal
  part of a word*: a value is never lexed, never split, never turned into an option, so
  no value can add a command or an argument.
* **Text templates** (a header value, a MIME type...): ``render(text, values)``
  substitutes the same forms in plain text, with no shell meaning at all.

Names inside ``${...}`` and ``$<...>`` may hold letters, digits and ``_ - .``
(``${http-qs-id}``).  An unknown name without a default renders as the empty string.
"""
from __future__ import annotations

# (no typing import at run time: start-up time matters; annotations are strings)

__all__ = ["scan_name", "is_name", "to_text", "lookup", "render", "compile"]


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


def render(text: str, values: Mapping[str, Any] | None = None,
           env: Mapping[str, Any] | None = None) -> str:
    """Substitute ``${k}``, ``${k?default}``, ``${k?}`` and ``$<k>`` in plain text.
    The default is literal text (``\\}`` for a brace).  Anything else is copied."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("${", j):
            end = scan_name(text, j + 2)
            name = text[j + 2:end]
            if name and end < n and text[end] == "}":
                v = lookup(name, values, env)
                out.append("" if v is None else v)
                i = end + 1
                continue
            if name and end < n and text[end] == "?":
                k = end + 1
                dflt: list[str] = []
                while k < n and text[k] != "}":
                    if text[k] == "\\" and k + 1 < n:
                        k += 1
                    dflt.append(text[k])
                    k += 1
                if k < n:
                    v = lookup(name, values, env)
                    out.append("".join(dflt) if v is None else v)
                    i = k + 1
                    continue
        elif text.startswith("$<", j):
            end = scan_name(text, j + 2)
            name = text[j + 2:end]
            if name and end < n and text[end] == ">":
                v = lookup(name, values, env)
                out.append("" if v is None else v)
                i = end + 1
                continue
        out.append("$")
        i = j + 1
    return "".join(out)


def compile(text: str):  # noqa: A001 - the natural name for "parse a template once"
    """Parse a command template once; run it with ``session.run_ast``."""
    from wnshell.parser import parse
    return parse(text)
