"""weixin <conf>: the wxconf object, its lenient JSON, caching, info."""
from __future__ import annotations

import json

import objstore
from commands.weixin import conf as confmod
from wnshell.session import Session

from .conftest import APPID, APPSECRET, MCH_ID, PAY_KEY, install_wxconf, run, write_file

# the seed's snippet, byte for byte (weixin_pay.md, 公众号的配置)
SEED_VERBATIM = """appID      : 'wx45ac..',   # 公众号 API 的 ID 号
appsecret  : '39b0..',     # 公众号 API 秘钥
pay_mch_id : "xxxx"        # 商户号
pay_key    : "xxxx"        # 支付秘钥
pay_time_expire : 10       # 订单过期时间(分钟)，默认10
pay_notify_url : "http:xx" # 支付成功的回调
"""


def _session():
    store = objstore.open_store("memory://")
    return store, Session(store, user="demo")


def test_seed_snippet_loads_verbatim():
    store, sh = _session()
    write_file(store, "/home/demo/.weixin/xxx/wxconf", SEED_VERBATIM)
    status, out, err = run(sh, "weixin xxx info")
    assert status == 0, err
    info = json.loads(out)
    assert info["appID"] == "wx45ac.."
    assert info["pay_mch_id"] == "xxxx"
    assert info["pay_time_expire"] == 10
    assert info["pay_notify_url"] == "http:xx"
    # secrets masked: no character of them shown
    assert info["pay_key"].startswith("****") and "xxxx" not in info["pay_key"].strip("*")
    assert "39b0" not in out


def test_info_masks_secrets_with_test_values():
    store, sh = _session()
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/notify")
    status, out, err = run(sh, "weixin xxx info")
    assert status == 0, err
    info = json.loads(out)
    assert info["appID"] == APPID and info["pay_mch_id"] == MCH_ID
    assert PAY_KEY not in out and APPSECRET not in out
    assert PAY_KEY[-4:] not in out and APPSECRET[-4:] not in out
    assert info["pay_key"].startswith("****")
    assert info["appsecret"].startswith("****")


def test_braced_json_and_strict_json_load():
    store, sh = _session()
    write_file(store, "/home/demo/.weixin/a/wxconf",
               json.dumps({"appID": "wxA", "pay_mch_id": "1", "pay_key": "k" * 32}))
    write_file(store, "/home/demo/.weixin/b/wxconf",
               "{\n  appID: wxB\n  pay_mch_id: '2'\n  pay_key: '" + "k" * 32 + "'\n}\n")
    assert json.loads(run(sh, "weixin a info")[1])["appID"] == "wxA"
    assert json.loads(run(sh, "weixin b info")[1])["appID"] == "wxB"


def test_missing_conf_is_not_found():
    store, sh = _session()
    status, out, err = run(sh, "weixin nosuch info")
    assert status == 1 and out == ""
    assert err == "e.cmd.weixin.conf.noexists : ~/.weixin/nosuch/wxconf\n"
    assert sh.last_error.kind == "not_found"


def test_bad_conf_is_invalid_and_never_quoted():
    store, sh = _session()
    for text in ("{appID: 'wx', pay_key: \"" + PAY_KEY + "\"",     # unterminated
                 "[1, 2, 3]",
                 "just some words " + PAY_KEY,
                 "",
                 "appID: wx1\npay_mch_id: 1\n"):                   # no pay_key
        write_file(store, "/home/demo/.weixin/bad/wxconf", text)
        status, out, err = run(sh, "weixin bad info")
        assert status == 1, text
        assert err.startswith("e.cmd.weixin.conf.invalid : bad: "), err
        assert err.count("\n") == 1
        assert PAY_KEY not in err
        assert sh.last_error.kind == "bad_input"


def test_bad_conf_name_and_handler():
    store, sh = _session()
    status, _, err = run(sh, "weixin ../x info")
    assert status == 1 and err.startswith("e.cmd.weixin.conf.invalid")
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    status, _, err = run(sh, "weixin xxx nosuch")
    assert status == 2 and err.startswith("e.cmd.weixin.handler.unknown")
    status, _, err = run(sh, "weixin xxx")
    assert status == 2 and err.startswith("e.cmd.weixin.usage")


