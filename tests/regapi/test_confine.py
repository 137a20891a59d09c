"""A ``.regapi`` request of user demo can read, change or create nothing outside
/home/demo, whatever values it carries (paths, ``id:`` forms, bare ids, queries,
redirection targets), while the seed's pay flow keeps working.  Most such values are
refused even before confinement is asked: a request value that starts a path (``/``,
``~``, ``id:``) or holds a ``..`` segment is a 400 ``e.io.path.escape``
(wnshell.provenance); the rest (bare ids, ``id:${value}``, queries) meet the confined
view, which answers as if the outside did not exist.

Over real HTTP: the WSGI app (``regapi.app.RegApiApp``, the one ``wnshell serve`` runs)
behind a threaded loopback server in this process, a SQLite store, and the WeChat Pay
simulator (its notifications come back over HTTP too).
"""
from __future__ import annotations

import json
import secrets
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from objstore import open_store
from regapi.app import RegApiApp
from regapi.demo import PAY_API, PAYRESULT_API, WXCONF
from wxpay.sign import sign as wxsign
from wxpay.simulator import Simulator
from wxpay.xmlcodec import to_xml

USER, OTHER = "demo", "other"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass


APIS = {
    "pay": (PAY_API, {"http-header-Content-Type": "application/json"}),
    "payresult": (PAYRESULT_API, {"http-header-Content-Type": "text/xml"}),
    "cat": ("cat id:${http-qs-x}\n", None),
    "catp": ("cat ${http-qs-p}\n", None),
    "show": ("obj ${http-qs-p}\n", {"http-header-Content-Type": "application/json"}),
    "find": ("obj -match ${http-qs-q}\n", {"http-header-Content-Type": "application/json"}),
    "findin": ("obj ${http-qs-p} -match ${http-qs-q}\n",
               {"http-header-Content-Type": "application/json"}),
    "upd": ("obj id:${http-qs-x} -u ${http-qs-u}\n", None),
    "put": ("echo ${http-qs-v} > ${http-qs-p}\n", None),
    "add": ("echo ${http-qs-v} >> ${http-qs-p}\n", None),
    "rm": ("rm -r ${http-qs-p}\n", None),
    "mv": ("mv ${http-qs-a} ${http-qs-b}\n", None),
    "mk": ("mkdir -p ${http-qs-p}\n", None),
    "ls": ("ls ${http-qs-p}\n", None),
    # the same operations below a path the template wrote
    "mkn": ("mkdir -p ~/${http-qs-n}\n", None),
    "putn": ("echo ${http-qs-v} > ~/notes/${http-qs-n}\n", None),
    "catn": ("cat ~/notes/${http-qs-n}\n", None),
}


def escapes(value: str) -> bool:
    """A request value that does more than add names (see wnshell.provenance)."""
    return value.startswith(("/", "~", "id:")) or ".." in value.split("/")


def refused(value: str, status: int) -> int:
    """The status a request with ``value`` as a whole path gets: 400 when the value
    escapes, else what confinement answers (``status``)."""
    return 400 if escapes(value) else status


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("confine")
    s = type("Served", (), {})()
    s.store = open_store(f"sqlite://{tmp / 'store.db'}")
    s.appid, s.mch_id, s.key = "wx" + secrets.token_hex(8), "1900000123", secrets.token_hex(16)
    s.sim = Simulator(merchants=[(s.appid, s.mch_id, s.key)]).start()
    s.httpd = make_server("127.0.0.1", 0, RegApiApp(s.store, route_ttl=0, deadline=20),
                          server_class=_Server, handler_class=_Quiet)
    s.base = f"http://127.0.0.1:{s.httpd.server_port}"
    threading.Thread(target=s.httpd.serve_forever, daemon=True).start()
    # both users have the same merchant account and the same APIs
    for user in (USER, OTHER):
        s.store.create(f"/home/{user}/.weixin/xxx/wxconf", "FILE", parents=True,
                       content=WXCONF.format(appid=s.appid, appsecret=secrets.token_hex(16),
                                             mch_id=s.mch_id, pay_key=s.key,
                                             notify_url=f"{s.base}/api/{user}/payresult",
                                             api_base=s.sim.url).encode())
        for rel, (text, meta) in APIS.items():
            s.store.create(f"/home/{user}/.regapi/api/{rel}", "FILE", meta, parents=True,
                           content=text.encode())
    # the victim: another user's order (already sent to WeChat once) and a secret
    s.victim_openid = "o" + secrets.token_hex(8)
    s.victim = s.store.create(f"/home/{OTHER}/orders/x1", "FILE",
                              {"openid": s.victim_openid, "total_fee": 888, "or_status": 0,
                               "pay_seq": 1, "title": "victim"}, parents=True)
    s.secret = s.store.create(f"/home/{OTHER}/secret.txt", "FILE", {"mark": "victim-meta"},
                              content=b"TOP-SECRET-CONTENT")
    s.http = requests.Session()
    s.http.trust_env = False
    yield s
    s.http.close()
    s.httpd.shutdown()
    s.httpd.server_close()
    s.sim.stop()
    s.store.close()


