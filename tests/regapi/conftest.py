"""A small WSGI driver: build a real environ (as a server would) and call the app."""
import io
from urllib.parse import quote

import pytest

from objstore import open_store
from regapi.app import RegApiApp


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = dict(headers)
        self.header_list = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")


def call(app, method, path, query="", headers=None, body=b"", raw_path=False,
         remote="127.0.0.1"):
    """``path`` is the decoded path (PEP 3333: latin-1 code points of the raw bytes)."""
    if not raw_path:
        path = path.encode("utf-8").decode("latin-1")
    env = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote, "REMOTE_PORT": "50000", "SCRIPT_NAME": "",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "HTTP_HOST": "127.0.0.1:8080",
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    for k, v in (headers or {}).items():
        if k.lower() == "content-type":
            env["CONTENT_TYPE"] = v
        elif k.lower() == "content-length":
            env["CONTENT_LENGTH"] = v
        else:
            env["HTTP_" + k.upper().replace("-", "_")] = v.encode("utf-8").decode("latin-1")
    seen = {}

    def start_response(status, hdrs, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), hdrs

    out = b"".join(app(env, start_response))
    return Resp(seen["status"], seen["headers"], out)


def qs(**kw):
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in kw.items())


@pytest.fixture()
def store():
    s = open_store("memory://")
    yield s
    s.close()


@pytest.fixture()
def app(store):
    return RegApiApp(store, route_ttl=0, deadline=5)


def put_api(store, user, rel, template, **meta):
    ph = f"/home/{user}/.regapi/api/{rel}"
    cur = store.fetch(ph)
    if cur is not None:
        store.delete(cur["id"], recursive=True)
    return store.create(ph, "FILE", meta, parents=True, content=template.encode("utf-8"))
