"""Chat key derivation: ECDH symmetry, the hashed-ECDH trap, the published vectors (U6, V1, V2)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import coincurve
import nostr_sdk as ns
import pytest

from serbero_cli.keytext import Secret, generate_secret, public_key_of
from serbero_cli.nostr.chat_keys import (
    CONV_INFO,
    ChannelKeyError,
    derive_channel,
    hkdf_prk,
    hkdf_secret,
    shared_secrets_differ,
    shared_x,
)
from tests.protocol.party_side import PartyChannel, party_x

SECRET_A = "548f68890c49fa42f104c60352395e60ff030b0b407e955f1eed1400d6c0347a"
SECRET_B = "f258e73f07386d37133718b6127f873dd7c391b8f43b331ff8254034a13d2943"
PUB_A = "000053c3b4773182e7c4c1b72b272d34be01bf4414a6a25c998977c516a46a01"
PUB_B = "000009ae5cff9f6ba9b05159ec5ed58c187f5882ea77c81ed5dd19163272a5d7"
X = "def6633a53d07d1e829484c4d4bdbbeed2f4b14c21743e63871c174338e39475"
PRK = "32de47c235d9558e2738cb115dc02705d0ed756187da6454df6933b64298f59a"
CONV_SECRET = "786210709b3077748490720afcf6db73f8f8e85308341c2912a5067ba5e5583d"
SIGN_SECRET = "79d0e7d968d0f0fb32cf2676ea75892335a54285bcf851e875eb5b344d18a79b"
CONV_PUB = "bceb1cd2a8e98ee9729122a1693edcc39c3ace04582ff96a26705c5e4078a6f2"
SIGN_PUB = "1dba04571059183f76b148119cfa6f8004dad30cb4e810180a6df17386a7f0b4"
SELF_CONVERSATION_KEY = "e1c964d44013e8486e9182bd6fc31b103ab0b92d7a149f1c136047cce84ea136"
INNER_ID = "326bd77f7e7157a9c8b02c2ec8035495c50475572c11394f1e46d6c722f89222"


def test_shared_x_serbero_side_equals_party_side():
    serbero, trade = generate_secret(), generate_secret()
    ours = shared_x(serbero, public_key_of(trade))
    theirs = party_x(trade.reveal(), public_key_of(serbero))
    assert ours == theirs and len(ours) == 32


def test_shared_x_differs_from_coincurve_hashed_ecdh_trap():
    serbero = Secret(SECRET_A)
    trap = coincurve.PrivateKey(bytes.fromhex(SECRET_A)).ecdh(b"\x02" + bytes.fromhex(PUB_B))
    assert shared_x(serbero, PUB_B).hex() == X
    assert trap.hex() != X


def test_vector_public_keys_of_the_secrets():
    assert public_key_of(Secret(SECRET_A)) == PUB_A
    assert public_key_of(Secret(SECRET_B)) == PUB_B


@pytest.mark.parametrize(
    "ours, theirs", [(SECRET_A, PUB_B), (SECRET_B, PUB_A)], ids=["a-to-b", "b-to-a"]
)
def test_vector_derivation_pins_every_step(ours, theirs):
    x = shared_x(Secret(ours), theirs)
    assert x.hex() == X
    assert hkdf_prk(x).hex() == PRK
    channel = derive_channel(Secret(ours), "buyer", theirs)
    assert channel.legacy_secret.reveal() == X
    assert (
        channel.legacy_pubkey
        == coincurve.PublicKeyXOnly.from_secret(bytes.fromhex(X)).format().hex()
    )
    assert channel.conv_secret.reveal() == CONV_SECRET
    assert channel.sign_secret.reveal() == SIGN_SECRET
    assert channel.conv_pubkey == CONV_PUB
    assert channel.sign_pubkey == SIGN_PUB
    assert channel.trade_pubkey == theirs and channel.party == "buyer"


def test_vector_nip44_self_conversation_key_matches_nostr_sdk_ciphertext():
    conv = bytes.fromhex(CONV_SECRET)
    point = coincurve.PublicKey(b"\x02" + bytes.fromhex(CONV_PUB)).multiply(conv).format()[1:]
    conversation_key = hmac.new(b"nip44-v2", point, hashlib.sha256).digest()
    assert conversation_key.hex() == SELF_CONVERSATION_KEY
    # the MAC of a nostr-sdk self-encryption checks out under that conversation key
    payload = base64.b64decode(
        ns.nip44_encrypt(
            ns.SecretKey.parse(CONV_SECRET),
            ns.PublicKey.parse(CONV_PUB),
            "probe",
            ns.Nip44Version.V2,
        )
    )
    nonce, body, mac = payload[1:33], payload[33:-32], payload[-32:]
    okm, block, counter = b"", b"", 1
    while len(okm) < 76:
        block = hmac.new(
            conversation_key, block + nonce + bytes([counter]), hashlib.sha256
        ).digest()
        okm, counter = okm + block, counter + 1
    assert hmac.new(okm[44:76], nonce + body, hashlib.sha256).digest() == mac


def test_vector_inner_event_id_with_typographic_apostrophe():
    inner = (
        ns.EventBuilder(ns.Kind(1), "Let\u2019s reestablish the peer-to-peer nature of Bitcoin!")
        .custom_created_at(ns.Timestamp.from_secs(1691518405))
        .finalize(ns.Keys(ns.SecretKey.parse(SECRET_A)))
    )
    assert inner.author().to_hex() == PUB_A
    assert inner.id().to_hex() == INNER_ID


def test_derive_channel_matches_party_side_for_random_keys():
    serbero, trade = generate_secret(), ns.Keys.generate()
    ours = derive_channel(serbero, "seller", trade.public_key().to_hex())
    theirs = PartyChannel(trade, public_key_of(serbero))
    assert ours.legacy_pubkey == theirs.legacy.public_key().to_hex()
    assert ours.conv_pubkey == theirs.conv.public_key().to_hex()
    assert ours.sign_pubkey == theirs.sign.public_key().to_hex()
    assert len({ours.legacy_pubkey, ours.conv_pubkey, ours.sign_pubkey}) == 3


def test_hkdf_retry_uses_counter_suffix_after_a_rejected_attempt():
    x = bytes.fromhex(X)
    calls: list[bytes] = []

    def reject_first(candidate: bytes) -> bool:
        calls.append(candidate)
        return len(calls) > 1

    out = hkdf_secret(x, CONV_INFO, is_valid=reject_first)
    prk = bytes.fromhex(PRK)
    assert calls[0].hex() == CONV_SECRET  # attempt 0: the bare info string
    assert out == hmac.new(prk, b"mostro:chat:conv:v1\x01" + b"\x01", hashlib.sha256).digest()
    assert out.hex() != CONV_SECRET


def test_hkdf_all_256_attempts_rejected_is_an_error():
    calls = []
    with pytest.raises(ChannelKeyError):
        hkdf_secret(bytes.fromhex(X), CONV_INFO, is_valid=lambda c: calls.append(c) and False)
    assert len(calls) == 256 and len(set(calls)) == 256


@pytest.mark.parametrize(
    "bad",
    ["00" * 32, "zz" * 32, "ab" * 31, "f" * 64],
    ids=["zero", "not-hex", "short", "not-on-curve"],
)
def test_shared_x_rejects_a_pubkey_off_the_curve(bad):
    with pytest.raises(ChannelKeyError):
        shared_x(generate_secret(), bad)


def test_shared_secrets_differ_for_distinct_parties_and_not_for_one():
    serbero = generate_secret()
    a, b = public_key_of(generate_secret()), public_key_of(generate_secret())
    assert shared_secrets_differ(serbero, a, b)
    assert not shared_secrets_differ(serbero, a, a)


def test_channel_repr_never_shows_secrets():
    channel = derive_channel(Secret(SECRET_A), "buyer", PUB_B)
    text = repr(channel)
    for secret in (X, CONV_SECRET, SIGN_SECRET, SECRET_A):
        assert secret not in text