def get(s, user, api, **params):
    return s.http.get(f"{s.base}/api/{user}/{api}", params=params, timeout=20,
                      allow_redirects=False)


def snapshot(s, root=f"/home/{OTHER}"):
    """Every object below ``root`` (metadata and content), and the rest of the tree's
    paths outside /home/demo."""
    objs = s.store.query({"ph": "^" + root + "(/|$)"})
    out = {o["ph"]: (dict(o), s.store.read(o["id"]) if o["race"] == "FILE" else None)
           for o in objs}
    outside = sorted(o["ph"] for o in s.store.query({})
                     if not (o["ph"] + "/").startswith(f"/home/{USER}/"))
    return out, outside


# what only the other user's objects hold (error lines may echo the caller's own input,
# such as the path asked for; never anything read from another user's objects)
LEAKS = ("TOP-SECRET-CONTENT", "victim-meta", '"victim"')


def assert_no_leak(r):
    for word in LEAKS:
        assert word not in r.text, (word, r.status_code, r.text)


# ---- the seed's flow still works ----------------------------------------------------------
def test_seed_flow_still_works(srv):
    openid = "o" + secrets.token_hex(8)
    order = srv.store.create(f"/home/{USER}/orders/flow", "FILE",
                             {"openid": openid, "total_fee": 888, "or_status": 0},
                             parents=True)
    for ref in (f"id:{order['id']}", "~/orders/flow", f"/home/{USER}/orders/flow"):
        r = get(srv, USER, "pay", id=ref, openid=openid)      # the value starts a path
        assert r.status_code == 400 and "a request value may not start" in r.json()["msg"]
    r = get(srv, USER, "pay", id=order["id"], openid=openid)
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["appId"] == srv.appid and js["package"].startswith("prepay_id=")
    paid = srv.http.post(srv.sim.url + "/sim/pay", json={"prepay_id": js["package"][10:]},
                         timeout=10).json()
    snap = srv.sim.wait_notified(paid["out_trade_no"], timeout=15)
    assert snap["notify"]["status"] == "delivered"
    fresh = srv.store.get(order["id"])
    assert fresh["or_status"] == 2 and fresh["pay_result"]["transaction_id"] == \
        paid["transaction_id"]
    # reads and writes inside the user's own tree work (the API tree is hidden)
    assert get(srv, USER, "cat", x=srv.store.fetch(f"/home/{USER}/.regapi/api/cat")["id"]
               ).status_code == 404
    assert get(srv, USER, "cat", x=order["id"]).status_code == 200
    # "> path" creates missing folders (as Walnut does), inside the user's tree only
    assert get(srv, USER, "putn", v="hi", n="n1").status_code == 200
    assert srv.store.fetch(f"/home/{USER}/notes")["race"] == "DIR"
    assert get(srv, USER, "mkn", n="notes").status_code == 200
    assert get(srv, USER, "catn", n="n1").text == "hi\n"
    found = get(srv, USER, "find", q='{"nm": "n1"}').json()
    assert [o["ph"] for o in found] == [f"/home/{USER}/notes/n1"]


# ---- another user's order through the seed's own pay API ------------------------------------
@pytest.mark.parametrize("ref", ["/home/other/orders/x1", "id:{id}", "{id}",
                                 "~/../other/orders/x1", "id:{home}/../other/orders/x1",
                                 "../other/orders/x1"])
