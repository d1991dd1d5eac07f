"""The other ends of the wire, written in the tests from the specs with raw nostr_sdk/coincurve calls.

A party (buyer or seller) derives the chat keys from its trade secret and Serbero's pubkey, and a
Mostro node builds replies. These never call serbero_cli helpers, so a shared misreading of the
spec would have to be made twice to go unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import coincurve
import nostr_sdk as ns

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def party_x(trade_secret_hex: str, serbero_pubkey_hex: str) -> bytes:
    """ECDH from the party side: raw x of trade_sk · lift_x(serbero_pk)."""
    point = coincurve.PublicKey(b"\x02" + bytes.fromhex(serbero_pubkey_hex))
    return point.multiply(bytes.fromhex(trade_secret_hex)).format()[1:]


def _expand(x: bytes, info: bytes) -> bytes:
    prk = hmac.new(bytes(32), x, hashlib.sha256).digest()
    for c in range(256):
        out = hmac.new(prk, info + (bytes([c]) if c else b"") + b"\x01", hashlib.sha256).digest()
        if 0 < int.from_bytes(out, "big") < N:
            return out
    raise AssertionError("no valid key")


class PartyChannel:
    """The party's view of its chat with Serbero."""

    def __init__(self, trade_keys: ns.Keys, serbero_pubkey_hex: str):
        self.trade = trade_keys
        self.serbero_pubkey = serbero_pubkey_hex
        x = party_x(trade_keys.secret_key().to_hex(), serbero_pubkey_hex)
        self.legacy = ns.Keys(ns.SecretKey.from_bytes(x))
        self.conv = ns.Keys(ns.SecretKey.from_bytes(_expand(x, b"mostro:chat:conv:v1")))
        self.sign = ns.Keys(ns.SecretKey.from_bytes(_expand(x, b"mostro:chat:sign:v1")))

    # --- building what a party sends ---
    def inner(
        self, text: str, created_at: int, *, signer: ns.Keys | None = None, kind: int = 1
    ) -> ns.Event:
        return (
            ns.EventBuilder(ns.Kind(kind), text)
            .custom_created_at(ns.Timestamp.from_secs(created_at))
            .finalize(signer or self.trade)
        )

    def kind14(
        self,
        inner_json: str,
        created_at: int,
        *,
        author: ns.Keys | None = None,
        tags: list[ns.Tag] | None = None,
        content: str | None = None,
        kind: int = 14,
    ) -> ns.Event:
        body = (
            content
            if content is not None
            else ns.nip44_encrypt(
                self.conv.secret_key(), self.conv.public_key(), inner_json, ns.Nip44Version.V2
            )
        )
        return (
            ns.EventBuilder(ns.Kind(kind), body)
            .tags(tags if tags is not None else [ns.Tag.public_key(self.conv.public_key())])
            .custom_created_at(ns.Timestamp.from_secs(created_at))
            .finalize(author or self.sign)
        )

    def legacy_wrap(self, inner_json: str, now: int, *, content: str | None = None) -> ns.Event:
        eph = ns.Keys.generate()
        body = (
            content
            if content is not None
            else ns.nip44_encrypt(
                eph.secret_key(), self.legacy.public_key(), inner_json, ns.Nip44Version.V2
            )
        )
        return (
            ns.EventBuilder(ns.Kind(1059), body)
            .tags([ns.Tag.public_key(self.legacy.public_key())])
            .custom_created_at(ns.Timestamp.from_secs(now - random.randint(0, 172800)))
            .finalize(eph)
        )

    # --- opening what Serbero sends ---
    def open_kind14(self, event: ns.Event) -> ns.Event:
        assert event.verify()
        assert event.author().to_hex() == self.sign.public_key().to_hex()
        assert [t.to_vec() for t in event.tags()] == [["p", self.conv.public_key().to_hex()]]
        plain = ns.nip44_decrypt(self.conv.secret_key(), self.conv.public_key(), event.content())
        inner = ns.Event.from_json(plain)
        assert inner.verify()
        return inner

    def open_legacy(self, event: ns.Event) -> ns.Event:
        assert [t.to_vec() for t in event.tags()] == [["p", self.legacy.public_key().to_hex()]]
        plain = ns.nip44_decrypt(self.legacy.secret_key(), event.author(), event.content())
        inner = ns.Event.from_json(plain)
        assert inner.verify()
        return inner


