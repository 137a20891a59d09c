"""Keep-alive HTTP/1.1 connections to one origin; replies parsed by ``httptools``.

The WeChat Pay client sends one small POST per call and reads one small reply.  The
reply is parsed by ``httptools`` (llhttp, the parser Node.js and uvicorn use: status
line, headers, Content-Length and chunked framing); the request is written as one
``sendall`` of its head and body.  This module keeps the connections open between
calls and enforces the client's contract around them:

* a connect timeout (the TCP connect and the TLS handshake) and a read timeout for
  every socket read, shortened to what is left of the call's overall deadline, so a
  server that trickles its reply cannot hold the caller past that deadline;
* at most ``max_bytes`` of body, and at most that plus 64 KiB received in all (a
  server cannot feed endless headers either);
* no retries and no redirects: a payment call is sent once;
* a connection is reused only after a reply read to its end that did not ask to close
  the connection and left nothing unread; one that failed in any way is closed; one
  the server closed while it sat idle is noticed before reuse (a zero-time ``poll``);
* at most ``keep`` idle connections kept (more may be open at once under load, the
  rest are closed when returned); none survive a ``fork`` (the child starts empty).

Why not ``http.client`` (through ``urllib3`` or directly): it parses a reply's
headers with the ``email`` package, in Python; the same call cost ~0.055 ms more CPU
that way (~0.13 ms more through urllib3), a tenth to a sixth of a whole pay submit in
a server worker (bench/wechat_clients.py prints each).

Failures are :class:`Failure` with a ``stage`` the caller turns into its own errors:
``connect`` (cannot connect), ``tls`` (handshake refused or certificate not trusted),
``timeout`` (connect or reply head timed out), ``send`` (the connection broke, or the
reply was not HTTP, before its head was complete), ``read-timeout`` / ``read`` (the
body stopped or broke), ``too-large``.  No failure carries the server's text.
"""
from __future__ import annotations

import os
import re
import select
import socket
import ssl
import threading
import time
import weakref

import httptools

__all__ = ["HostPool", "Failure"]

_POOLS: "weakref.WeakSet[HostPool]" = weakref.WeakSet()
_HEAD_SLACK = 65536         # bytes of status line and headers allowed beyond the body cap
# what a request target and a header value may hold: printable ASCII, no CR/LF
_TARGET = re.compile(r"/[!-~]*")
_VALUE = re.compile(r"[ -~]*")
_NAME = re.compile(r"[A-Za-z0-9-]+")


class Failure(Exception):
    """A call that got no complete reply; ``stage`` says where it stopped."""

    def __init__(self, stage: str):
        super().__init__(stage)
        self.stage = stage


class HostPool:
    """``HostPool(host, port, ssl_context=None, keep=32, headers=None)``: connections to
    one origin (``ssl_context``: HTTPS with it, which verifies the server and may present
    a client certificate), every request with ``headers``.  A host or header that cannot
    be sent as it is: ``ValueError``."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                 keep: int = 32, headers: dict | None = None):
        self.host, self.port, self.context, self.keep = host, port, ssl_context, keep
        name = f"[{host}]" if ":" in host else host
        default = 443 if ssl_context is not None else 80
        authority = name if port == default else f"{name}:{port}"
        if not _VALUE.fullmatch(authority):
            raise ValueError("host name is not printable ASCII")
        # the lines after the request line that every request has (checked once)
        lines = [f"Host: {authority}"]
        for hname, value in (headers or {}).items():
            if not _NAME.fullmatch(hname) or not _VALUE.fullmatch(value):
                raise ValueError("a request header cannot be sent as it is")
            lines.append(f"{hname}: {value}")
        self._fixed = "".join(line + "\r\n" for line in lines)
        self._idle: list = []
        self._lock = threading.Lock()
        _POOLS.add(self)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def _forget(self) -> None:
        """In a forked child: the parent's sockets are not this process's to use."""
        self._idle = []
        self._lock = threading.Lock()

    # -- one call -------------------------------------------------------------------
    def post(self, path: str, body: bytes, connect_timeout: float, read_timeout: float,
             deadline: float, max_bytes: int) -> tuple[int, bytes]:
        """(status, body) of one POST of ``body`` to ``path``; raises :class:`Failure`
        (``ValueError`` for a path that cannot be sent as it is)."""
        if not _TARGET.fullmatch(path):
            raise ValueError("request path is not printable ASCII")
        head = (f"POST {path} HTTP/1.1\r\n{self._fixed}Content-Length: {len(body)}"
                "\r\n\r\n").encode("ascii")
        sock = self._take()
        if sock is None:
            sock = self._connect(connect_timeout)
        try:
            _set_timeout(sock, _left(read_timeout, deadline, "timeout"))
            _send(sock, head + body)
            reply = _Reply(max_bytes)
            keep = reply.read(sock, read_timeout, deadline)
        except BaseException:
            sock.close()            # a half-read connection is never reused
            raise
        if keep:
            self._give(sock)
        else:
            sock.close()
        return reply.status, b"".join(reply.chunks)

    def _connect(self, timeout: float):
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError:
            raise Failure("timeout") from None
        except (OSError, ValueError, UnicodeError):
            raise Failure("connect") from None
        try:
            # the head and the body go in one send; small replies are not held back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.context is None:
            return sock
        try:
            return self.context.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            sock.close()
            raise Failure("timeout") from None
        except ssl.SSLError:
            sock.close()
            raise Failure("tls") from None
        except (OSError, ValueError):
            sock.close()
            raise Failure("connect") from None

    def _take(self):
        """An idle connection the server has not closed meanwhile, or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                sock = self._idle.pop()
            if not _readable(sock):     # readable at rest: closed by the server
                return sock
            sock.close()

    def _give(self, sock) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(sock)
                return
        sock.close()


