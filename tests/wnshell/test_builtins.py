"""echo, true, false, exit, export, env, cd, pwd."""
from __future__ import annotations


def test_echo(run):
    assert run("echo")[1] == "\n"
    assert run("echo -n a b")[1] == "a b"
    assert run(r"echo -e 'a\tb\x41\u00e9\\'")[1] == "a\tbAé\\\n"
    assert run(r"echo -ne 'x\n'")[1] == "x\n"
    assert run(r"echo -e 'cut\cno'")[1] == "cut"
    assert run(r"echo 'a\nb'")[1] == "a\\nb\n"
    assert run("echo -x -n")[1] == "-x -n\n"


def test_true_false(run):
    assert run("true")[0] == 0 and run("false")[0] == 1


def test_export_and_env(sh, run):
    assert run("export A=1 B='x y' C")[0] == 0
    assert sh.env["A"] == "1" and sh.env["B"] == "x y" and sh.env["C"] == ""
    out = run("export")[1]
    assert "export B='x y'\n" in out and "export A=1\n" in out
    # the listing reads back
    from objstore import open_store
    from wnshell.session import Session
    s2 = Session(open_store("memory://"))
    s2.run(out)
    assert s2.env["B"] == "x y"
    assert "A=1\n" in run("env")[1]
    assert run("env x")[0] == 2


def test_cd_pwd(sh, run):
    assert run("pwd")[1] == "/home/demo\n"
    run("mkdir -p a/b")
    assert run("cd a/b; pwd; cd ..; pwd; cd; pwd; cd -; pwd")[1] == \
        "/home/demo/a/b\n/home/demo/a\n/home/demo\n/home/demo/a\n"
    assert sh.cwd == "/home/demo/a"
    st, _, err = run("cd /nope")
    assert st == 1 and err.startswith("e.io.obj.noexists")
    run("touch f")
    assert run("cd f")[2].startswith("e.io.obj.notdir")
    oid = sh.store.fetch("/home/demo/a/b")["id"]
    assert run(f"cd id:{oid}; pwd")[1] == "/home/demo/a/b\n"


def test_session_home_created(sh):
    from wnshell.session import Session
    s = Session(sh.store, user="alice", cwd="/")
    assert sh.store.fetch("/home/alice")["race"] == "DIR"
    assert s.cwd == "/" and s.run("cd; pwd")[1] == "/home/alice\n"
