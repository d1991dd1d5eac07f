"""The take request and its replies through a real loopback relay, on both transports.

The node's side (reading our request, building replies) is written here from the spec with raw
nostr_sdk calls; it is not a simulator.
"""

from __future__ import annotations

import json
import time

import nostr_sdk as ns
import pytest

from serbero_cli.keytext import Secret
from serbero_cli.mediation.take_match import PendingTake, TakeOutcome, match_reply
from serbero_cli.nostr.mostro import (
    build_take_giftwrap,
    build_take_kind14,
    giftwrap_reply_filter,
    kind14_reply_filter,
    read_giftwrap_reply,
    read_kind14_reply,
    take_message_json,
)
from serbero_cli.nostr.relays import RelayPool
from serbero_cli.simulate import aio
from serbero_cli.simulate.relay import start_relay
from tests.protocol.party_side import (
    cantdo_message,
    compact,
    giftwrap_reply,
    kind14_reply,
    took_message,
)

DISPUTE = "3f2a9c1e-7b4d-4e8f-a1c2-9d0e5f6a7b8c"
OTHER_DISPUTE = "9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
R = 8_765_432_109_876_543_210


@pytest.fixture
def pow_relay():
    handle = start_relay(min_pow=8)
    yield handle
    handle.shutdown()


@pytest.fixture
def keys():
    serbero, mostro = ns.Keys.generate(), ns.Keys.generate()
    return {
        "secret": Secret(serbero.secret_key().to_hex()),
        "pub": serbero.public_key().to_hex(),
        "mostro": mostro,
        "mostro_pub": mostro.public_key().to_hex(),
    }


async def publish_and_fetch(url: str, events: list, filters: list[dict]):
    pool = RelayPool([url])
    try:
        assert (await pool.connect(3)).connected
        outcomes = [await pool.publish(ev, 5) for ev in events]
        fetched = await pool.fetch_raw(filters, 3)
    finally:
        await pool.close()
    return outcomes, fetched


def test_protocol_v1_mined_gift_wrap_passes_a_pow_relay_and_opens_for_mostro(pow_relay, keys):
    now = int(time.time())
    mined = build_take_giftwrap(keys["secret"], keys["mostro_pub"], DISPUTE, R, pow_bits=8, now=now)
    plain = next(
        w
        for w in (
            build_take_giftwrap(keys["secret"], keys["mostro_pub"], DISPUTE, R, pow_bits=0, now=now)
            for _ in range(50)
        )
        if ns.get_leading_zero_bits(w.id().as_bytes()) < 8
    )  # an unmined wrap meets 8 bits 1 time in 256
    node_filter = {"kinds": [1059], "#p": [keys["mostro_pub"]], "since": now - 7 * 86400}
    (mined_out, plain_out), fetched = aio.run(
        publish_and_fetch(pow_relay.url, [mined, plain], [node_filter])
    )
    assert mined_out.ok and not plain_out.ok  # the relay enforces the difficulty
    assert [e.id().to_hex() for e in fetched] == [mined.id().to_hex()]
    gift = ns.UnwrappedGift.from_gift_wrap(keys["mostro"], fetched[0])
    assert gift.sender().to_hex() == keys["pub"]
    message, sig = json.loads(gift.rumor().content())
    assert compact(message) == take_message_json(DISPUTE, R, 1) and len(sig) == 128


def test_mined_kind14_take_passes_a_pow_relay_and_decrypts_for_mostro(pow_relay, keys):
    now = int(time.time())
    take = build_take_kind14(keys["secret"], keys["mostro_pub"], DISPUTE, R, pow_bits=12, now=now)
    node_filter = {"kinds": [14], "#p": [keys["mostro_pub"]], "since": now - 60}
    (outcome,), fetched = aio.run(publish_and_fetch(pow_relay.url, [take], [node_filter]))
    assert outcome.ok and [e.id().to_hex() for e in fetched] == [take.id().to_hex()]
    event = fetched[0]
    assert event.verify() and ns.get_leading_zero_bits(event.id().as_bytes()) >= 12
    plaintext = ns.nip44_decrypt(keys["mostro"].secret_key(), event.author(), event.content())
    assert plaintext.startswith("[" + take_message_json(DISPUTE, R, 2) + ',"')


def test_protocol_v1_replies_from_the_relay_settle_only_the_genuine_take(relay, keys):
    now = int(time.time())
    buyer, seller = (
        ns.Keys.generate().public_key().to_hex(),
        ns.Keys.generate().public_key().to_hex(),
    )
    attacker = ns.Keys.generate()
    events = [
        # A forged reply: attacker trade keys, wrapped by a non-Mostro key
        giftwrap_reply(
            keys["mostro"],
            keys["pub"],
            compact(
                [
                    took_message(
                        DISPUTE,
                        None,
                        attacker.public_key().to_hex(),
                        ns.Keys.generate().public_key().to_hex(),
                    ),
                    None,
                ]
            ),
            created_at=now,
            sealer=attacker,
        ),
        # A replayed refusal for another dispute, and a stale one for ours
        giftwrap_reply(
            keys["mostro"],
            keys["pub"],
            compact([cantdo_message(OTHER_DISPUTE, None, "invalid_pubkey"), None]),
            created_at=now - 5,
        ),
        giftwrap_reply(
            keys["mostro"],
            keys["pub"],
            compact([cantdo_message(DISPUTE, None, "not_found"), None]),
            created_at=now - 3600,
        ),
        giftwrap_reply(
            keys["mostro"],
            keys["pub"],
            compact([took_message(DISPUTE, R, buyer, seller), None]),
            created_at=now + 1,
        ),
    ]
    outcomes, fetched = aio.run(
        publish_and_fetch(relay.url, events, [giftwrap_reply_filter(keys["pub"], now - 3 * 86400)])
    )
    assert all(o.ok for o in outcomes) and len(fetched) == 4
    pending = [PendingTake(DISPUTE, R, now, "giftwrap")]
    replies = [read_giftwrap_reply(ev, keys["secret"], keys["mostro_pub"]) for ev in fetched]
    assert sum(r is None for r in replies) == 1  # the forged wrap
    settled = [
        m
        for r in replies
        if r is not None
        if (m := match_reply(pending, r, serbero_pubkey=keys["pub"], serbero_secret=keys["secret"]))
    ]
    assert settled == [(DISPUTE, TakeOutcome("taken", None, buyer, seller))]


def test_reply_from_the_relay_is_read_and_our_own_take_is_not(relay, keys):
    now = int(time.time())
    take = build_take_kind14(keys["secret"], keys["mostro_pub"], DISPUTE, R, pow_bits=0, now=now)
    reply = kind14_reply(
        keys["mostro"],
        keys["pub"],
        compact([cantdo_message(DISPUTE, R, "invalid_pubkey", version=2), None, None]),
        created_at=now + 1,
    )
    outcomes, fetched = aio.run(
        publish_and_fetch(
            relay.url,
            [take, reply],
            [kind14_reply_filter(keys["pub"], keys["mostro_pub"], now - 300)],
        )
    )
    assert all(o.ok for o in outcomes)
    assert [e.id().to_hex() for e in fetched] == [reply.id().to_hex()]
    read = read_kind14_reply(fetched[0], keys["secret"], keys["mostro_pub"])
    assert read is not None and read.transport == "nip44" and read.version == 2
    pending = [PendingTake(DISPUTE, R, now, "nip44")]
    assert match_reply(
        pending, read, serbero_pubkey=keys["pub"], serbero_secret=keys["secret"]
    ) == (DISPUTE, TakeOutcome("refused", "invalid_pubkey"))
