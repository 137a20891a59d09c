"""The WSGI app, driven in-process with real environs (memory store)."""
import io
import json
import logging
import threading
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regapi import request as rq
from regapi.app import BufferedAccessLog, RegApiApp
from wnshell.command import Command
from wnshell.registry import REGISTRY

from .conftest import call, put_api, qs

TMP = "/home/demo/.regapi/tmp"


def tmp_objects(store):
    d = store.fetch(TMP)
    return [] if d is None else store.children(d["id"])


# ---- request metadata as template variables ------------------------------------------
def test_request_values_reach_the_template(app, store):
    put_api(store, "demo", "show",
            "echo ${http-method} ${http-qs-a} ${http-header-USER-AGENT} "
            "${http-cookie-sid} ${http-remote-host} ${http-usr} ${http-home} ${http-api} "
            "${http-uri} ${http-qs-none?dflt} $<http-qs-b> ${http-protocol}")
    r = call(app, "GET", "/api/demo/show", "a=1&b=x%20y&a=2",
             headers={"User-Agent": "ua/1", "Cookie": "x=0; sid=s%3B1; bad"},
             remote="10.1.2.3")
    assert r.status == 200
    assert r.text == ("GET 2 ua/1 s%3B1 10.1.2.3 demo /home/demo show /api/demo/show "
                      "dflt x y HTTP/1.1\n")


def test_args_from_any(app, store):
    put_api(store, "demo", "u/_ANY/_action", "echo ${args-0} ${args}")
    put_api(store, "demo", "f/_ANY", "echo ${args} ${args-1} ${args-2?none}")
    assert call(app, "GET", "/api/demo/u/42").text == "42 42\n"
    assert call(app, "GET", "/api/demo/f/a/b").text == "a/b b none\n"
    assert call(app, "GET", "/api/demo/f/%E4%B8%AD/%3B%20x".replace("%E4%B8%AD", "中")
                .replace("%3B%20x", "; x")).text == "中/; x ; x none\n"


def test_request_object_only_when_template_uses_id(app, store):
    put_api(store, "demo", "echo", "echo ${http-qs-x}")
    put_api(store, "demo", "body", "cat id:${id}")
    put_api(store, "demo", "meta", "obj id:${id}")
    for _ in range(5):
        assert call(app, "POST", "/api/demo/echo", "x=1", body=b"ignored").text == "1\n"
    r = call(app, "POST", "/api/demo/body", "q=v", body="体 <xml/>".encode(),
             headers={"Content-Type": "text/xml", "X-Trace": "t1", "Cookie": "c=1"})
    assert r.status == 200 and r.body == "体 <xml/>".encode()
    r = call(app, "POST", "/api/demo/meta", "q=v", body=b"abc",
             headers={"Content-Type": "text/xml", "X-Trace": "t1", "Cookie": "c=1"})
    obj = json.loads(r.text)
    assert obj["http-method"] == "POST" and obj["http-qs-q"] == "v"
    assert obj["http-header-CONTENT-TYPE"] == "text/xml"
    assert obj["http-header-X-TRACE"] == "t1" and obj["http-cookie-c"] == "1"
    assert obj["http-usr"] == "demo" and obj["http-api"] == "meta" and obj["args"] == []
    assert obj["http-qs"] == "q=v" and obj["http-url"] == "http://127.0.0.1:8080/api/demo/meta"
    assert obj["len"] == 3 and obj["race"] == "FILE"
    # held in memory by the request's session: nothing was written to the store
    assert tmp_objects(store) == [] and store.get(obj["id"]) is None


def test_request_object_is_the_requests_own_whenever_it_is_looked_at(app, store):
    """The request object's fields are made when a command first looks at them (a
    notification's command reads only its body): the object a template then sees is
    still the one its ${id} names, made at the request's time."""
    put_api(store, "demo", "late", "echo ${id}; obj id:${id}")
    t0 = int(time.time() * 1000)
    r = call(app, "POST", "/api/demo/late", "q=1", body=b"abcd")
    t1 = int(time.time() * 1000)
    first, _, rest = r.text.partition("\n")
    obj = json.loads(rest)
    assert r.status == 200 and obj["id"] == first and obj["len"] == 4
    assert t0 <= obj["ct"] == obj["lm"] <= t1 and obj["http-qs-q"] == "1"


def test_request_values_never_become_fields_of_the_request_object(app, store):
    """Every request value is stored under an ``http-…`` name (or ``args``): a query,
    header or cookie named like a field of the object (id, len, ph, expi …) can set none."""
    from objstore.base import READONLY
    from objstore.common import SETTABLE_TYPES
    assert not [k for k in (*READONLY, *SETTABLE_TYPES) if k.startswith("http-") or k == "args"]
    put_api(store, "demo", "meta", "obj id:${id}")
    r = call(app, "POST", "/api/demo/meta", "id=evil&len=9&ph=/x&expi=1&race=DIR",
             body=b"abc", headers={"Id": "h", "Cookie": "sha1=0; lm=1"})
    obj = json.loads(r.text)
    assert r.status == 200 and obj["id"] != "evil" and obj["len"] == 3
    assert obj["race"] == "FILE" and obj["ph"].endswith("/" + obj["id"]) and "expi" not in obj
    assert obj["http-qs-id"] == "evil" and obj["http-header-ID"] == "h"
    assert obj["http-cookie-sha1"] == "0"


