"""Property tests: whatever the text, what is signed is what the other side parses."""
from hypothesis import given, settings
from hypothesis import strategies as st

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
