"""The two dispute-chat envelopes, from the party's side (docs/wire-formats.md#party-chat).

legacy ("giftwrap"): a signed kind-1 inner inside one kind-1059 layer by an ephemeral key,
addressed to pub(x), NIP-44 from the ephemeral key.
kind14: the same inner inside a kind-14 event signed by K_sign, `p` = pub(K_conv), content
NIP-44 self-encrypted with K_conv, outer created_at = inner created_at.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import nostr_sdk as ns

from serbero_cli.simulate.crypto import chat_secrets, ecdh_x

GIFTWRAP = "giftwrap"
KIND14 = "kind14"
GIFT_WRAP_KIND = 1059
CHAT_KIND = 14
# The kind-14 checks: outer not more than 60 s ahead, |inner − outer| ≤ 60, content ≤ 64 KiB.
MAX_OUTER_FUTURE_SECONDS = 60
MAX_INNER_OUTER_SKEW_SECONDS = 60
MAX_CONTENT_CHARS = 65_536
# A legacy inner more than 600 s in the future is rejected.
MAX_LEGACY_FUTURE_SECONDS = 600
# NIP-59 practice: outer timestamps are backdated up to 2 days.
MAX_BACKDATE_SECONDS = 172_800


class ChatRejected(Exception):
    """An envelope that fails a check; `reason` names it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _keys_of(secret: bytes) -> ns.Keys:
    return ns.Keys(ns.SecretKey.from_bytes(secret))


@dataclass(frozen=True)
class ChannelKeys:
    """One party's chat channel with one admin: the legacy key pub(x) and the kind-14 pair."""

    shared: ns.Keys  # x as a key: pub(x) is the legacy address
    conv: ns.Keys  # K_conv: encrypts; pub(K_conv) is the p tag
    sign: ns.Keys  # K_sign: signs the outer kind 14

    @classmethod
    def derive(cls, own_secret: bytes, peer_pubkey_hex: str) -> ChannelKeys:
        """Both sides reach the same keys: ECDH(own secret, peer pubkey), then HKDF."""
        x = ecdh_x(own_secret, bytes.fromhex(peer_pubkey_hex))
        conv, sign = chat_secrets(x)
        return cls(_keys_of(x), _keys_of(conv), _keys_of(sign))

    @property
    def shared_pubkey(self) -> str:
        return self.shared.public_key().to_hex()

    @property
    def conv_pubkey(self) -> str:
        return self.conv.public_key().to_hex()

    @property
    def sign_pubkey(self) -> str:
        return self.sign.public_key().to_hex()


def build_inner(author: ns.Keys, text: str, created_at: int) -> ns.Event:
    """A signed kind-1 event with no tags: the message both envelopes carry."""
    return (
        ns.EventBuilder(ns.Kind(1), text)
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize(author)
    )


def wrap_legacy(
    inner_json: str,
    shared_pubkey_hex: str,
    *,
    created_at: int | None = None,
    forge_outer_author: bool = False,
    extra_p: str | None = None,
) -> ns.Event:
    """A kind-1059 envelope by a fresh ephemeral key, `p` = the shared (legacy) pubkey.

    `forge_outer_author` signs with a different key than the one that encrypted, so the
    reader's decrypt with (shared sk, wrap author) fails.
    """
    receiver = ns.PublicKey.parse(shared_pubkey_hex)
    ephemeral = ns.Keys.generate()
    content = ns.nip44_encrypt(ephemeral.secret_key(), receiver, inner_json, ns.Nip44Version.V2)
    if created_at is None:
        created_at = int(time.time()) - random.randint(0, MAX_BACKDATE_SECONDS)
    tags = [ns.Tag.public_key(receiver)]
    if extra_p:
        tags.append(ns.Tag.public_key(ns.PublicKey.parse(extra_p)))
    signer = ns.Keys.generate() if forge_outer_author else ephemeral
    return (
        ns.EventBuilder(ns.Kind(GIFT_WRAP_KIND), content)
        .tags(tags)
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize(signer)
    )


def wrap_kind14(
    inner_json: str,
    channel: ChannelKeys,
    *,
    created_at: int,
    signer: ns.Keys | None = None,
    extra_p: str | None = None,
) -> ns.Event:
    """A kind-14 envelope: signed by K_sign (or `signer`, a forgery), tags exactly [p, pub(K_conv)]."""
    conv_pub = channel.conv.public_key()
    content = ns.nip44_encrypt(channel.conv.secret_key(), conv_pub, inner_json, ns.Nip44Version.V2)
    tags = [ns.Tag.public_key(conv_pub)]
    if extra_p:
        tags.append(ns.Tag.public_key(ns.PublicKey.parse(extra_p)))
    return (
        ns.EventBuilder(ns.Kind(CHAT_KIND), content)
        .tags(tags)
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize(signer or channel.sign)
    )


def _parse_inner(plaintext: str) -> ns.Event:
    try:
        inner = ns.Event.from_json(plaintext)
    except Exception as exc:  # noqa: BLE001
        raise ChatRejected("inner_not_event") from exc
    if not inner.verify():
        raise ChatRejected("inner_signature")
    if inner.kind().as_u16() != 1:
        raise ChatRejected("inner_kind")
    return inner


def open_legacy(wrap: ns.Event, channel: ChannelKeys, *, now: int) -> ns.Event:
    """The verified inner event of a 1059 envelope; raise ChatRejected on any failure."""
    try:
        plaintext = ns.nip44_decrypt(channel.shared.secret_key(), wrap.author(), wrap.content())
    except Exception as exc:  # noqa: BLE001
        raise ChatRejected("decrypt") from exc
    inner = _parse_inner(plaintext)
    if inner.created_at().as_secs() > now + MAX_LEGACY_FUTURE_SECONDS:
        raise ChatRejected("future")
    return inner


def open_kind14(event: ns.Event, channel: ChannelKeys, *, now: int) -> ns.Event:
    """The verified inner event of a kind-14 envelope, after the kind-14 checks."""
    if event.author().to_hex() != channel.sign_pubkey:
        raise ChatRejected("outer_author")
    p_tags = [t.to_vec() for t in event.tags() if t.to_vec()[:1] == ["p"]]
    if (
        event.kind().as_u16() != CHAT_KIND
        or len(p_tags) != 1
        or p_tags[0][1:2] != [channel.conv_pubkey]
    ):
        raise ChatRejected("p_tag")
    outer_at = event.created_at().as_secs()
    if outer_at > now + MAX_OUTER_FUTURE_SECONDS:
        raise ChatRejected("future")
    if len(event.content()) > MAX_CONTENT_CHARS:
        raise ChatRejected("too_large")
    if not event.verify():
        raise ChatRejected("outer_signature")
    try:
        plaintext = ns.nip44_decrypt(
            channel.conv.secret_key(), channel.conv.public_key(), event.content()
        )
    except Exception as exc:  # noqa: BLE001
        raise ChatRejected("decrypt") from exc
    inner = _parse_inner(plaintext)
    if abs(inner.created_at().as_secs() - outer_at) > MAX_INNER_OUTER_SKEW_SECONDS:
        raise ChatRejected("skew")
    return inner