def test_kept_request_object_expires_and_is_purged(store):
    app = RegApiApp(store, route_ttl=0, deadline=5, req_ttl_ms=300, purge_every=0.2)
    put_api(store, "demo", "body", "cat id:${id}", **{"regapi-reqobj-keep": True})
    assert call(app, "POST", "/api/demo/body", body=b"one").body == b"one"
    [obj] = tmp_objects(store)
    now = time.time() * 1000
    assert now < obj["expi"] <= now + 300
    time.sleep(0.45)
    assert call(app, "POST", "/api/demo/body", body=b"two").body == b"two"   # purges
    time.sleep(0.45)
    assert call(app, "POST", "/api/demo/body", body=b"six").body == b"six"   # purges
    time.sleep(0.1)
    # the app's own opportunistic purges already removed both expired objects
    assert store.purge_expired() == 0
    assert len(tmp_objects(store)) == 1


NAMES = ["http-method", "http-uri", "http-url", "http-protocol", "http-remote-host",
         "http-remote-addr", "http-remote-port", "http-qs", "http-usr", "http-home",
         "http-api", "args", "args-0", "args-1", "args-01", "http-qs-a", "http-qs-b",
         "http-qs-", "http-header-X-A", "http-header-USER-AGENT", "http-header-x-a",
         "http-header-CONTENT-TYPE", "http-cookie-k", "http-cookie-z", "other", "id"]
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(qpairs=st.lists(st.tuples(st.sampled_from(["a", "b", "c d", "é"]), text), max_size=4),
       hval=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
       cookie=text, args=st.lists(st.text("xyz;$ ", min_size=1, max_size=3), max_size=3),
       names=st.sets(st.sampled_from(NAMES)))
