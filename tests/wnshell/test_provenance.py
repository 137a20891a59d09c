"""Provenance of request values (wnshell/provenance.py) through a Session: a value
marked as coming from a request keeps its marks through words, assignments, export and
$(...), and path resolution refuses a path in which such a value does more than add
names below the template's own path -- before anything is read or changed."""
import pytest

from objstore import open_store
from wnshell.options import Expanded
from wnshell.parser import parse
from wnshell.provenance import check_path, from_request, join
from wnshell.session import Session


@pytest.fixture()
def sh():
    st = open_store("memory://")
    st.create("/home/demo/pub/readme", "FILE", parents=True, content=b"public\n")
    st.create("/home/demo/pub/sub/inner", "FILE", parents=True, content=b"inner\n")
    st.create("/home/demo/secret", "FILE", content=b"SECRET\n")
    return Session(st, user="demo")


def run(sh, text, **values):
    tv = {k: from_request(v) for k, v in values.items()}
    return sh.run_ast(parse(text), "", template_vars=tv)


ESCAPES = ["../secret", "./../secret", "sub/../../secret", "/home/demo/secret", "~/secret",
           "~", "id:abc", "..", ".", "", "sub/", "a//b", "/"]


@pytest.mark.parametrize("template", [
    "cat ~/pub/${f}", "f2=${f}; cat ~/pub/$f2", "export F=${f}; cat ~/pub/$F",
    "cat ~/pub/$(echo ${f})", "cd ~/pub; cat ${f}", "cat < ~/pub/${f}", "echo x > ~/pub/${f}",
    "echo x >> ~/pub/${f}", "ls ~/pub/${f}", "obj ~/pub/${f}", "rm -r ~/pub/${f}",
    "mkdir -p ~/pub/${f}", "touch ~/pub/${f}", "mv ~/pub/readme ~/pub/${f}",
    "mv ~/pub/${f} ~/pub/moved"])
def test_a_request_value_only_adds_names(sh, template):
    before = {o["ph"]: dict(o) for o in sh.store.query({})}
    for value in ESCAPES:
        status, out, err = run(sh, template, f=value)
        assert status != 0 and "e.io.path.escape : " in err, (template, value, err)
        assert "SECRET" not in out
    after = {o["ph"]: dict(o) for o in sh.store.query({})}
    assert after == before


def test_names_below_the_template_path_work(sh):
    assert run(sh, "cat ~/pub/${f}", f="readme")[1] == "public\n"
    assert run(sh, "cat ~/pub/${f}", f="sub/inner")[1] == "inner\n"
    assert run(sh, "cat ~/pub/${a}/${b}", a="sub", b="inner")[1] == "inner\n"
    assert run(sh, "cat ~/pub/$(echo ${f})", f="readme")[1] == "public\n"
    # the template's own text may say anything
    assert run(sh, "cat ~/pub/../secret ${f}", f="")[2].count("e.io.path.escape") == 1
    assert run(sh, "cat ~/pub/../secret")[1] == "SECRET\n"
    # a value that is not a path at all is just data
    assert run(sh, "echo ../${f}", f="../x")[1] == "../../x\n"


def test_a_request_glob_is_a_literal_name(sh):
    status, out, err = run(sh, "rm ~/pub/${f}", f="*")
    assert status == 1 and err.startswith("e.io.obj.noexists")
    assert sh.store.fetch("/home/demo/pub/readme") is not None
    assert run(sh, "ls ~/pub/r*")[1] == "readme\n"        # the template's own glob


def test_marks_keep_a_value_from_becoming_an_option(sh):
    status, out, err = run(sh, "echo ${v}", v="-n")
    assert out == "-n\n"


def test_check_path_rules():
    lit = "~/pub/"
    ok = ["readme", "a/b", "a.b", "..x", "x..", "~x"[1:], "%2e%2e"]
    for v in ok:
        check_path(join([lit, from_request(v)]))
    for v in ["..", ".", "", "/x", "~/x", "id:x", "a/../b", "a/./b", "a/", "/"]:
        with pytest.raises(Exception) as e:
            check_path(join([lit, from_request(v)]))
        assert e.value.key == "e.io.path.escape"
    # the template wrote id:, the value is the id
    check_path(join(["id:", from_request("abc123")]))
    check_path(join(["id:", from_request("abc123"), "/x"]))
    with pytest.raises(Exception):
        check_path(join(["id:", from_request("abc/..")]))
    # unmarked text is never checked
    check_path("../../etc")
    assert isinstance(Expanded("x"), str)
