"""Chat envelopes in both directions, without a relay (docs/wire-formats.md#party-chat),
Serbero's own envelopes included.

The party side is built in the test from the spec (tests/protocol/party_side.py), never with the
helpers under test.
"""

from __future__ import annotations

import json

import nostr_sdk as ns
import pytest

from serbero_cli.keytext import generate_secret, public_key_of
from serbero_cli.nostr.chat import (
    Kind14RunState,
    build_inner,
    chat_filters,
    kind14_wrap,
    legacy_wrap,
    needs_fresh_inner,
    open_kind14,
    open_legacy,
    route_event,
)
from serbero_cli.nostr.chat_keys import derive_channel
from tests.protocol.party_side import PartyChannel

NOW = 1_790_000_000


@pytest.fixture
def chat():
    serbero = generate_secret()
    trade = ns.Keys.generate()
    serbero_pubkey = public_key_of(serbero)
    return {
        "serbero": serbero,
        "serbero_pubkey": serbero_pubkey,
        "channel": derive_channel(serbero, "buyer", trade.public_key().to_hex()),
        "party": PartyChannel(trade, serbero_pubkey),
    }


def tags_of(event: ns.Event) -> list[list[str]]:
    return [t.to_vec() for t in event.tags()]


def tamper_json(event: ns.Event, **changes) -> ns.Event:
    data = json.loads(event.as_json())
    data.update(changes)
    return ns.Event.from_json(json.dumps(data))