def test_select_vars_equals_full_metadata(qpairs, hval, cookie, args, names):
    """What a template sees is the same whether or not the request object is made."""
    from urllib.parse import quote
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in qpairs)
    env = {"REQUEST_METHOD": "GET", "QUERY_STRING": query, "HTTP_X_A": hval,
           "HTTP_COOKIE": "k=" + cookie.replace(";", ""), "CONTENT_TYPE": "text/plain",
           "REMOTE_ADDR": "1.2.3.4", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h"}
    q = rq.parse_query(query)
    full = rq.template_vars(rq.build_meta(env, "demo", "/api/demo/x", "x", args, q))
    sel = rq.select_vars(env, "demo", "/api/demo/x", "x", args, q, names)
    assert sel == {k: v for k, v in full.items() if k in names}
    only_query = {n for n in names if n.startswith("http-qs-")}
    keys = rq.query_keys(only_query)
    assert rq.select_query(q, keys) == {k: v for k, v in full.items() if k in only_query}
    assert rq.query_keys(names) is None or names == only_query


# ---- responses -------------------------------------------------------------------------
def test_content_type_precedence(app, store):
    put_api(store, "demo", "plain", "echo hi")
    put_api(store, "demo", "js", "echo '{}'", **{"http-header-Content-Type": "application/json"})
    assert call(app, "GET", "/api/demo/plain").headers["Content-Type"] == "text/html; charset=utf-8"
    assert call(app, "GET", "/api/demo/js").headers["Content-Type"] == \
        "application/json; charset=utf-8"
    # ?mime= is ignored unless the API opts in (regapi-qs-mime: true)
    assert call(app, "GET", "/api/demo/js", "mime=text/plain").headers["Content-Type"] == \
        "application/json; charset=utf-8"
    put_api(store, "demo", "pick", "echo '{}'", **{"http-header-Content-Type": "application/json",
                                                   "regapi-qs-mime": True})
    assert call(app, "GET", "/api/demo/pick", "mime=text/plain").headers["Content-Type"] == \
        "text/plain; charset=utf-8"
    assert call(app, "GET", "/api/demo/pick", "mime=csv").headers["Content-Type"] == \
        "text/csv; charset=utf-8"
    # ... and even then never an active type: the API's own type stays
    for active in ("html", "text/html", "application/xhtml+xml", "image/svg+xml", "xml",
                   "js", "text/javascript", "application/ecmascript"):
        assert call(app, "GET", "/api/demo/pick", qs(mime=active)).headers["Content-Type"] == \
            "application/json; charset=utf-8", active
    # a mime value that is not a plain type/subtype is ignored, never echoed
    r = call(app, "GET", "/api/demo/pick", qs(mime="text/html\r\nX-Evil: 1"))
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "X-Evil" not in r.headers


def test_api_headers_and_forbidden_ones(app, store):
    put_api(store, "demo", "h", "echo hi", **{
        "http-header-Cache-Control": "no-store", "http-header-X-Api": "v1",
        "http-header-Content-Length": "999", "http-header-Bad Name": "x",
        "http-header-X-Split": "a\r\nSet-Cookie: evil=1", "http-header-Connection": "close"})
    r = call(app, "GET", "/api/demo/h")
    assert r.status == 200
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Api"] == "v1"
    assert r.headers["Content-Length"] == "3"
    assert not {"Bad Name", "X-Split", "Set-Cookie", "Connection"} & set(r.headers)


@pytest.mark.parametrize("code", [301, 302])
def test_redirects(app, store, code):
    put_api(store, "demo", "go", "echo ${http-qs-to}", **{"http-resp-code": code})
    r = call(app, "GET", "/api/demo/go", qs(to="/next/page?a=1"))
    assert r.status == code and r.headers["Location"] == "/next/page?a=1" and r.body == b""
    r = call(app, "GET", "/api/demo/go", qs(to="https://example.com/x"))
    assert r.status == code and r.headers["Location"] == "https://example.com/x"
    for bad in ["//evil.example/x", "javascript:alert(1)", "/a\r\nSet-Cookie: x=1", ""]:
        r = call(app, "GET", "/api/demo/go", qs(to=bad))
        assert r.status == 500 and "Location" not in r.headers, bad
        assert r.text.startswith("e.regapi.redirect.invalid")


def test_error_status_from_kind(app, store):
    put_api(store, "demo", "missing", "cat ~/nope")
    put_api(store, "demo", "usage", "mkdir")
    put_api(store, "demo", "fails", "false")
    put_api(store, "demo", "unknown", "no-such-command x")
    put_api(store, "demo", "jsonerr", "cat ~/nope", **{"http-header-Content-Type": "application/json"})
    r = call(app, "GET", "/api/demo/missing")
    assert r.status == 404 and r.text.startswith("e.io.obj.noexists")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert call(app, "GET", "/api/demo/usage").status == 400
    r = call(app, "GET", "/api/demo/fails")
    assert r.status == 500 and r.text == "e.regapi.failed : exit status 1\n"
    r = call(app, "GET", "/api/demo/unknown")
    assert r.status == 500 and r.text.startswith("e.cmd.notfound")
    r = call(app, "GET", "/api/demo/jsonerr")
    assert r.status == 404 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = json.loads(r.body)
    assert body["ok"] is False and body["errCode"] == "e.io.obj.noexists" and body["msg"]


def test_not_found_and_bad_paths(app, store):
    put_api(store, "demo", "x", "echo x")
    assert call(app, "GET", "/api/demo/nope").status == 404
    assert call(app, "GET", "/api/nobody/x").status == 404
    assert call(app, "GET", "/").status == 404
    assert call(app, "GET", "/api/demo/../demo/x").status == 400
    assert call(app, "GET", "/api/demo/%00x".replace("%00", "\x00")).status == 400
    assert call(app, "GET", "/api/de mo/x").status == 400
    # PATH_INFO that is not UTF-8
    assert call(app, "GET", "/api/demo/\xff", raw_path=True).status == 400
    assert call(app, "GET", "/api/demo/x", "a=%ff").status == 400


def test_broken_template_is_a_server_error(app, store):
    put_api(store, "demo", "broken", "echo 'unterminated")
    r = call(app, "GET", "/api/demo/broken")
    assert r.status == 500 and r.text.startswith("e.regapi.api.invalid")


def test_head_has_no_body(app, store):
    put_api(store, "demo", "x", "echo hello")
    r = call(app, "HEAD", "/api/demo/x")
    assert r.status == 200 and r.body == b"" and r.headers["Content-Length"] == "6"


# ---- limits ---------------------------------------------------------------------------
def test_body_limit(store):
    app = RegApiApp(store, route_ttl=0, deadline=5, max_body=1000)
    put_api(store, "demo", "body", "cat id:${id}", **{"regapi-reqobj-keep": True})
    put_api(store, "demo", "echo", "echo ok")
    assert call(app, "POST", "/api/demo/body", body=b"x" * 1000).status == 200
    r = call(app, "POST", "/api/demo/body", body=b"x" * 1001)
    assert r.status == 413 and r.text.startswith("e.regapi.req.toolarge")
    # announced too large: refused even where the body would not be read
    assert call(app, "POST", "/api/demo/echo", body=b"x" * 1001).status == 413
    # no Content-Length (chunked): bounded read
    r = call(app, "POST", "/api/demo/body", headers={"Transfer-Encoding": "chunked"},
             body=b"y" * 5000)
    # conftest sets Content-Length for bodies; drop it to simulate chunked
    env_app = app
    import io as _io

    def chunked(n):
        env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/demo/body", "QUERY_STRING": "",
               "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": _io.BytesIO(b"z" * n),
               "REMOTE_ADDR": "127.0.0.1"}
        seen = {}
        body = b"".join(env_app(env, lambda s, h, e=None: seen.update(s=s)))
        return int(seen["s"].split()[0]), body
    assert chunked(1000) == (200, b"z" * 1000)
    assert chunked(5000)[0] == 413
    assert call(app, "POST", "/api/demo/body", headers={"Content-Length": "abc"},
                body=b"").status == 400
    names = [o["nm"] for o in tmp_objects(store)]
    assert len(names) == 2                       # only the two accepted bodies


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>',
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml>&lol2;</xml>',
    "\ufeff<!doctype x><xml/>".encode("utf-8"),
    "<!DOCTYPE x><xml/>".encode("utf-16"),
])
def test_xml_with_dtd_refused_before_anything_is_written(app, store, body):
    put_api(store, "demo", "body", "cat id:${id}")
    r = call(app, "POST", "/api/demo/body", body=body, headers={"Content-Type": "text/xml"})
    assert r.status == 400 and r.text.startswith("e.regapi.req.dtd")
    assert tmp_objects(store) == []


