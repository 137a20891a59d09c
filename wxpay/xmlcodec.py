"""dict <-> WeChat Pay XML (``<xml><k><![CDATA[v]]></k>...</xml>``).

* :func:`to_xml` writes every value as CDATA.  A value holding ``]]>`` is split
  across several CDATA sections and a carriage return is written as ``&#13;`` (XML
  parsers turn a raw CR into LF even inside CDATA), so every string round-trips
  exactly -- what is signed is what the other side parses.
* :func:`from_xml` refuses DOCTYPE and entity declarations (no XXE, no billion
  laughs), bodies over a size cap (checked before parsing), malformed XML, and any
  document that is not one flat ``<xml>`` element of simple text children.  It never
  strips or normalises whitespace.  Its cost is mostly ElementTree's C parser: a
  text that cannot hold a DOCTYPE is built by ElementTree's own builder, and a flat
  tree is checked in bulk (see ``bench/wxpay_parse_cpu.py``).
"""
from __future__ import annotations

import re
from operator import attrgetter
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
    names = params.keys()
    if _NAMES_OK.issuperset(names):
        # the usual fields (names checked before), every value text: when the values
        # hold no CR, no "]]>" and no character XML cannot carry (one search over them
        # all), each is one CDATA section -- what the loop below writes for them
        values = list(params.values())
        if all(type(v) is str for v in values):
            joined = "\n".join(values)    # (a LF cannot make a "]]>" or a bad char)
            if "\r" not in joined and "]]>" not in joined \
                    and not _BAD_CHARS.search(joined):
                return "<xml>" + "".join([f"<{k}><![CDATA[{v}]]></{k}>" if v else
                                          f"<{k}></{k}>"
                                          for k, v in zip(names, values)]) + "</xml>"
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
    if len(_NAMES_OK) < _NAMES_MAX:     # every name passed: remember them
        _NAMES_OK.update(params.keys())
    return "".join(parts)


# field names to_xml has accepted (bounded: a caller cannot grow it much)
_NAMES_OK: set = set()
_NAMES_MAX = 1024


def from_xml(data: str | bytes, max_bytes: int = MAX_BYTES, root: str = "xml") -> dict[str, str]:
    """Parse a flat WeChat ``<xml>`` document into ``{name: text}`` (all strings).
    ``root`` names the root element (``root`` for a refund notification's req_info)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if len(raw) > max_bytes:
            raise XmlError(f"XML body too large ({len(raw)} bytes > {max_bytes})")
        if raw[:3] == _BOM:          # what "utf-8-sig" does, without its Python codec
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise XmlError("XML body is not UTF-8") from None
    elif isinstance(data, str):
        text = data
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise XmlError(f"XML body too large ({size} bytes > {max_bytes})")
    else:
        raise XmlError(f"XML body must be text, not {type(data).__name__}")
    if not text or text.isspace():
        raise XmlError("empty XML body")
    return _flat(_tree(text), root)


_BOM = b"\xef\xbb\xbf"


def _tree(text: str):
    """``text`` parsed by ElementTree's C parser into a tree.

    A DOCTYPE cannot be declared without the characters ``<!DOCTYPE`` (expat reads
    them only as one literal token, and UTF-8 is forced), so a text without them is
    parsed by ElementTree's own C builder (no Python call per element, the cheap
    case every real notification is); a text with them, by a builder whose doctype
    hook refuses as expat meets the declaration, before any entity it declares can
    be used -- a value that merely spells it inside CDATA is still data."""
    builder = _BUILDER or _builder()
    if "<!DOCTYPE" in text:
        parser = builder[0](target=builder[1]())
    else:
        parser = builder[0]()
    try:
        parser.feed(text)
        return parser.close()
    except _Refused:
        raise XmlError("DOCTYPE and ENTITY declarations are refused") from None
    except builder[2] as e:          # ElementTree's ParseError: expat's code and place
        line, column = e.position
        raise XmlError(f"XML is not well-formed ({expat.ErrorString(e.code)}: line "
                       f"{line}, column {column})") from None
    except (ValueError, UnicodeError) as e:
        raise XmlError(f"XML cannot be read ({e})") from None


class _Refused(Exception):
    pass


_BUILDER: list = []


def _builder():
    """(XMLParser, a TreeBuilder that refuses a DOCTYPE, ParseError, Element.keys), made
    on first use (ElementTree's import is left out of start-up).  Either way the tree
    is built by ElementTree's C parser and builder, not by Python handlers of expat
    events; the DOCTYPE hook runs as expat meets the declaration, before any entity
    it declares can be used."""
    if not _BUILDER:
        from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

        class NoDoctype(TreeBuilder):
            def doctype(self, name, pubid, system):
                raise _Refused()
        _BUILDER[:] = (XMLParser, NoDoctype, ParseError, Element.keys)
    return _BUILDER


def _flat(tree, root: str) -> dict[str, str]:
    """``{name: text}`` of one flat ``<root>`` element, or XmlError naming the first
    thing (in document order) that makes it not flat.

    The usual, flat tree is checked in bulk, each check one pass in C over the
    fields (map/any/join); anything the bulk checks do not pass is walked field by
    field by :func:`_flat_walk`, which gives the same answer or names the reason."""
    fields = list(tree)
    if tree.tag == root and not tree.keys() and not any(map(len, fields)) \
            and not any(map((_BUILDER or _builder())[3], fields)):       # Element.keys: attributes
        texts = list(map(_text, fields))
        out = dict(zip(map(_tag, fields), texts))
        if len(out) == len(fields) and _plain(out):
            beside = list(filter(None, map(_tail, fields)))
            if tree.text:
                beside.append(tree.text)
            if not beside or "".join(beside).isspace():
                if not all(texts):   # an empty field's text is None
                    for name in [n for n, v in out.items() if v is None]:
                        out[name] = ""
                return out
    return _flat_walk(tree, root)


_tag = attrgetter("tag")
_text = attrgetter("text")
_tail = attrgetter("tail")
# field names already matched against _NAME (bounded, so senders cannot grow it much)
_PLAIN: set = set()
_PLAIN_MAX = 1024


def _plain(names) -> bool:
    """Every name matches _NAME (remembered, as the same few dozen names recur)."""
    if _PLAIN.issuperset(names):
        return True
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            return False
    if len(_PLAIN) < _PLAIN_MAX:
        _PLAIN.update(names)
    return True


def _flat_walk(tree, root: str) -> dict[str, str]:
    if tree.tag != root:
        raise XmlError(f"the root element is not <{root}>")
    if tree.attrib:
        raise XmlError(f"<{root}> must not have attributes")
    if tree.text and tree.text.strip():
        raise XmlError(f"<{root}> holds text outside of fields")
    out: dict[str, str] = {}
    for field in tree:
        name = field.tag
        if not isinstance(name, str) or not _NAME.match(name):
            raise XmlError("a field is not a plain element")
        if field.attrib:
            raise XmlError(f"field <{name}> has attributes")
        if name in out:
            raise XmlError(f"field <{name}> appears twice")
        if len(field):
            raise XmlError(f"field <{name}> is not flat (it has child elements)")
        out[name] = field.text or ""
        if field.tail and field.tail.strip():
            raise XmlError(f"<{root}> holds text outside of fields")
    return out