class _Reply:
    """One reply as the parser reports it (its callbacks are these methods)."""

    __slots__ = ("max_bytes", "chunks", "size", "status", "head_done", "done", "framed",
                 "keep", "extra", "parser")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.chunks: list[bytes] = []
        self.size = 0
        self.status = 0
        self.head_done = self.done = self.keep = self.extra = False
        self.framed = False         # a Content-Length or chunks: the body's end is known
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        if self.done:               # bytes after the reply, parsed as another message
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, data: bytes) -> None:
        if self.done:
            return
        self.size += len(data)
        self.chunks.append(data)

    def on_message_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:     # an interim reply (100 Continue): the real one follows
            self.chunks, self.size = [], 0
            self.head_done = self.framed = False
            return
        # asked here: once the message is over the parser is reset for the next one
        self.keep = self.parser.should_keep_alive()
        self.status, self.done = status, True

    def read(self, sock, read_timeout: float, deadline: float) -> bool:
        """Receive and parse the reply; whether the connection may be reused."""
        parser = self.parser
        got = 0
        while True:
            stage = "read-timeout" if self.head_done else "timeout"
            _set_timeout(sock, _left(read_timeout, deadline, stage))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise Failure(stage) from None
            except (OSError, ValueError):
                raise Failure("read" if self.head_done else "send") from None
            if not data:
                if self.head_done and not self.framed:
                    # no length, no chunks: the body ends with the connection
                    self.status = parser.get_status_code()
                    return False
                raise Failure("read" if self.head_done else "send")
            got += len(data)
            if got > self.max_bytes + _HEAD_SLACK:
                raise Failure("too-large")
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if not self.done:
                    raise Failure("send") from None
                self.extra = True
            except httptools.HttpParserError:
                if not self.done:
                    raise Failure("read" if self.head_done else "send") from None
                self.extra = True       # garbage after a whole reply
            if self.size > self.max_bytes:
                raise Failure("too-large")
            if self.done:
                # bytes after the reply: nobody asked for them, the connection goes
                return self.keep and not self.extra and not _pending(sock)


def _left(read_timeout: float, deadline: float, stage: str) -> float:
    """The read timeout, or what is left of the deadline when that is less (never 0:
    a zero timeout would mean non-blocking)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Failure(stage)
    return min(read_timeout, left)


def _send(sock, data: bytes) -> None:
    """``sendall``, its failures as :class:`Failure` (a reset or broken connection is
    ``send``: no reply came)."""
    try:
        sock.sendall(data)
    except TimeoutError:
        raise Failure("timeout") from None
    except (OSError, ValueError):          # ssl.SSLError is an OSError too
        raise Failure("send") from None


def _set_timeout(sock, seconds: float) -> None:
    """``settimeout`` only when the value changes (each call is an ioctl): while the
    deadline is far, every read of a call has the same read timeout."""
    if sock.gettimeout() != seconds:
        sock.settimeout(seconds)


def _pending(sock) -> bool:
    """Whether bytes are waiting on ``sock`` now (TLS: decrypted ones included)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return _readable(sock)


def _readable(sock) -> bool:
    """Whether bytes (or the end of the stream) wait on ``sock``: on an idle keep-alive
    connection, the server closed it or sent what nobody asked for -- either way it is
    not reused."""
    try:
        p = select.poll()
        p.register(sock, select.POLLIN)
        return bool(p.poll(0))
    except (OSError, ValueError):
        return True


def _after_fork() -> None:
    for pool in list(_POOLS):
        pool._forget()


os.register_at_fork(after_in_child=_after_fork)