class Slow(Command):
    name = "regapi-test-slow"

    def run(self, session, args, stdin, stdout, stderr):
        time.sleep(float(args[0]))
        stdout.write("late\n")
        return 0


@pytest.fixture()
def slow_cmd():
    REGISTRY.register(Slow())
    yield
    REGISTRY.unregister("regapi-test-slow")


def test_deadline_answers_504_in_time(store, slow_cmd):
    app = RegApiApp(store, route_ttl=0, deadline=0.3)
    put_api(store, "demo", "slow", "regapi-test-slow 1.5; touch ~/after-deadline")
    t = time.monotonic()
    r = call(app, "GET", "/api/demo/slow")
    took = time.monotonic() - t
    assert r.status == 504 and r.text.startswith("e.regapi.timeout")
    assert took < 1.0
    time.sleep(1.6)           # the abandoned run never starts its next command
    assert store.fetch("/home/demo/after-deadline") is None
    put_api(store, "demo", "fast", "regapi-test-slow 0.01")
    assert call(app, "GET", "/api/demo/fast").text == "late\n"


def test_client_disconnect_is_a_generic_500_never_a_traceback(app, store, caplog):
    put_api(store, "demo", "body", "cat id:${id}")

    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise OSError("connection reset by peer")

    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/demo/body", "QUERY_STRING": "",
           "CONTENT_LENGTH": "10", "wsgi.input": Broken(), "REMOTE_ADDR": "127.0.0.1"}
    seen = {}
    with caplog.at_level(logging.ERROR, logger="regapi"):
        body = b"".join(app(env, lambda s, h, e=None: seen.update(s=s)))
    assert seen["s"].startswith("500") and body == b"e.regapi.internal : internal error\n"
    assert "Traceback" not in body.decode()


def test_one_access_log_line_without_query_values(app, store, caplog):
    put_api(store, "demo", "x", "echo ${http-qs-openid}")
    with caplog.at_level(logging.INFO, logger="regapi.access"):
        call(app, "GET", "/api/demo/x", "openid=SECRET-OPENID&id=42")
        call(app, "GET", "/api/demo/none", "openid=SECRET-OPENID")
    lines = [r.getMessage() for r in caplog.records if r.name == "regapi.access"]
    assert len(lines) == 2
    # ADDR METHOD PATH STATUS BYTES DURATION (the client address first)
    assert lines[0].startswith("127.0.0.1 GET /api/demo/x 200 ") and lines[0].endswith("ms")
    assert lines[1].startswith("127.0.0.1 GET /api/demo/none 404 ")
    assert not any("SECRET" in ln or "openid" in ln for ln in lines)


def test_concurrent_requests_share_one_app(store):
    app = RegApiApp(store, route_ttl=0.05, deadline=5)
    put_api(store, "demo", "e", "echo ${http-qs-n}")
    errors = []

    def worker(i):
        for j in range(20):
            r = call(app, "GET", "/api/demo/e", f"n={i}-{j}")
            if r.status != 200 or r.text != f"{i}-{j}\n":
                errors.append((i, j, r.status, r.text))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_api_edit_seen_after_ttl(store):
    app = RegApiApp(store, route_ttl=0, deadline=5)
    put_api(store, "demo", "v", "echo one")
    assert call(app, "GET", "/api/demo/v").text == "one\n"
    obj = store.fetch("/home/demo/.regapi/api/v")
    time.sleep(0.002)
    store.write(obj["id"], b"echo two")
    assert call(app, "GET", "/api/demo/v").text == "two\n"


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
       | st.sampled_from(["; touch ~/c", "| touch ~/c", "`touch ~/c`", "$(touch ~/c)",
                          "${x", "$<y>", "a\ntouch ~/c", "'", '"', "\\", "-n", "-e"]))
