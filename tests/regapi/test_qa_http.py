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


@pytest.mark.parametrize("query,body,code,key", [
    ("x=%FF", b"", 400, "e.regapi.req.badquery"),
    ("&".join(f"p{i}=1" for i in range(300)), b"", 400, "e.regapi.req.badquery"),
    ("", b"x" * 2000, 413, "e.regapi.req.toolarge"),
])
def test_request_errors_of_a_json_api_are_json(store, query, body, code, key):
    # the template's own errors came as JSON, but a bad query string or an oversized
    # body of the same API was answered in text/plain: a JSON client could not parse it
    from regapi.app import RegApiApp
    app = RegApiApp(store, route_ttl=0, deadline=5, max_body=1000)
    put_api(store, "demo", "j", "cat id:${id}", **{"http-header-Content-Type": "application/json"})
    r = call(app, "POST", "/api/demo/j", query, body=body)
    assert r.status == code
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    import json
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
    assert store.fetch("/home/demo/.regapi/tmp") is None or \
        store.children(store.fetch("/home/demo/.regapi/tmp")["id"]) == []


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
    import io

    from regapi.app import BufferedAccessLog, RegApiApp
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
