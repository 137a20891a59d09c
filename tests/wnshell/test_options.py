"""Walnut ZParams option parsing."""
from __future__ import annotations

from wnshell.options import Expanded, parse_opts


def test_key_value_and_flags():
    p = parse_opts(["-submit", "o1", "-client_ip", "1.2.3.4", "-v", "-x", "pos", "-end"])
    assert p.opts == {"submit": "o1", "client_ip": "1.2.3.4", "v": True, "x": "pos",
                      "end": True}
    assert p.args == []


def test_combined_single_letter_flags():
    p = parse_opts(["-lA", "dir"], flags="lA")
    assert p.opts == {"l": True, "A": True} and p.args == ["dir"]
    # not all letters declared: a key with a value
    p = parse_opts(["-lx", "dir"], flags="l")
    assert p.opts == {"lx": "dir"}
    # a declared flag never swallows a value
    p = parse_opts(["-r", "dir"], flags="rf")
    assert p.opts == {"r": True} and p.args == ["dir"]


def test_negative_numbers_are_values():
    p = parse_opts(["-limit", "-5", "-3", "-delta", "-1.5"])
    assert p.opts == {"limit": "-5", "delta": "-1.5"} and p.args == ["-3"]


def test_empty_value_and_dashes():
    p = parse_opts(["-a", "", "-", "--long", "v", "--", "-b"])
    assert p.opts == {"a": "", "long": "v"} and p.args == ["-", "-b"]


def test_expanded_values_are_never_options():
    p = parse_opts(["-submit", Expanded("-client_ip"), Expanded("-x")])
    assert p.opts == {"submit": "-client_ip"} and p.args == ["-x"]
    assert p.flag("submit") and not p.flag("nope") and "submit" in p


def test_typed_keeps_the_option_as_written():
    from wnshell.options import parse_opts
    o = parse_opts(["--update", "x", "-u", "-ab"], flags="ab")
    assert o.typed("update") == "--update" and o.typed("u") == "-u"
    assert o.typed("a") == "-a" and o.typed("missing") == "-missing"