def flip_last_hex(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


# --- outbound ---


@pytest.mark.parametrize("text", ["", "   ", "\n\t"], ids=["empty", "spaces", "whitespace"])
def test_build_inner_blank_text_is_rejected(chat, text):
    with pytest.raises(ValueError):
        build_inner(chat["serbero"], text, NOW)


def test_build_inner_rebuilt_with_same_time_and_text_has_same_id(chat):
    first = build_inner(chat["serbero"], "Buyer: did you pay?", NOW)
    again = build_inner(chat["serbero"], "Buyer: did you pay?", NOW)
    later = build_inner(chat["serbero"], "Buyer: did you pay?", NOW + 601)
    assert first.id == again.id and first.created_at == NOW
    assert later.id != first.id
    inner = ns.Event.from_json(first.event_json)
    assert inner.verify() and inner.kind().as_u16() == 1 and tags_of(inner) == []
    assert inner.author().to_hex() == chat["serbero_pubkey"]


def test_needs_fresh_inner_after_600_seconds():
    assert not needs_fresh_inner(NOW, NOW + 600)
    assert needs_fresh_inner(NOW, NOW + 601)


def test_kind14_wrap_has_one_p_tag_inner_time_and_opens_for_the_party(chat):
    inner = build_inner(chat["serbero"], "Seller: please confirm", NOW)
    outer = kind14_wrap(inner, chat["channel"])
    party = chat["party"]
    assert outer.kind().as_u16() == 14
    assert tags_of(outer) == [["p", party.conv.public_key().to_hex()]]
    assert outer.created_at().as_secs() == inner.created_at
    assert outer.author().to_hex() == party.sign.public_key().to_hex()
    opened = party.open_kind14(outer)
    assert opened.id().to_hex() == inner.id
    assert opened.author().to_hex() == chat["serbero_pubkey"]
    assert opened.content() == "Seller: please confirm"


def test_legacy_copy_carries_identical_inner_id(chat):
    inner = build_inner(chat["serbero"], "Buyer: hello", NOW)
    wraps = [legacy_wrap(inner, chat["channel"], NOW) for _ in range(2)]
    party = chat["party"]
    for wrap in wraps:
        assert wrap.kind().as_u16() == 1059
        assert tags_of(wrap) == [["p", party.legacy.public_key().to_hex()]]
        assert NOW - 172_800 <= wrap.created_at().as_secs() <= NOW
        assert wrap.author().to_hex() != chat["serbero_pubkey"]
        assert party.open_legacy(wrap).id().to_hex() == inner.id
    assert (
        wraps[0].author().to_hex() != wraps[1].author().to_hex()
    )  # a fresh ephemeral key each time
    assert party.open_kind14(kind14_wrap(inner, chat["channel"])).id().to_hex() == inner.id


# --- inbound, legacy 1059 ---


def test_open_legacy_accepts_the_party_reply(chat):
    party = chat["party"]
    inner = party.inner("I paid yesterday", NOW - 5)
    msg = open_legacy(
        party.legacy_wrap(inner.as_json(), NOW), chat["channel"], chat["serbero_pubkey"], NOW
    )
    assert msg.status == "ok" and msg.envelope == "giftwrap" and msg.party == "buyer"
    assert (msg.inner_id, msg.inner_created_at, msg.content) == (
        inner.id().to_hex(),
        NOW - 5,
        "I paid yesterday",
    )


def test_open_legacy_own_wrap_read_back_is_a_quiet_echo(chat):
    inner = build_inner(chat["serbero"], "Buyer: hi", NOW)
    msg = open_legacy(
        legacy_wrap(inner, chat["channel"], NOW), chat["channel"], chat["serbero_pubkey"], NOW
    )
    assert msg.status == "echo" and not msg.counts_as_rejected


def test_open_legacy_forged_inner_author_is_a_counted_forgery(chat):
    party = chat["party"]
    forged = party.inner("release now", NOW, signer=ns.Keys.generate())
    msg = open_legacy(
        party.legacy_wrap(forged.as_json(), NOW), chat["channel"], chat["serbero_pubkey"], NOW
    )
    assert msg.status == "forgery" and msg.counts_as_rejected and msg.content is None


@pytest.mark.parametrize(
    "case, reason",
    [
        ("tampered_ciphertext", "decrypt_failed"),
        ("non_kind1_inner", "inner_not_kind1"),
        ("bad_inner_signature", "bad_inner_signature"),
        ("not_an_event", "bad_inner"),
        ("future_601", "future_inner"),
        ("over_64_kib", "too_large"),
    ],
)
def test_open_legacy_rejects(chat, case, reason):
    party = chat["party"]
    inner_json = party.inner("text", NOW).as_json()
    if case == "non_kind1_inner":
        inner_json = party.inner("text", NOW, kind=4).as_json()
    elif case == "bad_inner_signature":
        inner_json = tamper_json(party.inner("text", NOW), content="changed").as_json()
    elif case == "not_an_event":
        inner_json = '{"hello": 1}'
    elif case == "future_601":
        inner_json = party.inner("text", NOW + 601).as_json()
    wrap = party.legacy_wrap(inner_json, NOW)
    if case == "over_64_kib":  # refused before any decryption is spent on it
        wrap = party.legacy_wrap("", NOW, content="A" * 66_000)
    if case == "tampered_ciphertext":
        content = wrap.content()
        wrap = party.legacy_wrap(
            "", NOW, content=content[:40] + ("A" if content[40] != "A" else "B") + content[41:]
        )
    msg = open_legacy(wrap, chat["channel"], chat["serbero_pubkey"], NOW)
    assert (msg.status, msg.reason) == ("rejected", reason)


def test_open_legacy_accepts_600_seconds_ahead(chat):
    party = chat["party"]
    wrap = party.legacy_wrap(party.inner("text", NOW + 600).as_json(), NOW)
    assert open_legacy(wrap, chat["channel"], chat["serbero_pubkey"], NOW).status == "ok"


# --- inbound, kind 14: one failing case per check an incoming chat message must pass ---


def test_open_kind14_accepts_the_party_reply(chat):
    party = chat["party"]
    inner = party.inner("Seller here", NOW - 30)
    msg = open_kind14(
        party.kind14(inner.as_json(), NOW - 10),
        chat["channel"],
        chat["serbero_pubkey"],
        NOW,
        Kind14RunState(),
    )
    assert msg.status == "ok" and msg.envelope == "kind14"
    assert (msg.inner_id, msg.inner_created_at, msg.content, msg.author) == (
        inner.id().to_hex(),
        NOW - 30,
        "Seller here",
        party.trade.public_key().to_hex(),
    )


def test_open_kind14_own_envelope_read_back_is_a_quiet_echo(chat):
    inner = build_inner(chat["serbero"], "Buyer: hi", NOW)
    msg = open_kind14(
        kind14_wrap(inner, chat["channel"]),
        chat["channel"],
        chat["serbero_pubkey"],
        NOW,
        Kind14RunState(),
    )
    assert (msg.status, msg.counts_as_rejected) == ("echo", False)


def _kind14_case(chat, case):
    """Build the envelope of one failing case; returns (event, run_state)."""
    party, state = chat["party"], Kind14RunState()
    good_inner = party.inner("text", NOW)
    other = ns.Keys.generate()
    conv_tag = ns.Tag.public_key(party.conv.public_key())
    if case == "1_wrong_author":
        return party.kind14(good_inner.as_json(), NOW, author=other), state
    if case == "2_wrong_kind":
        return party.kind14(good_inner.as_json(), NOW, kind=1059), state
    if case == "2_two_p_tags":
        return party.kind14(
            good_inner.as_json(), NOW, tags=[conv_tag, ns.Tag.public_key(other.public_key())]
        ), state
    if case == "2_p_tag_elsewhere":
        return party.kind14(
            good_inner.as_json(), NOW, tags=[ns.Tag.public_key(other.public_key())]
        ), state
    if case == "2_no_p_tag":
        return party.kind14(good_inner.as_json(), NOW, tags=[]), state
    if case == "3_outer_61s_ahead":
        return party.kind14(party.inner("text", NOW + 61).as_json(), NOW + 61), state
    if case == "4_oversized":
        return party.kind14("", NOW, content="A" * 65_537), state
    if case == "4_json_over_64_kib":
        return party.kind14(
            good_inner.as_json(), NOW, tags=[conv_tag, ns.Tag.parse(["x", "p" * 66_000])]
        ), state
    if case == "5_seen_this_run":
        event = party.kind14(good_inner.as_json(), NOW)
        open_kind14(event, chat["channel"], chat["serbero_pubkey"], NOW, state)
        return event, state
    if case == "6_channel_cap":
        for i in range(100):
            filler = party.kind14("", NOW, content=f"junk-{i}")
            open_kind14(filler, chat["channel"], chat["serbero_pubkey"], NOW, state)
        return party.kind14(good_inner.as_json(), NOW), state
    if case == "7_bad_outer_signature":
        event = party.kind14(good_inner.as_json(), NOW)
        return tamper_json(event, sig=flip_last_hex(event.signature())), state
    if case == "8_tampered_ciphertext":
        content = party.kind14(good_inner.as_json(), NOW).content()
        return party.kind14(
            "", NOW, content=content[:40] + ("A" if content[40] != "A" else "B") + content[41:]
        ), state
    if case == "8_encrypted_to_wrong_key":
        body = ns.nip44_encrypt(
            other.secret_key(), party.conv.public_key(), good_inner.as_json(), ns.Nip44Version.V2
        )
        return party.kind14("", NOW, content=body), state
    if case == "9_inner_not_an_event":
        return party.kind14("not json", NOW), state
    if case == "9_inner_bad_signature":
        return party.kind14(tamper_json(good_inner, content="edited").as_json(), NOW), state
    if case == "10_forged_inner_author":
        return party.kind14(party.inner("text", NOW, signer=other).as_json(), NOW), state
    if case == "11_inner_not_kind1":
        return party.kind14(party.inner("text", NOW, kind=14).as_json(), NOW), state
    if case == "13_skew_61s":
        return party.kind14(party.inner("text", NOW - 61).as_json(), NOW), state
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case, status, reason",
    [
        ("1_wrong_author", "rejected", "wrong_author"),
        ("2_wrong_kind", "rejected", "wrong_kind"),
        ("2_two_p_tags", "rejected", "bad_p_tag"),
        ("2_p_tag_elsewhere", "rejected", "bad_p_tag"),
        ("2_no_p_tag", "rejected", "bad_p_tag"),
        ("3_outer_61s_ahead", "rejected", "future_outer"),
        ("4_oversized", "rejected", "too_large"),
        ("4_json_over_64_kib", "rejected", "too_large"),
        ("5_seen_this_run", "rejected", "seen_this_run"),
        ("6_channel_cap", "rejected", "channel_cap"),
        ("7_bad_outer_signature", "rejected", "bad_outer_signature"),
        ("8_tampered_ciphertext", "rejected", "decrypt_failed"),
        ("8_encrypted_to_wrong_key", "rejected", "decrypt_failed"),
        ("9_inner_not_an_event", "rejected", "bad_inner"),
        ("9_inner_bad_signature", "rejected", "bad_inner_signature"),
        ("10_forged_inner_author", "forgery", "wrong_inner_author"),
        ("11_inner_not_kind1", "rejected", "inner_not_kind1"),
        ("13_skew_61s", "rejected", "time_skew"),
    ],
    ids=lambda v: v if isinstance(v, str) and v[:1].isdigit() else None,
)
def test_open_kind14_rejects(chat, case, status, reason):
    event, state = _kind14_case(chat, case)
    msg = open_kind14(event, chat["channel"], chat["serbero_pubkey"], NOW, state)
    assert (msg.status, msg.reason) == (status, reason)
    assert msg.counts_as_rejected and msg.content is None


