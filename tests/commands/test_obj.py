"""obj: show, update, query, create -- through Session.run on a memory store."""
from __future__ import annotations

import json

import pytest

from .conftest import one_error_line


def put(sh, path, meta=None, race="FILE"):
    return sh.store.create(path, race, meta or {}, parents=True)


def obj_json(run, text, stdin=""):
    status, out, err = run(text, stdin)
    assert status == 0, err
    return json.loads(out)


# ---- show -------------------------------------------------------------------------
def test_show_one_object_pretty(sh, run):
    o = put(sh, "/home/demo/orders/o1", {"or_fee": 100, "title": "咖啡"})
    status, out, _ = run("obj ~/orders/o1")
    assert status == 0
    data = json.loads(out)
    assert data["id"] == o.id and data["nm"] == "o1" and data["race"] == "FILE"
    assert data["ph"] == "/home/demo/orders/o1" and data["or_fee"] == 100
    assert out == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert "咖啡" in out                      # never \u-escaped


def test_show_compact_and_list(sh, run):
    put(sh, "/home/demo/o1", {"a": 1})
    status, out, _ = run("obj ~/o1 -c")
    assert status == 0 and out.count("\n") == 1 and json.loads(out)["a"] == 1
    data = obj_json(run, "obj -l ~/o1")
    assert isinstance(data, list) and data[0]["nm"] == "o1"
    data = obj_json(run, "obj -cl ~/o1")
    assert isinstance(data, list)


def test_show_default_is_cwd(sh, run):
    assert obj_json(run, "cd ~; obj")["ph"] == "/home/demo"


def test_show_glob_and_several_paths_give_arrays(sh, run):
    for nm in ("o1", "o2", "x"):
        put(sh, f"/home/demo/orders/{nm}")
    assert [o["nm"] for o in obj_json(run, "obj ~/orders/o*")] == ["o1", "o2"]
    assert [o["nm"] for o in obj_json(run, "obj ~/orders/x*")] == ["x"]
    assert [o["nm"] for o in obj_json(run, "obj ~/orders/x ~/orders/o1")] == ["x", "o1"]


def test_show_by_id(sh, run):
    o = put(sh, "/home/demo/o1")
    assert obj_json(run, f"obj id:{o.id}")["ph"] == "/home/demo/o1"


def test_pick_keys_with_e(sh, run):
    put(sh, "/home/demo/o1", {"or_fee": 1, "or_st": "W", "x": 2})
    assert obj_json(run, "obj ~/o1 -e '^or_'") == {"or_fee": 1, "or_st": "W"}
    status, _, err = run("obj ~/o1 -e '('")
    assert status == 1 and one_error_line(err, "e.regex.invalid")


def test_missing_object(run):
    status, out, err = run("obj ~/nope")
    assert status == 1 and out == "" and one_error_line(err, "e.io.obj.noexists")


# ---- update -----------------------------------------------------------------------
def test_update_sets_and_deletes_keys(sh, run):
    o = put(sh, "/home/demo/o1", {"a": 1, "tmp": "x"})
    data = obj_json(run, """obj ~/o1 -u '{"b":"二","tmp":null,"n":{"k":[1,2]}}' -o""")
    assert data["a"] == 1 and data["b"] == "二" and data["n"] == {"k": [1, 2]}
    assert "tmp" not in data
    stored = sh.store.get(o.id)
    assert stored["b"] == "二" and "tmp" not in stored


def test_update_from_stdin(sh, run):
    o = put(sh, "/home/demo/o1")
    data = obj_json(run, "echo '{\"or_status\":\"PAID\"}' | obj ~/o1 -o -u")
    assert data["or_status"] == "PAID"
    assert sh.store.get(o.id)["or_status"] == "PAID"
    status, _, err = run("obj ~/o1 -u", stdin="")
    assert status == 2 and one_error_line(err, "e.cmd.obj")