def test_parsed_accounts_are_cached_until_the_conf_changes(monkeypatch):
    store, sh = _session()
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    calls = []
    real = confmod.parse_wxconf

    def counting(name, text):
        calls.append(name)
        return real(name, text)

    monkeypatch.setattr(confmod, "parse_wxconf", counting)
    for _ in range(5):
        assert run(sh, "weixin xxx info")[0] == 0
    assert len(calls) == 1
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/changed")
    status, out, _ = run(sh, "weixin xxx info")
    assert json.loads(out)["pay_notify_url"] == "http://127.0.0.1:9/changed"
    assert len(calls) == 2


def _sqlite_session(tmp_path):
    store = objstore.open_store(f"sqlite://{tmp_path / 'store.db'}")
    return store, Session(store, user="demo")


def _counting_fetches(monkeypatch, store):
    fetched = []
    real = store.fetch

    def counted(path, **kw):
        fetched.append(path)
        return real(path, **kw)
    monkeypatch.setattr(store, "fetch", counted)
    return fetched


def _check_no_refetch_across_order_writes(monkeypatch, store, sh, order) -> None:
    """Loaded once, the account is not fetched again while only an order changes."""
    assert run(sh, "weixin xxx info")[0] == 0
    fetched = _counting_fetches(monkeypatch, store)
    for i in range(5):
        store.set_meta(order["id"], {"n": i})          # not in a dot-folder
        assert run(sh, "weixin xxx info")[0] == 0
    assert not any(p.endswith("/wxconf") for p in fetched), fetched


def test_an_unchanged_account_is_not_read_from_the_store_again(tmp_path, monkeypatch):
    """On SQLite the account is checked against the dot-folder generation (a memory
    read), not fetched on every call; other writes (orders) do not move it."""
    store, sh = _sqlite_session(tmp_path)
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    order = store.create("/home/demo/orders/o1", "FILE", {"or_status": 0}, parents=True)
    _check_no_refetch_across_order_writes(monkeypatch, store, sh, order)
    store.close()


def test_a_wxconf_changed_by_another_process_is_seen_at_once(tmp_path):
    store, sh = _sqlite_session(tmp_path)
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    assert json.loads(run(sh, "weixin xxx info")[1])["pay_notify_url"] == \
        "http://127.0.0.1:9/n"
    # another process: its own store on the same file (its own map of the generation)
    other = objstore.open_store(f"sqlite://{tmp_path / 'store.db'}")
    install_wxconf(other, "http://127.0.0.1:9", "http://127.0.0.1:9/changed")
    other.close()
    assert json.loads(run(sh, "weixin xxx info")[1])["pay_notify_url"] == \
        "http://127.0.0.1:9/changed"
    store.close()


def test_a_wxconf_edited_without_wnshell_is_seen_within_the_recheck(tmp_path, monkeypatch):
    import sqlite3
    import time
    monkeypatch.setattr(confmod, "RECHECK_S", 0.2)
    store, sh = _sqlite_session(tmp_path)
    obj = install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    assert run(sh, "weixin xxx info")[0] == 0
    text = store.read(obj.id).decode().replace("127.0.0.1:9/n", "127.0.0.1:9/byhand")
    with sqlite3.connect(tmp_path / "store.db") as c:      # no generation moved
        c.execute("UPDATE content SET data = ? WHERE id = ?", (text.encode(), obj.id))
        c.execute("UPDATE obj SET meta = json_set(meta, '$.sha1', 'x') WHERE id = ?",
                  (obj.id,))
    time.sleep(0.3)
    assert json.loads(run(sh, "weixin xxx info")[1])["pay_notify_url"] == \
        "http://127.0.0.1:9/byhand"
    store.close()