@pytest.mark.parametrize(
    "outer_at, inner_at",
    [(NOW + 60, NOW + 60), (NOW, NOW - 60), (NOW, NOW + 60)],
    ids=["outer-60s-ahead", "skew-minus-60", "skew-plus-60"],
)
def test_open_kind14_boundaries_pass(chat, outer_at, inner_at):
    party = chat["party"]
    event = party.kind14(party.inner("text", inner_at).as_json(), outer_at)
    assert (
        open_kind14(event, chat["channel"], chat["serbero_pubkey"], NOW, Kind14RunState()).status
        == "ok"
    )


def test_open_kind14_cap_is_per_channel(chat):
    state = Kind14RunState()
    party = chat["party"]
    for i in range(100):
        open_kind14(
            party.kind14("", NOW, content=f"junk-{i}"),
            chat["channel"],
            chat["serbero_pubkey"],
            NOW,
            state,
        )
    seller_trade = ns.Keys.generate()
    seller_channel = derive_channel(chat["serbero"], "seller", seller_trade.public_key().to_hex())
    seller = PartyChannel(seller_trade, chat["serbero_pubkey"])
    event = seller.kind14(seller.inner("seller text", NOW).as_json(), NOW)
    assert open_kind14(event, seller_channel, chat["serbero_pubkey"], NOW, state).status == "ok"