def test_update_lenient_json(sh, run):
    o = put(sh, "/home/demo/o1")
    data = obj_json(run, """obj ~/o1 -o -u "{a: 1, b: 'two'}" """)
    assert data["a"] == 1 and data["b"] == "two"
    assert sh.store.get(o.id)["b"] == "two"


def test_update_refuses_readonly_and_writes_nothing(sh, run):
    o = put(sh, "/home/demo/o1", {"a": 1})
    for key in ("id", "ph", "nm", "race", "lm", "len"):
        status, out, err = run(f"""obj ~/o1 -u '{{"a":2,"{key}":"x"}}'""")
        assert status == 1 and out == ""
        assert one_error_line(err, "e.cmd.obj.readonly") and key in err
    assert sh.store.get(o.id)["a"] == 1
    # settable reserved fields
    data = obj_json(run, """obj ~/o1 -u '{"mime":"text/plain","expi":99999999999999}' -o""")
    assert data["mime"] == "text/plain" and data["expi"] == 99999999999999


def test_update_invalid_json_is_one_line(sh, run):
    o = put(sh, "/home/demo/o1", {"a": 1})
    for bad in ("'{\"a\":'", "'[1,2]'", "'{\"a\": NaN}'"):
        status, out, err = run(f"obj ~/o1 -u {bad}")
        assert status == 1 and out == ""
        assert one_error_line(err, "e.json.invalid"), err
    assert sh.store.get(o.id)["a"] == 1


def test_update_several_checks_all_first(sh, run):
    a = put(sh, "/home/demo/a")
    status, _, err = run("""obj ~/a ~/missing -u '{"k":1}'""")
    assert status == 1 and one_error_line(err, "e.io.obj.noexists")
    assert "k" not in sh.store.get(a.id)
    put(sh, "/home/demo/b")
    data = obj_json(run, """obj ~/a ~/b -u '{"k":1}' -o""")
    assert [d["k"] for d in data] == [1, 1]
    # metadata the store refuses (expi must be epoch ms, keys non-empty): nothing written
    for bad in ('{"k":2,"expi":"soon"}', '{"k":2,"":1}'):
        status, out, err = run(f"obj ~/a ~/b -u '{bad}'")
        assert status == 1 and out == "" and one_error_line(err, "e.io.meta.invalid"), err
    assert [sh.store.fetch(f"/home/demo/{n}")["k"] for n in "ab"] == [1, 1]


# ---- query ------------------------------------------------------------------------
@pytest.fixture
def orders(sh):
    made = []
    for i, st in enumerate(["WAIT", "PAID", "WAIT", "FAIL", "WAIT"]):
        made.append(put(sh, f"/home/demo/orders/o{i}",
                        {"or_status": st, "or_fee": 100 * (i + 1), "rank": i}))
    put(sh, "/home/other/orders/z", {"or_status": "WAIT", "rank": 9})
    return made


def test_match_scoped_to_path(orders, run):
    data = obj_json(run, """obj ~/orders -match '{"or_status":"WAIT"}'""")
    assert sorted(d["nm"] for d in data) == ["o0", "o2", "o4"]
    everywhere = obj_json(run, """obj -match '{"or_status":"WAIT"}'""")
    assert sorted(d["nm"] for d in everywhere) == ["o0", "o2", "o4", "z"]


def test_match_is_always_an_array(orders, run):
    data = obj_json(run, """obj ~/orders -match '{"or_status":"PAID"}'""")
    assert isinstance(data, list) and [d["nm"] for d in data] == ["o1"]
    assert obj_json(run, """obj ~/orders -match '{"or_status":"NONE"}'""") == []


def test_match_sort_skip_limit(orders, run):
    q = """obj ~/orders -match '{"or_status":"WAIT"}' -sort '{"rank":-1}'"""
    assert [d["rank"] for d in obj_json(run, q)] == [4, 2, 0]
    assert [d["rank"] for d in obj_json(run, q + " -limit 2")] == [4, 2]
    assert [d["rank"] for d in obj_json(run, q + " -skip 1 -limit 1")] == [2]
    status, _, err = run(q + " -limit x")
    assert status == 2 and one_error_line(err, "e.cmd.obj")
    status, _, err = run("""obj ~/orders -match '{}' -sort '[1]'""")
    assert status == 2 and one_error_line(err, "e.cmd.obj")


