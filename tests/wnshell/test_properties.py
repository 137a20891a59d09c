"""Property: a value is data.  For any text v, `export X=<v quoted>; echo $X` and
`echo "${X}"` print v unchanged and run exactly the commands written; a template value
v in `echo ${X}` prints v and never runs anything else."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from objstore import open_store
from wnshell.command import Command
from wnshell.parser import parse
from wnshell.registry import REGISTRY, Registry
from wnshell.session import Session

SHELLY = st.lists(st.sampled_from(list(";|&`$(){}<>'\"\\\n\t #-/=?*~!.") +
                                  ["${", "$(", "$<", "//", "\n   -", "2>&1", "a", "canary",
                                   "; canary", "$(canary)", "`canary`", "-n", "-e", "-h"]),
                  max_size=20).map("".join)
VALUES = st.one_of(st.text(max_size=60), SHELLY)


def quote(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


class Counting(Command):
    def __init__(self, inner, counts):
        self.inner, self.counts = inner, counts
        self.name = inner.name

    def run(self, session, args, stdin, stdout, stderr):
        self.counts[self.name] = self.counts.get(self.name, 0) + 1
        return self.inner.run(session, args, stdin, stdout, stderr)


class Canary(Command):
    name = "canary"

    def run(self, session, args, stdin, stdout, stderr):
        raise AssertionError("a value ran a command")


def make_session():
    counts: dict[str, int] = {}
    reg = Registry(parent=REGISTRY)
    for name in ("echo", "export", "cat", "true"):
        reg.register(Counting(REGISTRY.get(name), counts))
    reg.register(Canary())
    return Session(open_store("memory://"), registry=reg), counts


SESSION, COUNTS = make_session()
ECHO_X = parse("echo $X")
ECHO_TX = parse("echo ${X}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_exported_value_prints_unchanged(v):
    COUNTS.clear()
    st_, out, err = SESSION.run(f"export X={quote(v)}; echo $X")
    assert (st_, out, err) == (0, v + "\n", "")
    assert COUNTS == {"export": 1, "echo": 1}
    COUNTS.clear()
    assert SESSION.run('echo "${X}"') == (0, v + "\n", "")
    assert COUNTS == {"echo": 1}
    COUNTS.clear()
    assert SESSION.run_ast(ECHO_X) == (0, v + "\n", "")
    assert COUNTS == {"echo": 1}


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_template_value_prints_unchanged(v):
    COUNTS.clear()
    assert SESSION.run_ast(ECHO_TX, "", {"X": v}) == (0, v + "\n", "")
    assert COUNTS == {"echo": 1}


@settings(max_examples=200, deadline=None)
@given(VALUES, VALUES)
def test_values_never_change_the_argument_count(a, b):
    tree = parse("cat ${a} - ${b} 2>&1")
    COUNTS.clear()
    st_, out, err = SESSION.run_ast(tree, "", {"a": a, "b": b})
    # cat reports the first missing object (or reads stdin): whatever it says, exactly
    # one cat ran with three arguments, and nothing else ran
    assert COUNTS == {"cat": 1}


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_any_text_parses_or_is_one_syntax_error_line(text):
    from wnshell.errors import ShellSyntaxError
    try:
        parse(text)
    except ShellSyntaxError as e:
        assert e.line().startswith("e.cmd.syntax : ") and "\n" not in e.line()


@settings(max_examples=200, deadline=None)
@given(SHELLY)
def test_running_any_text_never_raises(text):
    st_, out, err = SESSION.run(text.replace("canary", "true"))
    assert isinstance(st_, int)
    assert "Traceback" not in err
    assert all(line.startswith("e.") for line in err.splitlines() if line)
