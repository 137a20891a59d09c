"""``httpc``: a small HTTP client command (walnut.md §4).

    httpc [METHOD] URL [-h] [-H] [-r] @header K=V ... @query K=V ... @body TEXT
          @timeout SECONDS

One module-level pooled ``requests.Session`` serves every call (keep-alive to the same
host is reused across commands and threads).  Errors are one ``WnError`` line; request
bodies and headers are never echoed to stderr.
"""
from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from objstore.errors import BAD_INPUT, TIMEOUT, UPSTREAM, WnError
from wnshell.command import Command
from wxpay.httpread import body_chunks

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
MAX_TIMEOUT = 600.0
MAX_BODY = 16 * 1024 * 1024          # bytes of response body we accept
_AT_OPTIONS = ("@header", "@body", "@query", "@timeout")

_session_lock = threading.Lock()
_session: requests.Session | None = None


def http_session() -> requests.Session:
    """The shared, pooled session (created on first use)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                s = requests.Session()
                # proxies/.netrc from the environment must not reroute or add
                # credentials to calls the template author wrote explicitly
                s.trust_env = False
                adapter = HTTPAdapter(pool_connections=16, pool_maxsize=64)
                s.mount("http://", adapter)
                s.mount("https://", adapter)
                _session = s
    return _session


def _usage(reason: str) -> Exception:
    try:
        from wnshell.errors import UsageError
        return UsageError("e.httpc.usage", reason)
    except ImportError:  # pragma: no cover - the shell package always has it
        return WnError("e.httpc.usage", reason, BAD_INPUT)


def _kv(text: str, what: str) -> tuple[str, str]:
    """``K=V`` (or ``K:V`` for headers) -> (K, V)."""
    seps = ("=", ":") if what == "@header" else ("=",)
    cut = min((text.find(s) for s in seps if s in text), default=-1)
    if cut <= 0:
        raise _usage(f"{what} needs K=V")
    key, value = text[:cut].strip(), text[cut + 1:]
    if what == "@header":
        value = value.strip()
        if any(c in key + value for c in "\r\n\0") or not key or " " in key:
            raise _usage("@header: invalid header name or value")
    return key, value


def _origin(url: str) -> str:
    """scheme://host[:port] -- what an error message may show of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _guess_type(body: bytes) -> str:
    head = body.lstrip()[:1]
    if head == b"<":
        return "text/xml; charset=utf-8"
    if head in (b"{", b"["):
        return "application/json; charset=utf-8"
    return "text/plain; charset=utf-8"


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            cs = value.strip().strip('"\'')
            try:
                "".encode(cs)
                return cs
            except LookupError:
                break
    return "utf-8"


