"""Dispute-chat envelopes: build what Serbero sends to a party and open what comes back.

Two envelopes carry the same signed kind-1 inner event: the legacy kind-1059 wrap to `pub(x)`
and the kind-14 envelope signed by K_sign (docs/wire-formats.md#party-chat).
Anyone can encrypt to a chat address, so the inner author check is the only authentication.
Decisions about storing, counting and ordering stay with the caller; this module says what an
envelope is.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import nostr_sdk as ns

from serbero_cli.keytext import Secret
from serbero_cli.nostr.chat_keys import ChannelKeys
from serbero_cli.nostr.events import MAX_EVENT_JSON_BYTES
from serbero_cli.nostr.sdk_keys import keys_from_secret

logger = logging.getLogger(__name__)

LEGACY_MAX_BACKDATE_SECONDS = 172_800  # NIP-59 style backdating of the 1059 wrap
# The kind-14 checks are numbered in the order open_kind14 runs them.
LEGACY_FUTURE_LIMIT_SECONDS = 600  # a legacy inner event may be dated at most this far ahead
KIND14_FUTURE_LIMIT_SECONDS = 60  # check 3
KIND14_MAX_CONTENT_CHARS = 65_536  # check 4
KIND14_MAX_PER_CHANNEL = 100  # check 6
KIND14_MAX_SKEW_SECONDS = 60  # check 13
KIND14_FETCH_LIMIT = 500
CURSOR_OVERLAP_SECONDS = 600  # recipients re-read 10 min behind their cursor
# An inner event never published and older than this is signed again before its first publish:
# clients page chat by time and would skip a message dated too far back.
INNER_REISSUE_AFTER_SECONDS = 600


@dataclass(frozen=True)
class SignedInner:
    """Serbero's signed kind-1 inner event: its JSON (what both envelopes carry), id and time."""

    event_json: str
    id: str
    created_at: int


@dataclass(frozen=True)
class InboundMessage:
    """What one inbound envelope turned out to be.

    status: "ok" (store it), "echo" (our own message came back: drop quietly, do not count),
    "forgery" (wrong inner author: WARNING, count), "rejected" (any other failed check: count).
    reason: a short code for non-ok statuses. envelope: "giftwrap" | "kind14".
    inner_* and content are set once the inner event has been parsed and verified.
    """

    status: str
    reason: str | None
    envelope: str
    outer_id: str
    inner_id: str | None = None
    inner_created_at: int | None = None
    content: str | None = None
    party: str | None = None
    author: str | None = None

    @property
    def counts_as_rejected(self) -> bool:
        """True when the caller must count it in `replies_rejected`."""
        return self.status in ("forgery", "rejected")

    def accepted(self) -> PartyReply | None:
        """The party's reply when the envelope passed every check, else None."""
        if (
            self.status != "ok"
            or self.party is None
            or self.inner_id is None
            or self.inner_created_at is None
            or self.content is None
        ):
            return None
        return PartyReply(
            self.party,
            self.envelope,
            self.outer_id,
            self.inner_id,
            self.inner_created_at,
            self.content,
        )


@dataclass(frozen=True)
class PartyReply:
    """A reply from a party that passed every check: what mediate-once stores."""

    party: str  # "buyer" | "seller"
    envelope: str  # "giftwrap" | "kind14"
    outer_id: str
    inner_id: str
    inner_created_at: int
    content: str


@dataclass
class Kind14RunState:
    """Per-run memory of the kind-14 checks 5 and 6: outer ids seen, events seen per channel."""

    seen_outer_ids: set[str] = field(default_factory=set)
    per_channel: dict[str, int] = field(default_factory=dict)


def build_inner(serbero_secret: Secret, text: str, created_at: int) -> SignedInner:
    """Sign a kind-1 inner event (tags []) by Serbero's identity key.

    The id depends only on author, time, kind, tags and content, so rebuilding with the same
    `created_at` and text yields the same id, which is what a republish relies on. Raise ValueError for
    blank text.
    """
    if not text or not text.strip():
        raise ValueError("chat message text must not be blank")
    event = (
        ns.EventBuilder(ns.Kind(1), text)
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize(keys_from_secret(serbero_secret))
    )
    return SignedInner(event.as_json(), event.id().to_hex(), created_at)


def needs_fresh_inner(inner_created_at: int, now: int) -> bool:
    """True when a pending kind-14 row must be re-issued with a new inner event (> 600 s old)."""
    return now - inner_created_at > INNER_REISSUE_AFTER_SECONDS


