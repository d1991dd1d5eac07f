"""The Mostro take protocol on the wire: build `admin-take-dispute` for v1 (gift wrap) and v2
(kind 14, with proof of work), and read the node's replies on either transport.

The formats are in docs/wire-formats.md#take-request and #take-replies. Every drop on the node
side is silent, so a request that
breaks a rule only shows up as a timeout: the byte layout, the PoW and the freshness of
`created_at` matter more here than anywhere else. Pure message helpers live in
`mostro_messages` and are re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable

import nostr_sdk as ns

from serbero_cli.keytext import Secret
from serbero_cli.nostr.events import MAX_EVENT_JSON_BYTES
from serbero_cli.nostr.mostro_messages import (  # noqa: F401 - re-exported API
    ACTION_TAKE,
    ACTION_TOOK,
    MostroReply,
    NodeInfo,
    canonical_message_json,
    giftwrap_reply_filter,
    info_filter,
    kind14_reply_filter,
    new_request_id,
    newest_info_event,
    parse_info_event,
    parse_message,
    parse_tuple,
    take_message_json,
    verify_message_signature,
)
from serbero_cli.nostr.sdk_keys import keys_from_secret

logger = logging.getLogger(__name__)

MAX_POW_BITS = 24  # higher difficulties are not attempted (`pow_too_high`)
SLOW_MINE_SECONDS = 5.0  # the node drops events older than 10 s
TAKE_EXPIRATION_SECONDS = 3600
GIFTWRAP_MAX_BACKDATE_SECONDS = 172_800

Miner = Callable[[ns.UnsignedEvent, int], ns.UnsignedEvent]


class TakeBuildError(Exception):
    """A take request could not be built; `reason` is the take's failure reason
    (docs/mediation.md#take-outcomes)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def sign_message(secret: Secret, message_json: str) -> str:
    """128-hex BIP-340 signature by `secret` over sha256(message_json as UTF-8)."""
    digest = hashlib.sha256(message_json.encode("utf-8")).digest()
    return keys_from_secret(secret).sign_schnorr(digest)


def default_miner(unsigned: ns.UnsignedEvent, bits: int) -> ns.UnsignedEvent:
    """NIP-13 mining on this thread; keeps created_at and appends the nonce tag."""
    return unsigned.mine(ns.SingleThreadPow(), bits)


def build_take_giftwrap(
    serbero_secret: Secret,
    mostro_pubkey: str,
    dispute_id: str,
    request_id: int,
    *,
    pow_bits: int = 0,
    now: int,
    miner: Miner | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ns.Event:
    """The v1 take: a NIP-59 gift wrap around an unsigned kind-1 rumor `[M,"sig"]`.

    The rumor is stamped `now`, so call this right before publishing (the node drops rumors
    older than 10 s). With `pow_bits` > 0 the 1059 wrap is built by hand and mined, because
    `nip59_make_gift_wrap` cannot mine; the bounds of
    `build_take_kind14` apply. Raise TakeBuildError("pow_too_high" | "pow_timeout").
    """
    keys = keys_from_secret(serbero_secret)
    mostro = ns.PublicKey.parse(mostro_pubkey)
    message = take_message_json(dispute_id, request_id, version=1)
    content = _tuple_json(message, sign_message(serbero_secret, message), three=False)

    def rumor_at(created_at: int) -> ns.UnsignedEvent:
        return (
            ns.EventBuilder(ns.Kind(1), content)
            .custom_created_at(ns.Timestamp.from_secs(created_at))
            .finalize_unsigned(keys.public_key())
        )

    if pow_bits <= 0:
        return ns.nip59_make_gift_wrap(keys, mostro, rumor_at(now))

    def wrap_at(created_at: int) -> tuple[ns.UnsignedEvent, ns.Keys]:
        seal = ns.nip59_make_seal(keys, mostro, rumor_at(created_at))
        ephemeral = ns.Keys.generate()
        sealed = ns.nip44_encrypt(
            ephemeral.secret_key(), mostro, seal.as_json(), ns.Nip44Version.V2
        )
        backdated = created_at - secrets.randbelow(GIFTWRAP_MAX_BACKDATE_SECONDS + 1)
        unsigned = (
            ns.EventBuilder(ns.Kind(1059), sealed)
            .tags([ns.Tag.public_key(mostro)])
            .custom_created_at(ns.Timestamp.from_secs(backdated))
            .finalize_unsigned(ephemeral.public_key())
        )
        return unsigned, ephemeral

    return _mine_in_time(wrap_at, pow_bits, now, miner or default_miner, clock)


def build_take_kind14(
    serbero_secret: Secret,
    mostro_pubkey: str,
    dispute_id: str,
    request_id: int,
    *,
    pow_bits: int,
    now: int,
    miner: Miner | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ns.Event:
    """The v2 take: kind 14 by Serbero, content NIP-44 `[M,"S",null]`, tags p, expiration(+3600), nonce.

    created_at is `now` (no backdating). More than 24 bits is not
    attempted ("pow_too_high"); a mine slower than 5 s is rebuilt once with a fresh created_at,
    and a second slow mine fails with "pow_timeout". `miner` and `clock` are injectable for tests.
    """
    keys = keys_from_secret(serbero_secret)
    mostro = ns.PublicKey.parse(mostro_pubkey)
    message = take_message_json(dispute_id, request_id, version=2)
    plaintext = _tuple_json(message, sign_message(serbero_secret, message), three=True)

    def event_at(created_at: int) -> ns.EventBuilder:
        content = ns.nip44_encrypt(keys.secret_key(), mostro, plaintext, ns.Nip44Version.V2)
        tags = [
            ns.Tag.public_key(mostro),
            ns.Tag.expiration(ns.Timestamp.from_secs(created_at + TAKE_EXPIRATION_SECONDS)),
        ]
        return (
            ns.EventBuilder(ns.Kind(14), content)
            .tags(tags)
            .custom_created_at(ns.Timestamp.from_secs(created_at))
        )

    if pow_bits <= 0:
        return event_at(now).finalize(keys)
    return _mine_in_time(
        lambda at: (event_at(at).finalize_unsigned(keys.public_key()), keys),
        pow_bits,
        now,
        miner or default_miner,
        clock,
    )


def read_giftwrap_reply(
    event: ns.Event, serbero_secret: Secret, mostro_pubkey: str, now: int | None = None
) -> MostroReply | None:
    """A v1 reply that passes the checks of docs/wire-formats.md#take-replies, or None when it must
    be skipped.

    The rumor kind is deliberately not checked: real nodes send 1, some simulators 14. `now`
    (when given) rejects a rumor dated more than ten minutes ahead of the local clock.
    """
    outer_id = event.id().to_hex()
    if _too_large(event):
        return _skip(outer_id, "too_large")
    try:
        gift = ns.UnwrappedGift.from_gift_wrap(keys_from_secret(serbero_secret), event)
    except Exception:  # noqa: BLE001 - NostrSdkError: not for us, tampered, or sender mismatch
        return _skip(outer_id, "unwrap_failed")
    rumor = gift.rumor()
    sender = gift.sender().to_hex()
    if sender != mostro_pubkey or rumor.author().to_hex() != sender:
        return _skip(outer_id, "not_from_mostro")
    elements = parse_tuple(rumor.content())
    if elements is None:
        return _skip(outer_id, "not_a_tuple")
    signature = elements[1] if len(elements) > 1 else None
    return parse_message(
        elements[0],
        signature=signature,
        signer_pubkey=sender,
        created_at=rumor.created_at().as_secs(),
        event_id=outer_id,
        transport="giftwrap",
        now=now,
    ) or _skip(outer_id, "bad_message")


def read_kind14_reply(
    event: ns.Event, serbero_secret: Secret, mostro_pubkey: str, now: int | None = None
) -> MostroReply | None:
    """A v2 reply that passes the checks of docs/wire-formats.md#take-replies (in their order), or
    None when it must be skipped.

    `now` (when given) rejects an event dated more than ten minutes ahead of the local clock.
    """
    outer_id = event.id().to_hex()
    if _too_large(event):
        return _skip(outer_id, "too_large")
    if not event.verify():
        return _skip(outer_id, "bad_signature")
    if event.author().to_hex() != mostro_pubkey:
        return _skip(outer_id, "not_from_mostro")
    keys = keys_from_secret(serbero_secret)
    serbero_pubkey = keys.public_key().to_hex()
    if not any(
        len(t) >= 2 and t[0] == "p" and t[1] == serbero_pubkey
        for t in (tag.to_vec() for tag in event.tags())
    ):
        return _skip(outer_id, "not_tagged")
    try:
        plaintext = ns.nip44_decrypt(keys.secret_key(), event.author(), event.content())
    except Exception:  # noqa: BLE001 - NostrSdkError
        return _skip(outer_id, "decrypt_failed")
    elements = parse_tuple(plaintext)
    if elements is None or len(elements) != 3:
        return _skip(outer_id, "not_a_3_tuple")
    if elements[2] is not None:
        return _skip(outer_id, "identity_proof")
    return parse_message(
        elements[0],
        signature=elements[1],
        signer_pubkey=mostro_pubkey,
        created_at=event.created_at().as_secs(),
        event_id=outer_id,
        transport="nip44",
        now=now,
    ) or _skip(outer_id, "bad_message")


def _tuple_json(message: str, signature: str, *, three: bool) -> str:
    """`[M,"S"]` or `[M,"S",null]` with M spliced in verbatim, so its bytes never change."""
    return "[" + message + "," + '"' + signature + '"' + (",null]" if three else "]")


def _mine_in_time(
    build: Callable[[int], tuple[ns.UnsignedEvent, ns.Keys]],
    pow_bits: int,
    now: int,
    miner: Miner,
    clock: Callable[[], float],
) -> ns.Event:
    """Build at `now`, mine, sign; rebuild once with a later created_at when mining was slow."""
    if pow_bits > MAX_POW_BITS:
        logger.error(
            "take not attempted: pow bits=%d above the %d-bit limit", pow_bits, MAX_POW_BITS
        )
        raise TakeBuildError("pow_too_high")
    began = clock()
    created_at = now
    for attempt in (1, 2):
        started = clock()
        unsigned, signer = build(created_at)
        mined = miner(unsigned, pow_bits)
        if clock() - started <= SLOW_MINE_SECONDS:
            return mined.sign(signer)
        created_at = now + math.ceil(clock() - began)
        logger.warning("take mining slow bits=%d attempt=%d", pow_bits, attempt)
    logger.error("take not sent: mining %d bits was slow twice", pow_bits)
    raise TakeBuildError("pow_timeout")


def _too_large(event: ns.Event) -> bool:
    return len(event.as_json().encode("utf-8")) > MAX_EVENT_JSON_BYTES


def _skip(outer_id: str, reason: str) -> MostroReply | None:
    """Log why a reply is skipped and return None, so a reader can `return _skip(...)`."""
    logger.debug("mostro reply skipped event=%s reason=%s", outer_id[:8], reason)
    return None
