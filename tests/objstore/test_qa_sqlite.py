"""QA: an SQLite store whose rows were edited by hand (another tool, a bad migration)."""
import sqlite3

import pytest

from objstore import open_store
from objstore.errors import WnError


@pytest.mark.parametrize("meta", ["{bad", "[1]", "null", '"text"'])
def test_row_with_bad_metadata_is_a_clear_error(tmp_path, meta):
    # json.loads raised JSONDecodeError/TypeError through every read (e.cmd.internal)
    path = tmp_path / "store.db"
    s = open_store(f"sqlite://{path}")
    f = s.create("/a/f", "FILE", {"k": 1}, parents=True)
    ok = s.create("/a/g", "FILE", {"k": 2})
    with sqlite3.connect(path) as c:
        c.execute("UPDATE obj SET meta = ? WHERE id = ?", (meta, f["id"]))
    for op in (lambda: s.get(f["id"]), lambda: s.fetch("/a/f"),
               lambda: s.children(s.fetch("/a")["id"]), lambda: s.query({"nm": "f"}),
               lambda: s.set_meta(f["id"], {"k": 3})):
        with pytest.raises(WnError) as ei:
            op()
        assert ei.value.key == "e.io.store.corrupt" and f["id"] in ei.value.reason
    try:                                  # a query on metadata, answered by SQLite itself
        found = s.query({"k": 1})
    except WnError as e:
        assert e.key == "e.io.store.corrupt"
    else:
        assert found == []
    assert s.fetch("/a/g")["id"] == ok["id"]          # the rest of the store still works
    s.close()
