"""wnshell sync: a folder of .regapi files -> the user's .regapi/api tree, exactly."""
import json

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
    r = subprocess.run(cmd + ["sync", str(tmp_path / "apis"), "--user", "ann", "--store", url],
                       capture_output=True, text=True, timeout=60)
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
