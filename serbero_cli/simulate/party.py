"""A simulated buyer or seller: a real Nostr client holding its trade keys.

It learns the admin (Serbero) pubkey only from Mostro's `admin-took-dispute` order message,
then reads and answers the dispute chat in the legacy 1059 envelope, the kind-14 envelope, or
both (docs/wire-formats.md#party-chat). Forgery options on `reply()` and `ThirdParty`
produce the bad envelopes the adversarial tests need.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.chat_wire import (
    GIFTWRAP,
    KIND14,
    ChannelKeys,
    ChatRejected,
    build_inner,
    open_kind14,
    open_legacy,
    wrap_kind14,
    wrap_legacy,
)
from serbero_cli.simulate.client import SimClient
from serbero_cli.simulate.mostro_messages import TOOK_ACTION
from serbero_cli.simulate.mostro_wire import read_node_messages, secret_bytes

CHAT_MODES = ("legacy", "kind14", "dual")
# Gift wraps are backdated up to 2 days; read a week back like the real clients' lookback.
LOOKBACK_SECONDS = 7 * 86400


@dataclass(frozen=True)
class ChatMessage:
    """One chat message read by the party (the inner event's fields plus how it arrived)."""

    inner_id: str
    created_at: int  # the inner event's created_at
    content: str
    envelope: str  # giftwrap | kind14
    author: str = ""
    outer_id: str = ""


@dataclass(frozen=True)
class SentMessage:
    """What `reply()` published: the inner event and each envelope's outer id and relay verdict."""

    inner_id: str
    inner_json: str
    created_at: int
    outer_ids: dict[str, str] = field(default_factory=dict)  # envelope -> outer event id
    accepted: dict[str, bool] = field(default_factory=dict)  # envelope -> a relay accepted it
    outer_events: dict[str, Any] = field(default_factory=dict)  # envelope -> ns.Event


@dataclass(frozen=True)
class Rejection:
    """An envelope the party refused while reading, and why."""

    envelope: str
    outer_id: str
    reason: str


class PartySim:
    """A trade party. Sync methods wrap the `*_async` ones on the shared background loop."""

    def __init__(
        self,
        role: str,
        trade_keys: ns.Keys,
        relay_url: str | list[str],
        chat: str = "kind14",
        mostro_pubkey: str | None = None,
        *,
        lookback_seconds: int = LOOKBACK_SECONDS,
    ):
        if role not in ("buyer", "seller"):
            raise ValueError(f"role must be buyer or seller, not {role!r}")
        if chat not in CHAT_MODES:
            raise ValueError(f"chat must be one of {CHAT_MODES}, not {chat!r}")
        if mostro_pubkey is None:
            raise ValueError("mostro_pubkey is required: the admin is learned only from Mostro")
        self.role = role
        self.keys = trade_keys
        self.chat = chat
        self.mostro_pubkey = mostro_pubkey
        self.lookback_seconds = lookback_seconds
        self.client = SimClient(relay_url)
        self.admin_pubkey: str | None = None
        self._seen_notices: set[str] = set()
        self.rejected: list[Rejection] = []
        self.sent: list[SentMessage] = []

    @property
    def trade_pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    def channel(self) -> ChannelKeys:
        """The chat keys with the current admin; raise when no admin is known yet."""
        if self.admin_pubkey is None:
            raise RuntimeError(f"{self.role} has not been told who the admin is")
        return ChannelKeys.derive(secret_bytes(self.keys), self.admin_pubkey)

    # -- learning the admin ------------------------------------------------------------------
    async def learn_admin_async(self) -> str | None:
        """Read Mostro's messages to the trade key; a newly seen admin-took-dispute names the admin.

        Like a client that switches channel when a new notice arrives (a takeover), notices not
        seen before win over older ones; among new ones the latest created_at wins.
        """
        since = int(time.time()) - self.lookback_seconds
        me = self.trade_pubkey
        events = await self.client.fetch(
            [
                {"kinds": [1059], "#p": [me], "since": since},
                {"kinds": [14], "authors": [self.mostro_pubkey], "#p": [me], "since": since},
            ]
        )
        for msg in read_node_messages(events, self.keys, self.mostro_pubkey):  # oldest first
            if msg.event_id in self._seen_notices:
                continue
            self._seen_notices.add(msg.event_id)
            payload = msg.inner.get("payload")
            peer = payload.get("peer") if isinstance(payload, dict) else None
            if (
                msg.variant == "order"
                and msg.inner.get("action") == TOOK_ACTION
                and isinstance(peer, dict)
                and isinstance(peer.get("pubkey"), str)
            ):
                self.admin_pubkey = peer["pubkey"]
        return self.admin_pubkey

    def learn_admin(self) -> str | None:
        return aio.run(self.learn_admin_async())

    # -- reading -----------------------------------------------------------------------------
    async def messages_async(self, *, include_own: bool = False) -> list[ChatMessage]:
        """Chat messages from the admin (and our own echoes when `include_own`), oldest first.

        Before Mostro has named an admin this returns [] and reads nothing. Rejected envelopes
        are listed in `self.rejected` (reset on every call).
        """
        self.rejected = []
        if await self.learn_admin_async() is None:
            return []
        channel, now = self.channel(), int(time.time())
        since = now - self.lookback_seconds
        filters = []
        if self.chat in ("legacy", "dual"):
            filters.append({"kinds": [1059], "#p": [channel.shared_pubkey], "since": since})
        if self.chat in ("kind14", "dual"):
            filters.append({"kinds": [14], "authors": [channel.sign_pubkey], "since": since})
        allowed = {self.admin_pubkey} | ({self.trade_pubkey} if include_own else set())
        seen: dict[str, ChatMessage] = {}
        for ev in await self.client.fetch(filters):
            envelope = GIFTWRAP if ev.kind().as_u16() == 1059 else KIND14
            try:
                inner = (
                    open_legacy(ev, channel, now=now)
                    if envelope == GIFTWRAP
                    else open_kind14(ev, channel, now=now)
                )
            except ChatRejected as exc:
                self.rejected.append(Rejection(envelope, ev.id().to_hex(), exc.reason))
                continue
            author = inner.author().to_hex()
            if author not in allowed:
                if author != self.trade_pubkey:  # our own echo is not a forgery
                    self.rejected.append(Rejection(envelope, ev.id().to_hex(), "inner_author"))
                continue
            inner_id = inner.id().to_hex()
            if inner_id not in seen:  # dual: the same inner in both envelopes shows once
                seen[inner_id] = ChatMessage(
                    inner_id,
                    inner.created_at().as_secs(),
                    inner.content(),
                    envelope,
                    author,
                    ev.id().to_hex(),
                )
        return sorted(seen.values(), key=lambda m: (m.created_at, m.inner_id))

    def messages(self, *, include_own: bool = False) -> list[ChatMessage]:
        return aio.run(self.messages_async(include_own=include_own))

    # -- writing -----------------------------------------------------------------------------
    async def reply_async(
        self,
        text: str,
        created_at: int | None = None,
        *,
        envelope: str | None = None,
        forge_outer_author: bool = False,
        extra_p_tag: str | bool | None = None,
        skew_seconds: int = 0,
        future_seconds: int = 0,
    ) -> SentMessage:
        """Send `text` as a kind-1 inner signed by the trade key, in this party's envelope.

        envelope: None = by chat mode (legacy → giftwrap; kind14/dual → kind14), or "giftwrap",
        "kind14", "both". Forgeries: `forge_outer_author` (outer signed by a stranger),
        `extra_p_tag` (a second p tag; True = a random key), `skew_seconds` (kind-14 outer time =
        inner + skew), `future_seconds` (inner and outer dated that far ahead).
        """
        await self.learn_admin_async()
        when = (int(time.time()) if created_at is None else created_at) + future_seconds
        inner = build_inner(self.keys, text, when)
        return await self._send_inner(
            inner.as_json(),
            inner.id().to_hex(),
            when,
            envelope,
            forge_outer_author=forge_outer_author,
            extra_p_tag=extra_p_tag,
            skew_seconds=skew_seconds,
        )

    def reply(self, text: str, created_at: int | None = None, **kwargs: Any) -> SentMessage:
        return aio.run(self.reply_async(text, created_at, **kwargs))

    async def rewrap_old_inner_async(
        self, inner_json: str, *, envelope: str | None = None
    ) -> SentMessage:
        """Publish an already-sent inner event again (same inner id) in a fresh outer envelope."""
        await self.learn_admin_async()
        inner = ns.Event.from_json(inner_json)
        return await self._send_inner(
            inner_json, inner.id().to_hex(), inner.created_at().as_secs(), envelope
        )

    def rewrap_old_inner(self, inner_json: str, **kwargs: Any) -> SentMessage:
        return aio.run(self.rewrap_old_inner_async(inner_json, **kwargs))

    async def _send_inner(
        self,
        inner_json: str,
        inner_id: str,
        created_at: int,
        envelope: str | None,
        *,
        forge_outer_author: bool = False,
        extra_p_tag: str | bool | None = None,
        skew_seconds: int = 0,
    ) -> SentMessage:
        channel = self.channel()
        envelope = envelope or (GIFTWRAP if self.chat == "legacy" else KIND14)
        envelopes = [GIFTWRAP, KIND14] if envelope == "both" else [envelope]
        extra_p = (
            ns.Keys.generate().public_key().to_hex()
            if extra_p_tag is True
            else (extra_p_tag or None)
        )
        sent = SentMessage(inner_id, inner_json, created_at)
        for kind in envelopes:
            if kind == GIFTWRAP:
                outer = wrap_legacy(
                    inner_json,
                    channel.shared_pubkey,
                    forge_outer_author=forge_outer_author,
                    extra_p=extra_p,
                )
            elif kind == KIND14:
                outer = wrap_kind14(
                    inner_json,
                    channel,
                    created_at=created_at + skew_seconds,
                    signer=ns.Keys.generate() if forge_outer_author else None,
                    extra_p=extra_p,
                )
            else:
                raise ValueError(f"unknown envelope {kind!r}")
            output = await self.client.publish(outer)
            sent.outer_ids[kind] = outer.id().to_hex()
            sent.outer_events[kind] = outer
            sent.accepted[kind] = bool(output.success)
        self.sent.append(sent)
        return sent

    def close(self) -> None:
        aio.run(self.client.close())


class ThirdParty:
    """A stranger who knows a chat address and writes to it with its own inner key."""

    def __init__(self, relay_url: str | list[str], keys: ns.Keys | None = None):
        self.keys = keys or ns.Keys.generate()
        self.client = SimClient(relay_url)

    @property
    def pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    async def send_legacy_async(self, shared_pubkey: str, text: str) -> SentMessage:
        """A 1059 wrap to a legacy shared pubkey carrying an inner signed by this stranger."""
        now = int(time.time())
        inner = build_inner(self.keys, text, now)
        outer = wrap_legacy(inner.as_json(), shared_pubkey)
        return await self._publish(inner, GIFTWRAP, outer)

    def send_legacy(self, shared_pubkey: str, text: str) -> SentMessage:
        return aio.run(self.send_legacy_async(shared_pubkey, text))

    async def send_kind14_async(self, conv_pubkey: str, text: str) -> SentMessage:
        """A kind 14 tagged `p` = a conversation pubkey, signed and encrypted by this stranger
        (it holds neither K_sign nor K_conv)."""
        now = int(time.time())
        inner = build_inner(self.keys, text, now)
        target = ns.PublicKey.parse(conv_pubkey)
        content = ns.nip44_encrypt(
            self.keys.secret_key(), target, inner.as_json(), ns.Nip44Version.V2
        )
        outer = (
            ns.EventBuilder(ns.Kind(14), content)
            .tags([ns.Tag.public_key(target)])
            .custom_created_at(ns.Timestamp.from_secs(now))
            .finalize(self.keys)
        )
        return await self._publish(inner, KIND14, outer)

    def send_kind14(self, conv_pubkey: str, text: str) -> SentMessage:
        return aio.run(self.send_kind14_async(conv_pubkey, text))

    async def _publish(self, inner: ns.Event, envelope: str, outer: ns.Event) -> SentMessage:
        output = await self.client.publish(outer)
        return SentMessage(
            inner.id().to_hex(),
            inner.as_json(),
            inner.created_at().as_secs(),
            {envelope: outer.id().to_hex()},
            {envelope: bool(output.success)},
            {envelope: outer},
        )

    def close(self) -> None:
        aio.run(self.client.close())
