"""Property tests: whatever the text, what is signed is what the other side parses."""
from hypothesis import given, settings
from hypothesis import strategies as st

from wxpay import xmlcodec
from wxpay.errors import XmlError
from wxpay.sign import sign, verify
from wxpay.xmlcodec import from_xml, to_xml

from .conftest import KEY

# every character XML 1.0 can carry (no C0 controls except \t \n \r, no surrogates)
xml_text = st.text(alphabet=st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
    + ["\ufffe", "\uffff"]), max_size=40)
names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,12}\Z").filter(
    lambda n: not n.lower().startswith("xml"))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, xml_text, max_size=8))
def test_xml_round_trip_and_signature(params):
    back = from_xml(to_xml(params))
    assert back == params
    signed = dict(params, sign=sign(params, KEY))
    assert verify(from_xml(to_xml(signed)), KEY)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(names.filter(lambda n: n != "sign"), xml_text, min_size=1,
                       max_size=6), st.data())
def test_any_change_breaks_the_signature(params, data):
    signed = dict(params, sign=sign(params, KEY, "HMAC-SHA256"))
    name = data.draw(st.sampled_from(sorted(params)))
    changed = dict(signed)
    changed[name] = params[name] + "x"
    assert verify(signed, KEY, "HMAC-SHA256")
    assert not verify(changed, KEY, "HMAC-SHA256")


# near-flat documents: fields that may nest, carry attributes or namespaces, repeat,
# hold entities, comments and CDATA, with text (or not) between them; mostly benign
# pieces (repeated in the lists), so that a document often has one thing wrong
_field_names = st.sampled_from(["a", "b", "c"] * 4 + ["xml", "a.b-c", "p:a", "中",
                                                      "n" * 129])
_contents = st.sampled_from(["", "1", " x ", "<![CDATA[ <&> ]]>", "&amp;&#13;",
                             "a<!--c-->b", "<?pi x?>"] * 2 + ["<b/>", "<c>2</c>t", "&nope;"])
_attrs = st.sampled_from([""] * 12 + [' y="1"', ' xmlns="urn:x"', ' xmlns=""',
                                      ' xmlns:p="urn:p"'])
_between = st.sampled_from(["", "", "", " ", "\n\t", "\u00a0", "<!-- c -->", "x"])
_field = st.tuples(_field_names, _attrs, _contents, st.booleans(), _between).map(
    lambda f: (f"<{f[0]}{f[1]}/>" if f[3] and not f[2] else
               f"<{f[0]}{f[1]}>{f[2]}</{f[0]}>") + f[4])


@st.composite
def _documents(draw):
    """(document, the root it is read with)"""
    root = draw(st.sampled_from(["xml", "root"]))
    name = root if draw(st.integers(0, 7)) else draw(st.sampled_from(["xml", "root", "x"]))
    prolog = draw(st.sampled_from(["", "", "", '<?xml version="1.0"?>', "\ufeff",
                                   "<!-- c -->\n", "<!DOCTYPE xml>"]))
    fields = "".join(draw(st.lists(_field, max_size=5)))
    after = draw(st.sampled_from(["", "", "", "\n", "<xml/>"]))
    return (f"{prolog}<{name}{draw(_attrs)}>{draw(_between)}{fields}</{name}>{after}",
            root)


def _outcome(parse):
    try:
        return parse()
    except Exception as e:          # noqa: BLE001 -- the outcome is what is compared
        return type(e).__name__, str(e).split(" (")[0]


def _reference(text: str, root: str):
    """The field-by-field reading: a tree built by the builder that refuses a
    DOCTYPE, walked one field at a time."""
    XMLParser, NoDoctype, _ParseError, _keys = xmlcodec._builder()
    parser = XMLParser(target=NoDoctype())
    try:
        parser.feed(text)
        tree = parser.close()
    except xmlcodec._Refused:
        raise XmlError("DOCTYPE and ENTITY declarations are refused") from None
    except Exception as e:
        raise XmlError(f"XML is not well-formed ({e})") from None
    return xmlcodec._flat_walk(tree, root)


@settings(max_examples=500, deadline=None)
@given(_documents())
def test_bulk_reading_is_the_field_by_field_one(document):
    text, root = document
    # from_xml reads the usual flat document in bulk and walks anything else field by
    # field: both must give the same fields, or refuse for the same reason
    assert _outcome(lambda: from_xml(text, root=root)) == \
        _outcome(lambda: _reference(text, root))