def test_on_postgresql_an_account_is_read_again_only_after_a_dot_folder_write(monkeypatch):
    """PostgreSQL's generation (LISTEN/NOTIFY): an unchanged account is not fetched on
    every call, and an edit by another process (its own store) is seen as soon as its
    NOTIFY arrives -- well within RECHECK_S, set long here to show it is not that."""
    import time

    import pytest
    pytest.importorskip("psycopg")
    from tests.objstore import pg_backend
    monkeypatch.setattr(confmod, "RECHECK_S", 60.0)
    url = pg_backend.fresh_url()
    store = objstore.open_store(url)
    sh = Session(store, user="demo")
    try:
        install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
        order = store.create("/home/demo/orders/o1", "FILE", {"or_status": 0}, parents=True)
        deadline = time.time() + 10
        while store.dot_generation() is None:           # the watch is listening
            assert time.time() < deadline
            time.sleep(0.02)
        _check_no_refetch_across_order_writes(monkeypatch, store, sh, order)
        other = objstore.open_store(url)
        install_wxconf(other, "http://127.0.0.1:9", "http://127.0.0.1:9/changed")
        other.close()
        deadline = time.time() + 5
        while json.loads(run(sh, "weixin xxx info")[1])["pay_notify_url"] != \
                "http://127.0.0.1:9/changed":
            assert time.time() < deadline, "the other process's edit was never seen"
            time.sleep(0.05)
    finally:
        store.close()


# ``weixin CONF info`` masks every secret-looking field, at any depth
EVERY_SECRET_CONF = f"""appID: 'wx1'
pay_mch_id: 1230000109
pay_key: '{PAY_KEY}'
appsecret: 'AppSecretValue0001'
pay_notify_url: 'https://example.com/api/demo/payresult'
apiclient_cert: "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
apiclient_key_file: 'PemFileBodyXYZ'
db_pass: 'Hunter2Hunter2'
mch_private: 'PrivateValue77'
certs: [{{api_key: 'ListedKeyValue'}}, 'plain']
copy_of_key: '{PAY_KEY}'
nested: {{deep: {{token: 'DeepTokenValue'}}, pay_key: 'NestedKeyValue'}}
"""


def test_info_masks_every_secret_looking_field():
    store, sh = _session()
    write_file(store, "/home/demo/.weixin/a/wxconf", EVERY_SECRET_CONF)
    status, out, err = run(sh, "weixin a info")
    assert status == 0, err
    for secret in (PAY_KEY, "AppSecretValue0001", "MIIEvQ", "PemFileBodyXYZ",
                   "Hunter2Hunter2", "PrivateValue77", "ListedKeyValue", "DeepTokenValue",
                   "NestedKeyValue"):
        assert secret not in out, secret
    info = json.loads(out)
    # what is not secret is still shown as it is
    assert info["appID"] == "wx1" and info["pay_mch_id"] == 1230000109
    assert info["pay_notify_url"] == "https://example.com/api/demo/payresult"
    assert info["copy_of_key"].startswith("****") and info["db_pass"].startswith("****")


def _request_session(store):
    """A session as a .regapi request has it: confined, ~/.weixin hidden."""
    return Session(store, user="demo", confine=True, home_known=True,
                   hide=(".weixin", ".regapi"))


def test_a_request_session_reads_its_account_once_and_sees_a_change(tmp_path, monkeypatch):
    store, sh = _sqlite_session(tmp_path)
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    first = confmod.load(_request_session(store), "xxx")
    fetched = _counting_fetches(monkeypatch, store)
    for _ in range(3):          # a session per request, the account read once
        assert confmod.load(_request_session(store), "xxx") is first
    assert fetched == []
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/changed")
    again = confmod.load(_request_session(store), "xxx")
    assert again.conf["pay_notify_url"] == "http://127.0.0.1:9/changed"
    # the template itself still cannot see the account
    assert run(_request_session(store), "cat ~/.weixin/xxx/wxconf")[0] != 0
    store.close()


def test_a_request_deadline_bounds_the_account_client():
    store, sh = _session()
    install_wxconf(store, "http://127.0.0.1:9", "http://127.0.0.1:9/n")
    loaded = confmod.load(sh, "xxx")
    total = loaded.client._total_timeout()
    assert loaded.bounded(total + 1) is loaded and loaded.bounded(total) is loaded
    quick = loaded.bounded(2.0)
    assert quick is not loaded and quick.client._total_timeout() <= 2.0
    assert loaded.client._total_timeout() == total          # the account's own: kept
    quicker = quick.bounded(1.0)            # bounded again: by the copy's own timeouts
    assert quicker.client._total_timeout() <= 1.0 and quick.bounded(2.0) is quick
    assert loaded.bounded(2.0).client._total_timeout() <= 2.0