def test_any_query_value_is_echoed_verbatim_and_runs_nothing(store, value):
    from urllib.parse import quote
    app = RegApiApp(store, route_ttl=60, deadline=5)
    if store.fetch("/home/demo/.regapi/api/echo") is None:
        put_api(store, "demo", "echo", "echo ${http-qs-x}")
    before = store.count({"d0": "home"})
    r = call(app, "GET", "/api/demo/echo", "x=" + quote(value, safe=""))
    assert r.status == 200 and r.body == (value + "\n").encode("utf-8")
    assert store.count({"d0": "home"}) == before


# ---- the plainest templates run as a plan (wnshell.plan), without a session ----
_PLAN_WORDS = st.sampled_from(["-n", "-e", "-ne", "-x", "-", "--", "a", "", "\\t", "\\c",
                               "é 中"]) \
    | st.sampled_from(["${http-qs-a}", "${http-qs-b}", "${http-qs-c}"])
_PLAN_VALUES = st.sampled_from(["-n", "-e", "-en", "", " ", "\\n", "\\c", "x y", "é"]) \
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def _plan_template(statements):
    def word(w):
        return w if w.startswith("${") else "'" + w + "'"
    return "\n".join(" ".join([name] + [word(w) for w in args]) for name, args in statements)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(statements=st.lists(st.tuples(st.sampled_from(["echo", "true"]),
                                     st.lists(_PLAN_WORDS, max_size=4)),
                           min_size=1, max_size=3),
       query=st.dictionaries(st.sampled_from(["a", "b"]), _PLAN_VALUES, max_size=2))
@example(statements=[("echo", ["${http-qs-a}", "x"])], query={"a": "-n"})
@example(statements=[("echo", ["-e", "${http-qs-a}", "${http-qs-c}"])], query={"a": "\\c"})
@example(statements=[("echo", ["${http-qs-c}", "-n"]), ("true", ["-n"])], query={})
def test_a_plan_answers_what_a_session_answers(store, statements, query):
    """The same template served as a plan and (with a no-op ``true && true`` that no plan
    takes) in a session: the same status, headers and body, for any query."""
    app = RegApiApp(store, route_ttl=60, deadline=5)
    text = _plan_template(statements)
    put_api(store, "demo", "p1", text)
    put_api(store, "demo", "p2", text + "\ntrue && true")
    assert app.template(store.fetch("/home/demo/.regapi/api/p1")).plan is not None
    assert app.template(store.fetch("/home/demo/.regapi/api/p2")).plan is None
    q = qs(**query)
    planned, in_session = call(app, "GET", "/api/demo/p1", q), call(app, "GET", "/api/demo/p2", q)
    assert (planned.status, planned.header_list, planned.body) == \
        (in_session.status, in_session.header_list, in_session.body)


@pytest.mark.parametrize("template", [
    "echo -h", "echo --help x", "false", "echo a && echo b", "echo a | echo b",
    "x=1 echo a", "echo a > out", "echo ${http-qs-a?d}", "echo ${http-qs-a?}",
    "echo pre${http-qs-a}",
    "echo $(echo a)", "echo ${HOME}", "echo ${id}", "${http-qs-a} x", "obj ~",
])
def test_templates_that_are_not_plain_run_in_a_session(app, store, template):
    put_api(store, "demo", "np", template)
    assert app.template(store.fetch("/home/demo/.regapi/api/np")).plan is None


# ---- where a template runs: asked of the syntax tree and of the commands' declarations ----
class Where(Command):
    name = "regapi-test-where"
    blocks = False                  # declared: never waits

    def run(self, session, args, stdin, stdout, stderr):
        stdout.write(f"{threading.current_thread().name} {session.remaining() is not None}\n")
        return 0


class WaitsWithinDeadline(Where):
    name = "regapi-test-bounded"
    blocks = "deadline"             # declared: waits, but never past session.remaining()

    def run(self, session, args, stdin, stdout, stderr):
        left = session.remaining()
        time.sleep(min(float(args[0]), left))
        stdout.write(f"{threading.current_thread().name} {left <= 0.5}\n")
        return 0


class Undeclared(Where):
    name = "regapi-test-undeclared"
    blocks = Command.blocks         # says nothing: may wait without bound


@pytest.fixture()
def placed_cmds():
    cmds = [Where(), WaitsWithinDeadline(), Undeclared()]
    for c in cmds:
        REGISTRY.register(c)
    yield
    for c in cmds:
        REGISTRY.unregister(c.name)


