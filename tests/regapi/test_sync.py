"""wnshell sync: a folder of .regapi files -> the user's .regapi/api tree, exactly."""
import json
import os

import pytest

from objstore import open_store
from objstore.errors import WnError
from regapi.sync import sync_dir

ROOT = "/home/demo/.regapi/api"


def write(p, text):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def tree(store):
    out = {}
    stack = [store.fetch(ROOT)]
    while stack:
        d = stack.pop()
        for ch in store.children(d["id"]):
            rel = ch["ph"][len(ROOT) + 1:]
            if ch["race"] == "DIR":
                out[rel] = "DIR"
                stack.append(ch)
            else:
                out[rel] = store.read(ch["id"]).decode()
    return out


def test_sync_creates_updates_removes(tmp_path):
    s = open_store("memory://")
    src = tmp_path / "apis"
    write(src / "pay", "# submit\nweixin xxx order -submit ${http-qs-id}\n")
    write(src / "payresult.regapi", "weixin xxx order -result id:${id}\n")
    write(src / "payresult.regapi.meta.json", json.dumps({"http-header-Content-Type": "text/xml"}))
    write(src / "u" / "_ANY" / "_action", "echo ${args-0}\n")
    write(src / ".git" / "config", "[core]\n")
    write(src / "pay~", "backup")
    rep = sync_dir(s, str(src), "demo")
    assert sorted(rep.created) == ["pay", "payresult", "u", "u/_ANY", "u/_ANY/_action"]
    assert tree(s) == {"pay": "# submit\nweixin xxx order -submit ${http-qs-id}\n",
                       "payresult": "weixin xxx order -result id:${id}\n",
                       "u": "DIR", "u/_ANY": "DIR", "u/_ANY/_action": "echo ${args-0}\n"}
    assert s.fetch(f"{ROOT}/payresult")["http-header-Content-Type"] == "text/xml"

    # second run: nothing to do
    rep = sync_dir(s, str(src), "demo")
    assert (rep.created, rep.updated, rep.removed, rep.unchanged) == ([], [], [], 5)

    # edit, drop a sidecar key, remove a subtree
    write(src / "pay", "echo changed\n")
    (src / "payresult.regapi.meta.json").write_text("{}")
    import shutil
    shutil.rmtree(src / "u")
    rep = sync_dir(s, str(src), "demo")
    assert sorted(rep.updated) == ["pay", "payresult"] and rep.removed == ["u"]
    assert tree(s) == {"pay": "echo changed\n",
                       "payresult": "weixin xxx order -result id:${id}\n"}
    assert "http-header-Content-Type" not in s.fetch(f"{ROOT}/payresult")


@pytest.mark.parametrize("name,text,key", [
    ("bad", "echo 'unterminated\n", "e.regapi.sync.syntax"),
    ("x.meta.json", "[1]", "e.regapi.sync.meta"),
    ("orphan.meta.json", "{}", "e.regapi.sync.meta"),
])
def test_bad_input_changes_nothing(tmp_path, name, text, key):
    s = open_store("memory://")
    src = tmp_path / "apis"
    write(src / "x", "echo one\n")
    sync_dir(s, str(src), "demo")
    write(src / "x", "echo two\n")
    write(src / name, text)
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(src), "demo")
    assert ei.value.key == key
    assert tree(s) == {"x": "echo one\n"}


def test_reserved_meta_refused(tmp_path):
    s = open_store("memory://")
    write(tmp_path / "x", "echo\n")
    write(tmp_path / "x.meta.json", '{"ph": "/etc"}')
    with pytest.raises(WnError, match="reserved"):
        sync_dir(s, str(tmp_path), "demo")


