"""Properties of the v3 primitives over generated input: what is signed verifies, any
change to what was signed does not; what is encrypted decrypts, any flipped bit does
not; Authorization headers parse back to what was put in."""
import base64

from hypothesis import given, settings, strategies as st

from wxpay.errors import SignError
from wxpay.v3 import auth, crypto
from wxpay.v3.crypto import DecryptError
from wxpay.v3.keys import WechatKeys

from . import vectors as v

KEY = crypto.load_private_key(v.KEY_PEM)
KEYS = WechatKeys(public_key=crypto.public_pem(KEY), public_key_id="PUB_KEY_ID_TEST")
bodies = st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)),
                 max_size=200)
targets = st.from_regex(r"\A/v3/[A-Za-z0-9_\-%*]{1,20}(\?[a-z]{1,5}=[A-Za-z0-9]{1,8})?\Z")


@settings(max_examples=40, deadline=None)
@given(bodies, st.integers(min_value=0, max_value=200))
def test_signed_answer_verifies_and_any_change_fails(body, where):
    raw = body.encode("utf-8")
    h = auth.signature_headers(KEY, "PUB_KEY_ID_TEST", raw, timestamp=1700000000)
    KEYS.verify(h, raw, now=1700000000)
    changed = raw[:where] + b"!" + raw[where:]
    try:
        KEYS.verify(h, changed, now=1700000000)
    except SignError:
        pass
    else:
        raise AssertionError("a changed body verified")


@settings(max_examples=30, deadline=None)
@given(targets, bodies, st.sampled_from(["GET", "POST"]))
def test_authorization_round_trip(target, body, method):
    value = auth.authorization(v.MCHID, v.SERIAL, KEY, method, target, body.encode(),
                               timestamp=1700000000)
    f = auth.parse_authorization(value)
    assert (f["mchid"], f["serial_no"], f["timestamp"]) == (v.MCHID, v.SERIAL, "1700000000")
    msg = auth.request_message(method, target, f["timestamp"], f["nonce_str"], body)
    assert crypto.rsa_verify(KEY, msg, f["signature"])
    assert not crypto.rsa_verify(KEY, msg.replace("\n", "\n ", 1), f["signature"])


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.text(max_size=20), st.data())
def test_gcm_round_trip_and_any_flipped_bit_fails(plain, aad, data):
    ct = crypto.aes_gcm_encrypt(v.APIV3_KEY, "fJ3Qk9ZtB2xW", plain, aad)
    assert crypto.aes_gcm_decrypt(v.APIV3_KEY, "fJ3Qk9ZtB2xW", ct, aad) == plain
    raw = bytearray(base64.b64decode(ct))
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    try:
        crypto.aes_gcm_decrypt(v.APIV3_KEY, "fJ3Qk9ZtB2xW",
                               base64.b64encode(bytes(raw)).decode(), aad)
    except DecryptError:
        pass
    else:
        raise AssertionError("a flipped bit decrypted")


@given(st.text(max_size=120))
def test_parse_authorization_never_crashes(value):
    try:
        auth.parse_authorization("WECHATPAY2-SHA256-RSA2048 " + value)
    except SignError:
        pass


# ----- the simulator never fails on what a merchant sends -----------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)
_FIELDS = ["appid", "mchid", "description", "out_trade_no", "notify_url", "amount",
           "payer", "time_expire", "attach", "out_refund_no", "transaction_id", "reason"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=8),
       st.sampled_from(["/v3/pay/transactions/jsapi", "/v3/refund/domestic/refunds",
                        "/v3/pay/transactions/out-trade-no/ORDER_0001/close"]))
def test_simulator_answers_any_signed_json_with_a_v3_status(fields, target):
    import json
    sim = _fuzz_sim()
    body = json.dumps(dict({"appid": v.APPID, "mchid": v.MCHID}, **fields)).encode()
    headers = {"Accept": "application/json", "User-Agent": "t",
               "Authorization": auth.authorization(v.MCHID, v.SERIAL, KEY, "POST", target,
                                                   body)}
    status, _, out = sim.handle("POST", target, headers, body)
    assert status in (200, 204) or 400 <= status < 500, out     # and never raises


_SIM = []


def _fuzz_sim():
    if not _SIM:
        from wxpay.v3.simulator import V3Simulator
        s = V3Simulator()
        s.add_merchant(v.MCHID, [v.APPID], crypto.public_pem(KEY), v.SERIAL, v.APIV3_KEY)
        _SIM.append(s)
    return _SIM[0]


# ----- our parsers raise WnError (a clear one-line error) on anything -----------------
def _account():
    from wxpay.v3.account import V3Account
    return V3Account(v.APPID, v.MCHID, v.APIV3_KEY, v.SERIAL, KEY, keys=KEYS)


@settings(max_examples=150, deadline=None)
@given(json_values, st.sampled_from(["transaction", "refund", "bill", "prepay", "envelope",
                                     "certificates", "resource", "refund_resource"]))
def test_parsers_only_raise_wn_errors(doc, which):
    import json

    from objstore.errors import WnError
    from wxpay.v3 import api, notify
    from wxpay.v3.keys import parse_certificates
    acc = _account()
    try:
        if which == "transaction":
            api.parse_transaction(acc, doc)
        elif which == "refund":
            api.parse_refund(acc, doc)
        elif which == "bill":
            api.parse_bill(acc, doc)
        elif which == "prepay":
            api.parse_prepay(doc)
        elif which == "certificates":
            parse_certificates(v.APIV3_KEY, json.dumps({"data": doc}).encode())
        else:
            if which == "envelope":
                env = doc
            else:                                 # a well-formed envelope, any plaintext
                kind = "transaction" if which == "resource" else "refund"
                env = {"id": "EV-1", "event_type": "TRANSACTION.SUCCESS" if kind ==
                       "transaction" else "REFUND.SUCCESS",
                       "resource_type": "encrypt-resource",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "original_type": kind,
                                    "nonce": "fJ3Qk9ZtB2xW", "associated_data": kind,
                                    "ciphertext": crypto.aes_gcm_encrypt(
                                        v.APIV3_KEY, "fJ3Qk9ZtB2xW", json.dumps(doc), kind)}}
            body = json.dumps(env).encode()
            h = auth.signature_headers(KEY, "PUB_KEY_ID_TEST", body)
            notify.parse_notification(acc, h, body)
    except WnError as e:
        assert e.key.startswith("e.weixin.") and "\n" not in e.line()