class HttpcCommand(Command):
    name = "httpc"
    blocks = "deadline"             # waits on the network, never past session.remaining()
    summary = "send an HTTP request and print the reply"
    flags = "hHr"
    handles_help = True       # -h is our own flag; --help prints the man page
    options = {
        "-h": "print the status line and headers before the body",
        "-H": "print only the status line and headers",
        "-r": "follow redirects (default: do not)",
        "@header": "K=V  add a request header (repeatable)",
        "@query": "K=V  add a query parameter (repeatable)",
        "@body": "TEXT  the request body (default: piped stdin, if any)",
        "@timeout": "SECONDS  read timeout (default 10; connect timeout 5)",
    }
    man = """httpc - send an HTTP request and print the reply

USAGE
    httpc [METHOD] URL [-h] [-H] [-r] [@header K=V]... [@query K=V]...
          [@body TEXT] [@timeout SECONDS]

DESCRIPTION
    Sends one request to an http:// or https:// URL and prints the reply body
    on stdout as text (decoded with the reply's charset, else UTF-8).

    METHOD is GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS (any case). It
    defaults to POST when there is a body, else GET.

    The body is @body TEXT; without @body, text piped on stdin is the body:
        echo $XML | httpc POST https://api.mch.weixin.qq.com/pay/unifiedorder
    Without a Content-Type header the body is sent as text/xml when it starts
    with '<', application/json when it starts with '{' or '[', else text/plain
    (all charset=utf-8).

OPTIONS
    -h              print the status line and the reply headers, an empty
                    line, then the body
    -H              print only the status line and the reply headers
    -r              follow redirects (default: off; a 3xx reply is printed
                    as is and the status is 0)
    @header K=V     add a request header (K: V is accepted too); repeatable
    @query K=V      add a URL query parameter (URL-encoded); repeatable
    @body TEXT      the request body
    @timeout S      read timeout in seconds (default 10, max 600); the
                    connect timeout is 5 seconds (or S when smaller); the
                    whole reply must arrive within connect + read timeout
    --help          print this page

EXIT STATUS
    0   the server answered with a 1xx, 2xx or 3xx status
    1   the server answered with a 4xx or 5xx status: the reply body is still
        printed on stdout, and stderr gets one line
            e.httpc.status : HTTP 503 Service Unavailable from http://host:port
        (error kind upstream)
    1   no answer: e.httpc.connect (cannot connect, kind upstream),
        e.httpc.timeout (connect or read timeout, kind timeout),
        e.httpc.toolarge (reply body over 16 MiB, kind upstream)
    2   usage errors (bad URL, unknown option, non-http scheme)

    Request bodies and headers are never written to stderr; error lines show
    only the scheme, host and port of the URL.
"""

    # -- argument parsing -------------------------------------------------------
    def _parse(self, args: list[str]) -> dict:
        req = {"headers": [], "query": [], "body": None, "timeout": None,
               "show_head": False, "head_only": False, "follow": False, "help": False}
        positional: list[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            if a in _AT_OPTIONS:
                if i + 1 >= len(args):
                    raise _usage(f"{a} needs a value")
                value = args[i + 1]
                i += 2
                if a == "@header":
                    req["headers"].append(_kv(value, a))
                elif a == "@query":
                    req["query"].append(_kv(value, a))
                elif a == "@body":
                    req["body"] = value
                else:
                    try:
                        t = float(value)
                    except ValueError:
                        raise _usage("@timeout needs a number of seconds") from None
                    if not (0 < t <= MAX_TIMEOUT):
                        raise _usage(f"@timeout must be > 0 and <= {MAX_TIMEOUT:g}")
                    req["timeout"] = t
                continue
            if a == "--help":
                req["help"] = True
            elif a.startswith("-") and len(a) > 1 and not a.startswith("--"):
                for ch in a[1:]:
                    if ch == "h":
                        req["show_head"] = True
                    elif ch == "H":
                        req["head_only"] = True
                    elif ch == "r":
                        req["follow"] = True
                    else:
                        raise _usage(f"unknown option {a}")
            elif a.startswith("@") or a.startswith("--"):
                raise _usage(f"unknown option {a}")
            else:
                positional.append(a)
            i += 1
        if req["help"]:
            return req
        if len(positional) == 1:
            method, url = None, positional[0]
        elif len(positional) == 2 and positional[0].upper() in METHODS:
            method, url = positional[0].upper(), positional[1]
        elif not positional:
            raise _usage("no URL")
        else:
            raise _usage("expected [METHOD] URL")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise _usage("invalid URL") from None
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise _usage("only http:// and https:// URLs are supported")
        req["method"], req["url"] = method, url
        return req

    # -- running ------------------------------------------------------------------
    def run(self, session, args, stdin, stdout, stderr) -> int:
        req = self._parse(list(args))
        if req["help"]:
            stdout.write(self.man)
            return 0
        body = req["body"]
        if body is None and stdin is not None:
            isatty = getattr(stdin, "isatty", None)
            if not (isatty and isatty()):
                piped = stdin.read()
                if piped:
                    body = piped
        method = req["method"] or ("POST" if body is not None else "GET")
        headers = {k: v for k, v in req["headers"]}
        data = None
        if body is not None:
            data = body.encode("utf-8", "surrogatepass")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = _guess_type(data)
        read_t = req["timeout"] or READ_TIMEOUT
        timeout = (min(CONNECT_TIMEOUT, read_t), read_t)
        # @timeout bounds each read; a server that trickles its body must not hold the
        # command for ever: the whole reply has to arrive within connect + read timeout
        deadline = time.monotonic() + timeout[0] + timeout[1]
        left = session.remaining() if hasattr(session, "remaining") else None
        if left is not None:        # a request's deadline: never wait past it
            if left <= 0:
                raise WnError("e.httpc.timeout", "the request's deadline has passed",
                              TIMEOUT)
            read_t = min(read_t, left)
            timeout = (min(timeout[0], left), read_t)
            deadline = min(deadline, time.monotonic() + left)
        origin = _origin(req["url"])
        try:
            resp = http_session().request(
                method, req["url"], params=req["query"] or None, data=data,
                headers=headers, timeout=timeout, allow_redirects=req["follow"],
                stream=True)
        except requests.exceptions.Timeout:
            raise WnError("e.httpc.timeout", f"no reply within {read_t:g}s from {origin}",
                          TIMEOUT) from None
        except requests.exceptions.TooManyRedirects:
            raise WnError("e.httpc.redirects", f"too many redirects from {origin}",
                          UPSTREAM) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                ValueError):
            raise _usage("invalid URL or header") from None
        except requests.exceptions.RequestException:
            raise WnError("e.httpc.connect", f"cannot connect to {origin}",
                          UPSTREAM) from None
        try:
            raw = b""
            if not req["head_only"] and method != "HEAD":
                chunks, size = [], 0
                for chunk in body_chunks(resp, deadline):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise WnError("e.httpc.toolarge",
                                      f"reply body over {MAX_BODY} bytes from {origin}",
                                      UPSTREAM)
                    chunks.append(chunk)
                raw = b"".join(chunks)
        except requests.exceptions.Timeout:
            raise WnError("e.httpc.timeout", f"no reply within {read_t:g}s from {origin}",
                          TIMEOUT) from None
        except requests.exceptions.RequestException:
            raise WnError("e.httpc.connect", f"connection to {origin} broke",
                          UPSTREAM) from None
        finally:
            resp.close()
        out = []
        if req["show_head"] or req["head_only"]:
            version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(
                getattr(resp.raw, "version", 11), "HTTP/1.1")
            out.append(f"{version} {resp.status_code} {resp.reason or ''}".rstrip() + "\n")
            for k, v in resp.headers.items():
                out.append(f"{k}: {v}\n")
            if not req["head_only"]:
                out.append("\n")
        if not req["head_only"]:
            charset = _charset(resp.headers.get("Content-Type", ""))
            out.append(raw.decode(charset, "replace"))
        stdout.write("".join(out))
        if resp.status_code >= 400:
            status = f"HTTP {resp.status_code}" + (f" {resp.reason}" if resp.reason else "")
            raise WnError("e.httpc.status", f"{status} from {origin}", UPSTREAM)
        return 0


COMMAND = HttpcCommand()
