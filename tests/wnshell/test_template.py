"""Templates: values from template_vars are data, never code."""
from __future__ import annotations

import pytest

from wnshell import template
from wnshell.command import Command
from wnshell.parser import parse
from wnshell.registry import REGISTRY, Registry
from wnshell.session import Session


class Canary(Command):
    name = "canary"
    ran = 0

    def run(self, session, args, stdin, stdout, stderr):
        Canary.ran += 1
        return 0


class Args(Command):
    name = "args"

    def run(self, session, args, stdin, stdout, stderr):
        from wnshell.options import parse_opts
        p = parse_opts(args)
        stdout.write(repr((p.opts, [str(a) for a in p.args])) + "\n")
        return 0


@pytest.fixture
def ts():
    from objstore import open_store
    reg = Registry(parent=REGISTRY)
    reg.register(Canary())
    reg.register(Args())
    Canary.ran = 0
    s = Session(open_store("memory://"), registry=reg)
    yield s
    s.store.close()


def test_values_as_text():
    v = {"s": "o1", "n": 3, "b": True, "f": False, "z": None, "d": {"a": 1}}
    assert [template.lookup(k, v, None) for k in "snbfzd"] == \
        ["o1", "3", "true", "false", "", '{"a":1}']
    assert template.lookup("HOME", {}, {"HOME": "/h"}) == "/h"
    assert template.lookup("nope", v, {}) is None


SEED = ("weixin xxx order -submit ${http-qs-id} \n"
        "           -client_ip ${http-remote-host} \n"
        "           -openid ${http-qs-openid} ")


def test_seed_template_runs_as_one_command(ts):
    tree = parse(SEED.replace("weixin xxx order", "args"))
    st, out, err = ts.run_ast(tree, "", {"http-qs-id": "o1", "http-remote-host": "127.0.0.1",
                                         "http-qs-openid": "op-9"})
    assert (st, err) == (0, "")
    assert out == repr(({"submit": "o1", "client_ip": "127.0.0.1", "openid": "op-9"}, [])) + "\n"


@pytest.mark.parametrize("value", [
    "x; canary", "x | canary", "x && canary", "$(canary)", "`canary`", "x\ncanary",
    "' ; canary ; '", '" ; canary ; "', "${HOME}", "x > /pwned", "\\", "-client_ip",
    "-openid evil", "",
])
def test_values_cannot_add_commands_or_arguments(ts, value):
    tree = parse(SEED.replace("weixin xxx order", "args"))
    st, out, err = ts.run_ast(tree, "", {"http-qs-id": value, "http-remote-host": "h",
                                         "http-qs-openid": "o"})
    assert (st, err) == (0, "")
    assert out == repr(({"submit": value, "client_ip": "h", "openid": "o"}, [])) + "\n"
    assert Canary.ran == 0
    assert ts.store.fetch("/pwned") is None


def test_template_vars_win_over_env_and_fall_back(ts):
    ts.env["k"] = "env"
    tree = parse("echo ${k} $<k> ${HOME} ${miss?d} $<miss>.")
    assert ts.run_ast(tree, "", {"k": "tv"})[1] == "tv tv /home/demo d .\n"
    assert ts.run_ast(tree)[1] == "env env /home/demo d .\n"


def test_cached_tree_runs_many_times(ts):
    tree = parse('echo "id=${id}"')
    outs = [ts.run_ast(tree, "", {"id": str(i)})[1] for i in range(3)]
    assert outs == ["id=0\n", "id=1\n", "id=2\n"]


def test_cat_by_request_id(ts):
    ts.run("echo body > req")
    oid = ts.store.fetch("/home/demo/req")["id"]
    assert ts.run_ast(parse("cat id:${id}"), "", {"id": oid})[1] == "body\n"
