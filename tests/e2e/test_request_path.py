"""The request path as an attacker sees it, through ``wnshell serve`` in a subprocess:
no active content chosen by the query, no request value that climbs out of the path the
template wrote, request objects private to their request, the security metadata keys
(``api-access-token``, ``http-cross-origin``), and the small holes (``_ANY`` literals,
absurd Content-Length, ReDoS).  One server for the module (see tests/e2e/served.py)."""
import json
import os
import socket
import threading
import time

import pytest

from regapi.demo import PAY_API
from tests.e2e import served
from tests.e2e.served import get

USER = served.USER
HOME = f"/home/{USER}"
WXCONF = f"{HOME}/.weixin/xxx/wxconf"
JSON = {"http-header-Content-Type": "application/json"}

APIS = {
    **served.seed_apis("payresult.regapi"),
    # reflected values: the API's own type, a query mime only when opted in
    "demo/echo": ("echo ${http-qs-x}\n", JSON),
    "demo/pick": ("echo ${http-qs-x}\n", dict(JSON, **{"regapi-qs-mime": True})),
    # request values below a path the template wrote
    "t/cat": ("cat ~/pub/${http-qs-f}\n", None),
    "t/obj": ("obj ~/pub/${http-qs-f}\n", JSON),
    "t/ls": ("ls -A ~/pub/${http-qs-f}\n", None),
    "t/put": ("echo ${http-qs-v} > ~/data/${http-qs-n}\n", None),
    "t/add": ("echo ${http-qs-v} >> ~/data/${http-qs-n}\n", None),
    "t/mv": ("mv ~/data/${http-qs-n} ~/data/${http-qs-m}\n", None),
    "t/mvto": ("mv ~/data/x ~/data/${http-qs-n}\n", None),
    "t/rm": ("rm -r ~/data/${http-qs-n}\n", None),
    "t/mkdir": ("mkdir -p ~/data/${http-qs-n}\n", None),
    "t/touch": ("touch ~/data/${http-qs-n}\n", None),
    "t/cd": ("cd ~/pub; cat ${http-qs-n}\n", None),
    "t/sub": ("cat ~/pub/$(echo ${http-qs-n})\n", None),
    "t/var": ("f=${http-qs-n}; cat ~/pub/$f\n", None),
    "t/byid": ("cat id:${http-qs-n}\n", None),
    # the hidden trees, named by the template itself
    "h/conf": ("cat ~/.weixin/xxx/wxconf\n", None),
    "h/api": ("cat ~/.regapi/api/demo/echo\n", None),
    "h/plant": ("echo ls > ~/.regapi/api/evil\n", None),
    "h/home": ("ls -A ~\n", None),
    "h/find": ("obj -match '{\"nm\": \"wxconf\"}'\n", JSON),
    # ... and named by a request value, to the weixin handlers that take an object
    "h/wx/status": ("weixin xxx checkout -status ${http-qs-n} -openid ${http-qs-o}\n", JSON),
    "h/wx/native": ("weixin xxx checkout -native ${http-qs-n} -openid ${http-qs-o} "
                    "-client_ip ${http-remote-host}\n", JSON),
    "h/wx/refund": ("weixin xxx refund ${http-qs-n} -fee 1\n", JSON),
    "h/wx/refundquery": ("weixin xxx refund -query ${http-qs-n}\n", JSON),
    "h/wx/refundresult": ("weixin xxx refund -result ${http-qs-n}\n", JSON),
    "h/wx/close": ("weixin xxx order -close ${http-qs-n}\n", JSON),
    "h/wx/query": ("weixin xxx order -query ${http-qs-n}\n", JSON),
    "h/wx/result": ("weixin xxx order -result ${http-qs-n}\n", JSON),
    # request objects
    "r/id": ("echo ${id}\n", None),
    "r/body": ("cat id:${id}\n", None),
    "r/meta": ("obj id:${id}\n", JSON),
    "r/posts": ("obj -match '{\"http-method\": \"POST\"}'\n", JSON),
    "r/tmp": ("ls -A ~/.regapi/tmp\n", None),
    "r/kept": ("cat id:${id}\n", {"regapi-reqobj-keep": 30}),
    # security metadata
    "s/tok": ("echo token-ok\n", {"api-access-token": "tok-" + "k" * 28}),
    "s/cors": ("echo ${http-method}; touch ~/cors-ran\n",
               {"http-cross-origin": ["https://shop.example.com"]}),
    "s/any": ("echo open\n", {"http-cross-origin": "*"}),
    # small holes
    "x/_ANY/_action": ("echo user ${args-0}\n", None),
    "x/find": ("obj ~/redos -match ${http-qs-q}\n", JSON),
    "x/keys": ("obj ~/redos/one -e ${http-qs-e}\n", JSON),
    "x/fetch": ("httpc ${http-qs-u}\n", None),
    "x/slowpay": (PAY_API.replace("weixin xxx", "weixin slow"), JSON),
}
TOKEN = APIS["s/tok"][1]["api-access-token"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reqpath")
    apis = tmp / "apis"
    served.write_apis(apis, APIS)
    s = served.start(tmp, f"sqlite://{tmp / 'store.db'}", apis, mch_id="1900000456",
                     extra_args=("--deadline", "2"))
    yield s
    served.stop(s)       # (its exit status is tests/e2e/test_shutdown.py's subject)


SCRIPT = "<script>alert(1)</script>"


# ---- 1. no active content from the query ----------------------------------------------
@pytest.mark.parametrize("mime", ["html", "text/html", "svg", "image/svg+xml", "xml",
                                  "text/xml", "application/xhtml+xml", "js",
                                  "application/javascript", "text/javascript"])
@pytest.mark.parametrize("api", ["echo", "pick"])
def test_query_mime_never_chooses_an_active_type(srv, api, mime):
    r = get(srv, f"/api/{USER}/demo/{api}", params={"mime": mime, "x": SCRIPT})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_query_mime_is_honoured_only_when_the_api_opts_in(srv):
    r = get(srv, f"/api/{USER}/demo/echo", params={"mime": "text/plain", "x": "1"})
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    r = get(srv, f"/api/{USER}/demo/pick", params={"mime": "text/plain", "x": "1"})
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8" and r.text == "1\n"


# ---- 2. request values cannot climb out of the template's path --------------------------
def tree(s, root=HOME):
    """Every object below ``root`` (path -> metadata less lm, content)."""
    out = {}
    for o in s.store.query({"ph": "^" + root + "(/|$)"}):
        meta = {k: v for k, v in o.items() if k not in ("lm",)}
        out[o["ph"]] = (meta, s.store.read(o["id"]) if o["race"] == "FILE" else None)
    return out


@pytest.fixture(scope="module")
def files(srv):
    st = srv.store
    st.create(f"{HOME}/pub/readme", "FILE", parents=True, content=b"public\n")
    st.create(f"{HOME}/pub/sub/inner", "FILE", parents=True, content=b"inner\n")
    st.create(f"{HOME}/data/x", "FILE", parents=True, content=b"x\n")
    st.create(f"{HOME}/data/keep", "FILE", content=b"keep\n")
    return st.fetch(WXCONF)["id"]


def climbs(wxconf_id, target=".weixin/xxx/wxconf"):
    """Every traversal form of walking from ~/pub or ~/data to ``target``."""
    return ["../" + target, "./../" + target, "sub/../../" + target, "a/b/../../../" + target,
            "/home/demo/" + target, "~/" + target, "~/../demo/" + target, "/" + target,
            "id:" + wxconf_id, "..", ".", "", "a/..", "./", "sub/"]


def escape_refused(r):
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.text.startswith("e.io.path.escape : ") or \
        r.json()["errCode"] == "e.io.path.escape", r.text
    assert "pay_key" not in r.text


@pytest.mark.parametrize("api,param", [("cat", "f"), ("obj", "f"), ("ls", "f"),
                                       ("cd", "n"), ("sub", "n"), ("var", "n")])
def test_reads_cannot_climb_out(srv, files, api, param):
    before = tree(srv)
    for value in climbs(files):
        escape_refused(get(srv, f"/api/{USER}/t/{api}", params={param: value}))
    # decoded once: %2e%2e is '..' (and %252e%252e a plain name)
    r = srv.http.get(f"{srv.base}/api/{USER}/t/{api}?{param}=%2e%2e%2f.weixin%2fxxx%2fwxconf",
                     timeout=10)
    escape_refused(r)
    r = get(srv, f"/api/{USER}/t/{api}", params={param: "%2e%2e/.weixin/xxx/wxconf"})
    assert r.status_code == 404
    assert tree(srv) == before
    # names below the template's path still work
    if api not in ("ls", "obj"):
        assert get(srv, f"/api/{USER}/t/{api}", params={param: "readme"}).text == "public\n"
        assert get(srv, f"/api/{USER}/t/{api}", params={param: "sub/inner"}).text == "inner\n"


@pytest.mark.parametrize("api", ["put", "add", "rm", "mkdir", "touch", "mv", "mvto"])
def test_writes_cannot_climb_out(srv, files, api):
    before = tree(srv)
    for target in (".regapi/api/evil", ".weixin/xxx/wxconf", "other"):
        for value in climbs(files, target):
            params = {"n": value, "v": "pwned"}
            if api == "mv":
                params = {"n": "x", "m": value}
            escape_refused(get(srv, f"/api/{USER}/t/{api}", params=params))
            if api == "mv":     # the source side too
                escape_refused(get(srv, f"/api/{USER}/t/mv", params={"n": value, "m": "y"}))
    assert tree(srv) == before, "a refused request changed the store"
    assert get(srv, f"/api/{USER}/evil").status_code == 404


def test_writes_below_the_template_path_work(srv, files):
    assert get(srv, f"/api/{USER}/t/put", params={"n": "new", "v": "hi"}).status_code == 200
    assert get(srv, f"/api/{USER}/t/add", params={"n": "new", "v": "ho"}).status_code == 200
    assert srv.store.read(srv.store.fetch(f"{HOME}/data/new")["id"]) == b"hi\nho\n"
    assert get(srv, f"/api/{USER}/t/mkdir", params={"n": "d1/d2"}).status_code == 200
    assert get(srv, f"/api/{USER}/t/touch", params={"n": "d1/t"}).status_code == 200
    assert get(srv, f"/api/{USER}/t/mv", params={"n": "new", "m": "d1/new"}).status_code == 200
    assert get(srv, f"/api/{USER}/t/rm", params={"n": "d1"}).status_code == 200
    assert srv.store.fetch(f"{HOME}/data/d1") is None
    assert srv.store.fetch(f"{HOME}/data/keep") is not None


def test_a_request_glob_is_a_literal_name(srv, files):
    before = tree(srv)
    r = get(srv, f"/api/{USER}/t/rm", params={"n": "*"})
    assert r.status_code == 404 and r.text.startswith("e.io.obj.noexists")
    assert tree(srv) == before


def test_an_id_written_by_the_template_stays_confined(srv, files):
    # ``cat id:${v}``: the template wrote id:, the value is one id -- of a hidden object
    r = get(srv, f"/api/{USER}/t/byid", params={"n": files})
    assert r.status_code == 404 and "pay_key" not in r.text
    escape_refused(get(srv, f"/api/{USER}/t/byid", params={"n": files + "/.."}))
    readme = srv.store.fetch(f"{HOME}/pub/readme")["id"]
    assert get(srv, f"/api/{USER}/t/byid", params={"n": readme}).text == "public\n"


# ---- the account and the API tree are invisible and unwritable to a request -------------
def test_hidden_trees(srv, files):
    before = tree(srv)
    r = get(srv, f"/api/{USER}/h/conf")
    assert r.status_code == 404 and "pay_key" not in r.text
    assert get(srv, f"/api/{USER}/h/api").status_code == 404
    r = get(srv, f"/api/{USER}/h/plant")
    assert r.status_code == 403 and r.text.startswith("e.io.forbidden")
    listing = get(srv, f"/api/{USER}/h/home").text.split()
    assert ".weixin" not in listing and ".regapi" not in listing and "pub" in listing
    assert get(srv, f"/api/{USER}/h/find").json() == []
    assert tree(srv) == before
    assert get(srv, f"/api/{USER}/evil").status_code == 404


@pytest.mark.parametrize("api", ["status", "native", "refund", "refundquery",
                                 "refundresult", "close", "query", "result"])
def test_weixin_handlers_cannot_reach_the_hidden_trees(srv, files, api):
    """An order-shaped object planted in ~/.weixin, the account and an API file, named
    every way a request could name them: not found, nothing shown, nothing changed."""
    hidden = srv.store.fetch(f"{HOME}/.weixin/xxx/o-hidden") or srv.store.create(
        f"{HOME}/.weixin/xxx/o-hidden", "FILE",
        {"openid": "ohidden", "total_fee": 100, "or_status": 2,
         "pay_result": {"transaction_id": "42", "total_fee": "100"}})
    api_file = srv.store.fetch(f"{HOME}/.regapi/api/pay")
    before = tree(srv)
    for obj, path in ((hidden, ".weixin/xxx/o-hidden"), (srv.store.fetch(WXCONF),
                                                         ".weixin/xxx/wxconf"),
                      (api_file, ".regapi/api/pay")):
        for ref in (obj["id"], "id:" + obj["id"], f"~/{path}", f"{HOME}/{path}"):
            r = get(srv, f"/api/{USER}/h/wx/{api}", params={"n": ref, "o": "ohidden"})
            assert r.status_code in (400, 404), (api, ref, r.status_code, r.text)
            assert "ohidden" not in r.text and "pay_key" not in r.text
            assert "Traceback" not in r.text
    assert tree(srv) == before


def test_weixin_still_reads_its_account(srv):
    o, openid = served.new_order(srv, "hidden-ok")
    r = get(srv, f"/api/{USER}/pay", params={"id": o["id"], "openid": openid})
    assert r.status_code == 200 and r.json()["package"].startswith("prepay_id=")


# ---- 3. request objects are private to their request -------------------------------------
def test_request_objects_are_private(srv):
    secret = "Bearer sk-" + os.urandom(8).hex()
    rid = srv.http.post(f"{srv.base}/api/{USER}/r/id", data=b"victim body",
                        headers={"Authorization": secret, "Cookie": "sid=victim"},
                        timeout=10).text.strip()
    # the request itself sees its object: body and metadata
    assert srv.http.post(f"{srv.base}/api/{USER}/r/body", data=b"mine", timeout=10).content \
        == b"mine"
    meta = srv.http.post(f"{srv.base}/api/{USER}/r/meta?q=1", data=b"abc", timeout=10).json()
    assert meta["http-method"] == "POST" and meta["http-qs-q"] == "1" and meta["len"] == 3
    # another request finds nothing of it: by query, by id, by listing
    r = srv.http.get(f"{srv.base}/api/{USER}/r/posts", timeout=10)
    assert r.status_code == 200 and r.json() == []
    r = get(srv, f"/api/{USER}/t/byid", params={"n": rid})
    assert r.status_code == 404 and "victim" not in r.text
    assert get(srv, f"/api/{USER}/r/tmp").status_code == 404
    assert secret not in json.dumps(srv.store.query({}))        # never stored at all


def test_a_kept_request_object_is_stored_privately_with_its_expiry(srv):
    r = srv.http.post(f"{srv.base}/api/{USER}/r/kept", data=b"keep me", timeout=10)
    assert r.content == b"keep me"
    [kept] = [o for o in srv.store.query({"ph": f"^{HOME}/.regapi/tmp/"})
              if srv.store.read(o["id"]) == b"keep me"]
    assert 0 < kept["expi"] - time.time() * 1000 <= 30_000
    assert get(srv, f"/api/{USER}/t/byid", params={"n": kept["id"]}).status_code == 404
    assert get(srv, f"/api/{USER}/r/posts").json() == []


def _store_bytes(s):
    return sum(os.path.getsize(s.tmp / f) for f in os.listdir(s.tmp) if f.startswith("store.db"))


def test_big_bodies_do_not_grow_the_store(srv):
    before = _store_bytes(srv)
    body = os.urandom(1 << 20)
    for _ in range(100):
        r = srv.http.post(f"{srv.base}/api/{USER}/r/id", data=body, timeout=30)
        assert r.status_code == 200
    assert _store_bytes(srv) - before < (1 << 20)


# ---- 5. api-access-token and http-cross-origin are honoured --------------------------------
def test_access_token(srv):
    url = f"/api/{USER}/s/tok"
    for kw in ({}, {"headers": {"Authorization": "Bearer wrong"}},
               {"headers": {"Authorization": "Bearer " + TOKEN[:-1] + "x"}},
               {"params": {"access_token": TOKEN + "x"}},
               {"headers": {"Authorization": "Basic " + TOKEN}}):
        r = get(srv, url, **kw)
        assert r.status_code == 403 and r.text.startswith("e.regapi.token.invalid"), kw
        assert TOKEN not in r.text
    assert get(srv, url, headers={"Authorization": "Bearer " + TOKEN}).text == "token-ok\n"
    assert get(srv, url, params={"access_token": TOKEN}).text == "token-ok\n"
    log = srv.log.read_text(errors="replace")
    assert TOKEN not in log


def test_cors_preflight_is_answered_from_the_metadata(srv):
    origin = "https://shop.example.com"
    r = srv.http.options(f"{srv.base}/api/{USER}/s/cors", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204 and r.content == b""
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in r.headers["Access-Control-Allow-Headers"]
    assert srv.store.fetch(f"{HOME}/cors-ran") is None          # the template never ran
    r = srv.http.options(f"{srv.base}/api/{USER}/s/cors", timeout=10, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    # real requests: the allowed origin is named, another origin gets no grant
    r = srv.http.post(f"{srv.base}/api/{USER}/s/cors", headers={"Origin": origin}, timeout=10)
    assert r.text == "POST\n" and r.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in r.headers["Vary"]
    r = get(srv, f"/api/{USER}/s/cors", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = get(srv, f"/api/{USER}/s/any", headers={"Origin": "https://any.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    # an API without the key has no CORS headers at all
    r = get(srv, f"/api/{USER}/demo/echo", headers={"Origin": origin}, params={"x": "1"})
    assert "Access-Control-Allow-Origin" not in r.headers


# ---- 6. small holes ---------------------------------------------------------------------------
def test_any_and_action_literals_are_404(srv):
    assert get(srv, f"/api/{USER}/x/42").text == "user 42\n"
    for path in ("x/_ANY", "x/_action", "x/_ANY/_action", "x/42/_action", "_ANY"):
        r = get(srv, f"/api/{USER}/{path}")
        assert r.status_code == 404, (path, r.text)


def _raw(srv, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                part = sock.recv(65536)
            except socket.timeout:
                break
            if not part:
                break
            chunks.append(part)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


def test_absurd_content_length_is_400_without_traceback(srv):
    for cl in ("0" * 5000 + "3", "9" * 5000):
        reply = _raw(srv, (f"POST /api/{USER}/r/body HTTP/1.1\r\nHost: x\r\n"
                           f"Content-Length: {cl}\r\nConnection: close\r\n\r\nabc").encode())
        assert reply.split(b"\r\n", 1)[0].split()[1] == b"400", reply[:200]
    time.sleep(0.5)          # the access log is flushed every 0.25 s
    assert "Traceback" not in srv.log.read_text(errors="replace")


def test_request_regexes_cannot_hold_a_worker(srv):
    srv.store.create(f"{HOME}/redos/" + "a" * 32 + "!", "FILE", parents=True)
    srv.store.create(f"{HOME}/redos/one", "FILE", {"a" * 32 + "!": 1})
    evil = {"find": {"q": json.dumps({"nm": "^(a+)+$"})}, "keys": {"e": "^(a+)+$"}}
    for api, params in evil.items():
        done = {}

        def slow():
            t = time.monotonic()
            done["r"] = get(srv, f"/api/{USER}/x/{api}", params=params)
            done["t"] = time.monotonic() - t

        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.1)
        for _ in range(3):      # the other requests of the worker are not delayed
            t = time.monotonic()
            assert get(srv, f"/api/{USER}/demo/echo", params={"x": "1"}).status_code == 200
            assert time.monotonic() - t <= 0.5
        th.join(10)
        assert not th.is_alive() and done["t"] <= 2.5, done
        assert done["r"].status_code == 200, done["r"].text
    # patterns only a backtracking engine runs are refused, not run
    r = get(srv, f"/api/{USER}/x/find", params={"q": json.dumps({"nm": "^(a*)*\\1$"})})
    assert r.status_code == 400 and r.json()["errCode"] == "e.io.query.invalid"


def test_network_commands_get_the_remaining_time(srv):
    """httpc and weixin on the request thread: a server that never answers costs the
    deadline (2 s), not their own 10 s, and the answer is a 504."""
    from regapi.demo import WXCONF as CONF
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)         # accepts connections, never answers
    dead = f"http://127.0.0.1:{lsock.getsockname()[1]}"
    srv.store.create(f"{HOME}/.weixin/slow/wxconf", "FILE", parents=True, content=CONF.format(
        appid=srv.appid, appsecret="s" * 32, mch_id=srv.mch_id, pay_key=srv.key,
        notify_url=f"{srv.base}/api/{USER}/payresult", api_base=dead).encode())
    order, openid = served.new_order(srv, "slowpay")
    try:
        for api, params in (("fetch", {"u": dead + "/"}),
                            ("slowpay", {"id": order["id"], "openid": openid})):
            t = time.monotonic()
            r = get(srv, f"/api/{USER}/x/{api}", params=params)
            took = time.monotonic() - t
            assert r.status_code == 504, (api, r.text)
            assert took <= 3.0, (api, took)
    finally:
        lsock.close()


# ---- the log ------------------------------------------------------------------------------
def test_every_log_line_has_one_time_format_and_access_lines_the_client(srv):
    import re
    get(srv, f"/api/{USER}/demo/echo", params={"x": "logged"})
    time.sleep(0.6)          # the access log is flushed every 0.25 s
    lines = [ln for ln in srv.log.read_text(errors="replace").splitlines() if ln.strip()]
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[\d+\] \S+ ")
    odd = [ln for ln in lines if not stamp.match(ln)]
    assert not odd, odd[:5]
    access = [ln for ln in lines if " regapi.access " in ln and "/demo/echo " in ln]
    assert access and access[-1].split(" ")[3] == "127.0.0.1", access[-1:]