def test_pay_api_cannot_reach_another_users_order(srv, ref):
    home = srv.store.fetch(f"/home/{USER}")["id"]
    ref = ref.format(id=srv.victim["id"], home=home)
    before = snapshot(srv)
    sim_before = len(srv.sim.orders) if hasattr(srv.sim, "orders") else None
    r = get(srv, USER, "pay", id=ref, openid=srv.victim_openid)
    assert r.status_code == refused(ref, 404), r.text
    assert r.json()["errCode"] == "e.cmd.weixin.order.noexists"
    assert_no_leak(r)
    assert snapshot(srv) == before
    if sim_before is not None:
        assert len(srv.sim.orders) == sim_before


def test_notification_for_another_users_order_changes_nothing(srv):
    """A correctly signed notification naming the other user's order, sent to demo's
    payresult API: demo's session cannot see that order, so WeChat gets FAIL."""
    before = snapshot(srv)
    fields = {"return_code": "SUCCESS", "appid": srv.appid, "mch_id": srv.mch_id,
              "nonce_str": "n1", "result_code": "SUCCESS", "openid": srv.victim_openid,
              "trade_type": "JSAPI", "bank_type": "OTHERS", "total_fee": "888",
              "cash_fee": "888", "transaction_id": "4200000000000000000000000042",
              "out_trade_no": f"{srv.victim['id']}_1", "time_end": "20260101000000"}
    fields["sign"] = wxsign(fields, srv.key, "MD5")
    r = srv.http.post(f"{srv.base}/api/{USER}/payresult", data=to_xml(fields).encode(),
                      timeout=10)
    assert r.status_code == 200 and "FAIL" in r.text and "unknown order" in r.text
    assert snapshot(srv) == before
    assert srv.store.get(srv.victim["id"])["or_status"] == 0


# ---- generic templates: no read, no write, no listing outside ---------------------------------
def test_cat_by_id_of_another_users_object_is_not_found(srv):
    r = get(srv, USER, "cat", x=srv.secret["id"])
    assert r.status_code == 404 and r.text.startswith("e.io.obj.noexists")
    assert_no_leak(r)
    # exactly the answer for an id that does not exist at all
    r2 = get(srv, USER, "cat", x="zzzzzzzzzzzzzzzzzzzzzzzzzz")
    assert r2.status_code == 404 and r2.text.split(" : ")[0] == r.text.split(" : ")[0]
    # ``id:ID/..`` forms climbing out of an inside anchor
    api = srv.store.fetch(f"/home/{USER}/.regapi/api/cat")["id"]
    r = get(srv, USER, "cat", x=f"{api}/../../../../other/secret.txt")
    assert r.status_code == 400 and r.text.startswith("e.io.path.escape")
    assert_no_leak(r)


@pytest.mark.parametrize("path", ["/home/other/secret.txt", "~/../other/secret.txt",
                                  "../other/secret.txt", f"id:{{id}}", "/home/other",
                                  "/home", "/"])
def test_paths_outside_read_as_missing(srv, path):
    path = path.format(id=srv.secret["id"])
    for api in ("catp", "show", "ls"):
        r = get(srv, USER, api, p=path)
        assert r.status_code == refused(path, 404), (api, path, r.status_code, r.text)
        assert_no_leak(r)


@pytest.mark.parametrize("q", ['{}', '{"nm": "secret.txt"}', '{"mark": "victim-meta"}',
                               '{"ph": "^/home/other"}', '{"d1": "other"}',
                               '[{"d1": "other"}, {"id": "ID"}]', '{"openid": "OPENID"}',
                               '{"d0": "home", "title": "victim"}'])
def test_queries_only_see_the_users_tree(srv, q):
    q = q.replace("ID", srv.victim["id"]).replace("OPENID", srv.victim_openid)
    r = get(srv, USER, "find", q=q)
    assert r.status_code == 200, r.text
    assert all(o["ph"].startswith(f"/home/{USER}") for o in r.json())
    assert_no_leak(r)
    # a PATH scope outside is a missing object
    r = get(srv, USER, "findin", p="/home/other", q=q)
    assert r.status_code == 400
    assert_no_leak(r)


