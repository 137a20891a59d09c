"""QA of ``wnshell sync``: what a hostile or broken folder must not do."""
import os

import pytest

from objstore import open_store
from objstore.errors import WnError
from regapi.sync import sync_dir

from .test_sync import tree, write


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
