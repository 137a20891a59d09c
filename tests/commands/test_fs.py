"""cat, ls, mkdir, touch, rm, mv through Session.run on a memory store."""
from __future__ import annotations

import json
import re
import time

import pytest

from .conftest import one_error_line


def put(sh, path, data=b"", race="FILE"):
    obj = sh.store.create(path, race, parents=True)
    if data:
        sh.store.write(obj.id, data)
    return obj


# ---- mkdir ------------------------------------------------------------------------
def test_mkdir_creates_dir_and_refuses_existing(sh, run):
    assert run("mkdir ~/orders") == (0, "", "")
    obj = sh.store.fetch("/home/demo/orders")
    assert obj is not None and obj.is_dir
    status, out, err = run("mkdir ~/orders")
    assert status == 1 and out == ""
    assert one_error_line(err, "e.io.obj.exists")


def test_mkdir_needs_parent_without_p(sh, run):
    status, _, err = run("mkdir ~/a/b/c")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")
    assert sh.store.fetch("/home/demo/a") is None


def test_mkdir_p_creates_chain_and_accepts_existing(sh, run):
    assert run("mkdir -p ~/a/b/c")[0] == 0
    assert sh.store.fetch("/home/demo/a/b/c").is_dir
    assert run("mkdir -p ~/a/b/c ~/a/b")[0] == 0
    put(sh, "/home/demo/f")
    status, _, err = run("mkdir -p ~/f")
    assert status == 1 and one_error_line(err, "e.io.obj.notdir")


def test_mkdir_checks_every_path_before_creating(sh, run):
    status, _, err = run("mkdir ~/x ~/missing/y")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")
    assert sh.store.fetch("/home/demo/x") is None
    status, _, err = run("mkdir ~/x ~/x")
    assert status == 1 and one_error_line(err, "e.io.obj.exists")
    assert sh.store.fetch("/home/demo/x") is None


def test_mkdir_without_args_is_usage_error(run):
    status, _, err = run("mkdir")
    assert status == 2 and one_error_line(err, "e.cmd.mkdir")


# ---- touch ------------------------------------------------------------------------
def test_touch_creates_empty_file(sh, run):
    assert run("touch ~/a ~/b") == (0, "", "")
    for nm in ("a", "b"):
        obj = sh.store.fetch(f"/home/demo/{nm}")
        assert obj["race"] == "FILE" and sh.store.read(obj.id) == b""


def test_touch_bumps_lm_and_keeps_content(sh, run):
    obj = put(sh, "/home/demo/a", b"keep")
    before = sh.store.get(obj.id)["lm"]
    time.sleep(0.01)
    assert run("touch ~/a")[0] == 0
    after = sh.store.get(obj.id)
    assert after["lm"] > before
    assert sh.store.read(obj.id) == b"keep"


def test_touch_missing_parent(sh, run):
    status, _, err = run("touch ~/nodir/a")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")


# ---- cat --------------------------------------------------------------------------
def test_cat_concatenates_files(sh, run):
    put(sh, "/home/demo/a", "héllo\n".encode())
    put(sh, "/home/demo/b", b"world\n")
    assert run("cat ~/a ~/b") == (0, "héllo\nworld\n", "")


def test_cat_reads_stdin_without_path(run):
    assert run("echo hi | cat") == (0, "hi\n", "")
    assert run("cat", stdin="from stdin") == (0, "from stdin", "")


def test_cat_by_id_and_relative(sh, run):
    obj = put(sh, "/home/demo/d/a", b"x1")
    assert run(f"cat id:{obj.id}") == (0, "x1", "")
    assert run("cd ~/d; cat a ./a ../d/a")[1] == "x1x1x1"


def test_cat_dir_is_notfile_and_prints_nothing(sh, run):
    put(sh, "/home/demo/a", b"first")
    sh.store.create("/home/demo/d", "DIR")
    status, out, err = run("cat ~/a ~/d")
    assert status == 1 and out == ""
    assert one_error_line(err, "e.io.obj.notfile")


def test_cat_missing(run):
    status, out, err = run("cat ~/nothing")
    assert status == 1 and out == "" and one_error_line(err, "e.io.obj.noexists")


def test_cat_reads_what_redirection_wrote(run):
    assert run("echo abc > ~/f; cat ~/f") == (0, "abc\n", "")


