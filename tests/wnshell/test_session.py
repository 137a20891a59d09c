"""Session construction: the user's name, the environment and the arguments it starts
with (every .regapi request makes one: its name is checked every time)."""
from __future__ import annotations

import pytest

from objstore import open_store
from wnshell.errors import WnError
from wnshell.session import Session


@pytest.fixture
def store():
    return open_store("memory://")


@pytest.mark.parametrize("user", ["", ".", "..", "a/b", "a b", "~x", "a:b", "a\nb", None, 7,
                                  ["demo"]])
def test_a_bad_user_name_is_refused_even_after_good_ones(store, user):
    Session(store, user="demo")
    Session(store, user="demo", confine=True)
    with pytest.raises(WnError) as e:
        Session(store, user=user)
    assert e.value.key == "e.cmd.user.invalid"


def test_a_user_name_that_only_looks_like_a_good_one_is_checked(store):
    class Sneaky(str):
        pass
    Session(store, user="demo")
    with pytest.raises(WnError):
        Session(store, user=Sneaky("de/mo"))


def test_home_env_and_argv(store):
    s = Session(store, user="ann")
    assert (s.home, s.cwd, s.env, s.argv) == ("/home/ann", "/home/ann",
                                              {"HOME": "/home/ann", "USER": "ann"},
                                              ["wnshell"])
    assert store.fetch("/home/ann")["race"] == "DIR"
    given = {"HOME": "/home/ann/x", "LANG": "C"}
    s = Session(store, user="ann", env=given, argv=["script", "a"])
    assert s.env == {"HOME": "/home/ann/x", "LANG": "C", "USER": "ann"}
    assert s.argv == ["script", "a"]
    s.env["NEW"] = "1"
    s.argv.append("b")
    assert "NEW" not in given and Session(store, user="ann").argv == ["wnshell"]


def test_each_session_has_its_own_environment(store):
    a, b = Session(store, user="ann"), Session(store, user="ann")
    a.env["X"] = "1"
    assert "X" not in b.env
    assert a.run("echo $USER")[1] == "ann\n"
