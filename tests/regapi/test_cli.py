"""regapi.cli.main: one-line usage errors (status 2), bad input (status 1), never a
traceback; checked before any server starts."""
import pytest

from regapi.cli import main


@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["serve", "--port", "70000"], ["serve", "--workers", "0"],
    ["serve", "--deadline", "0"], ["serve", "--route-ttl", "-1"], ["sync"],
    ["serve", "--nope"],
])
def test_usage_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("e.cmd.wnshell.usage : ") and err.count("\n") == 1


@pytest.mark.parametrize("argv,key", [
    (["serve", "--store", "memory://"], "e.regapi.serve.store"),
    (["serve", "--store", "nosuch://x"], "e.io.store.url.invalid"),
    (["serve", "--host", "host.invalid", "--port", "1"], "e.regapi.serve.bind"),
    (["sync", "/nonexistent-dir", "--store", "memory://"], "e.regapi.sync.nodir"),
    (["sync", "/tmp", "--user", "../x", "--store", "memory://"], "e.regapi.sync.user"),
])
def test_bad_input_is_one_line(argv, key, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(key + " : ") and err.count("\n") == 1


def test_demo_refuses_memory_store(capsys):
    assert main(["demo", "--store", "memory://"]) == 2
    assert "e.regapi.demo.store" in capsys.readouterr().out
