"""QA: ``wnshell serve`` never prints a database password, wherever the URL carries it
(libpq takes ``password=`` as a query parameter as well as in ``user:pw@``)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from regapi.demo import free_port
from tests.objstore.pg_backend import pg_server  # noqa: F401  (session fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_serve_start_line_masks_a_password_in_the_query(pg_server, tmp_path):  # noqa: F811
    secret = "Qa5ecretPw"
    url = pg_server.fresh_schema_url("qapw") + f"&password={secret}&sslpassword={secret}x"
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "regapi", "serve", "--port", str(free_port()),
             "--store", url, "--no-access-log"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            start_new_session=True)
    try:
        deadline = time.time() + 60
        while "regapi: serving" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert secret not in text
    line = next(x for x in text.splitlines() if "regapi: serving" in x)
    assert "password=***" in line and "sslpassword=***" in line
