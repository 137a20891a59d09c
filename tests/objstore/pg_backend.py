"""A throwaway PostgreSQL server for the tests, from Debian's own binaries.

One server per pytest process, started lazily on first use (``pg_server`` fixture, session
scope) and stopped at exit: ``initdb`` + ``pg_ctl`` on a temp dir, a unix socket in that
dir and a free 127.0.0.1 port.  Every test gets a fresh schema (``fresh_url``), so tests
never see each other's objects, while all processes of one test (children, servers)
share the same database through the same URL.

Tests run as root here; PostgreSQL refuses to run as root, so the server runs as the
``postgres`` system user (created when missing).

Without the binaries the PostgreSQL tests are skipped with a visible reason; with
``CI=true`` a missing PostgreSQL is a failure (CI installs it with .ci/pg-setup.sh).
"""
from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from urllib.parse import quote

import pytest

_lock = threading.Lock()
_server: "PgServer | None" = None
_counter = itertools.count(1)


def find_bindir() -> str | None:
    """Directory holding initdb/pg_ctl/postgres: ``pg_config --bindir`` first, then the
    newest /usr/lib/postgresql/*/bin."""
    cands: list[str] = []
    env = os.environ.get("WNSHELL_PG_BINDIR")
    if env:
        cands.append(env)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
            if out:
                cands.append(out)
        except (OSError, subprocess.SubprocessError):
            pass

    def version_key(p: str):
        v = p.split("/")[-2]
        return [int(x) if x.isdigit() else 0 for x in v.split(".")]

    cands += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)
    for d in cands:
        if all(os.access(os.path.join(d, exe), os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_user(name: str = "postgres") -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


class PgServer:
    """A running throwaway cluster.  ``url(dbname)`` gives a libpq URL over the socket."""

    def __init__(self, bindir: str, *, fsync: bool = False):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="wnpg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.port = _free_port()
        self.log = os.path.join(self.dir, "server.log")
        self._run_as: dict = {}
        if os.geteuid() == 0:
            pw = _ensure_user()
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.dbuser = "postgres"
        else:
            self.dbuser = pwd.getpwuid(os.geteuid()).pw_name
        os.chmod(self.dir, 0o755)
        self._pg("initdb", "-D", self.data, "-U", self.dbuser, "--auth=trust", "-E", "UTF8",
                 "--locale=C", "--no-sync")
        opts = (f"-k {self.sock} -p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c max_connections=200 -c shared_buffers=128MB -c fsync={'on' if fsync else 'off'} "
                f"-c full_page_writes={'on' if fsync else 'off'}")
        self._pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", opts, "start")
        self.pid = self._postmaster_pid()
        self.stopped = False
        self.owner = os.getpid()
        self._watchdog()

    def _watchdog(self) -> None:
        """A tiny shell loop that stops the server and removes its files once this
        process is gone, even when it was killed (no atexit then)."""
        if not self.pid:
            return
        script = ('while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
                  'kill -QUIT "$2" 2>/dev/null; sleep 3; kill -KILL "$2" 2>/dev/null; '
                  'rm -rf "$3"')
        subprocess.Popen(["sh", "-c", script, "pg-watchdog", str(os.getpid()), str(self.pid),
                          self.dir], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)

    def _pg(self, exe: str, *args: str) -> None:
        cmd = [os.path.join(self.bindir, exe), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, timeout=120,
                           **self._run_as)
        if r.returncode != 0:
            log = ""
            if os.path.exists(self.log):
                with open(self.log, errors="replace") as f:
                    log = f.read()[-2000:]
            raise RuntimeError(f"{exe} failed ({r.returncode}): {r.stderr.strip()[-2000:]} {log}")

    def _postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def url(self, dbname: str = "postgres", **params: str) -> str:
        q = [f"host={quote(self.sock, safe='')}", f"port={self.port}"]
        q += [f"{k}={quote(v, safe='')}" for k, v in params.items()]
        return f"postgresql://{self.dbuser}@/{dbname}?" + "&".join(q)

    def tcp_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.dbuser}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)

    def fresh_schema_url(self, prefix: str = "t") -> str:
        """Create a new empty schema and return a URL whose search_path is that schema."""
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        self.execute(f'CREATE SCHEMA "{name}"')
        return self.url("postgres", options=f"-c search_path={name}")

    def stop(self) -> None:
        if self.stopped or os.getpid() != self.owner:     # never from a forked child
            return
        self.stopped = True
        try:
            self._pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")
        except Exception:
            if self.pid:
                try:
                    os.kill(self.pid, 9)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


def missing_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    if find_bindir() is None:
        return ("PostgreSQL server binaries not found (no pg_config --bindir, no "
                "/usr/lib/postgresql/*/bin/initdb); install Debian's postgresql package, "
                "see .ci/pg-setup.sh")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as e:
        return f"psycopg 3 / psycopg_pool not installed ({e})"
    return None


def get_server() -> PgServer:
    """The process-wide throwaway server, started on first call; skip (or, under CI,
    fail) when PostgreSQL is not available."""
    global _server
    with _lock:
        if _server is not None:
            return _server
        reason = missing_reason()
        if reason:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("CI=true but " + reason, pytrace=False)
            pytest.skip(reason)
        _server = PgServer(find_bindir())  # type: ignore[arg-type]
        atexit.register(_server.stop)
        return _server


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    return get_server()


def fresh_url(request: pytest.FixtureRequest | None = None) -> str:
    """A URL to a fresh, empty schema on the session's server (one per call)."""
    if request is not None:
        srv = request.getfixturevalue("pg_server")
    else:
        srv = get_server()
    return srv.fresh_schema_url()
