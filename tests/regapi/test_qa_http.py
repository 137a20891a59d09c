"""QA of the HTTP layer through the WSGI app: what hostile or odd requests and API
metadata must never produce."""
import pytest

from .conftest import call, put_api, qs


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
