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
