"""PartySim chat in all three modes, both directions, against Serbero's side built from the spec."""

from __future__ import annotations

import random
import time

import nostr_sdk as ns
import pytest

from serbero_cli.simulate.mostro_messages import peer_notice
from serbero_cli.simulate.mostro_wire import build_node_reply
from serbero_cli.simulate.party import PartySim, ThirdParty
from tests.helpers import wait_for
from tests.simulate.serbero_side import (
    SerberoChannel,
    serbero_inner,
    serbero_kind14,
    serbero_legacy,
    serbero_read,
    v1_take,
    v2_take,
)


def taken_dispute(make_node, serbero, protocol: int = 2):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    build = v2_take if protocol == 2 else v1_take
    serbero.publish(build(serbero.keys, node.pubkey, dispute, random.randint(1, 2**63 - 1)))
    wait_for(lambda: node.takes(dispute), timeout=10)
    return node, dispute


def send_from_serbero(serbero, channel, text, envelopes, at=None):
    inner = serbero_inner(serbero.keys, text, at)
    for envelope in envelopes:
        serbero.publish(
            serbero_legacy(inner, channel)
            if envelope == "giftwrap"
            else serbero_kind14(inner, channel)
        )
    return inner


ENVELOPES_FOR = {"legacy": ["giftwrap"], "kind14": ["kind14"], "dual": ["giftwrap", "kind14"]}


def test_party_ignores_chat_until_mostro_names_the_admin(make_node, serbero, parties):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    buyer = node.party(dispute, "buyer", chat="dual")
    parties(buyer)
    channel = SerberoChannel.of(serbero.keys, buyer.trade_pubkey)
    send_from_serbero(serbero, channel, "early hello", ["giftwrap", "kind14"])
    assert buyer.messages() == [] and buyer.admin_pubkey is None
    serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, 7))
    msgs = wait_for(buyer.messages, timeout=10)
    assert [m.content for m in msgs] == ["early hello"] and buyer.admin_pubkey == serbero.pubkey


def test_party_learns_admin_only_from_mostro(make_node, serbero, parties):
    """A peer notice sealed by any key but Mostro's is ignored."""
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    record = node.dispute(dispute)
    impostor = ns.Keys.generate()
    notice = peer_notice(record.order_id, None, 1, impostor.public_key().to_hex())
    fake = build_node_reply(impostor, record.buyer_pubkey, notice, transport="giftwrap")
    serbero.publish(fake)
    buyer = node.party(dispute, "buyer")
    parties(buyer)
    assert buyer.learn_admin() is None


@pytest.mark.parametrize("protocol", [1, 2], ids=["node-v1", "node-v2"])
@pytest.mark.parametrize("chat", ["legacy", "kind14", "dual"])
def test_chat_round_trip(make_node, serbero, parties, chat, protocol):
    node, dispute = taken_dispute(make_node, serbero, protocol)
    party = node.party(dispute, "seller", chat=chat)
    parties(party)
    channel = SerberoChannel.of(serbero.keys, party.trade_pubkey)
    inner = send_from_serbero(serbero, channel, "Seller: did the fiat arrive?", ENVELOPES_FOR[chat])

    (msg,) = wait_for(party.messages, timeout=10)  # dual: both envelopes, shown once
    assert (msg.inner_id, msg.content, msg.author) == (
        inner.id().to_hex(),
        "Seller: did the fiat arrive?",
        serbero.pubkey,
    )
    assert msg.envelope in ENVELOPES_FOR[chat] and msg.created_at == inner.created_at().as_secs()

    sent = party.reply("Not yet, checking my bank.")
    expected = "giftwrap" if chat == "legacy" else "kind14"
    assert list(sent.outer_ids) == [expected] and sent.accepted[expected]
    got = wait_for(
        lambda: [
            (env, e)
            for env, e in serbero_read(serbero, channel)
            if e.author().to_hex() == party.trade_pubkey
        ],
        timeout=10,
    )
    ((envelope, reply_inner),) = got
    assert envelope == expected and reply_inner.verify() and reply_inner.kind().as_u16() == 1
    assert (
        reply_inner.id().to_hex() == sent.inner_id
        and reply_inner.content() == "Not yet, checking my bank."
    )


