"""Settling pending takes from node replies (docs/mediation.md#take-outcomes), replayed refusals included."""

from __future__ import annotations

from dataclasses import replace

import pytest

from serbero_cli.keytext import generate_secret, public_key_of
from serbero_cli.mediation.take_match import PendingTake, TakeOutcome, match_reply
from serbero_cli.nostr.mostro_messages import MostroReply

D1 = "3f2a9c1e-7b4d-4e8f-a1c2-9d0e5f6a7b8c"
D2 = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
SENT = 1_790_000_000
SERBERO_SECRET = generate_secret()
SERBERO = public_key_of(SERBERO_SECRET)
BUYER = public_key_of(generate_secret())
SELLER = public_key_of(generate_secret())
PENDING = [PendingTake(D1, 111, SENT, "giftwrap"), PendingTake(D2, 222, SENT, "nip44")]


def took(
    dispute_id=D1, request_id=None, buyer=BUYER, seller=SELLER, created_at=SENT + 2, payload_id=None
):
    info = {
        "id": "0c4f6a8e-1111-4a2b-9c3d-5e6f7a8b9c0d",
        "buyer_pubkey": buyer,
        "seller_pubkey": seller,
    }
    info = {k: v for k, v in info.items() if v is not None}
    return MostroReply(
        "dispute",
        1,
        request_id,
        dispute_id,
        "admin-took-dispute",
        {"dispute": [payload_id or dispute_id, info]},
        created_at,
        "e" * 64,
        "giftwrap",
    )


def cant_do(dispute_id=D1, request_id=None, reason="invalid_pubkey", created_at=SENT + 2):
    return MostroReply(
        "cant-do",
        1,
        request_id,
        dispute_id,
        "cant-do",
        {"cant_do": reason},
        created_at,
        "f" * 64,
        "giftwrap",
    )


def match(reply, pending=PENDING, **kw):
    kw.setdefault("serbero_secret", SERBERO_SECRET)
    return match_reply(pending, reply, serbero_pubkey=SERBERO, **kw)


# --- correlation ---


def test_took_reply_with_null_request_id_settles_by_dispute_id():
    assert match(took()) == (D1, TakeOutcome("taken", None, BUYER, SELLER))


def test_echoed_request_id_settles_that_request_even_when_old():
    assert match(cant_do(D2, request_id=222, created_at=SENT - 3600)) == (
        D2,
        TakeOutcome("refused", "invalid_pubkey"),
    )


def test_request_id_differing_from_every_pending_is_skipped_even_for_our_dispute():
    assert match(took(D1, request_id=999)) is None


def test_request_id_of_one_request_with_another_dispute_id_is_skipped():
    assert match(took(D2, request_id=111)) is None


def test_replayed_refusal_for_another_dispute_is_ignored():
    other = "00000000-0000-4000-8000-000000000000"
    assert match(cant_do(other)) is None


def test_refusal_older_than_30s_before_the_request_is_ignored():
    assert match(cant_do(D1, created_at=SENT - 31)) is None
    assert match(cant_do(D1, created_at=SENT - 30)) == (
        D1,
        TakeOutcome("refused", "invalid_pubkey"),
    )


def test_null_request_id_picks_the_latest_fresh_request_of_that_dispute():
    pending = [PendingTake(D1, 1, SENT - 600, "giftwrap"), PendingTake(D1, 2, SENT, "giftwrap")]
    assert match(took(created_at=SENT - 100), pending=pending) == (
        D1,
        TakeOutcome("taken", None, BUYER, SELLER),
    )
    assert match(took(created_at=SENT - 700), pending=pending) is None


def test_nothing_pending_skips_every_reply():
    assert match(took(), pending=[]) is None


# --- refusals ---


@pytest.mark.parametrize(
    "reason, expected",
    [
        ("invalid_pubkey", "invalid_pubkey"),
        ("not_found", "not_found"),
        (None, "unknown"),
        ("", "unknown"),
        (7, "unknown"),
    ],
)
def test_cant_do_is_refused_with_reason(reason, expected):
    assert match(cant_do(reason=reason)) == (D1, TakeOutcome("refused", expected))


# --- replies that are not a take answer (steps 7-8) ---


@pytest.mark.parametrize(
    "reply",
    [
        replace(took(), action="admin-settle"),
        replace(took(), payload={"dispute": [D1]}),
        replace(took(), payload={"order": {"id": D1}}),
        replace(took(), payload=None),
        replace(took(), payload={"dispute": [D1, "not an object"]}),
        took(payload_id=D2),
    ],
    ids=[
        "other-action",
        "short-pair",
        "other-payload",
        "null-payload",
        "info-not-object",
        "payload-id-differs",
    ],
)
def test_reply_that_is_not_an_admin_took_dispute_for_us_is_skipped(reply):
    assert match(reply) is None


# --- taken(info) validation ---


@pytest.mark.parametrize(
    "buyer, seller, code",
    [
        (None, SELLER, "missing_keys"),
        (BUYER, None, "missing_keys"),
        (123, SELLER, "missing_keys"),
        ("zz" * 32, SELLER, "bad_key"),
        (BUYER[:62], SELLER, "bad_key"),
        (BUYER, "f" * 64, "bad_key"),
        (BUYER, BUYER, "same_keys"),
        (BUYER, BUYER.upper(), "same_keys"),
        (SERBERO, SELLER, "is_serbero"),
        (BUYER, SERBERO, "is_serbero"),
    ],
    ids=[
        "no-buyer",
        "no-seller",
        "number",
        "not-hex",
        "short",
        "off-curve",
        "same",
        "same-mixed-case",
        "buyer-is-serbero",
        "seller-is-serbero",
    ],
)
def test_taken_info_with_unusable_keys_is_invalid(buyer, seller, code):
    assert match(took(buyer=buyer, seller=seller)) == (
        D1,
        TakeOutcome("invalid", f"invalid_reply:{code}"),
    )


def test_taken_info_with_equal_shared_secrets_is_invalid():
    outcome = match(took(), serbero_secret=None, secrets_differ=lambda b, s: False)
    assert outcome == (D1, TakeOutcome("invalid", "invalid_reply:same_secret"))


def test_taken_keys_are_lowercased():
    assert match(took(buyer=BUYER.upper())) == (D1, TakeOutcome("taken", None, BUYER, SELLER))


def test_match_reply_needs_a_secret_or_a_comparison():
    with pytest.raises(ValueError):
        match_reply(PENDING, took(), serbero_pubkey=SERBERO)
