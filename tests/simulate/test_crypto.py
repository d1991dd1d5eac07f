"""simulate/crypto.py against the published chat vectors and the byte rules of docs/wire-formats.md#party-chat."""

from __future__ import annotations

import hashlib
import json

import coincurve
import nostr_sdk as ns
import pytest

from serbero_cli.simulate import crypto
from serbero_cli.simulate.mostro_messages import encode_tuple, take_request
from serbero_cli.simulate.mostro_records import decide_take

SECRET_A = "548f68890c49fa42f104c60352395e60ff030b0b407e955f1eed1400d6c0347a"
PUB_A = "000053c3b4773182e7c4c1b72b272d34be01bf4414a6a25c998977c516a46a01"
SECRET_B = "f258e73f07386d37133718b6127f873dd7c391b8f43b331ff8254034a13d2943"
PUB_B = "000009ae5cff9f6ba9b05159ec5ed58c187f5882ea77c81ed5dd19163272a5d7"
SHARED_X = "def6633a53d07d1e829484c4d4bdbbeed2f4b14c21743e63871c174338e39475"
PUB_CONV = "bceb1cd2a8e98ee9729122a1693edcc39c3ace04582ff96a26705c5e4078a6f2"
PUB_SIGN = "1dba04571059183f76b148119cfa6f8004dad30cb4e810180a6df17386a7f0b4"
PRK = "32de47c235d9558e2738cb115dc02705d0ed756187da6454df6933b64298f59a"
CONV_SECRET = "786210709b3077748490720afcf6db73f8f8e85308341c2912a5067ba5e5583d"
SIGN_SECRET = "79d0e7d968d0f0fb32cf2676ea75892335a54285bcf851e875eb5b344d18a79b"
SELF_CONVERSATION_KEY = "e1c964d44013e8486e9182bd6fc31b103ab0b92d7a149f1c136047cce84ea136"
VECTOR_INNER_ID = "326bd77f7e7157a9c8b02c2ec8035495c50475572c11394f1e46d6c722f89222"


def test_vector_keys_and_pubkeys():
    assert crypto.xonly_of(bytes.fromhex(SECRET_A)).hex() == PUB_A
    assert crypto.xonly_of(bytes.fromhex(SECRET_B)).hex() == PUB_B


def test_vector_shared_x_is_symmetric_and_not_the_hashed_ecdh():
    ab = crypto.ecdh_x(bytes.fromhex(SECRET_A), bytes.fromhex(PUB_B))
    ba = crypto.ecdh_x(bytes.fromhex(SECRET_B), bytes.fromhex(PUB_A))
    assert ab.hex() == ba.hex() == SHARED_X
    # The trap: coincurve's ecdh() hashes the point and gives another value.
    hashed = coincurve.PrivateKey(bytes.fromhex(SECRET_A)).ecdh(
        coincurve.PublicKey(b"\x02" + bytes.fromhex(PUB_B)).format()
    )
    assert hashed.hex() != SHARED_X


def test_vector_hkdf_prk_and_chat_secrets():
    x = bytes.fromhex(SHARED_X)
    assert crypto.hkdf_prk(x).hex() == PRK
    conv, sign = crypto.chat_secrets(x)
    assert conv.hex() == CONV_SECRET
    assert sign.hex() == SIGN_SECRET
    assert crypto.xonly_of(conv).hex() == PUB_CONV
    assert crypto.xonly_of(sign).hex() == PUB_SIGN


def test_vector_nip44_self_conversation_key():
    conv = bytes.fromhex(CONV_SECRET)
    assert (
        crypto.nip44_conversation_key(conv, bytes.fromhex(PUB_CONV)).hex() == SELF_CONVERSATION_KEY
    )


def test_vector_inner_event_id():
    keys = ns.Keys.parse(SECRET_A)
    text = "Let\u2019s reestablish the peer-to-peer nature of Bitcoin!"
    signed = (
        ns.EventBuilder(ns.Kind(1), text)
        .custom_created_at(ns.Timestamp.from_secs(1691518405))
        .finalize(keys)
    )
    assert signed.id().to_hex() == VECTOR_INNER_ID


def test_hkdf_retry_appends_counter_byte_when_attempt_zero_is_invalid():
    prk = crypto.hkdf_prk(bytes.fromhex(SHARED_X))
    attempts = []

    def reject_first(candidate: bytes) -> bool:
        attempts.append(candidate)
        return len(attempts) > 1

    out = crypto.derive_chat_secret(prk, crypto.CONV_INFO, reject_first)
    assert out == crypto.hkdf_expand_32(prk, b"mostro:chat:conv:v1\x01")
    assert attempts[0].hex() == CONV_SECRET


