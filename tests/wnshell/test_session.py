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


def test_a_request_session_is_confined_to_its_home_with_the_hidden_names_hidden(store):
    """``Session.for_request`` (what every .regapi request makes) is the confined
    session ``Session(..., confine=True, home_known=True, ...)`` would be."""
    store.create("/home/ann/pub/a", "FILE", parents=True, content=b"mine")
    store.create("/home/ann/.weixin/account", "FILE", parents=True, content=b"secret")
    store.create("/home/bob/b", "FILE", parents=True, content=b"his")
    made = [Session.for_request(store, "ann", hide=(".weixin",), deadline=None),
            Session(store, user="ann", confine=True, home_known=True, hide=(".weixin",))]
    for s in made:
        assert (s.home, s.cwd, s.confined, s.deadline) == ("/home/ann", "/home/ann", True,
                                                           None)
        assert s.run("cat pub/a")[:2] == (0, "mine")
        assert s.run("cat .weixin/account")[0] != 0
        assert s.run("cat /home/bob/b")[0] != 0
        assert s.store is s.store and s.store.inner is store
        assert s.store.fetch("/home/bob/b") is None and store.fetch("/home/bob/b")


def test_each_request_session_has_its_own_view_of_the_store(store):
    obj = store.create("/home/ann/.regapi/tmp/r1", "FILE", parents=True, content=b"req")
    a = Session.for_request(store, "ann", hide=(".regapi",))
    b = Session.for_request(store, "ann", hide=(".regapi",))
    a.store.grant(obj["id"])
    assert a.run(f"cat id:{obj['id']}")[:2] == (0, "req")
    assert b.run(f"cat id:{obj['id']}")[0] != 0
    assert a.store is not b.store


def test_a_request_session_checks_its_user_name(store):
    with pytest.raises(WnError) as e:
        Session.for_request(store, "../ann")
    assert e.value.key == "e.cmd.user.invalid"