def test_a_template_runs_on_the_request_thread_unless_a_command_may_block(store, placed_cmds):
    from regapi.app import runs_inline
    from wnshell.parser import parse
    app = RegApiApp(store, route_ttl=0, deadline=0.5)
    me = threading.current_thread().name
    put_api(store, "demo", "where", "echo a | regapi-test-where")
    assert call(app, "GET", "/api/demo/where").text == f"{me} True\n"
    put_api(store, "demo", "bounded", "regapi-test-bounded 5")
    t = time.monotonic()
    r = call(app, "GET", "/api/demo/bounded")
    assert r.status == 504 and time.monotonic() - t < 1.0     # its own wait was cut short
    put_api(store, "demo", "undeclared", "regapi-test-undeclared")
    assert call(app, "GET", "/api/demo/undeclared").text.startswith("regapi-run")
    # the decision reads the tree: a command named at run time is never trusted
    assert runs_inline(parse("echo x; cat ~/a | obj -match '{}'"), REGISTRY)
    assert not runs_inline(parse("c=echo; $c x"), REGISTRY)
    assert not runs_inline(parse("echo $(regapi-test-undeclared)"), REGISTRY)
    assert runs_inline(parse("httpc http://x; weixin a order -query o"), REGISTRY)


def test_access_token_is_compared_in_constant_time(app, store, monkeypatch):
    import hmac

    from regapi import guard
    put_api(store, "demo", "tok", "echo ok", **{"api-access-token": "T" * 24})
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)
    monkeypatch.setattr(guard.hmac, "compare_digest", spy)
    assert call(app, "GET", "/api/demo/tok", headers={"Authorization": "Bearer " + "T" * 23 + "x"}
                ).status == 403
    assert call(app, "GET", "/api/demo/tok", qs(access_token="T" * 24)).text == "ok\n"
    assert seen == [(b"T" * 23 + b"x", b"T" * 24), (b"T" * 24, b"T" * 24)]
    # unusable token metadata refuses everyone: a security key is never ignored
    put_api(store, "demo", "weak", "echo ok", **{"api-access-token": "short"})
    assert call(app, "GET", "/api/demo/weak", qs(access_token="short")).status == 403


@pytest.mark.parametrize("key", ["API-Access-Token", "Api-access-token", "api_access_token",
                                 "api-access-token ", "API_ACCESS_TOKEN"])
def test_a_near_miss_of_the_token_key_refuses_everyone(app, store, key):
    """Metadata set without ``wnshell sync`` (obj -u, the store API) is not checked by
    it: an API whose metadata spells the token key another way was meant to be guarded,
    so it refuses every request rather than serve everyone."""
    put_api(store, "demo", "near", "echo ran", **{key: "T" * 24})
    for q in ("", qs(access_token="T" * 24)):
        r = call(app, "GET", "/api/demo/near", q)
        assert r.status == 403 and r.text.startswith("e.regapi.token.invalid")


# ---- what hostile or odd requests and API metadata must never produce ----------------
def _ascii_headers(r):
    for name, value in r.header_list:
        value.encode("ascii")      # PEP 3333: latin-1 at most; URIs and our values: ASCII
        assert "\r" not in value and "\n" not in value


@pytest.mark.parametrize("target,location", [
    ("/订单/é?q=a b", "/%E8%AE%A2%E5%8D%95/%C3%A9?q=a%20b"),
    ("/ok/%E4%B8%AD?x=1&y=%2F#frag", "/ok/%E4%B8%AD?x=1&y=%2F#frag"),   # kept as is
    ('/a"<b>', "/a%22%3Cb%3E"),
    ("https://example.com/支付?x=1", "https://example.com/%E6%94%AF%E4%BB%98?x=1"),
])
def test_redirect_location_is_an_ascii_uri(app, store, target, location):
    # stdout with non-ASCII text or spaces went out raw: not a URI (RFC 9110), and a
    # code point above U+00FF is not even a legal WSGI header value (strict servers
    # such as wsgiref fail on it)
    put_api(store, "demo", "go", "echo ${http-qs-to}", **{"http-resp-code": 302})
    r = call(app, "GET", "/api/demo/go", qs(to=target))
    assert r.status == 302, r.body
    assert r.headers["Location"] == location
    _ascii_headers(r)


def test_api_header_with_non_ascii_value_is_not_sent(app, store):
    put_api(store, "demo", "h", "echo hi", **{
        "http-header-X-Name": "支付", "http-header-X-Latin": "caf\u00e9",
        "http-header-X-Ok": "fine"})
    r = call(app, "GET", "/api/demo/h")
    assert r.status == 200 and r.headers["X-Ok"] == "fine"
    assert "X-Name" not in r.headers and "X-Latin" not in r.headers
    _ascii_headers(r)


@pytest.mark.parametrize("query,body,code,key", [
    ("x=%FF", b"", 400, "e.regapi.req.badquery"),
    ("&".join(f"p{i}=1" for i in range(300)), b"", 400, "e.regapi.req.badquery"),
    ("", b"x" * 2000, 413, "e.regapi.req.toolarge"),
])
def test_request_errors_of_a_json_api_are_json(store, query, body, code, key):
    # the template's own errors came as JSON, but a bad query string or an oversized
    # body of the same API was answered in text/plain: a JSON client could not parse it
    app = RegApiApp(store, route_ttl=0, deadline=5, max_body=1000)
    put_api(store, "demo", "j", "cat id:${id}", **{"http-header-Content-Type": "application/json"})
    r = call(app, "POST", "/api/demo/j", query, body=body)
    assert r.status == code
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(r.body) == {"ok": False, "errCode": key, "msg": json.loads(r.body)["msg"]}


