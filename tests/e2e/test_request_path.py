"""The request path as an attacker sees it, through ``wnshell serve`` in a subprocess:
no active content chosen by the query, no request value that climbs out of the path the
template wrote, request objects private to their request, the security metadata keys
(``api-access-token``, ``http-cross-origin``), and the small holes (``_ANY`` literals,
absurd Content-Length, ReDoS).  One server for the module (see tests/e2e/served.py)."""
import http.client
import json
import os
import socket
import threading
import time

import pytest

from regapi.demo import PAY_API, PAYRESULT_API
from tests.e2e import served
from tests.e2e.served import get

USER = served.USER
HOME = f"/home/{USER}"
WXCONF = f"{HOME}/.weixin/xxx/wxconf"
JSON = {"http-header-Content-Type": "application/json"}

APIS = {
    "pay": (PAY_API, JSON),
    "payresult.regapi": (PAYRESULT_API, {"http-header-Content-Type": "text/xml"}),
    # reflected values: the API's own type, a query mime only when opted in
    "demo/echo": ("echo ${http-qs-x}\n", JSON),
    "demo/pick": ("echo ${http-qs-x}\n", dict(JSON, **{"regapi-qs-mime": True})),
}


def _write_dir(root):
    for rel, (text, meta) in APIS.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        if meta:
            (root / (rel + ".meta.json")).write_text(json.dumps(meta), encoding="utf-8")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reqpath")
    apis = tmp / "apis"
    _write_dir(apis)
    s = served.start(tmp, f"sqlite://{tmp / 'store.db'}", apis, mch_id="1900000456")
    yield s
    assert served.stop(s) == 0


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