# ---- ls ---------------------------------------------------------------------------
def test_ls_lists_sorted_names_hiding_dot_names(sh, run):
    for nm in ("b", "a", ".hidden", "c"):
        put(sh, f"/home/demo/{nm}")
    assert run("ls ~") == (0, "a\nb\nc\n", "")
    assert run("ls -A ~") == (0, ".hidden\na\nb\nc\n", "")
    assert run("cd ~; ls") == (0, "a\nb\nc\n", "")


def test_ls_long_format(sh, run):
    put(sh, "/home/demo/f", b"12345")
    sh.store.create("/home/demo/d", "DIR")
    status, out, _ = run("ls -l ~")
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 2
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(rf"DIR\s+0 {iso} d", lines[0])
    assert re.fullmatch(rf"FILE\s+5 {iso} f", lines[1])
    # the ISO time is the object's lm
    lm = sh.store.fetch("/home/demo/f")["lm"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lm / 1000))
    assert stamp in lines[1]
    # combined single-letter flags
    assert run("ls -lA ~")[1] == out


def test_ls_glob_in_last_segment(sh, run):
    for nm in ("o1", "o2", "x1", ".o3"):
        put(sh, f"/home/demo/orders/{nm}")
    assert run("ls ~/orders/o*") == (0, "o1\no2\n", "")
    assert run("ls -A ~/orders/*3")[1] == ".o3\n"
    assert run("ls ~/orders/?1") == (0, "o1\nx1\n", "")
    status, out, err = run("ls ~/orders/z*")
    assert status == 1 and out == "" and one_error_line(err, "e.io.obj.noexists")


def test_ls_file_and_several_dirs(sh, run):
    put(sh, "/home/demo/a/f1")
    put(sh, "/home/demo/b/f2")
    assert run("ls ~/a/f1") == (0, "f1\n", "")
    status, out, _ = run("ls ~/a ~/b")
    assert status == 0
    assert out == "/home/demo/a:\nf1\n\n/home/demo/b:\nf2\n"


def test_ls_missing_prints_nothing(sh, run):
    put(sh, "/home/demo/a/f1")
    status, out, err = run("ls ~/a ~/nope")
    assert status == 1 and out == "" and one_error_line(err, "e.io.obj.noexists")


def test_ls_unknown_flag_is_usage_error(run):
    status, _, err = run("ls -z ~")
    assert status == 2 and one_error_line(err, "e.cmd.ls")


# ---- rm ---------------------------------------------------------------------------
def test_rm_file(sh, run):
    put(sh, "/home/demo/a")
    assert run("rm ~/a") == (0, "", "")
    assert sh.store.fetch("/home/demo/a") is None


def test_rm_dir_needs_r_and_deletes_nothing_without(sh, run):
    put(sh, "/home/demo/a")
    put(sh, "/home/demo/d/x")
    status, _, err = run("rm ~/a ~/d")
    assert status == 1 and one_error_line(err, "e.io.rm.isdir")
    assert sh.store.fetch("/home/demo/a") is not None
    assert sh.store.fetch("/home/demo/d/x") is not None
    assert run("rm -r ~/a ~/d")[0] == 0
    assert sh.store.fetch("/home/demo/d") is None
    assert sh.store.fetch("/home/demo/d/x") is None


def test_rm_missing_and_force(sh, run):
    put(sh, "/home/demo/a")
    status, _, err = run("rm ~/nope ~/a")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")
    assert sh.store.fetch("/home/demo/a") is not None
    assert run("rm -f ~/nope ~/a") == (0, "", "")
    assert sh.store.fetch("/home/demo/a") is None
    assert run("rm -rf ~/nope ~/none/*")[0] == 0


def test_rm_glob_and_parent_with_child(sh, run):
    for nm in ("o1", "o2", "x"):
        put(sh, f"/home/demo/orders/{nm}")
    assert run("rm ~/orders/o*")[0] == 0
    assert [o.nm for o in sh.store.children(sh.store.fetch("/home/demo/orders").id)] == ["x"]
    # a DIR and something below it in one call
    assert run("rm -r ~/orders/x ~/orders")[0] == 0
    assert sh.store.fetch("/home/demo/orders") is None


