"""The registry: lazy entry points, the public register API, broken plugins."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from wnshell.command import Command
from wnshell.registry import REGISTRY, Registry, help_text, register
from tests.wnshell.conftest import REPO


def test_names_come_without_importing_modules():
    code = ("import sys\nfrom wnshell.registry import names\nn = names()\n"
            "print(all(c in n for c in ['echo', 'cat', 'ls', 'obj', 'json', 'help', 'man',"
            " 'cd', 'pwd', 'exit', 'export', 'env', 'true', 'false']),"
            " [m for m in sys.modules if m.startswith('commands')])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert p.stdout == "True []\n", p.stderr


def test_register_public_api(sh):
    class Hello(Command):
        name = "hello-test"
        summary = "say hello"
        options = {"-who": "whom to greet"}

        def run(self, session, args, stdin, stdout, stderr):
            stdout.write(f"hello {args[0] if args else 'world'}\n")
            return 0

    register(Hello)                              # a class is instantiated
    try:
        assert "hello-test" in REGISTRY.names()
        assert sh.run("hello-test you")[1] == "hello you\n"
        out = sh.run("hello-test --help")[1]
        assert out == help_text(REGISTRY.get("hello-test"))
        assert "hello-test - say hello" in out and "-who" in out
    finally:
        REGISTRY.unregister("hello-test")


def test_child_registry_overrides_without_touching_the_global():
    class Fake(Command):
        name = "echo"

        def run(self, session, args, stdin, stdout, stderr):
            stdout.write("fake\n")
            return 0

    reg = Registry(parent=REGISTRY)
    reg.register(Fake())
    assert reg.get("echo").run is not REGISTRY.get("echo").run
    assert reg.get("pwd") is REGISTRY.get("pwd")


def test_broken_plugin_warns_and_shell_still_works(tmp_path):
    site = tmp_path / "site"
    dist = site / "brokenplug-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "entry_points.txt").write_text(
        "[wnshell.commands]\nbroken = brokenplug_mod:CMD\nmissing = nosuchmodule_xyz:CMD\n"
        "[other.group]\necho = x:y\n")
    (site / "brokenplug_mod.py").write_text("raise RuntimeError('plugin bug')\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from wnshell.cli import main
        sys.exit(main(['--store', 'memory://', '-c', 'broken; missing; echo still works']))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert p.stdout == "still works\n"
    lines = p.stderr.splitlines()
    assert lines[0].startswith("wnshell: warning: command 'broken' (brokenplug_mod:CMD) "
                               "failed to load: RuntimeError: plugin bug")
    assert lines[1] == "e.cmd.notfound : broken"
    assert lines[2].startswith("wnshell: warning: command 'missing'")
    assert lines[3] == "e.cmd.notfound : missing"
    assert "Traceback" not in p.stderr