# --- the Mostro node's side ---


def reply_message(
    variant: str,
    dispute_id: str,
    request_id: int | None,
    action: str,
    payload: Any,
    *,
    version: int = 1,
) -> dict[str, Any]:
    return {
        variant: {
            "version": version,
            "request_id": request_id,
            "trade_index": None,
            "id": dispute_id,
            "action": action,
            "payload": payload,
        }
    }


def took_message(
    dispute_id: str,
    request_id: int | None,
    buyer: str | None,
    seller: str | None,
    *,
    version: int = 1,
    payload_id: str | None = None,
) -> dict[str, Any]:
    info = {
        "id": "0c4f6a8e-1111-4a2b-9c3d-5e6f7a8b9c0d",
        "kind": "sell",
        "status": "dispute",
        "buyer_pubkey": buyer,
        "seller_pubkey": seller,
        "initiator_pubkey": buyer,
        "initiator_full_privacy": True,
        "counterpart_full_privacy": True,
        "initiator_info": None,
        "counterpart_info": None,
        "premium": 0,
        "payment_method": "bank",
        "amount": 21000,
        "fiat_amount": 100,
    }
    return reply_message(
        "dispute",
        dispute_id,
        request_id,
        "admin-took-dispute",
        {"dispute": [payload_id or dispute_id, info]},
        version=version,
    )


def cantdo_message(
    dispute_id: str, request_id: int | None, reason: str | None, *, version: int = 1
) -> dict[str, Any]:
    return reply_message(
        "cant-do", dispute_id, request_id, "cant-do", {"cant_do": reason}, version=version
    )


def node_signature(keys: ns.Keys, message: dict[str, Any]) -> str:
    """A node signature over the compact serialization (the dicts above are built in canonical order)."""
    digest = hashlib.sha256(json.dumps(message, separators=(",", ":")).encode()).digest()
    return keys.sign_schnorr(digest)


def giftwrap_reply(
    mostro: ns.Keys,
    serbero_pubkey_hex: str,
    content: str,
    *,
    created_at: int,
    rumor_kind: int = 1,
    sealer: ns.Keys | None = None,
) -> ns.Event:
    """A node reply as a NIP-59 gift wrap; `sealer` forges the seal with another key."""
    signer = sealer or mostro
    rumor = (
        ns.EventBuilder(ns.Kind(rumor_kind), content)
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize_unsigned(signer.public_key())
    )
    return ns.nip59_make_gift_wrap(signer, ns.PublicKey.parse(serbero_pubkey_hex), rumor)


def kind14_reply(
    mostro: ns.Keys,
    serbero_pubkey_hex: str,
    plaintext: str,
    *,
    created_at: int,
    author: ns.Keys | None = None,
    tags: list[ns.Tag] | None = None,
    content: str | None = None,
) -> ns.Event:
    """A node reply as a v2 kind 14; `author` signs with another key (encrypting from it too)."""
    signer = author or mostro
    serbero = ns.PublicKey.parse(serbero_pubkey_hex)
    body = (
        content
        if content is not None
        else ns.nip44_encrypt(signer.secret_key(), serbero, plaintext, ns.Nip44Version.V2)
    )
    default_tags = [
        ns.Tag.public_key(serbero),
        ns.Tag.expiration(ns.Timestamp.from_secs(created_at + 30 * 86400)),
    ]
    return (
        ns.EventBuilder(ns.Kind(14), body)
        .tags(tags if tags is not None else default_tags)
        .custom_created_at(ns.Timestamp.from_secs(created_at))
        .finalize(signer)
    )


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
