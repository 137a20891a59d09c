"""End to end: ``wnshell serve`` in a subprocess (SQLite store in a temp folder, free
loopback port, 2 workers), the APIs loaded from a folder with ``--regapi-dir``, the
WeChat Pay simulator in this process.  One server for the whole module."""
import signal
import time

import pytest
import requests

from tests.e2e import served
from tests.e2e.served import get, new_order
from wxpay.sign import sign as wxsign
from wxpay.xmlcodec import to_xml

USER = served.USER
TMP = f"/home/{USER}/.regapi/tmp"

APIS = {
    **served.seed_apis("payresult.regapi"),
    "echo": ("echo ${http-qs-x}\n", None),
    "hdr": ("echo ${http-header-X-IN}\n", None),
    "cookie": ("echo ${http-cookie-c}\n", None),
    "body": ("cat id:${id}\n", None),
    "json": ("echo '{\"a\": 1}'\n", {"http-header-Content-Type": "application/json",
                                     "http-header-Cache-Control": "no-store"}),
    "missing": ("cat ~/no-such-object\n", {"http-header-Content-Type": "application/json"}),
    "go": ("echo ${http-qs-to}\n", {"http-resp-code": 302}),
    "moved": ("echo /api/demo/json\n", {"http-resp-code": 301}),
    "u/_ANY/_action": ("echo user ${args-0}\n", None),
    "u/_ANY/info": ("echo info ${args-0}\n", None),
    "files/_ANY": ("echo file ${args}\n", None),
    "reloadme": ("echo v1\n", None),
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    apis = tmp / "apis"
    served.write_apis(apis, APIS)
    s = served.start(tmp, f"sqlite://{tmp / 'store.db'}", apis, mch_id="1900000123")
    s.apis = apis
    yield s
    code = served.stop(s)
    assert code == 0, "graceful shutdown on SIGTERM should exit 0"


def tmp_count(s):
    d = s.store.fetch(TMP)
    return 0 if d is None else len(s.store.children(d["id"]))


# ---- the seed's flow ------------------------------------------------------------------
def test_seed_flow_over_http(srv):
    order, openid = new_order(srv, "flow")
    r = get(srv, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    js = r.json()
    assert js["appId"] == srv.appid and js["package"].startswith("prepay_id=")
    signed = {k: js[k] for k in ("appId", "timeStamp", "nonceStr", "package", "signType")}
    assert wxsign(signed, srv.key, js["signType"]) == js["paySign"]
    # the same request again reuses the prepay (no second unifiedorder)
    again = get(srv, f"/api/{USER}/pay", params={"id": order["id"], "openid": openid}).json()
    assert again["package"] == js["package"]
    # someone else's openid: forbidden
    r = get(srv, f"/api/{USER}/pay", params={"id": order["id"], "openid": "intruder"})
    assert r.status_code == 403 and r.json()["errCode"] == "e.cmd.weixin.order.user.nosame"

    paid = srv.http.post(srv.sim.url + "/sim/pay", json={"prepay_id": js["package"][10:]},
                         timeout=10).json()
    snap = srv.sim.wait_notified(paid["out_trade_no"], timeout=15)
    assert snap["notify"]["status"] == "delivered"
    assert "<return_code><![CDATA[SUCCESS]]></return_code>" in snap["notify"]["last_reply"]
    fresh = srv.store.get(order["id"])
    assert fresh["or_status"] == 2 and isinstance(fresh["pay_time"], int)
    assert fresh["pay_result"]["transaction_id"] == paid["transaction_id"]


def test_pay_errors_map_to_statuses(srv):
    r = get(srv, f"/api/{USER}/pay", params={"id": "nosuchorder", "openid": "x"})
    assert r.status_code == 404 and r.json()["ok"] is False
    r = get(srv, f"/api/{USER}/pay", params={"openid": "x"})        # no id at all
    assert r.status_code == 400


def test_fifty_concurrent_duplicate_notifications_make_one_transition(srv):
    served.check_fifty_concurrent_duplicates(srv, wait=60)


# ---- routing ---------------------------------------------------------------------------
def test_any_routing(srv):
    assert get(srv, f"/api/{USER}/u/42").text == "user 42\n"
    assert get(srv, f"/api/{USER}/u/42/info").text == "info 42\n"
    assert get(srv, f"/api/{USER}/files/a/b/c.txt").text == "file a/b/c.txt\n"
    assert get(srv, f"/api/{USER}/files/%E4%B8%AD%20x").text == "file 中 x\n"
    assert get(srv, f"/api/{USER}/u/42/nope").status_code == 404
    assert get(srv, f"/api/{USER}/nope").status_code == 404
    assert get(srv, "/api/nobody/echo").status_code == 404


@pytest.mark.parametrize("path", [
    "/api/demo/%2e%2e/%2e%2e/demo/echo", "/api/demo/u/%00", "/api/demo/u/a%0Ab",
    "/api/%2e%2e/demo/echo", "/api/demo/files/..%2F..%2Fx", "/api/demo//echo",
])
def test_hostile_paths_refused(srv, path):
    r = srv.http.get(srv.base + path, timeout=10)
    assert r.status_code in (400, 404)
    assert "Traceback" not in r.text


# ---- responses -------------------------------------------------------------------------
def test_content_types_and_headers(srv):
    r = get(srv, f"/api/{USER}/echo", params={"x": "hi"})
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    r = get(srv, f"/api/{USER}/json")
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-store" and r.json() == {"a": 1}
    # the API's own type wins: ?mime= only for APIs that opt in (tests/e2e/test_request_path.py)
    r = get(srv, f"/api/{USER}/json", params={"mime": "text/plain"})
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    r = get(srv, f"/api/{USER}/missing")
    assert r.status_code == 404 and r.json()["errCode"] == "e.io.obj.noexists"


def test_redirects(srv):
    r = get(srv, f"/api/{USER}/go", params={"to": "https://example.com/next?a=1"})
    assert r.status_code == 302 and r.headers["Location"] == "https://example.com/next?a=1"
    r = get(srv, f"/api/{USER}/moved")
    assert r.status_code == 301 and r.headers["Location"] == "/api/demo/json"
    r = get(srv, f"/api/{USER}/go", params={"to": "//evil.example"})
    assert r.status_code == 500 and "Location" not in r.headers


def test_request_body_through_request_object(srv):
    before = tmp_count(srv)
    r = srv.http.post(srv.base + f"/api/{USER}/body", data="hello 体".encode(), timeout=10)
    assert r.status_code == 200 and r.content == "hello 体".encode()
    assert tmp_count(srv) == before              # held in memory by the request's session
    get(srv, f"/api/{USER}/echo", params={"x": "1"})
    assert tmp_count(srv) == before              # echo wrote nothing


# ---- injection -------------------------------------------------------------------------
CANARY = f"/home/{USER}/canary"
CORPUS = [
    "; touch ~/canary", "| touch ~/canary", "&& touch ~/canary", "|| touch ~/canary",
    "`touch ~/canary`", "$(touch ~/canary)", "${touch ~/canary}", "$<x>", "${HOME}",
    "x\ntouch ~/canary", "x\r\ntouch ~/canary", "'; touch ~/canary; '",
    '"; touch ~/canary; "', "\\; touch ~/canary", "> ~/canary", "< /etc/passwd",
    "2>&1 touch ~/canary", "-n", "-e \\x41", "-h", "--help", "# comment", "*", "~",
    "a b  c", "  ", "", "touch ~/canary #", "$(", "`", "${", "\\",
]


@pytest.mark.parametrize("value", CORPUS)
def test_injection_in_query_is_inert(srv, value):
    r = get(srv, f"/api/{USER}/echo", params={"x": value})
    assert r.status_code == 200
    assert r.text == value + "\n"
    assert srv.store.fetch(CANARY) is None


@pytest.mark.parametrize("value", [v for v in CORPUS if "\n" not in v and "\r" not in v
                                   and v == v.strip() and v])
def test_injection_in_headers_is_inert(srv, value):
    r = get(srv, f"/api/{USER}/hdr", headers={"X-In": value})
    assert r.status_code == 200
    assert r.text == value + "\n"
    assert srv.store.fetch(CANARY) is None


@pytest.mark.parametrize("value", [v for v in CORPUS if not set(v) & set(';\n\r"\\ ,')])
def test_injection_in_cookies_is_inert(srv, value):
    r = get(srv, f"/api/{USER}/cookie", headers={"Cookie": f"c={value}"})
    assert r.status_code == 200
    assert r.text == value + "\n"
    assert srv.store.fetch(CANARY) is None


def test_option_injection_into_weixin_is_inert(srv):
    order, openid = new_order(srv, "optinj")
    for value in ["-openid", "-client_ip", "-result", "-submit x"]:
        r = get(srv, f"/api/{USER}/pay", params={"id": value, "openid": openid})
        assert r.status_code in (400, 404), r.text
    assert srv.store.get(order["id"]).get("pay_seq") is None


# ---- hostile bodies ----------------------------------------------------------------------
XXE = (b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b'<xml><return_code>&xxe;</return_code></xml>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']><xml><return_code>&lol9;</return_code></xml>')


@pytest.mark.parametrize("body,status", [(XXE, 400), (LAUGHS, 400),
                                         (b"<xml>" + b"A" * (10 << 20) + b"</xml>", 413)])
def test_hostile_bodies_change_nothing(srv, body, status):
    order, openid = new_order(srv, f"hostile{status}{len(body)}")
    before_order, before_tmp = srv.store.get(order["id"]), tmp_count(srv)
    try:
        r = srv.http.post(srv.base + f"/api/{USER}/payresult", data=body, timeout=30,
                          headers={"Content-Type": "text/xml"})
        assert r.status_code == status
    except requests.ConnectionError:
        assert status == 413     # a server may close on an oversized body
    assert srv.store.get(order["id"]) == before_order
    assert tmp_count(srv) == before_tmp


def test_forged_notification_gets_fail_and_changes_nothing(srv):
    order, openid = new_order(srv, "forged")
    fields = {"return_code": "SUCCESS", "appid": srv.appid, "mch_id": srv.mch_id,
              "nonce_str": "n1", "result_code": "SUCCESS", "openid": openid,
              "trade_type": "JSAPI", "bank_type": "OTHERS", "total_fee": "888",
              "cash_fee": "888", "transaction_id": "4200000000000000000000000001",
              "out_trade_no": f"{order['id']}_1", "time_end": "20260101000000"}
    fields["sign"] = wxsign(fields, "0" * 32, "MD5")           # wrong key
    r = srv.http.post(srv.base + f"/api/{USER}/payresult", data=to_xml(fields).encode(),
                      timeout=10)
    assert r.status_code == 200 and "FAIL" in r.text        # WeChat reads the body
    assert srv.store.get(order["id"])["or_status"] == 0


# ---- reload ------------------------------------------------------------------------------
def test_sighup_resyncs_the_folder(srv):
    assert get(srv, f"/api/{USER}/reloadme").text == "v1\n"
    (srv.apis / "reloadme").write_text("echo v2\n")
    (srv.apis / "added").write_text("echo added\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if get(srv, f"/api/{USER}/reloadme").text == "v2\n" and \
                    get(srv, f"/api/{USER}/added").status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    assert get(srv, f"/api/{USER}/reloadme").text == "v2\n"
    assert get(srv, f"/api/{USER}/added").text == "added\n"
    # the server is still healthy for everything else
    assert get(srv, f"/api/{USER}/echo", params={"x": "after"}).text == "after\n"


def test_access_log_has_no_query_values(srv):
    get(srv, f"/api/{USER}/echo", params={"x": "SECRET-VALUE-123"})
    deadline = time.time() + 5                  # the access log is flushed 4 times a second
    while "GET /api/demo/echo 200" not in srv.log.read_text(errors="replace") \
            and time.time() < deadline:
        time.sleep(0.05)
    log = srv.log.read_text(encoding="utf-8", errors="replace")
    assert "GET /api/demo/echo 200" in log
    assert "SECRET-VALUE-123" not in log
    assert "Traceback" not in log


def test_server_environment_never_passes_for_request_headers(tmp_path):
    """granian copies the server's own environment into every WSGI environ: an
    HTTP_PROXY there must never read as a request's Proxy header ("httpoxy"), while a
    header the request does send (with another value) is the request's."""
    import json
    import os

    from objstore import open_store
    url = f"sqlite://{tmp_path / 's.db'}"
    st = open_store(url)
    st.create(f"/home/{USER}/.regapi/api/meta", "FILE",
              {"http-header-Content-Type": "application/json"}, parents=True,
              content=b"obj id:${id}")
    st.close()
    s = served.bare(tmp_path, url)
    env = dict(os.environ, HTTP_PROXY="http://evil.example:3128", HTTP_X_SRV="server")
    served.spawn(s, ("--workers", "1", "--no-access-log"), 30, env=env)
    try:
        r = s.http.post(s.base + f"/api/{USER}/meta", data=b"x", timeout=10)
        meta = json.loads(r.text)
        assert r.status_code == 200 and meta["http-header-HOST"]
        assert not [k for k in meta if k in ("http-header-PROXY", "http-header-X-SRV")]
        r = s.http.post(s.base + f"/api/{USER}/meta", data=b"x", timeout=10,
                        headers={"Proxy": "mine", "X-Srv": "client", "X-Other": "o"})
        meta = json.loads(r.text)
        assert (meta["http-header-PROXY"], meta["http-header-X-SRV"],
                meta["http-header-X-OTHER"]) == ("mine", "client", "o")
    finally:
        served.stop(s)


# ---- where the workers run (--pin-workers) --------------------------------------------
@pytest.mark.parametrize("workers,pin,usable,plan", [
    (2, "auto", {0, 1}, [0, 1]),
    (2, "auto", {3, 5}, [3, 5]),            # the CPUs this process may use, in order
    (1, "auto", {0, 1}, []),                # fewer workers than CPUs: the kernel places
    (3, "auto", {0, 1}, []),                # more workers than CPUs: likewise
    (1, "auto", {0}, []),                   # one worker on one CPU: nothing to choose
    (3, "on", {0, 1}, [0, 1, 0]),
    (1, "on", {4}, [4]),
    (2, "off", {0, 1}, []),
    (2, "on", set(), []),                   # nothing known about the CPUs
])
def test_cpu_plan(workers, pin, usable, plan):
    from regapi.server import cpu_plan
    assert cpu_plan(workers, pin, usable) == plan


def test_cpu_plan_refuses_an_unknown_mode():
    from objstore.errors import BAD_INPUT, WnError
    from regapi.server import cpu_plan
    with pytest.raises(WnError) as ei:
        cpu_plan(2, "always", {0, 1})
    assert ei.value.kind == BAD_INPUT and "\n" not in ei.value.line()


def _workers(s):
    """{worker pid: the CPUs each of its threads may use} of a served process."""
    import os
    own = open(f"/proc/{s.proc.pid}/cmdline", "rb").read()
    kids = []
    for task in os.listdir(f"/proc/{s.proc.pid}/task"):
        kids += [int(x) for x in open(f"/proc/{s.proc.pid}/task/{task}/children").read().split()]
    out = {}
    for pid in sorted(kids):
        try:
            if open(f"/proc/{pid}/cmdline", "rb").read() != own:
                continue            # the sweeper, not a worker
            out[pid] = {frozenset(os.sched_getaffinity(int(t)))
                        for t in os.listdir(f"/proc/{pid}/task")}
        except OSError:             # a worker that has just ended (a respawn)
            continue
    return out


def test_pinned_workers_keep_their_cpu_across_threads_and_respawns(tmp_path):
    """``--pin-workers on``: every thread of worker i (the runtime's and the request
    threads made later) runs on the i-th usable CPU only, and so do the workers a SIGHUP
    respawns; ``off`` leaves them on every CPU this process may use."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from objstore import open_store
    usable = sorted(os.sched_getaffinity(0))
    url = f"sqlite://{tmp_path / 's.db'}"
    st = open_store(url)
    st.create(f"/home/{USER}/.regapi/api/echo", "FILE", parents=True, content=b"echo hi")
    st.close()
    s = served.bare(tmp_path, url)
    served.spawn(s, ("--workers", "2", "--pin-workers", "on", "--no-access-log"), 30)
    try:
        with ThreadPoolExecutor(16) as pool:     # request threads made after the start
            assert set(pool.map(lambda _: requests.get(s.base + f"/api/{USER}/echo",
                                                       timeout=10).status_code,
                                range(200))) == {200}
        want = [frozenset({usable[i % len(usable)]}) for i in range(2)]
        first = _workers(s)
        assert [threads for threads in first.values()] == [{w} for w in want], first
        assert max(len(os.listdir(f"/proc/{p}/task")) for p in first) > 2
        text = s.log.read_text()
        assert f"2 workers, on CPU{'s' if len(usable) > 1 else ''} " \
               f"{', '.join(str(usable[i % len(usable)]) for i in range(2))}," in text
        s.proc.send_signal(signal.SIGHUP)           # the workers are respawned
        served.wait_for(lambda: len(set(_workers(s)) - set(first)) == 2, 30)
        served.wait_for(lambda: not set(_workers(s)) & set(first), 30)
        assert list(_workers(s).values()) == [{w} for w in want]
        assert requests.get(s.base + f"/api/{USER}/echo", timeout=10).text == "hi\n"
    finally:
        served.stop(s)
    s = served.bare(tmp_path, url)
    served.spawn(s, ("--workers", "2", "--pin-workers", "off", "--no-access-log"), 30)
    try:
        assert list(_workers(s).values()) == [{frozenset(usable)}] * 2
        assert "on CPU" not in s.log.read_text()
    finally:
        served.stop(s)