def test_legacy_party_does_not_read_kind14_and_kind14_party_does_not_read_legacy(
    make_node, serbero, parties
):
    node, dispute = taken_dispute(make_node, serbero)
    legacy = node.party(dispute, "buyer", chat="legacy")
    modern = node.party(dispute, "seller", chat="kind14")
    parties(legacy)
    parties(modern)
    send_from_serbero(
        serbero, SerberoChannel.of(serbero.keys, legacy.trade_pubkey), "k14 only", ["kind14"]
    )
    send_from_serbero(
        serbero, SerberoChannel.of(serbero.keys, modern.trade_pubkey), "1059 only", ["giftwrap"]
    )
    assert legacy.messages() == [] and modern.messages() == []


def test_kind14_reply_envelope_matches_the_spec(make_node, serbero, parties):
    node, dispute = taken_dispute(make_node, serbero)
    party = node.party(dispute, "buyer", chat="kind14")
    parties(party)
    channel = SerberoChannel.of(serbero.keys, party.trade_pubkey)
    sent = party.reply("hello", created_at=int(time.time()) - 5)
    outer = sent.outer_events["kind14"]
    assert outer.author().to_hex() == channel.sign.public_key().to_hex()
    assert [t.to_vec() for t in outer.tags()] == [["p", channel.conv.public_key().to_hex()]]
    assert outer.created_at().as_secs() == sent.created_at
    text = ns.nip44_decrypt(channel.conv.secret_key(), channel.conv.public_key(), outer.content())
    assert ns.Event.from_json(text).id().to_hex() == sent.inner_id


def test_party_rejects_bad_envelopes_and_forged_authors(make_node, serbero, parties):
    node, dispute = taken_dispute(make_node, serbero)
    party = node.party(dispute, "buyer", chat="dual")
    stranger = ThirdParty(node.client.urls)
    parties(party)
    parties(stranger)
    channel = SerberoChannel.of(serbero.keys, party.trade_pubkey)
    # A skewed kind 14 from Serbero: outer 61 s after the inner.
    inner = serbero_inner(serbero.keys, "skewed", int(time.time()) - 61)
    content = ns.nip44_encrypt(
        channel.conv.secret_key(), channel.conv.public_key(), inner.as_json(), ns.Nip44Version.V2
    )
    serbero.publish(
        ns.EventBuilder(ns.Kind(14), content)
        .tags([ns.Tag.public_key(channel.conv.public_key())])
        .finalize(channel.sign)
    )
    stranger.send_legacy(channel.shared.public_key().to_hex(), "I am the admin, trust me")
    party.reply("my own words")  # our echo is neither shown nor counted as a forgery
    send_from_serbero(serbero, channel, "the real question", ["kind14"])
    msgs = wait_for(
        lambda: (lambda m: m if party.rejected and len(party.rejected) >= 2 else None)(
            party.messages()
        ),
        timeout=10,
    )
    assert [m.content for m in msgs] == ["the real question"]
    assert sorted(r.reason for r in party.rejected) == ["inner_author", "skew"]
    assert sorted(m.content for m in party.messages(include_own=True)) == [
        "my own words",
        "the real question",
    ]


# -- forgery helpers produce what they claim -------------------------------------------------------
@pytest.fixture
def forger(make_node, serbero, parties):
    node, dispute = taken_dispute(make_node, serbero)
    party = node.party(dispute, "buyer", chat="kind14")
    parties(party)
    return party, SerberoChannel.of(serbero.keys, party.trade_pubkey)


def test_forge_outer_author(forger, serbero):
    party, channel = forger
    k14 = party.reply("forged k14", forge_outer_author=True)
    assert k14.outer_events["kind14"].author().to_hex() != channel.sign.public_key().to_hex()
    assert k14.outer_events["kind14"].verify() and k14.accepted["kind14"]
    assert serbero_read(serbero, channel) == []  # the author filter never returns the kind 14
    wrap = party.reply("forged 1059", envelope="giftwrap", forge_outer_author=True).outer_events[
        "giftwrap"
    ]
    with pytest.raises(Exception):  # noqa: B017 - nostr_sdk raises its generic error
        ns.nip44_decrypt(channel.shared.secret_key(), wrap.author(), wrap.content())


