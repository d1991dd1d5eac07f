"""Mostro's two transports on the wire, as nostr_sdk events (docs/wire-formats.md#take-request).

Node side: the inbound gates (`open_v1_request`, `open_v2_request`) and the reply envelopes.
Client side: `build_take_request` (the simulated human solver's takeover) and
`read_node_messages` (what a party or solver reads from Mostro).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import nostr_sdk as ns

from serbero_cli.simulate.crypto import leading_zero_bits, verify_message
from serbero_cli.simulate.mostro_messages import (
    MessageError,
    decode_tuple,
    encode_tuple,
    split_message,
    take_request,
)

GIFT_WRAP_KIND = 1059
PRIVATE_KIND = 14
GIFTWRAP = "giftwrap"
NIP44 = "nip44"
V1_MAX_RUMOR_AGE_SECONDS = 10
V2_MAX_AGE_SECONDS = 10
REPLAY_WINDOW_SECONDS = 60
# mostrod's send_dm: v2 replies expire after dm_days (30 by default).
V2_REPLY_EXPIRATION_SECONDS = 30 * 86400
# The requester's expiration tag.
V2_REQUEST_EXPIRATION_SECONDS = 3600


class Dropped(Exception):
    """The node drops an inbound event silently; `reason` names the gate."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InboundRequest:
    """A message that passed every transport gate, ready for the action handler."""

    transport: str  # giftwrap | nip44
    event_id: str  # the 1059 wrap id, or the kind-14 id
    author: str  # the rumor author (v1) or event author (v2), hex
    message: dict[str, Any]
    variant: str
    inner: dict[str, Any]
    created_at: int  # rumor (v1) or event (v2) created_at
    pow_bits: int


def secret_bytes(keys: ns.Keys) -> bytes:
    return bytes.fromhex(keys.secret_key().to_hex())