_DTD_XML = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'


@pytest.mark.parametrize("body", [
    _DTD_XML.encode("utf-16-le"),                   # UTF-16 without a BOM
    _DTD_XML.encode("utf-16-be"),
    _DTD_XML.encode("utf-32"),                      # UTF-32 with its BOM
    _DTD_XML.encode("utf-32-be"),
    b"\r\n\t " + _DTD_XML.encode("utf-16"),         # whitespace before the BOM
])
def test_xml_with_dtd_in_other_encodings_is_refused_before_anything_is_written(app, store,
                                                                                body):
    # the DTD check only looked for the declaration in 8-bit text (and after a UTF-16
    # BOM): these bodies were stored as request objects and handed to the template
    put_api(store, "demo", "body", "cat id:${id}")
    r = call(app, "POST", "/api/demo/body", body=body, headers={"Content-Type": "text/xml"})
    assert r.status == 400 and r.text.startswith("e.regapi.req.dtd")
    assert tmp_objects(store) == []


def test_bodies_that_only_look_odd_are_accepted(app, store):
    put_api(store, "demo", "body", "cat id:${id}")
    for body in [b'{"a": "<!DOCTYPE x>"}', "<x>文档</x>".encode("utf-16"), b"\x00\x01binary"]:
        assert call(app, "POST", "/api/demo/body", body=body).status == 200, body


@pytest.mark.parametrize("path", [
    "/api/demo/x 200 5 0.1ms",                 # a forged tail of fields
    '/api/demo/a"b c',
])
def test_access_log_line_keeps_its_fields(store, path):
    # a decoded path with spaces was logged as is: one request could add fake
    # "status bytes duration" fields (or a whole fake request) to the line
    out = io.StringIO()
    log = BufferedAccessLog(out, interval=3600)
    app = RegApiApp(store, route_ttl=0, deadline=5, access=log)
    r = call(app, "GET", path)
    log.flush()
    line = out.getvalue().strip()
    assert len(line.splitlines()) == 1
    fields = line.split(" ")
    # TIME [PID] regapi.access ADDR METHOD PATH STATUS BYTES DURATION
    assert len(fields) == 9, line
    assert fields[5].startswith("/api/demo/") and fields[6] == str(r.status)


@pytest.mark.parametrize("remote,shown", [
    ("10.0.0.7", "10.0.0.7"), ("::1", "::1"), ("", "-"),
    ("1.2.3.4 200 5 0.1ms", "?"), ("1.2.3.4\nforged", "?"), ("x" * 65, "?"),
])
def test_access_log_shows_the_client_address_as_one_field(store, remote, shown):
    out = io.StringIO()
    log = BufferedAccessLog(out, interval=3600)
    app = RegApiApp(store, route_ttl=0, deadline=5, access=log)
    for _ in range(2):      # an address seen before is shown the same way
        call(app, "GET", "/api/demo/nothing", remote=remote)
    log.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.split(" ")[3] == shown for line in lines), lines


def test_server_log_lines_are_buffered_and_warnings_written_at_once():
    """The server's app log (an order paid) goes through the access log's buffer: an
    INFO line is not written on the request's thread; a warning is, after it."""
    import logging

    from regapi.app import BufferedLogHandler
    from regapi.logfmt import Formatter
    out = io.StringIO()
    lines = BufferedAccessLog(out, interval=3600)
    h = BufferedLogHandler(lines)
    h.setFormatter(Formatter())
    lg = logging.getLogger("wnshell.test-buffered")
    lg.addHandler(h)
    lg.propagate = False
    lg.setLevel(logging.INFO)
    try:
        lg.info("order %s paid", "o1")
        assert out.getvalue() == ""
        lg.warning("notification rejected")
        got = out.getvalue().splitlines()
        assert len(got) == 2 and got[0].endswith("order o1 paid") \
            and got[1].endswith("notification rejected")
    finally:
        lg.removeHandler(h)


def test_each_log_line_has_its_own_records_second():
    """The server's formatter spells a second's time once; every line still shows the
    UTC second its record was made in, whatever order records come in."""
    import logging

    from regapi.logfmt import Formatter
    f = Formatter()

    def line(created):
        r = logging.LogRecord("wnshell.weixin", logging.INFO, __file__, 1, "order %s paid",
                              ("o1",), None)
        r.created = created
        return f.format(r)
    assert line(0.5).startswith("1970-01-01T00:00:00Z [")
    assert line(1.2).startswith("1970-01-01T00:00:01Z [")
    assert line(0.9).startswith("1970-01-01T00:00:00Z [")
    assert line(86399.99).endswith(" wnshell.weixin order o1 paid")
    assert line(86399.99).startswith("1970-01-01T23:59:59Z [")