def test_match_or_list_and_walnut_values(orders, run):
    data = obj_json(run, """obj ~/orders -match '[{"or_status":"PAID"},{"or_status":"FAIL"}]'""")
    assert sorted(d["nm"] for d in data) == ["o1", "o3"]
    data = obj_json(run, """obj ~/orders -match '{"or_fee":"[200,400]"}' -sort '{"rank":1}'""")
    assert [d["nm"] for d in data] == ["o1", "o2", "o3"]
    data = obj_json(run, """obj ~/orders -match '{"nm":"^o[34]$"}' -sort '{"nm":1}' -e '^nm$' -c""")
    assert data == [{"nm": "o3"}, {"nm": "o4"}]


def test_match_with_update(orders, sh, run):
    data = obj_json(run, """obj ~/orders -match '{"or_status":"FAIL"}' -u '{"or_status":"WAIT"}' -o""")
    assert [d["nm"] for d in data] == ["o3"]
    assert sh.store.get(orders[3].id)["or_status"] == "WAIT"


def test_match_bad_input(orders, run):
    status, _, err = run("obj ~/orders -match '{oops'")
    assert status == 1 and one_error_line(err, "e.json.invalid")
    status, _, err = run("""obj ~/orders -match '{"pid":"x"}'""")
    assert status == 2 and one_error_line(err, "e.cmd.obj")


# ---- create -----------------------------------------------------------------------
def test_new_creates_under_parent(sh, run):
    sh.store.create("/home/demo/orders", "DIR", parents=True)
    data = obj_json(run, """obj -new '{"nm":"o1","race":"FILE","or_fee":100}' ~/orders -o""")
    assert data["ph"] == "/home/demo/orders/o1" and data["or_fee"] == 100
    stored = sh.store.fetch("/home/demo/orders/o1")
    assert stored.id == data["id"] and stored["or_fee"] == 100
    d = obj_json(run, """cd ~/orders; obj -new '{"nm":"sub","race":"DIR"}' -o""")
    assert d["race"] == "DIR" and d["ph"] == "/home/demo/orders/sub"


def test_new_without_name_is_named_by_id(sh, run):
    sh.store.create("/home/demo/orders", "DIR", parents=True)
    data = obj_json(run, """obj -new '{"k":"v"}' ~/orders -o""")
    assert data["nm"] == data["id"] and data["ph"] == "/home/demo/orders/" + data["id"]
    assert [o.nm for o in sh.store.children(sh.store.fetch("/home/demo/orders").id)] == [data["id"]]


def test_new_from_stdin(sh, run):
    data = obj_json(run, "obj ~ -o -new", stdin='{"nm":"fromstdin"}')
    assert data["ph"] == "/home/demo/fromstdin"


def test_new_refusals_create_nothing(sh, run):
    home = sh.store.fetch("/home/demo")
    cases = [
        ("""obj -new '{"nm":"o1"}' ~/nope""", 1, "e.io.obj.noexists"),
        ("""obj -new '{"nm":"a/b"}' ~""", 1, "e.io.path.invalid"),
        ("""obj -new '{"nm":"o1","race":"LINK"}' ~""", 1, "e.cmd.obj.race"),
        ("""obj -new '{"nm":"o1","id":"x"}' ~""", 1, "e.cmd.obj.readonly"),
        ("""obj -new '{"nm":' ~""", 1, "e.json.invalid"),
        ("""obj -new '{"nm":"o1"}' -u '{}' ~""", 2, "e.cmd.obj"),
    ]
    for text, want_status, key in cases:
        status, out, err = run(text)
        assert status == want_status and out == "", text
        assert one_error_line(err, key), (text, err)
    assert sh.store.children(home.id) == []
    put(sh, "/home/demo/o1")
    status, _, err = run("""obj -new '{"nm":"o1"}' ~""")
    assert status == 1 and one_error_line(err, "e.io.obj.exists")