def _message_of(
    payload: list[Any], author: str, elements: int
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    if len(payload) != elements:
        raise Dropped("tuple_length")
    message, sig = payload[0], payload[1]
    try:
        variant, inner = split_message(message)
    except MessageError as exc:
        raise Dropped("bad_message") from exc
    if sig is not None and not (isinstance(sig, str) and verify_message(author, message, sig)):
        raise Dropped("bad_signature")
    return message, variant, inner


def open_v1_request(wrap: ns.Event, mostro_keys: ns.Keys, *, now: int) -> InboundRequest:
    """Unwrap a gift-wrapped request; raise Dropped(reason) on any failed gate.

    Gates after PoW/kind (checked by the caller): unwrap, rumor ≤ 10 s old, seal signer ==
    rumor author, `[msg, sig|null]` with the signature checked over the canonical bytes.
    """
    try:
        gift = ns.UnwrappedGift.from_gift_wrap(mostro_keys, wrap)
    except Exception as exc:  # noqa: BLE001 - nostr_sdk raises one generic error type
        raise Dropped("unwrap") from exc
    rumor = gift.rumor()
    created_at = rumor.created_at().as_secs()
    if created_at < now - V1_MAX_RUMOR_AGE_SECONDS:
        raise Dropped("stale")
    author = rumor.author().to_hex()
    if gift.sender().to_hex() != author:
        raise Dropped("sender_mismatch")
    try:
        payload = decode_tuple(rumor.content())
    except MessageError as exc:
        raise Dropped("bad_payload") from exc
    message, variant, inner = _message_of(payload, author, 2)
    return InboundRequest(
        GIFTWRAP,
        wrap.id().to_hex(),
        author,
        message,
        variant,
        inner,
        created_at,
        leading_zero_bits(wrap.id().to_hex()),
    )


class ReplayCache:
    """Event ids seen in the last 60 s (mostrod's v2 replay dedup)."""

    def __init__(self, window_seconds: int = REPLAY_WINDOW_SECONDS):
        self.window_seconds = window_seconds
        self.seen: dict[str, int] = {}

    def check_and_add(self, event_id: str, now: int) -> bool:
        """True when the id is new within the window (and remember it)."""
        self.seen = {k: t for k, t in self.seen.items() if t > now - self.window_seconds}
        if event_id in self.seen:
            return False
        self.seen[event_id] = now
        return True


def open_v2_request(
    event: ns.Event,
    mostro_keys: ns.Keys,
    *,
    now: int,
    first_contact_bits: int,
    is_active: bool,
    replay: ReplayCache,
) -> InboundRequest:
    """Apply the v2 gates after PoW/kind, in mostrod's order; raise Dropped(reason).

    signature, 60 s replay, first-contact PoW for inactive authors, NIP-44 decrypt,
    freshness (created_at ≥ now − 10), then the inner tuple: 3 elements, element 2 null or a
    valid signature, element 3 null.
    """
    event_id = event.id().to_hex()
    if not event.verify():
        raise Dropped("event_signature")
    if not replay.check_and_add(event_id, now):
        raise Dropped("replay")
    bits = leading_zero_bits(event_id)
    if not is_active and bits < first_contact_bits:
        raise Dropped("first_contact_pow")
    author = event.author()
    try:
        plaintext = ns.nip44_decrypt(mostro_keys.secret_key(), author, event.content())
    except Exception as exc:  # noqa: BLE001
        raise Dropped("decrypt") from exc
    created_at = event.created_at().as_secs()
    if created_at < now - V2_MAX_AGE_SECONDS:
        raise Dropped("stale")
    try:
        payload = decode_tuple(plaintext)
    except MessageError as exc:
        raise Dropped("bad_payload") from exc
    message, variant, inner = _message_of(payload, author.to_hex(), 3)
    if payload[2] is not None:
        raise Dropped("identity_proof")
    return InboundRequest(
        NIP44, event_id, author.to_hex(), message, variant, inner, created_at, bits
    )


def build_node_reply(
    sender_keys: ns.Keys,
    receiver_hex: str,
    message: dict[str, Any],
    *,
    transport: str,
    rumor_kind: int = 1,
    now: int | None = None,
) -> ns.Event:
    """A message from the node (or from someone posing as it) in the node's transport.

    giftwrap: NIP-59 wrap of an unsigned rumor `[msg, null]` (kind 1 like mostrod; 14 for some sims).
    nip44: a kind-14 event by the sender, `p` + 30-day `expiration`, content `[msg, null, null]`.
    """
    now = int(time.time()) if now is None else now
    receiver = ns.PublicKey.parse(receiver_hex)
    if transport == GIFTWRAP:
        rumor = (
            ns.EventBuilder(ns.Kind(rumor_kind), encode_tuple(message, elements=2))
            .custom_created_at(ns.Timestamp.from_secs(now))
            .finalize_unsigned(sender_keys.public_key())
        )
        return ns.nip59_make_gift_wrap(sender_keys, receiver, rumor)
    content = ns.nip44_encrypt(
        sender_keys.secret_key(), receiver, encode_tuple(message, elements=3), ns.Nip44Version.V2
    )
    tags = [
        ns.Tag.public_key(receiver),
        ns.Tag.expiration(ns.Timestamp.from_secs(now + V2_REPLY_EXPIRATION_SECONDS)),
    ]
    return (
        ns.EventBuilder(ns.Kind(PRIVATE_KIND), content)
        .tags(tags)
        .custom_created_at(ns.Timestamp.from_secs(now))
        .finalize(sender_keys)
    )


def build_take_request(
    keys: ns.Keys,
    mostro_hex: str,
    dispute_id: str,
    *,
    transport: str,
    request_id: int | None,
    pow_bits: int = 0,
    now: int | None = None,
) -> ns.Event:
    """A signed `admin-take-dispute` in either transport, mined to `pow_bits` (a solver client's side)."""
    now = int(time.time()) if now is None else now
    mostro = ns.PublicKey.parse(mostro_hex)
    version = 2 if transport == NIP44 else 1
    message = take_request(dispute_id, request_id, version)
    if transport == NIP44:
        content = ns.nip44_encrypt(
            keys.secret_key(),
            mostro,
            encode_tuple(message, signer_secret=secret_bytes(keys), elements=3),
            ns.Nip44Version.V2,
        )
        tags = [
            ns.Tag.public_key(mostro),
            ns.Tag.expiration(ns.Timestamp.from_secs(now + V2_REQUEST_EXPIRATION_SECONDS)),
        ]
        builder = (
            ns.EventBuilder(ns.Kind(PRIVATE_KIND), content)
            .tags(tags)
            .custom_created_at(ns.Timestamp.from_secs(now))
        )
        if pow_bits <= 0:
            return builder.finalize(keys)
        return (
            builder.finalize_unsigned(keys.public_key())
            .mine(ns.SingleThreadPow(), pow_bits)
            .sign(keys)
        )
    rumor = (
        ns.EventBuilder(ns.Kind(1), encode_tuple(message, signer_secret=secret_bytes(keys)))
        .custom_created_at(ns.Timestamp.from_secs(now))
        .finalize_unsigned(keys.public_key())
    )
    if pow_bits <= 0:
        return ns.nip59_make_gift_wrap(keys, mostro, rumor)
    # nip59_make_gift_wrap cannot mine: build the outer layer by hand.
    seal = ns.nip59_make_seal(keys, mostro, rumor)
    ephemeral = ns.Keys.generate()
    content = ns.nip44_encrypt(ephemeral.secret_key(), mostro, seal.as_json(), ns.Nip44Version.V2)
    return (
        ns.EventBuilder(ns.Kind(GIFT_WRAP_KIND), content)
        .tags([ns.Tag.public_key(mostro)])
        .custom_created_at(ns.Timestamp.from_secs(now - 60))
        .finalize_unsigned(ephemeral.public_key())
        .mine(ns.SingleThreadPow(), pow_bits)
        .sign(ephemeral)
    )


@dataclass(frozen=True)
class NodeMessage:
    """A message from Mostro read by a client: which envelope, when, and the decoded tuple."""

    transport: str
    event_id: str
    created_at: int  # rumor time (giftwrap) or event time (nip44)
    message: dict[str, Any]
    variant: str
    inner: dict[str, Any]


def read_node_messages(
    events: list[ns.Event], receiver_keys: ns.Keys, mostro_hex: str
) -> list[NodeMessage]:
    """Every well-formed message that Mostro itself sent to `receiver_keys`, in either transport.

    Anything not provably from Mostro (other seal signer, other author) is skipped.
    """
    out: list[NodeMessage] = []
    mostro = ns.PublicKey.parse(mostro_hex)
    for ev in events:
        try:
            if ev.kind().as_u16() == GIFT_WRAP_KIND:
                gift = ns.UnwrappedGift.from_gift_wrap(receiver_keys, ev)
                if gift.sender().to_hex() != mostro_hex:
                    continue
                transport, text, created_at = (
                    GIFTWRAP,
                    gift.rumor().content(),
                    gift.rumor().created_at().as_secs(),
                )
            elif ev.kind().as_u16() == PRIVATE_KIND:
                if ev.author().to_hex() != mostro_hex or not ev.verify():
                    continue
                text = ns.nip44_decrypt(receiver_keys.secret_key(), mostro, ev.content())
                transport, created_at = NIP44, ev.created_at().as_secs()
            else:
                continue
            payload = decode_tuple(text)
            variant, inner = split_message(payload[0])
        except Exception:  # noqa: BLE001 - not for us, or garbage
            continue
        out.append(NodeMessage(transport, ev.id().to_hex(), created_at, payload[0], variant, inner))
    return sorted(out, key=lambda m: (m.created_at, m.event_id))


def event_tags(event: ns.Event) -> list[list[str]]:
    """The event's tags as lists of strings."""
    return [t.to_vec() for t in event.tags()]


def event_json(event: ns.Event) -> dict[str, Any]:
    return json.loads(event.as_json())