def test_an_access_log_line_has_the_second_its_request_ended_in(store):
    """The lines are made when the buffer is written (up to ``interval`` later): each
    still shows when its request ended, and lines and other records keep their order."""
    import time as _time

    from regapi.logfmt import stamp
    out = io.StringIO()
    log = BufferedAccessLog(out, interval=3600)
    app = RegApiApp(store, route_ttl=0, deadline=5, access=log)
    put_api(store, "demo", "hi", "echo hi")
    now = _time.time()
    log.record((_time.perf_counter() - 7200, "GET", "/api/demo/old", 200, 3, 0.00042,
                "10.0.0.1"))
    log.add("a line of its own\n")
    assert call(app, "GET", "/api/demo/hi").status == 200
    log.flush()
    old, own, new = out.getvalue().splitlines()
    assert old.split(" ")[0] in (stamp(now - 7200), stamp(now - 7201))
    assert old.split(" ", 2)[2] == "regapi.access 10.0.0.1 GET /api/demo/old 200 3 0.4ms"
    assert own == "a line of its own"
    assert new.split(" ")[0] in (stamp(now), stamp(now + 1))
    assert new.split(" ")[3:8] == ["127.0.0.1", "GET", "/api/demo/hi", "200", "3"]


@pytest.mark.parametrize("length", ["\u00b2", "\u00b9\u00b3", "1_0", " 5", "0x10", "-1", "+5"])
def test_odd_content_length_is_a_400(app, store, length):
    # str.isdigit() accepted the latin-1 byte "²" (0xB2), then int() raised: a 500
    # internal error; the WSGI driver passes the header on as a server would
    put_api(store, "demo", "b", "cat id:${id}")
    r = call(app, "POST", "/api/demo/b", body=b"hello", headers={"Content-Length": length})
    assert r.status == 400 and r.text.startswith("e.regapi.req.badlength"), (length, r.body)


def test_args_variable_with_a_non_ascii_digit_is_just_unset(app, store):
    # "${args-²}" passed str.isdigit(), int() raised: every request to the API was a 500
    put_api(store, "demo", "f/_ANY", "echo [${args-\u00b2}] [${args-0}]")
    r = call(app, "GET", "/api/demo/f/x")
    assert r.status == 200 and r.text == "[] [x]\n"


# ---- a command chooses its answer's status (session.set_response) ----------------------
class Answer(Command):
    """``regapi-test-answer STATUS [TYPE] [TEXT]``: prints TEXT, chooses the answer."""
    name = "regapi-test-answer"

    def run(self, session, args, stdin, stdout, stderr):
        session.set_response(int(args[0]), args[1] if len(args) > 1 and args[1] else None)
        if len(args) > 2:
            stdout.write(args[2])
        return 0


@pytest.fixture()
def answer_cmd():
    REGISTRY.register(Answer())
    yield
    REGISTRY.unregister("regapi-test-answer")


def test_a_command_chooses_the_status_and_type_of_its_answer(app, store, answer_cmd):
    put_api(store, "demo", "n204", "regapi-test-answer 204 '' ignored")
    put_api(store, "demo", "n400", "regapi-test-answer 400 application/json '{\"code\":\"FAIL\"}'",
            **{"http-header-Content-Type": "text/xml"})
    put_api(store, "demo", "n202", "regapi-test-answer 202 '' accepted",
            **{"http-header-Content-Type": "text/plain"})
    r = call(app, "POST", "/api/demo/n204")
    assert r.status == 204 and r.body == b""
    assert not any(k.lower() in ("content-type", "content-length") for k in r.headers)
    r = call(app, "POST", "/api/demo/n400")
    assert r.status == 400 and json.loads(r.body) == {"code": "FAIL"}
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    r = call(app, "POST", "/api/demo/n202")
    assert (r.status, r.text) == (202, "accepted")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_an_answer_choice_is_refused_outside_the_allow_list(app, store, answer_cmd):
    put_api(store, "demo", "n302", "regapi-test-answer 302")
    put_api(store, "demo", "html", "regapi-test-answer 200 text/html '<script>'")
    for api, key in (("n302", "e.cmd.response.status"), ("html", "e.cmd.response.type")):
        r = call(app, "GET", f"/api/demo/{api}")
        assert r.status == 400 and r.text.startswith(key + " : "), r.text


def test_a_failed_template_keeps_the_error_status_and_the_next_run_starts_clean(
        app, store, answer_cmd):
    put_api(store, "demo", "then-fail", "regapi-test-answer 204; cat ~/no-such-file")
    r = call(app, "GET", "/api/demo/then-fail")
    assert r.status == 404 and r.text.startswith("e.")
    from wnshell.session import Session
    s = Session(store, user="demo")
    s.run("regapi-test-answer 201")
    assert s.response == (201, None)
    s.run("echo hi")
    assert s.response is None            # each top-level run starts without a choice