def test_obj_unknown_option(run):
    status, _, err = run("obj -zz 1")
    assert status == 2 and one_error_line(err, "e.cmd.obj")


# ---- Walnut's obj (issue 15) --------------------------------------------------------
def test_update_and_new_print_nothing_unless_o(sh, run):
    sh.store.create("/home/demo/orders", "DIR", parents=True)
    assert run("""obj -new '{nm: "o1", total_fee: 888}' ~/orders""") == (0, "", "")
    assert sh.store.fetch("/home/demo/orders/o1")["total_fee"] == 888
    assert run("obj ~/orders/o1 -u '{or_status: 1}'") == (0, "", "")
    assert sh.store.fetch("/home/demo/orders/o1")["or_status"] == 1
    assert run("obj ~/orders -match '{}' -u '{seen: true}'") == (0, "", "")
    assert obj_json(run, "obj ~/orders/o1 -u '{or_status: 2}' -o -e '^or_'") == \
        {"or_status": 2}
    assert run("obj ~/orders/o1 -u '{or_status: 3}' -o -e '^or_' -c")[1] == \
        '{"or_status":3}\n'


def test_table_with_t_and_header_with_h(sh, run):
    put(sh, "/home/demo/orders/o1", {"or_status": 1, "total_fee": 888, "title": "咖啡"})
    put(sh, "/home/demo/orders/o22", {"or_status": 2, "total_fee": 5, "x": {"a": [1]}})
    st, out, err = run("obj ~/orders/* -t 'nm,or_status,total_fee,title' -H")
    assert (st, err) == (0, "")
    assert out == ("nm   or_status  total_fee  title\n"
                   "o1   1          888        咖啡\n"
                   "o22  2          5\n")
    assert run("obj ~/orders/o22 -t 'nm, x'")[1] == 'o22  {"a":[1]}\n'
    assert run("obj ~/orders -match '{or_status: 9}' -t nm -H")[1] == "nm\n"
    st, _, err = run("obj ~/orders/o1 -H")
    assert st == 2 and one_error_line(err, "e.cmd.obj.option")
    st, _, err = run("obj ~/orders/o1 -t")
    assert st == 2 and one_error_line(err, "e.cmd.obj.option")


def test_e_with_a_bang_negates(sh, run):
    put(sh, "/home/demo/o1", {"or_fee": 1, "or_st": "W", "x": 2})
    shown = obj_json(run, "obj ~/o1 -e '!^(or_|id$|pid$|ph$|nm$|race$|d0$|d1$|ct$|lm$|c$|m$|g$|"
                          "tp$|mime$|len$|sha1$)'")
    assert shown == {"x": 2}
    assert "or_fee" not in obj_json(run, "obj ~/o1 -e '!^or_'")


def test_u_macros_ms_and_date(sh, run, monkeypatch):
    import time as _time
    put(sh, "/home/demo/o1")
    before = int(_time.time() * 1000)
    run("obj ~/o1 -u '{t: \"%ms:now\", later: \"%ms:now+10m\", early: \"%ms:now-1s\", "
        "d: \"%date:yyyy-MM-dd\", full: \"%date:now\", keep: \"50%\"}'")
    after = int(_time.time() * 1000)
    o = sh.store.fetch("/home/demo/o1")
    assert before <= o["t"] <= after
    assert before + 600_000 <= o["later"] <= after + 600_000
    assert before - 1000 <= o["early"] <= after - 1000
    import datetime as _dt
    today = _dt.datetime.now().astimezone().strftime("%Y-%m-%d")
    assert o["d"] in (today, _dt.datetime.fromtimestamp(after / 1000).strftime("%Y-%m-%d"))
    assert len(o["full"]) == 19 and o["full"][:4].isdigit() and o["keep"] == "50%"
    st, _, err = run("obj ~/o1 -u '{t: \"%ms:tomorrow\"}'")
    assert st == 1 and one_error_line(err, "e.cmd.obj.macro")
    # -new expands them too
    run("obj -new '{nm: \"o2\", ct_ms: \"%ms:now\"}' ~")
    assert isinstance(sh.store.fetch("/home/demo/o2")["ct_ms"], int)


