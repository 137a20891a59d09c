"""What every bench needs to run servers on loopback: a free port, and waiting until a
server answers (or has died)."""
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
