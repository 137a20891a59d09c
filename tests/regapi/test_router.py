"""Router: exact names, _ANY (DIR and FILE), args, path checks, nothing outside .regapi/api."""
import pytest

from objstore import open_store
from regapi.router import RouteError, Router, split_api_path

API = "/home/u1/.regapi/api"


@pytest.fixture()
def store():
    s = open_store("memory://")
    for path, race in [
        (f"{API}/pay", "FILE"),
        (f"{API}/a/b", "FILE"),
        (f"{API}/a/_ANY", "FILE"),                  # FILE _ANY: takes the rest
        (f"{API}/u/_ANY/_action", "FILE"),          # DIR _ANY, its command in _action
        (f"{API}/u/_ANY/info", "FILE"),             # ... and the walk continues
        (f"{API}/u/me/_action", "FILE"),            # exact DIR wins over _ANY
        (f"{API}/x/_ANY/_ANY/deep", "FILE"),
        ("/home/u1/.regapi/tmp/secret", "FILE"),
        ("/home/u1/private", "FILE"),
        ("/home/u2/.regapi/api/pay", "FILE"),
    ]:
        s.create(path, race, {"mark": path}, parents=True)
    return s


def route(store, path, ttl=0):
    usr, segs = split_api_path(path)
    r = Router(store, ttl=ttl).resolve(usr, segs)
    return None if r is None else (r.api["mark"], r.args, r.rel)


def test_exact_and_any(store):
    assert route(store, "/api/u1/pay") == (f"{API}/pay", [], "pay")
    assert route(store, "/api/u1/pay/") == (f"{API}/pay", [], "pay")
    assert route(store, "/api/u1/a/b") == (f"{API}/a/b", [], "a/b")
    assert route(store, "/api/u1/a/c") == (f"{API}/a/_ANY", ["c"], "a/_ANY")
    assert route(store, "/api/u1/a/c/d/e") == (f"{API}/a/_ANY", ["c", "d", "e"], "a/_ANY")
    # exact b is a FILE with more segments left: _ANY takes them all
    assert route(store, "/api/u1/a/b/z") == (f"{API}/a/_ANY", ["b", "z"], "a/_ANY")
    assert route(store, "/api/u1/u/42") == (f"{API}/u/_ANY/_action", ["42"], "u/_ANY/_action")
    assert route(store, "/api/u1/u/42/info") == (f"{API}/u/_ANY/info", ["42"], "u/_ANY/info")
    assert route(store, "/api/u1/u/me") == (f"{API}/u/me/_action", [], "u/me/_action")
    assert route(store, "/api/u1/x/p/q/deep") == (f"{API}/x/_ANY/_ANY/deep", ["p", "q"],
                                                  "x/_ANY/_ANY/deep")
    assert route(store, "/api/u2/pay") == ("/home/u2/.regapi/api/pay", [], "pay")


def test_no_match(store):
    for p in ["/api/u1/nope", "/api/u1/u/42/nope", "/api/u1/x/p/deep", "/api/u3/pay",
              "/api/u1/u", "/api/u1/x/p/q"]:
        assert route(store, p) is None, p


@pytest.mark.parametrize("path", [
    "/api/u1/../private", "/api/u1/a/../../tmp/secret", "/api/u1/./pay", "/api/u1//pay",
    "/api/u1/pay\x00", "/api/u1/p\nay", "/api/../u1/pay", "/api/u%31/pay",
    "/api/.regapi/pay", "/api/u1/a\\b", "/api/u1\n/pay",
])
def test_bad_paths_refused(store, path):
    with pytest.raises(RouteError) as ei:
        usr, segs = split_api_path(path)
        Router(store, ttl=0).resolve(usr, segs)
    assert ei.value.kind == "bad_input"


def test_not_api_path():
    for p in ["/", "/api", "/api/", "/api/u1", "/apix/u1/pay", "/home/u1/.regapi/api/pay"]:
        with pytest.raises(RouteError) as ei:
            split_api_path(p)
        assert ei.value.kind == "not_found"


def test_outside_api_dir_unreachable(store):
    # names that would climb out of .regapi/api are refused; other names stay inside
    for p in ["/api/u1/~", "/api/u1/id:abc", "/api/u1/tmp/secret"]:
        assert route(store, p) is None


def test_cache_ttl(store):
    r = Router(store, ttl=60)
    assert r.resolve("u1", ["a", "zz"]).rel == "a/_ANY"
    store.create(f"{API}/a/zz", "FILE", {"mark": "new"})
    assert r.resolve("u1", ["a", "zz"]).rel == "a/_ANY"      # cached for ttl
    r.ttl = 0
    assert r.resolve("u1", ["a", "zz"]).rel == "a/zz"        # re-walked


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SEG = st.one_of(st.sampled_from(["..", ".", "", "_ANY", "_action", "a", "b", "pay", "~",
                                 "id:x", "%2e%2e", "..%2f", "\\", "tmp", ".regapi"]),
                st.text(max_size=6))


@settings(max_examples=300, deadline=None)
@given(user=st.sampled_from(["u1", "u2", "..", "", "u1/..", "U", "u1%2f"]),
       segs=st.lists(SEG, max_size=6), trailing=st.booleans())
def test_no_path_reaches_outside_the_users_api_tree(user, segs, trailing):
    s = _STORE
    path = "/api/" + user + "/" + "/".join(segs) + ("/" if trailing else "")
    try:
        usr, parts = split_api_path(path)
        r = Router(s, ttl=0).resolve(usr, parts)
    except RouteError:
        return
    if r is not None:
        assert r.api["ph"].startswith(f"/home/{usr}/.regapi/api/")
        assert r.api["race"] == "FILE"


def _tree():
    s = open_store("memory://")
    for path in [f"{API}/pay", f"{API}/a/_ANY", f"{API}/u/_ANY/_action", f"{API}/a/b",
                 "/home/u1/.regapi/tmp/secret", "/home/u1/private", "/home/u2/.regapi/api/x"]:
        s.create(path, "FILE", parents=True)
    return s


_STORE = _tree()