def test_match_with_path_is_its_direct_children(sh, run):
    put(sh, "/home/demo/orders/o1", {"st": 1})
    put(sh, "/home/demo/orders/2026/o2", {"st": 1})
    assert [d["nm"] for d in obj_json(run, "obj ~/orders -match '{st: 1}'")] == ["o1"]
    deep = obj_json(run, "obj -match '{st: 1, ph: \"^/home/demo/orders/\"}' -sort '{nm:1}'")
    assert [d["nm"] for d in deep] == ["o1", "o2"]                # the subtree: a ph regex


def test_sort_skip_limit_on_paths(sh, run):
    for i, fee in enumerate([5, 30, 10]):
        put(sh, f"/home/demo/orders/o{i}", {"fee": fee})
    q = "obj ~/orders/* -sort '{fee: -1}'"
    assert [d["fee"] for d in obj_json(run, q)] == [30, 10, 5]
    assert [d["fee"] for d in obj_json(run, q + " -skip 1 -limit 1")] == [10]
    assert [d["nm"] for d in obj_json(run, "obj ~/orders/* -limit 2")] == ["o0", "o1"]
    st, _, err = run("obj ~/orders/* -limit -1")
    assert st == 2 and one_error_line(err, "e.cmd.obj.option")


def test_push_and_pop_array_fields(sh, run):
    o = put(sh, "/home/demo/o1", {"n": 1})
    assert run("obj ~/o1 -push '{tags: \"a\"}'") == (0, "", "")
    assert sh.store.get(o.id)["tags"] == ["a"]
    out = obj_json(run, "obj ~/o1 -push '{tags: [\"b\", \"a\"], pairs: [[1, 2]]}' -o -e "
                        "'^(tags|pairs)$'")
    assert out == {"tags": ["a", "b", "a"], "pairs": [[1, 2]]}
    assert obj_json(run, "obj ~/o1 -pop '{tags: \"a\"}' -o -e '^tags$'") == {"tags": ["b"]}
    assert obj_json(run, "obj ~/o1 -pop '{tags: [\"b\", \"zz\"]}' -u '{n: 2}' -o "
                         "-e '^(tags|n)$'") == {"n": 2, "tags": []}
    # a field that is not an array: refused, nothing written on any object
    put(sh, "/home/demo/o2", {"tags": "solo"})
    st, out, err = run("obj ~/o1 ~/o2 -push '{tags: \"x\"}'")
    assert st == 1 and out == "" and one_error_line(err, "e.cmd.obj.notarray")
    assert sh.store.get(o.id)["tags"] == []
    st, _, err = run("obj ~/o1 -push '{tags: 1}' -u '{tags: null}'")
    assert st == 2 and one_error_line(err, "e.cmd.obj.option")
    st, _, err = run("obj ~/o1 -push '{id: 1}'")
    assert st == 1 and one_error_line(err, "e.cmd.obj.readonly")


def test_concurrent_pushes_are_all_kept(tmp_path):
    import threading
    from objstore import open_store
    from wnshell.session import Session
    url = f"sqlite:///{tmp_path}/s.db"
    store = open_store(url)
    Session(store).run("echo > ~/o1")
    errors = []

    def worker(i):
        st = open_store(url)
        try:
            s = Session(st)
            for j in range(10):
                status, _, err = s.run(f"obj ~/o1 -push '{{seen: \"{i}-{j}\"}}'")
                if status:
                    errors.append(err)
        finally:
            st.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    seen = store.fetch("/home/demo/o1")["seen"]
    assert sorted(seen) == sorted(f"{i}-{j}" for i in range(4) for j in range(10))
    store.close()


def test_man_obj_says_what_is_walnuts():
    from commands.obj import OBJ
    assert "WALNUT AND WNSHELL" in OBJ.man and "Ours:" in OBJ.man