def test_writes_outside_are_refused_and_change_nothing(srv):
    before = snapshot(srv)
    vid, sid = srv.victim["id"], srv.secret["id"]
    cases = [
        ("upd", {"x": vid, "u": '{"or_status": 2}'}, 404),
        ("upd", {"x": sid, "u": '{"mark": "pwned"}'}, 404),
        ("put", {"v": "pwned", "p": "/home/other/secret.txt"}, 403),
        ("put", {"v": "pwned", "p": f"id:{sid}"}, 404),
        ("put", {"v": "pwned", "p": "/home/other/planted"}, 403),
        ("put", {"v": "pwned", "p": "~/../other/planted"}, 403),
        ("put", {"v": "pwned", "p": "/tmp/planted"}, 403),
        ("add", {"v": "pwned", "p": "/home/other/secret.txt"}, 403),
        ("add", {"v": "pwned", "p": f"id:{sid}"}, 404),
        ("rm", {"p": "/home/other/secret.txt"}, 404),
        ("rm", {"p": f"id:{vid}"}, 404),
        ("rm", {"p": "/home/other"}, 404),
        ("mk", {"p": "/home/other/planted/deep"}, 403),
        ("mk", {"p": "/home/demo2"}, 403),
        ("mv", {"a": "/home/other/secret.txt", "b": "~/stolen.txt"}, 404),
        ("mv", {"a": f"id:{sid}", "b": "~/stolen.txt"}, 404),
    ]
    for api, params, status in cases:
        r = get(srv, USER, api, **params)
        if any(k in params for k in ("p", "a")):
            status = refused(params.get("p") or params.get("a"), status)
        assert r.status_code == status, (api, params, r.status_code, r.text)
        assert_no_leak(r)
    assert snapshot(srv) == before
    assert srv.store.fetch(f"/home/{USER}/stolen.txt") is None


def test_moving_own_objects_out_is_refused(srv):
    srv.store.create(f"/home/{USER}/box/f", "FILE", parents=True, content=b"mine")
    before = snapshot(srv)
    # mv looks up the target's directory first: outside, it does not exist for demo
    # (the same answer as for a directory that really is missing)
    for target, status in (("/home/other/f", 404), ("/tmp/f", 404), ("~/../demo2", 404),
                           ("/home/other/", 404), ("/home/other/orders", 404)):
        r = get(srv, USER, "mv", a="~/box/f", b=target)
        assert r.status_code == refused("~/box/f", status), (target, r.text)
    assert snapshot(srv) == before
    assert srv.store.fetch(f"/home/{USER}/box/f") is not None


def test_the_other_user_still_reads_its_own(srv):
    """Confinement is per user, not a blanket refusal: other's APIs see other's tree."""
    r = get(srv, OTHER, "cat", x=srv.secret["id"])
    assert r.status_code == 200 and r.text == "TOP-SECRET-CONTENT"
    r = get(srv, OTHER, "find", q=json.dumps({"mark": "victim-meta"}))
    assert [o["ph"] for o in r.json()] == [f"/home/{OTHER}/secret.txt"]


# ---- weixin order -submit/-query: the object must be an order --------------------------------
@pytest.mark.parametrize("ref", ["~/.weixin/xxx/wxconf", "~/.regapi/api/pay", "~/.weixin",
                                 "~"])
def test_pay_api_refuses_objects_that_are_not_orders(srv, ref):
    obj = srv.store.fetch(ref.replace("~", f"/home/{USER}", 1))
    before = srv.store.get(obj["id"])
    for value in (ref, f"id:{obj['id']}"):      # a request value may not start a path
        r = get(srv, USER, "pay", id=value, openid="x")
        assert r.status_code == 400, r.text
        assert "a request value may not start" in r.json()["msg"]
    r = get(srv, USER, "pay", id=obj["id"], openid="x")
    body = r.json()
    if ref == "~":          # the home itself: visible, and not an order
        assert r.status_code == 400, r.text
        assert body["errCode"] == "e.cmd.weixin.order.invalid"
        assert "is not an order" in body["msg"] and "\n" not in body["msg"]
    else:                   # the account and API trees are hidden from a request
        assert r.status_code == 404, r.text
        assert body["errCode"] == "e.cmd.weixin.order.noexists"
    assert srv.store.get(obj["id"]) == before


def test_order_query_refuses_objects_that_are_not_orders(srv):
    from wnshell.session import Session
    sh = Session(srv.store, user=USER, confine=True)
    status, out, err = sh.run("weixin xxx order -query ~/.weixin/xxx/wxconf")
    assert status == 1 and out == ""
    assert err.startswith("e.cmd.weixin.order.invalid : ") and err.count("\n") == 1
    status, out, err = sh.run("weixin xxx order -query ~/no/such/order")
    assert status == 1 and err.startswith("e.cmd.weixin.order.noexists")
    assert sh.last_error.kind == "not_found"
