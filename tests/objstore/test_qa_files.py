"""QA: store URLs naming files a store must not take over (through the CLI and
open_store): a FIFO, a folder, a symlinked TinyDB file, a NUL in the path."""
import os
import stat
import subprocess
import sys

import pytest

from objstore import open_store
from objstore.errors import WnError


def _wnshell(*args, timeout=30):
    script = os.path.join(os.path.dirname(sys.executable), "wnshell")
    cmd = [script] if os.path.exists(script) else [sys.executable, "-m", "wnshell"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("scheme", ["tinydb", "sqlite"])
def test_fifo_is_refused_not_opened(tmp_path, scheme):
    # tinydb blocked for ever reading the FIFO; a character device such as /dev/null
    # (which the FIFO stands for here) was *replaced* by the store's JSON file (rename)
    fifo = tmp_path / "store"
    os.mkfifo(fifo)
    try:
        r = _wnshell("--store", f"{scheme}://{fifo}", "-c", "mkdir /x", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO as the store blocked")
    assert r.returncode == 1
    assert r.stderr.strip() == f"e.io.store.open : {fifo} is not a regular file"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["store"]      # no -journal, .lock, temp file


@pytest.mark.parametrize("scheme", ["tinydb", "sqlite"])
def test_folder_is_refused(tmp_path, scheme):
    with pytest.raises(WnError) as ei:
        open_store(f"{scheme}://{tmp_path}")
    assert ei.value.line() == f"e.io.store.open : {tmp_path} is not a regular file"


def test_tinydb_symlink_keeps_pointing_at_the_store(tmp_path):
    # every write renamed a new file over the *link*: the link became a plain file and
    # the real store (its target) silently stopped changing
    real = tmp_path / "data" / "store.json"
    real.parent.mkdir()
    link = tmp_path / "store.json"
    os.symlink(real, link)
    s = open_store(f"tinydb://{link}")
    s.create("/a", "FILE", {"v": 1})
    s.close()
    assert os.path.islink(link)
    assert '"v":1' in real.read_text()
    again = open_store(f"tinydb://{real}")
    assert again.fetch("/a")["v"] == 1
    again.close()


@pytest.mark.parametrize("scheme", ["tinydb", "sqlite"])
def test_nul_in_path_is_a_store_error(scheme):
    with pytest.raises(WnError) as ei:          # was a raw ValueError
        open_store(f"{scheme}:///tmp/a\x00b")
    assert ei.value.key == "e.io.store.url.invalid"