def test_hkdf_gives_up_after_256_invalid_attempts():
    calls = []
    with pytest.raises(crypto.DerivationError):
        crypto.derive_chat_secret(
            b"\x00" * 32, crypto.SIGN_INFO, lambda c: calls.append(c) and False
        )
    assert len(calls) == 256


def test_canonical_json_reorders_fields_and_never_sorts():
    scrambled = {
        "dispute": {
            "payload": None,
            "action": "admin-take-dispute",
            "id": "d-1",
            "trade_index": None,
            "request_id": 7,
            "version": 2,
            "unknown": 1,
        }
    }
    expected = (
        '{"dispute":{"version":2,"request_id":7,"trade_index":null,"id":"d-1",'
        '"action":"admin-take-dispute","payload":null}}'
    )
    assert crypto.canonical_message_json(scrambled) == expected
    assert crypto.canonical_message_json(take_request("d-1", 7, 2)) == expected


def test_canonical_json_omits_absent_id_and_keeps_nulls():
    assert crypto.canonical_message_json({"order": {"version": 1, "action": "x"}}) == (
        '{"order":{"version":1,"request_id":null,"trade_index":null,"action":"x","payload":null}}'
    )


def test_message_signature_is_bip340_over_sha256_of_canonical_bytes():
    keys = ns.Keys.generate()
    secret = bytes.fromhex(keys.secret_key().to_hex())
    msg = take_request("0b5d4c8e-0000-4000-8000-000000000001", 12345, 1)
    sig = crypto.sign_message(secret, msg)
    digest = hashlib.sha256(crypto.canonical_message_json(msg).encode()).digest()
    assert coincurve.PublicKeyXOnly(bytes.fromhex(keys.public_key().to_hex())).verify(
        bytes.fromhex(sig), digest
    )
    # nostr_sdk's signer over the same digest verifies with our checker too.
    assert crypto.verify_message(keys.public_key().to_hex(), msg, keys.sign_schnorr(digest))
    tampered = take_request("0b5d4c8e-0000-4000-8000-000000000001", 12346, 1)
    assert not crypto.verify_message(keys.public_key().to_hex(), tampered, sig)
    assert not crypto.verify_message(keys.public_key().to_hex(), msg, "zz")


def test_encode_tuple_shapes():
    msg = take_request("d", None, 2)
    assert json.loads(encode_tuple(msg, elements=3))[1:] == [None, None]
    assert len(json.loads(encode_tuple(msg))) == 2


@pytest.mark.parametrize(
    "hex_id,bits", [("f" * 64, 0), ("0" * 64, 256), ("00" + "f" * 62, 8), ("001" + "0" * 61, 11)]
)
def test_leading_zero_bits(hex_id, bits):
    assert crypto.leading_zero_bits(hex_id) == bits


def test_is_valid_xonly_rejects_points_off_the_curve():
    assert crypto.is_valid_xonly(PUB_A)
    assert not crypto.is_valid_xonly("00" * 32)
    assert not crypto.is_valid_xonly("ab")


ME, OTHER, WRITER, MOSTRO = "a" * 64, "b" * 64, "c" * 64, "d" * 64
SOLVERS = {ME: "read", OTHER: "read", WRITER: "write"}


@pytest.mark.parametrize(
    "status,holder,author,expected",
    [
        pytest.param("initiated", None, ME, None, id="read-solver-takes-initiated"),
        pytest.param("initiated", None, "e" * 64, "invalid_pubkey", id="non-solver-refused"),
        pytest.param("in-progress", ME, ME, None, id="holder-retakes"),
        pytest.param("in-progress", OTHER, ME, "invalid_pubkey", id="read-cannot-take-from-read"),
        pytest.param("in-progress", ME, WRITER, None, id="write-takes-over-from-read"),
        pytest.param("in-progress", WRITER, ME, "invalid_pubkey", id="read-cannot-take-from-write"),
        pytest.param("settled", ME, ME, "invalid_pubkey", id="resolved-settled"),
        pytest.param("seller-refunded", None, WRITER, "invalid_pubkey", id="resolved-refunded"),
        pytest.param("in-progress", ME, MOSTRO, None, id="node-key-may-take"),
    ],
)
def test_decide_take_follows_the_permission_table(status, holder, author, expected):
    assert decide_take(status, holder, author, SOLVERS, MOSTRO) == expected


def test_decide_take_write_cannot_take_over_from_write():
    solvers = {ME: "write", WRITER: "write"}
    assert decide_take("in-progress", ME, WRITER, solvers, MOSTRO) == "invalid_pubkey"
