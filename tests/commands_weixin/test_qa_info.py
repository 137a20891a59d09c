"""QA: ``weixin CONF info`` masks every secret-looking field, at any depth."""
from __future__ import annotations

import json

import objstore
from wnshell.session import Session

from .conftest import PAY_KEY, run, write_file

CONF = f"""appID: 'wx1'
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
    store = objstore.open_store("memory://")
    sh = Session(store, user="demo")
    write_file(store, "/home/demo/.weixin/a/wxconf", CONF)
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