def test_extra_p_tag(forger):
    party, channel = forger
    other = ns.Keys.generate().public_key().to_hex()
    outer = party.reply("two p", extra_p_tag=other).outer_events["kind14"]
    assert [t.to_vec() for t in outer.tags()] == [
        ["p", channel.conv.public_key().to_hex()],
        ["p", other],
    ]
    assert (
        len([t for t in party.reply("random p", extra_p_tag=True).outer_events["kind14"].tags()])
        == 2
    )


def test_skew_and_future(forger):
    party, _ = forger
    skewed = party.reply("skewed", skew_seconds=61)
    assert skewed.outer_events["kind14"].created_at().as_secs() - skewed.created_at == 61
    future = party.reply("from the future", future_seconds=3600)
    assert future.created_at >= int(time.time()) + 3590
    assert future.outer_events["kind14"].created_at().as_secs() == future.created_at


def test_rewrap_old_inner_keeps_the_inner_id(forger, serbero):
    party, channel = forger
    first = party.reply("once")
    again = party.rewrap_old_inner(first.inner_json)
    assert (
        again.inner_id == first.inner_id and again.outer_ids["kind14"] != first.outer_ids["kind14"]
    )
    legacy = party.rewrap_old_inner(first.inner_json, envelope="giftwrap")
    assert legacy.inner_id == first.inner_id
    inners = wait_for(
        lambda: (lambda r: r if len(r) == 3 else None)(serbero_read(serbero, channel)), timeout=10
    )
    assert {e.id().to_hex() for _, e in inners} == {first.inner_id}


def test_both_envelopes_carry_the_same_inner(forger, serbero):
    party, channel = forger
    sent = party.reply("twice", envelope="both")
    assert set(sent.outer_ids) == {"giftwrap", "kind14"}
    inners = wait_for(
        lambda: (lambda r: r if len(r) == 2 else None)(serbero_read(serbero, channel)), timeout=10
    )
    assert {env for env, _ in inners} == {"giftwrap", "kind14"}
    assert {e.id().to_hex() for _, e in inners} == {sent.inner_id}


def test_third_party_writes_to_the_shared_addresses_with_its_own_inner_key(
    forger, serbero, parties, relay
):
    party, channel = forger
    stranger = ThirdParty(relay.url)
    parties(stranger)
    sent = stranger.send_legacy(channel.shared.public_key().to_hex(), "legacy forgery")
    wrap = sent.outer_events["giftwrap"]
    inner = ns.Event.from_json(
        ns.nip44_decrypt(channel.shared.secret_key(), wrap.author(), wrap.content())
    )
    assert inner.author().to_hex() == stranger.pubkey and inner.verify()
    k14 = stranger.send_kind14(channel.conv.public_key().to_hex(), "k14 forgery").outer_events[
        "kind14"
    ]
    assert k14.author().to_hex() == stranger.pubkey
    assert [t.to_vec() for t in k14.tags()] == [["p", channel.conv.public_key().to_hex()]]
    # Serbero's legacy read sees the stranger's inner (and must reject it by author); the kind-14
    # read by author never fetches the stranger's event.
    got = wait_for(lambda: serbero_read(serbero, channel), timeout=10)
    assert [(env, e.author().to_hex()) for env, e in got] == [("giftwrap", stranger.pubkey)]


def test_party_constructor_validates(relay):
    keys = ns.Keys.generate()
    with pytest.raises(ValueError):
        PartySim("arbiter", keys, relay.url, "kind14", "a" * 64)
    with pytest.raises(ValueError):
        PartySim("buyer", keys, relay.url, "smoke", "a" * 64)
    with pytest.raises(ValueError):
        PartySim("buyer", keys, relay.url, "kind14")
