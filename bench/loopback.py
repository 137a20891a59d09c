"""What every bench needs to run servers on loopback: a free port, waiting until a
server answers (or has died), and a throwaway PostgreSQL (``--store postgresql``)."""
from __future__ import annotations

import http.client
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str = "/", proc: subprocess.Popen | None = None,
              timeout: float = 30.0) -> None:
    """Until GET ``path`` on 127.0.0.1:``port`` answers; SystemExit when ``proc`` (the
    server) exits first or ``timeout`` passes."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited ({proc.returncode})")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def throwaway_postgresql(schema: str):
    """``(url, stop)``: a fresh schema ``schema`` on a throwaway PostgreSQL server with
    fsync on (Debian's binaries, as the tests use); SystemExit saying why when they are
    missing."""
    from tests.objstore import pg_backend
    reason = pg_backend.missing_reason()
    if reason:
        raise SystemExit(reason)
    pg = pg_backend.PgServer(pg_backend.find_bindir(), fsync=True)
    return pg.fresh_schema_url(schema), pg.stop