# --- filters and routing ---


def test_chat_filters_kind14_by_authors_with_cursor_since_and_legacy_by_p(chat):
    serbero = chat["serbero"]
    buyer = chat["channel"]
    seller = derive_channel(serbero, "seller", ns.Keys.generate().public_key().to_hex())
    cursors = {
        buyer.trade_pubkey: NOW - 1000,
        seller.trade_pubkey: NOW + 50_000,
    }  # a future cursor is capped at now
    kind14, legacy = chat_filters(
        [buyer, seller], now=NOW, lookback_seconds=604_800, cursors=cursors
    )
    assert kind14 == {
        "kinds": [14],
        "authors": [buyer.sign_pubkey, seller.sign_pubkey],
        "since": NOW - 1600,
        "limit": 500,
    }
    assert "#p" not in kind14
    assert legacy == {
        "kinds": [1059],
        "#p": [buyer.legacy_pubkey, seller.legacy_pubkey],
        "since": NOW - 604_800,
    }


def test_chat_filters_since_never_below_lookback_and_missing_cursor_uses_lookback(chat):
    buyer = chat["channel"]
    kind14, _ = chat_filters(
        [buyer], now=NOW, lookback_seconds=3600, cursors={buyer.trade_pubkey: NOW - 90_000}
    )
    assert kind14["since"] == NOW - 3600
    kind14, _ = chat_filters([buyer], now=NOW, lookback_seconds=3600, cursors={})
    assert kind14["since"] == NOW - 3600
    assert chat_filters([], now=NOW, lookback_seconds=3600, cursors={}) == []


def test_route_event_by_author_for_kind14_and_by_p_for_1059(chat):
    party, channel = chat["party"], chat["channel"]
    other = derive_channel(chat["serbero"], "seller", ns.Keys.generate().public_key().to_hex())
    inner_json = party.inner("x", NOW).as_json()
    assert route_event(party.kind14(inner_json, NOW), [other, channel]) is channel
    assert route_event(party.legacy_wrap(inner_json, NOW), [other, channel]) is channel
    stranger = party.kind14(inner_json, NOW, author=ns.Keys.generate())
    assert route_event(stranger, [other, channel]) is None
