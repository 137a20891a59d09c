"""Provenance: which characters of a word came from a request.

A ``.regapi`` request hands its values to the template as ``FromRequest`` strings
(``from_request(value)``).  The executor keeps the marks when it builds words: a word
made of template text and request values is a ``FromRequest`` whose ``spans`` say which
characters the request gave (an empty value leaves an empty span where it was put);
a ``$(...)`` whose body read a request value is marked as a whole; an assignment
``x=${http-qs-f}`` keeps the marks in the variable.  Slicing or formatting the string
drops the marks, so code that builds paths of its own (``f"~/.weixin/{name}"``) must
check its pieces itself.

The one rule, applied in ONE place -- path resolution (``Session.resolve``, which
``cat``, ``ls``, ``obj``, ``mkdir``, ``touch``, ``rm``, ``mv``, ``cd``, ``<``, ``>``,
``>>`` and the ``weixin`` object references all use) -- is ``check_path``: a value from
a request can only add names *below* the place the template's own text points to.  It
may neither make the path start nor itself begin with ``/``, ``~`` or ``id:``, and no
segment it touches may be ``.``, ``..`` or empty.  Otherwise ``e.io.path.escape`` (bad input, a
400 over HTTP), raised before anything is read or changed.

Marks are also how ``commands.fs`` knows that a ``*`` came from a request (then it is a
literal character, never a glob).
"""
from __future__ import annotations

from wnshell.errors import BAD_INPUT, WnError
from wnshell.options import Expanded

__all__ = ["FromRequest", "from_request", "spans_of", "join", "mark", "check_path",
           "from_request_at"]


class FromRequest(str):
    """A ``str`` some characters of which came from a request: ``spans`` is a tuple of
    ``(start, end)`` character ranges (sorted; ``start == end`` marks an empty value)."""

    spans: tuple = ()


class ExpandedFromRequest(Expanded, FromRequest):
    """A word that is both: its leading text came from an expansion (never an option)
    and some of its characters from a request."""


def from_request(value: str) -> FromRequest:
    """``value`` marked as coming from a request, every character of it (and, being a
    whole expanded value, never an option: it is also ``Expanded``)."""
    v = ExpandedFromRequest(value)
    v.spans = ((0, len(value)),)
    return v


def spans_of(text) -> tuple:
    return getattr(text, "spans", ()) if type(text) is not str else ()


def mark(text: str, spans, expanded: bool = False) -> str:
    """``text`` with the given request spans (plain ``text``/``Expanded`` when none)."""
    if not spans:
        return Expanded(text) if expanded else text
    v = (ExpandedFromRequest if expanded else FromRequest)(text)
    v.spans = tuple(spans)
    return v


def join(pieces) -> str:
    """``"".join(pieces)`` keeping the pieces' request spans (plain str when none)."""
    text = "".join(pieces)
    spans: list = []
    pos = 0
    for p in pieces:
        sp = spans_of(p)
        if sp:
            spans.extend((a + pos, b + pos) for a, b in sp)
        pos += len(p)
    return mark(text, spans) if spans else text


def from_request_at(text, start: int, end: int) -> bool:
    """Did the request give any character in ``text[start:end]`` (or put an empty
    value at a position in ``[start, end]``)?"""
    for a, b in spans_of(text):
        if a == b:
            if start <= a <= end:
                return True
        elif a < end and start < b:
            return True
    return False


def _escape(path: str, reason: str) -> WnError:
    from objstore.paths import _show
    return WnError("e.io.path.escape", f"{_show(str(path))} : {reason}", BAD_INPUT)


def check_path(path) -> None:
    """Refuse a path in which a request value does more than add names below the
    template's own path (see the module docstring).  Unmarked text passes at once."""
    spans = spans_of(path)
    if not spans:
        return
    if path.startswith("id:"):
        if from_request_at(path, 0, 3):
            raise _escape(path, "a request value may not start the path with id:")
    elif path[:1] in ("/", "~") and from_request_at(path, 0, 1):
        raise _escape(path, f"a request value may not start the path with {path[0]!r}")
    elif not path and spans:
        raise _escape(path, "a request value may not be the whole (empty) path")
    for a, b in spans:      # nor may a value begin like a path of its own
        if b > a and path.startswith(("/", "~", "id:"), a):
            lead = "id:" if path.startswith("id:", a) else path[a]
            raise _escape(path, f"a request value may not start with {lead!r}")
    pos = 0
    for seg in path.split("/"):
        start, end = pos, pos + len(seg)
        pos = end + 1
        if seg in ("", ".", ".."):
            # the segment, or a '/' around it, came from the request
            if from_request_at(path, max(start - 1, 0), end + 1) and not (
                    start == 0 and seg == "" and not from_request_at(path, 0, 1)):
                what = "an empty name" if seg == "" else repr(seg)
                raise _escape(path, f"a request value may only add names below the "
                                    f"template's path, not {what}")