def legacy_wrap(inner: SignedInner, channel: ChannelKeys, now: int) -> ns.Event:
    """The legacy envelope: kind 1059 by a fresh ephemeral key to `pub(x)`, backdated."""
    ephemeral = ns.Keys.generate()
    receiver = ns.PublicKey.parse(channel.legacy_pubkey)
    content = ns.nip44_encrypt(
        ephemeral.secret_key(), receiver, inner.event_json, ns.Nip44Version.V2
    )
    created_at = now - secrets.randbelow(LEGACY_MAX_BACKDATE_SECONDS + 1)
    return (
        ns.EventBuilder(ns.Kind(1059), content)
        .tags([ns.Tag.public_key(receiver)])
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize(ephemeral)
    )


def kind14_wrap(inner: SignedInner, channel: ChannelKeys) -> ns.Event:
    """The kind-14 envelope: signed by K_sign, self-encrypted with K_conv.

    Tags are exactly [["p", pub(K_conv)]]; created_at equals the inner's (same second).
    """
    conv = keys_from_secret(channel.conv_secret)
    content = ns.nip44_encrypt(
        conv.secret_key(), conv.public_key(), inner.event_json, ns.Nip44Version.V2
    )
    return (
        ns.EventBuilder(ns.Kind(14), content)
        .tags([ns.Tag.public_key(conv.public_key())])
        .custom_created_at(ns.Timestamp.from_secs(inner.created_at))
        .finalize(keys_from_secret(channel.sign_secret))
    )


def open_legacy(
    event: ns.Event, channel: ChannelKeys, serbero_pubkey: str, now: int
) -> InboundMessage:
    """Open a kind-1059 chat wrap addressed to `channel.legacy_pubkey`: decrypt, then check the inner event."""
    outer_id = event.id().to_hex()

    def fail(status: str, reason: str, **inner: Any) -> InboundMessage:
        return InboundMessage(status, reason, "giftwrap", outer_id, party=channel.party, **inner)

    if event.kind().as_u16() != 1059:
        return fail("rejected", "wrong_kind")
    if _too_large(event):
        return fail("rejected", "too_large")
    try:
        plaintext = ns.nip44_decrypt(
            ns.SecretKey.parse(channel.legacy_secret.reveal()), event.author(), event.content()
        )
    except Exception:  # noqa: BLE001 - NostrSdkError: not for us or tampered
        return fail("rejected", "decrypt_failed")
    return _check_inner(
        plaintext,
        channel,
        serbero_pubkey,
        fail,
        "giftwrap",
        outer_id,
        future_limit=now + LEGACY_FUTURE_LIMIT_SECONDS,
    )


def open_kind14(
    event: ns.Event, channel: ChannelKeys, serbero_pubkey: str, now: int, run_state: Kind14RunState
) -> InboundMessage:
    """Open a kind-14 chat envelope with the checks of docs/wire-formats.md#party-chat, cheapest
    first (numbered below in that order).

    Check 12, the durable dedup on the inner id, belongs to the database. `run_state` carries the
    per-run outer ids and per-channel counts of checks 5 and 6 and is updated here.
    """
    outer_id = event.id().to_hex()

    def fail(status: str, reason: str, **inner: Any) -> InboundMessage:
        return InboundMessage(status, reason, "kind14", outer_id, party=channel.party, **inner)

    if event.author().to_hex() != channel.sign_pubkey:  # 1
        return fail("rejected", "wrong_author")
    p_tags = [t for t in (tag.to_vec() for tag in event.tags()) if t and t[0] == "p"]
    if event.kind().as_u16() != 14:  # 2
        return fail("rejected", "wrong_kind")
    if len(p_tags) != 1 or len(p_tags[0]) < 2 or p_tags[0][1] != channel.conv_pubkey:
        return fail("rejected", "bad_p_tag")
    outer_created_at = event.created_at().as_secs()
    if outer_created_at > now + KIND14_FUTURE_LIMIT_SECONDS:  # 3
        return fail("rejected", "future_outer")
    if len(event.content()) > KIND14_MAX_CONTENT_CHARS or _too_large(event):  # 4
        return fail("rejected", "too_large")
    if outer_id in run_state.seen_outer_ids:  # 5
        return fail("rejected", "seen_this_run")
    run_state.seen_outer_ids.add(outer_id)
    count = run_state.per_channel.get(channel.sign_pubkey, 0) + 1  # 6
    run_state.per_channel[channel.sign_pubkey] = count
    if count > KIND14_MAX_PER_CHANNEL:
        return fail("rejected", "channel_cap")
    if not event.verify():  # 7
        return fail("rejected", "bad_outer_signature")
    try:  # 8
        conv = keys_from_secret(channel.conv_secret)
        plaintext = ns.nip44_decrypt(conv.secret_key(), conv.public_key(), event.content())
    except Exception:  # noqa: BLE001 - NostrSdkError: tampered or not ours
        return fail("rejected", "decrypt_failed")
    result = _check_inner(
        plaintext,
        channel,
        serbero_pubkey,
        fail,
        "kind14",
        outer_id,
        future_limit=None,
        kind_after_author=True,
    )
    if (
        result.status == "ok"
        and abs(result.inner_created_at - outer_created_at) > KIND14_MAX_SKEW_SECONDS
    ):
        return fail(
            "rejected",
            "time_skew",
            inner_id=result.inner_id,  # 13
            inner_created_at=result.inner_created_at,
            author=result.author,
        )
    return result