def test_sync_command_line(tmp_path):
    import os
    import subprocess
    import sys
    write(tmp_path / "apis" / "hello", "echo hello\n")
    url = f"sqlite://{tmp_path / 'store.db'}"
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "regapi"]
    r = subprocess.run(cmd + ["sync", str(tmp_path / "apis"), "--user", "ann", "--store", url,
                              "--create-user"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "created hello",
        "sync /home/ann/.regapi/api: created 1, updated 0, removed 0, unchanged 0"]
    r = subprocess.run(cmd + ["sync", str(tmp_path / "nope"), "--store", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.strip().startswith("e.regapi.sync.nodir : ")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("user", ["demo\n", "demo/x", "de mo", "", "..", "-demo"])
def test_bad_user_names_refused(tmp_path, user):
    write(tmp_path / "pay", "echo hi\n")
    s = open_store("memory://")
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(tmp_path), user)
    assert ei.value.key == "e.regapi.sync.user"
    assert s.fetch("/home") is None


@pytest.mark.parametrize("meta,word", [
    ({"http-safe-params": False}, "http-safe-params"),
    ({"http-tmp-duraion": 60}, "http-tmp-duraion"),
    ({"api-rate-limit": 5}, "api-rate-limit"),
    ({"api-access-token": "short"}, "api-access-token"),
    ({"api-access-token": 12345678901234567}, "api-access-token"),
    ({"http-cross-origin": "https://shop.example.com/path"}, "http-cross-origin"),
    ({"http-cross-origin": ["*", "https://a.example"]}, "http-cross-origin"),
    ({"regapi-qs-mime": "yes"}, "regapi-qs-mime"),
    ({"regapi-reqobj-keep": 0}, "regapi-reqobj-keep"),
    ({"regapi-websession": "logon"}, "regapi-websession"),
])
def test_unimplemented_or_unusable_security_keys_are_refused(tmp_path, meta, word):
    """A security key wnshell does not implement (or cannot use) is never silently
    ignored: `wnshell sync` refuses the folder in one line naming it."""
    import os
    import subprocess
    import sys
    write(tmp_path / "apis" / "hello", "echo hello\n")
    (tmp_path / "apis" / "hello.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    url = f"sqlite://{tmp_path / 'store.db'}"
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "regapi"]
    r = subprocess.run(cmd + ["sync", str(tmp_path / "apis"), "--store", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("e.regapi.sync.meta : ") and word in lines[0]
    assert open_store(url).fetch(ROOT + "/hello") is None        # nothing synced


def test_implemented_security_keys_sync(tmp_path):
    write(tmp_path / "hello", "echo hello\n")
    meta = {"api-access-token": "t" * 32, "http-cross-origin": ["https://a.example:8443"],
            "regapi-reqobj-keep": 30, "regapi-qs-mime": True}
    (tmp_path / "hello.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    s = open_store("memory://")
    sync_dir(s, str(tmp_path), "demo")
    obj = s.fetch(ROOT + "/hello")
    assert all(obj[k] == v for k, v in meta.items())


# ---- the command line as a daily tool (issue 15) ----------------------------------
def _wnshell(*args, tmp_path):
    import os
    import subprocess
    import sys
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "regapi"]
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.pop("WNSHELL_STORE", None)
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60,
                          env=env)


def test_dry_run_changes_nothing(tmp_path):
    url = f"sqlite://{tmp_path / 'store.db'}"
    write(tmp_path / "apis" / "hello", "echo hello\n")
    write(tmp_path / "apis" / "gone", "echo bye\n")
    assert _wnshell("sync", str(tmp_path / "apis"), "--store", url,
                    tmp_path=tmp_path).returncode == 0
    write(tmp_path / "apis" / "hello", "echo changed\n")
    (tmp_path / "apis" / "gone").unlink()
    write(tmp_path / "apis" / "new", "echo new\n")
    r = _wnshell("sync", str(tmp_path / "apis"), "--store", url, "--dry-run",
                 tmp_path=tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines() == [
        "would be created new", "would be updated hello", "would be removed gone",
        "sync /home/demo/.regapi/api (dry run, nothing changed): created 1, updated 1, "
        "removed 1, unchanged 0"]
    s = open_store(url)
    try:
        assert tree(s) == {"hello": "echo hello\n", "gone": "echo bye\n"}
    finally:
        s.close()


def test_dry_run_on_a_fresh_store_writes_nothing(tmp_path):
    write(tmp_path / "x", "echo\n")
    s = open_store("memory://")
    rep = sync_dir(s, str(tmp_path), "demo", dry_run=True)
    assert rep.created == ["x"] and s.fetch("/home") is None


def test_every_error_is_listed(tmp_path):
    src = tmp_path / "apis"
    write(src / "ok", "echo ok\n")
    write(src / "bad1", "echo 'open\n")
    write(src / "sub" / "bad2", "echo $(\n")
    write(src / "ok.meta.json", "[1]")
    write(src / "orphan.meta.json", "{}")
    s = open_store("memory://")
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(src), "demo")
    keys = sorted(e.key for e in ei.value.errors)
    assert keys == ["e.regapi.sync.meta", "e.regapi.sync.meta", "e.regapi.sync.syntax",
                    "e.regapi.sync.syntax"]
    assert "(and 3 more)" in ei.value.line()
    assert s.fetch("/home/demo/.regapi") is None                 # nothing written
    url = f"sqlite://{tmp_path / 'store.db'}"
    r = _wnshell("sync", str(src), "--store", url, tmp_path=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 4 and all(ln.startswith("e.regapi.sync.") for ln in lines), lines
    assert any("bad1" in ln for ln in lines) and any("sub/bad2" in ln for ln in lines)
    assert any("orphan.meta.json" in ln for ln in lines)


def test_an_unknown_user_is_refused_unless_create_user(tmp_path):
    url = f"sqlite://{tmp_path / 'store.db'}"
    write(tmp_path / "apis" / "hello", "echo hello\n")
    r = _wnshell("sync", str(tmp_path / "apis"), "--user", "ann", "--store", url,
                 tmp_path=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("e.regapi.sync.nouser : no user ann") and \
        "--create-user" in r.stderr
    s = open_store(url)
    assert s.fetch("/home/ann") is None
    s.close()
    r = _wnshell("sync", str(tmp_path / "apis"), "--user", "ann", "--store", url,
                 "--create-user", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    # an existing user needs no flag; the default user (demo) is created as the shell does
    assert _wnshell("sync", str(tmp_path / "apis"), "--user", "ann", "--store", url,
                    tmp_path=tmp_path).returncode == 0
    assert _wnshell("sync", str(tmp_path / "apis"), "--store", url,
                    tmp_path=tmp_path).returncode == 0


def test_sync_help_explains_the_folder_layout(tmp_path):
    r = _wnshell("sync", "--help", tmp_path=tmp_path)
    assert r.returncode == 0
    for text in ("payresult.regapi.meta.json", "/home/USER/.regapi/api/pay", "_ANY",
                 "--dry-run", "--create-user", ".git"):
        assert text in r.stdout, text


# ---- what a hostile or broken folder must not do -----------------------------------
def _synced(tmp_path):
    s = open_store("memory://")
    src = tmp_path / "apis"
    write(src / "x", "echo one\n")
    write(src / "old", "echo old\n")
    sync_dir(s, str(src), "demo")
    return s, src


@pytest.mark.parametrize("sidecar", [
    '{"": 1}',                          # a key the store refuses
    '{"a": NaN}',                       # not JSON the store keeps
    '{"a": Infinity}',
    '{"a": 1e999}',
    '{"a": 99999999999999999999999}',   # over 64 bits
])
def test_sidecar_the_store_refuses_changes_nothing(tmp_path, sidecar):
    # the metadata was accepted by the check phase and refused by the store only after
    # "old" had been removed and "x" rewritten: a half-synced tree
    s, src = _synced(tmp_path)
    (src / "old").unlink()
    write(src / "x", "echo two\n")
    write(src / "zz", "echo z\n")
    write(src / "zz.meta.json", sidecar)
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(src), "demo")
    assert ei.value.key == "e.regapi.sync.meta"
    assert "zz.meta.json" in ei.value.reason
    assert tree(s) == {"x": "echo one\n", "old": "echo old\n"}


def test_symlinked_sidecar_is_refused(tmp_path):
    # a sidecar pointing outside the folder was read (and its keys stored as metadata),
    # while symlinked templates and folders were refused
    s, src = _synced(tmp_path)
    outside = tmp_path / "secret.json"
    outside.write_text('{"x-leaked": "from outside"}')
    os.symlink(outside, src / "x.meta.json")
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(src), "demo")
    assert ei.value.key == "e.regapi.sync.link"
    assert "x-leaked" not in s.fetch("/home/demo/.regapi/api/x")
    assert tree(s) == {"x": "echo one\n", "old": "echo old\n"}


@pytest.mark.parametrize("sidecar,why", [
    ('{"http-header-X-A": "a\\r\\nSet-Cookie: x=1"}', "X-A"),
    ('{"http-header-Bad Name": "x"}', "Bad Name"),
    ('{"http-header-Content-Length": "5"}', "Content-Length"),
    ('{"http-header-X-Name": "\\u652f\\u4ed8"}', "X-Name"),
    ('{"http-header-X-List": [1, 2]}', "X-List"),
    ('{"http-header-Content-Type": "text/html\\r\\nX-Evil: 1"}', "Content-Type"),
    ('{"http-resp-code": 307}', "http-resp-code"),
    ('{"regapi-reqobj": "true"}', "regapi-reqobj"),     # only the JSON true counts
])
def test_response_metadata_the_server_would_drop_is_refused(tmp_path, sidecar, why):
    # the server silently leaves out such headers (and ignores other redirect codes),
    # so the operator never learnt that the API answers without them
    s, src = _synced(tmp_path)
    write(src / "x.meta.json", sidecar)
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(src), "demo")
    assert ei.value.key == "e.regapi.sync.meta"
    assert ei.value.reason.startswith("x.meta.json: ") and why in ei.value.reason
    assert tree(s) == {"x": "echo one\n", "old": "echo old\n"}


def test_good_response_metadata_is_kept(tmp_path):
    s, src = _synced(tmp_path)
    write(src / "x.meta.json", '{"http-header-Content-Type": "json", "http-resp-code": "302",'
                               ' "http-header-Cache-Control": "no-store", "http-header-X-N": 5}')
    sync_dir(s, str(src), "demo")
    x = s.fetch("/home/demo/.regapi/api/x")
    assert x["http-header-Cache-Control"] == "no-store" and x["http-resp-code"] == "302"


def test_two_sidecars_for_one_api_are_refused(tmp_path):
    # "pay.meta.json" and "pay.regapi.meta.json" both name the metadata of "pay": one
    # of them was silently ignored (which one depended on the directory listing)
    s, src = _synced(tmp_path)
    write(src / "x.meta.json", '{"http-header-Cache-Control": "no-store"}')
    write(src / "x.regapi.meta.json", '{"http-header-Cache-Control": "max-age=60"}')
    with pytest.raises(WnError) as ei:
        sync_dir(s, str(src), "demo")
    assert ei.value.key == "e.regapi.sync.dup" and "x.meta.json" in ei.value.reason
    assert "x.regapi.meta.json" in ei.value.reason
    assert tree(s) == {"x": "echo one\n", "old": "echo old\n"}
