"""Keep-alive HTTP/1.1 connections to one origin, on the standard library's ``http.client``.

The WeChat Pay client sends one small POST per call and reads one small reply.
``http.client`` parses the status line, the headers and the body framing (lengths,
chunks); this module only keeps its connections open between calls and enforces the
client's contract around them:

* a connect timeout (the TCP connect and the TLS handshake) and a read timeout for
  every socket read, shortened to what is left of the call's overall deadline, so a
  server that trickles its reply cannot hold the caller past that deadline;
* at most ``max_bytes`` of body;
* no retries and no redirects: a payment call is sent once;
* a connection is reused only after a reply read to its end that did not ask to close
  the connection; one that failed in any way is closed; one the server closed while it
  sat idle is noticed before it is reused (a zero-time ``poll``);
* at most ``keep`` idle connections kept (more may be open at once under load, the
  rest are closed when returned); none survive a ``fork`` (the child starts empty).

Why not ``urllib3``: the same call through its pool costs ~0.1 ms more CPU, about a
tenth of a whole pay submit in a server worker (bench/wechat_clients.py prints both).

Failures are :class:`Failure` with a ``stage`` the caller turns into its own errors:
``connect`` (cannot connect), ``tls`` (handshake refused or certificate not trusted),
``timeout`` (connect or reply timed out), ``send`` (the connection broke before a
reply), ``read-timeout`` / ``read`` (the body stopped or broke), ``too-large``.  No
failure carries the server's text.
"""
from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import time
import weakref

__all__ = ["HostPool", "Failure"]

_POOLS: "weakref.WeakSet[HostPool]" = weakref.WeakSet()


class Failure(Exception):
    """A call that got no complete reply; ``stage`` says where it stopped."""

    def __init__(self, stage: str):
        super().__init__(stage)
        self.stage = stage


class HostPool:
    """``HostPool(host, port, ssl_context=None, keep=32)``: connections to one origin
    (``ssl_context``: HTTPS with it, which verifies the server and may present a client
    certificate)."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                 keep: int = 32):
        self.host, self.port, self.context, self.keep = host, port, ssl_context, keep
        self._idle: list = []
        self._lock = threading.Lock()
        _POOLS.add(self)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _forget(self) -> None:
        """In a forked child: the parent's sockets are not this process's to use."""
        self._idle = []
        self._lock = threading.Lock()

    # -- one call -------------------------------------------------------------------
    def post(self, path: str, body: bytes, headers: dict, connect_timeout: float,
             read_timeout: float, deadline: float, max_bytes: int) -> tuple[int, bytes]:
        """(status, body) of one POST; raises :class:`Failure`."""
        conn = self._take()
        if conn is None:
            conn = self._connect(connect_timeout)
        try:
            conn.sock.settimeout(_left(read_timeout, deadline))
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise Failure("timeout") from None
        except ssl.SSLError:
            conn.close()
            raise Failure("tls") from None
        except (http.client.HTTPException, OSError, ValueError):
            conn.close()
            raise Failure("send") from None
        try:
            data = _read_body(conn, resp, read_timeout, deadline, max_bytes)
        except BaseException:
            conn.close()            # a half-read connection is never reused
            raise
        resp.close()                # read to its end: the connection may take the next
        if resp.will_close:
            conn.close()
        else:
            self._give(conn)
        return resp.status, data

    def _connect(self, timeout: float):
        if self.context is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        else:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.context)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise Failure("timeout") from None
        except ssl.SSLError:
            conn.close()
            raise Failure("tls") from None
        except (OSError, ValueError, UnicodeError):
            conn.close()
            raise Failure("connect") from None
        try:
            # the request's head and body are two sends: without this, Nagle's
            # algorithm may hold the body back until the head is acknowledged
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return conn

    def _take(self):
        """An idle connection the server has not closed meanwhile, or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not _dropped(conn.sock):
                return conn
            conn.close()

    def _give(self, conn) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        conn.close()


def _left(read_timeout: float, deadline: float) -> float:
    """The read timeout, or what is left of the deadline when that is less (never 0:
    a zero timeout would mean non-blocking)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Failure("timeout")
    return min(read_timeout, left)


def _read_body(conn, resp, read_timeout: float, deadline: float, max_bytes: int) -> bytes:
    """The body, one socket read at a time, the deadline checked between reads."""
    chunks, size = [], 0
    sock = conn.sock
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("read-timeout")
        if sock is not None:
            sock.settimeout(min(read_timeout, left))
        try:
            chunk = resp.read1(65536)
        except TimeoutError:
            raise Failure("read-timeout") from None
        except (http.client.HTTPException, OSError, ValueError):
            raise Failure("read") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise Failure("too-large")
        chunks.append(chunk)


def _dropped(sock) -> bool:
    """Whether an idle keep-alive socket was closed by the server (readable at rest:
    end of file, or bytes nobody asked for -- either way not to be reused)."""
    if sock is None:
        return True
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