def _check_inner(
    plaintext: str,
    channel: ChannelKeys,
    serbero_pubkey: str,
    fail: Any,
    envelope: str,
    outer_id: str,
    *,
    future_limit: int | None,
    kind_after_author: bool = False,
) -> InboundMessage:
    """Parse and authenticate the inner event. Legacy checks the kind before the signature; kind 14
    checks the signature, then the author, then the kind (checks 9–11)."""
    try:
        inner = ns.Event.from_json(plaintext)
    except Exception:  # noqa: BLE001 - not an event
        return fail("rejected", "bad_inner")
    inner_kind = inner.kind().as_u16()
    if not kind_after_author and inner_kind != 1:
        return fail("rejected", "inner_not_kind1")
    if not inner.verify():
        return fail("rejected", "bad_inner_signature")
    ident = {
        "inner_id": inner.id().to_hex(),
        "inner_created_at": inner.created_at().as_secs(),
        "author": inner.author().to_hex(),
    }
    if ident["author"] != channel.trade_pubkey:
        if ident["author"] == serbero_pubkey:
            return fail("echo", "own_message", **ident)
        logger.warning(
            "chat forgery dropped envelope=%s party=%s outer=%s author=%s",
            envelope,
            channel.party,
            outer_id[:8],
            ident["author"][:8],
        )
        return fail("forgery", "wrong_inner_author", **ident)
    if kind_after_author and inner_kind != 1:
        return fail("rejected", "inner_not_kind1", **ident)
    if future_limit is not None and ident["inner_created_at"] > future_limit:
        return fail("rejected", "future_inner", **ident)
    return InboundMessage(
        "ok", None, envelope, outer_id, content=inner.content(), party=channel.party, **ident
    )


def chat_filters(
    channels: list[ChannelKeys], *, now: int, lookback_seconds: int, cursors: dict[str, int]
) -> list[dict[str, Any]]:
    """The two inbound fetch filters: kind 14 by K_sign authors, and legacy 1059 by `#p`.

    `cursors` maps a channel's trade pubkey to its cursor (the party's `last_seen_inner_ts`, else
    the session's `started_at`); a channel without one contributes `now − lookback`. The kind-14
    filter is never `#p`-only: anyone who sees the address could flood it.
    """
    if not channels:
        return []
    floor = now - lookback_seconds
    cursor_floor = min(
        min(cursors.get(c.trade_pubkey, floor), now) - CURSOR_OVERLAP_SECONDS for c in channels
    )
    since = max(floor, cursor_floor)
    return [
        {
            "kinds": [14],
            "authors": _unique(c.sign_pubkey for c in channels),
            "since": since,
            "limit": KIND14_FETCH_LIMIT,
        },
        {"kinds": [1059], "#p": _unique(c.legacy_pubkey for c in channels), "since": floor},
    ]


def route_event(event: ns.Event, channels: list[ChannelKeys]) -> ChannelKeys | None:
    """The channel an inbound event belongs to: kind 14 by author, kind 1059 by its `p` tag."""
    kind = event.kind().as_u16()
    if kind == 14:
        author = event.author().to_hex()
        return next((c for c in channels if c.sign_pubkey == author), None)
    if kind == 1059:
        p_values = {
            t[1] for t in (tag.to_vec() for tag in event.tags()) if len(t) >= 2 and t[0] == "p"
        }
        return next((c for c in channels if c.legacy_pubkey in p_values), None)
    return None


def _too_large(event: ns.Event) -> bool:
    """Every event read from a relay is refused past 64 KiB of JSON, before any crypto is spent on it."""
    return len(event.as_json().encode("utf-8")) > MAX_EVENT_JSON_BYTES


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(values))