def test_rm_refuses_root_and_home(sh, run):
    put(sh, "/home/demo/a")
    status, _, err = run("rm -rf /")
    assert status == 1 and one_error_line(err, "e.io.rm.root")
    for text in ("rm -r ~", "rm -rf /home", "cd ~; rm -r ../demo", "rm -r ~/a /home/demo"):
        status, _, err = run(text)
        assert status == 1 and one_error_line(err, "e.io.rm.home"), text
    assert sh.store.fetch("/home/demo/a") is not None
    sh.store.create("/home/other", "DIR")
    assert run("rm -r /home/other")[0] == 0


# ---- mv ---------------------------------------------------------------------------
def test_mv_renames_keeping_id_and_content(sh, run):
    obj = put(sh, "/home/demo/a", b"data")
    assert run("mv ~/a ~/b") == (0, "", "")
    assert sh.store.fetch("/home/demo/a") is None
    moved = sh.store.fetch("/home/demo/b")
    assert moved.id == obj.id and moved.nm == "b"
    assert sh.store.read(moved.id) == b"data"


def test_mv_into_existing_dir(sh, run):
    obj = put(sh, "/home/demo/a")
    sh.store.create("/home/demo/d", "DIR")
    assert run("mv ~/a ~/d")[0] == 0
    assert sh.store.fetch("/home/demo/d/a").id == obj.id


def test_mv_dir_subtree_follows(sh, run):
    inner = put(sh, "/home/demo/d/sub/f")
    assert run("mv ~/d ~/e")[0] == 0
    assert sh.store.get(inner.id)["ph"] == "/home/demo/e/sub/f"


def test_mv_several_into_dir_and_needs_dir(sh, run):
    a, b = put(sh, "/home/demo/a"), put(sh, "/home/demo/b")
    sh.store.create("/home/demo/d", "DIR")
    status, _, err = run("mv ~/a ~/b ~/c")
    assert status == 2 and one_error_line(err, "e.cmd.mv")
    assert run("mv ~/a ~/b ~/d")[0] == 0
    assert sh.store.get(a.id)["ph"] == "/home/demo/d/a"
    assert sh.store.get(b.id)["ph"] == "/home/demo/d/b"


def test_mv_never_overwrites(sh, run):
    a = put(sh, "/home/demo/a", b"A")
    put(sh, "/home/demo/b", b"B")
    status, _, err = run("mv ~/a ~/b")
    assert status == 1 and one_error_line(err, "e.io.obj.exists")
    assert sh.store.get(a.id)["ph"] == "/home/demo/a"
    assert sh.store.read(sh.store.fetch("/home/demo/b").id) == b"B"


def test_mv_dir_into_itself_refused(sh, run):
    put(sh, "/home/demo/d/sub/f")
    status, _, err = run("mv ~/d ~/d/sub")
    assert status == 1 and one_error_line(err, "e.io.mv.intoself")
    assert sh.store.fetch("/home/demo/d/sub/f") is not None


def test_mv_checks_all_before_moving(sh, run):
    a = put(sh, "/home/demo/a")
    sh.store.create("/home/demo/d", "DIR")
    status, _, err = run("mv ~/a ~/nope ~/d")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")
    assert sh.store.get(a.id)["ph"] == "/home/demo/a"


def test_mv_missing_parent_of_target(sh, run):
    put(sh, "/home/demo/a")
    status, _, err = run("mv ~/a ~/no/b")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")


# ---- together ---------------------------------------------------------------------
def test_pipeline_of_core_commands(sh, run):
    status, out, _ = run("mkdir -p ~/orders && touch ~/orders/o1 ~/orders/o2 "
                         "&& ls ~/orders | cat")
    assert (status, out) == (0, "o1\no2\n")
    status, out, _ = run("obj ~/orders/o1 -c")
    assert json.loads(out)["ph"] == "/home/demo/orders/o1"


# ---- the session's home stays where it is ------------------------------------------
@pytest.mark.parametrize("cmd", ["mv ~ /elsewhere", "mv /home /elsewhere",
                                 "cd /; mv home h2", "mkdir ~/d /tmp2; mv ~/d ~ /tmp2"])
def test_mv_never_moves_the_home_away(sh, run, cmd):
    status, _, err = run(cmd)
    assert status == 1 and "e.io.mv.home : " in err, err
    assert sh.store.fetch("/home/demo") is not None
    assert run("cd ~; touch still-here")[0] == 0


def test_mv_inside_the_home_still_works(sh, run):
    assert run("mkdir ~/a; mv ~/a ~/b; ls ~")[1] == "b\n"
