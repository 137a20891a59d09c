"""regapi.cli.main: one-line usage errors (status 2), bad input (status 1), never a
traceback; checked before any server starts.  No test depends on a fixed port being
free: a ``serve`` that gets as far as the bind check is given a port just taken from
the OS (free) or one this test holds (taken)."""
import socket

import pytest

from objstore import open_store
from regapi.cli import main
from regapi.demo import free_port


@pytest.fixture
def held_port():
    """A loopback port another socket is listening on for the test's duration."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["serve", "--port", "70000"], ["serve", "--workers", "0"],
    ["serve", "--deadline", "0"], ["serve", "--route-ttl", "-1"], ["sync"],
    ["serve", "--nope"], ["serve", "--thread-idle", "4"], ["serve", "--thread-idle", "601"],
    ["serve", "--pin-workers", "sometimes"], ["serve", "--pin-workers"],
])
def test_usage_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("e.cmd.wnshell.usage : ") and err.count("\n") == 1


@pytest.mark.parametrize("argv,key", [
    (["serve", "--store", "memory://"], "e.regapi.serve.store"),
    (["serve", "--store", "nosuch://x"], "e.io.store.url.invalid"),
    (["serve", "--host", "host.invalid"], "e.regapi.serve.bind"),
    (["sync", "/nonexistent-dir", "--store", "memory://"], "e.regapi.sync.nodir"),
    (["sync", "/tmp", "--user", "../x", "--store", "memory://"], "e.regapi.sync.user"),
])
def test_bad_input_is_one_line(argv, key, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WNSHELL_STORE", f"sqlite://{tmp_path}/s.db")
    if argv[0] == "serve":
        argv = argv + ["--port", str(free_port())]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(key + " : ") and err.count("\n") == 1


@pytest.mark.parametrize("store,key", [
    ("memory://", "e.regapi.serve.store"),
    ("nosuch://x", "e.io.store.url.invalid"),
])
def test_a_bad_store_is_reported_before_a_taken_port(store, key, held_port, capsys):
    # the order serve's docstring and docs/regapi.md give: the store, then the bind
    assert main(["serve", "--store", store, "--port", str(held_port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(key + " : ") and err.count("\n") == 1


def test_a_taken_port_is_one_line_and_changes_no_store(held_port, capsys, tmp_path):
    apis = tmp_path / "apis"
    apis.mkdir()
    (apis / "hello.regapi").write_text("echo hello\n")
    url = f"sqlite://{tmp_path}/s.db"
    assert main(["serve", "--store", url, "--port", str(held_port),
                 "--regapi-dir", str(apis)]) == 1
    err = capsys.readouterr().err
    assert err == (f"e.regapi.serve.bind : cannot listen on 127.0.0.1:{held_port}: "
                   "Address already in use\n")
    st = open_store(url)                 # the store was checked (made), not synced into
    try:
        assert st.fetch("/home/demo/.regapi/api/hello") is None
    finally:
        st.close()


def test_demo_refuses_memory_store(capsys):
    assert main(["demo", "--store", "memory://"]) == 2
    assert "e.regapi.demo.store" in capsys.readouterr().out
