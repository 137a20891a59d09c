"""dict <-> WeChat Pay XML (``<xml><k><![CDATA[v]]></k>...</xml>``).

* :func:`to_xml` writes every value as CDATA.  A value holding ``]]>`` is split
  across several CDATA sections and a carriage return is written as ``&#13;`` (XML
  parsers turn a raw CR into LF even inside CDATA), so every string round-trips
  exactly -- what is signed is what the other side parses.
* :func:`from_xml` refuses DOCTYPE and entity declarations (no XXE, no billion
  laughs), bodies over a size cap (checked before parsing), malformed XML, and any
  document that is not one flat ``<xml>`` element of simple text children.  It never
  strips or normalises whitespace.
"""
from __future__ import annotations

import re
from typing import Mapping
from xml.parsers import expat

from wnerrors import BAD_INPUT, WnError

from .errors import XmlError
from .sign import text_value

__all__ = ["to_xml", "from_xml", "MAX_BYTES", "cdata"]

MAX_BYTES = 65536
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
# characters XML 1.0 cannot carry at all
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def cdata(value: str) -> str:
    """``value`` as CDATA sections (and ``&#13;`` for CR) that parse back to it."""
    if _BAD_CHARS.search(value):
        raise WnError("e.weixin.param.invalid",
                      "a value holds a control character XML cannot carry", BAD_INPUT)
    out = []
    for i, piece in enumerate(value.split("\r")):
        if i:
            out.append("&#13;")
        if piece:
            # "]]>" cannot appear inside one section: end the section after "]]"
            # and start a new one with ">".
            out.append("<![CDATA[" + piece.replace("]]>", "]]]]><![CDATA[>") + "]]>")
    return "".join(out)


def to_xml(params: Mapping) -> str:
    """``<xml>`` with one CDATA child per field (``None`` values are left out)."""
    parts = ["<xml>"]
    for name, value in params.items():
        if not isinstance(name, str) or not _NAME.match(name) or name.lower().startswith("xml"):
            raise WnError("e.weixin.param.invalid",
                          f"field name {str(name)[:40]!r} is not a valid XML name", BAD_INPUT)
        text = text_value(value)
        if text is None:
            continue
        parts.append(f"<{name}>{cdata(text)}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def from_xml(data: str | bytes, max_bytes: int = MAX_BYTES, root: str = "xml") -> dict[str, str]:
    """Parse a flat WeChat ``<xml>`` document into ``{name: text}`` (all strings).
    ``root`` names the root element (``root`` for a refund notification's req_info)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if len(raw) > max_bytes:
            raise XmlError(f"XML body too large ({len(raw)} bytes > {max_bytes})")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise XmlError("XML body is not UTF-8") from None
    elif isinstance(data, str):
        text = data
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise XmlError(f"XML body too large ({size} bytes > {max_bytes})")
    else:
        raise XmlError(f"XML body must be text, not {type(data).__name__}")
    if not text.strip():
        raise XmlError("empty XML body")
    flat = _Flat(root)
    p = expat.ParserCreate()
    p.buffer_text = True
    p.StartElementHandler = flat.start
    p.EndElementHandler = flat.end
    p.CharacterDataHandler = flat.data
    # what defusedxml forbids (forbid_dtd, forbid_entities, forbid_external): a DTD,
    # entity declarations, external entities -- refused the moment expat meets them
    p.StartDoctypeDeclHandler = _refuse
    p.EntityDeclHandler = _refuse
    p.UnparsedEntityDeclHandler = _refuse
    p.ExternalEntityRefHandler = _refuse
    try:
        p.Parse(text, True)
    except _Refused:
        raise XmlError("DOCTYPE and ENTITY declarations are refused") from None
    except expat.ExpatError as e:
        raise XmlError(f"XML is not well-formed ({expat.ErrorString(e.code)}: line "
                       f"{e.lineno}, column {e.offset})") from None
    except (ValueError, UnicodeError) as e:
        raise XmlError(f"XML cannot be read ({e})") from None
    if flat.error is not None:
        raise XmlError(flat.error)
    return flat.out


class _Refused(Exception):
    pass


def _refuse(*_args):
    raise _Refused()


class _Flat:
    """expat's events of one flat ``<root>`` document into ``{name: text}``; the first
    thing that makes it not flat is kept in ``error`` (raised once the whole document
    has parsed: a document that is not well-formed says so first)."""

    __slots__ = ("root", "out", "depth", "name", "text", "error", "seen_field")

    def __init__(self, root: str):
        self.root = root
        self.out: dict[str, str] = {}
        self.depth = 0
        self.name = None
        self.text: list[str] = []
        self.error: str | None = None
        self.seen_field = False

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason

    def start(self, name, attrs):
        self.depth += 1
        if self.depth == 1:
            if name != self.root:
                self._fail(f"the root element is not <{self.root}>")
            elif attrs:
                self._fail(f"<{self.root}> must not have attributes")
        elif self.depth == 2:
            self.seen_field = True
            self.name, self.text = name, []
            if not _NAME.match(name):
                self._fail("a field is not a plain element")
            elif attrs:
                self._fail(f"field <{name}> has attributes")
            elif name in self.out:
                self._fail(f"field <{name}> appears twice")
        elif self.depth == 3:
            self._fail(f"field <{self.name}> is not flat (it has child elements)")

    def end(self, name):
        if self.depth == 2 and self.name is not None:
            self.out.setdefault(self.name, "".join(self.text))
        self.depth -= 1

    def data(self, text):
        if self.depth == 2:
            self.text.append(text)
        elif self.depth == 1 and text.strip():
            self._fail(f"<{self.root}> holds text outside of fields" if not self.seen_field
                       else "<xml> holds text outside of fields")
