"""Dispute chat through a real loopback relay, both directions, both envelopes.

Serbero's envelopes are fetched back with its own filters and opened by a party written from the
spec; the party's envelopes are opened by Serbero's code.
"""

from __future__ import annotations

import time

import nostr_sdk as ns

from serbero_cli.keytext import generate_secret, public_key_of
from serbero_cli.nostr.chat import (
    Kind14RunState,
    build_inner,
    chat_filters,
    kind14_wrap,
    legacy_wrap,
    open_kind14,
    open_legacy,
    route_event,
)
from serbero_cli.nostr.chat_keys import derive_channel
from serbero_cli.nostr.relays import RelayPool
from serbero_cli.simulate import aio
from tests.protocol.party_side import PartyChannel


async def publish_and_fetch(url: str, events: list, filters: list[dict]):
    pool = RelayPool([url])
    try:
        assert (await pool.connect(3)).connected
        outcomes = [await pool.publish(ev, 5) for ev in events]
        fetched = await pool.fetch_raw(filters, 3) if filters else []
    finally:
        await pool.close()
    return outcomes, fetched


def setup_chat():
    serbero = generate_secret()
    serbero_pubkey = public_key_of(serbero)
    buyer, seller = ns.Keys.generate(), ns.Keys.generate()
    channels = [
        derive_channel(serbero, "buyer", buyer.public_key().to_hex()),
        derive_channel(serbero, "seller", seller.public_key().to_hex()),
    ]
    parties = {
        "buyer": PartyChannel(buyer, serbero_pubkey),
        "seller": PartyChannel(seller, serbero_pubkey),
    }
    return serbero, serbero_pubkey, channels, parties


def test_serbero_envelopes_round_trip_to_the_party(relay):
    serbero, serbero_pubkey, channels, parties = setup_chat()
    now = int(time.time())
    inners = {
        c.party: build_inner(serbero, f"{c.party.title()}: what happened?", now) for c in channels
    }
    events = [kind14_wrap(inners[c.party], c) for c in channels] + [
        legacy_wrap(inners[c.party], c, now) for c in channels
    ]
    filters = chat_filters(
        channels,
        now=now,
        lookback_seconds=3 * 86400,
        cursors={c.trade_pubkey: now - 60 for c in channels},
    )
    outcomes, fetched = aio.run(publish_and_fetch(relay.url, events, filters))
    assert all(o.ok for o in outcomes), [o.error_message() for o in outcomes]
    assert {e.id().to_hex() for e in fetched} == {e.id().to_hex() for e in events}
    for event in fetched:
        channel = route_event(event, channels)
        party = parties[channel.party]
        inner = (
            party.open_kind14(event) if event.kind().as_u16() == 14 else party.open_legacy(event)
        )
        assert inner.author().to_hex() == serbero_pubkey
        assert inner.id().to_hex() == inners[channel.party].id
        assert inner.content() == f"{channel.party.title()}: what happened?"


def test_party_envelopes_round_trip_to_serbero_and_our_echoes_stay_quiet(relay):
    serbero, serbero_pubkey, channels, parties = setup_chat()
    now = int(time.time())
    buyer, seller = parties["buyer"], parties["seller"]
    buyer_inner = buyer.inner("I sent the fiat", now - 20)
    seller_inner = seller.inner("Nothing arrived yet", now - 10)
    ours = build_inner(serbero, "Buyer: please share proof", now - 30)
    forger = ns.Keys.generate()
    events = [
        buyer.kind14(buyer_inner.as_json(), now - 20),
        seller.legacy_wrap(seller_inner.as_json(), now),
        kind14_wrap(ours, channels[0]),
        legacy_wrap(ours, channels[0], now),
        buyer.legacy_wrap(buyer.inner("forged", now, signer=forger).as_json(), now),
        # a third party tagging the conversation address: never fetched (authors filter)
        buyer.kind14(buyer.inner("flood", now).as_json(), now, author=forger),
    ]
    filters = chat_filters(
        channels,
        now=now,
        lookback_seconds=3 * 86400,
        cursors={c.trade_pubkey: now - 60 for c in channels},
    )
    outcomes, fetched = aio.run(publish_and_fetch(relay.url, events, filters))
    assert all(o.ok for o in outcomes)
    assert events[5].id().to_hex() not in {e.id().to_hex() for e in fetched}
    assert len(fetched) == 5
    state = Kind14RunState()
    results = []
    for event in fetched:
        channel = route_event(event, channels)
        opener = open_kind14 if event.kind().as_u16() == 14 else open_legacy
        args = (state,) if opener is open_kind14 else ()
        results.append(opener(event, channel, serbero_pubkey, now, *args))
    ok = sorted((m.party, m.envelope, m.content, m.inner_id) for m in results if m.status == "ok")
    assert ok == [
        ("buyer", "kind14", "I sent the fiat", buyer_inner.id().to_hex()),
        ("seller", "giftwrap", "Nothing arrived yet", seller_inner.id().to_hex()),
    ]
    assert sorted(m.status for m in results if m.status != "ok") == ["echo", "echo", "forgery"]
    assert sum(m.counts_as_rejected for m in results) == 1
