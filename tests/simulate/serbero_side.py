"""Serbero's side of the take protocols and the chat, rebuilt here from the spec with raw nostr_sdk.

Deliberately independent of serbero_cli/simulate/* (and of Serbero's own nostr/ modules): a
bug shared by the simulator and this file would have to be written twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import coincurve
import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def take_json(dispute_id: str, request_id: int | None, version: int) -> str:
    """The take request (docs/wire-formats.md#take-request), byte-exact, built as text in the mandated order."""
    rid = "null" if request_id is None else str(request_id)
    return (
        '{"dispute":{"version":'
        + str(version)
        + ',"request_id":'
        + rid
        + ',"trade_index":null,"id":"'
        + dispute_id
        + '","action":"admin-take-dispute","payload":null}}'
    )


def schnorr(keys: ns.Keys, text: str) -> str:
    return keys.sign_schnorr(hashlib.sha256(text.encode()).digest())


def v1_take(
    keys: ns.Keys,
    mostro: str,
    dispute_id: str,
    request_id: int | None,
    *,
    rumor_at: int | None = None,
    signed: bool = True,
    tail: str = "",
    pow_bits: int = 0,
    bad_sig: bool = False,
) -> ns.Event:
    """A NIP-59 wrapped take: rumor kind 1 by Serbero, `[msg, sig]`, mined by hand when asked."""
    msg = take_json(dispute_id, request_id, 1)
    sig = schnorr(ns.Keys.generate() if bad_sig else keys, msg) if signed else None
    content = "[" + msg + "," + (json.dumps(sig) if sig else "null") + tail + "]"
    rumor = (
        ns.EventBuilder(ns.Kind(1), content)
        .custom_created_at(ns.Timestamp.from_secs(rumor_at or int(time.time())))
        .finalize_unsigned(keys.public_key())
    )
    mostro_pk = ns.PublicKey.parse(mostro)
    if pow_bits == 0:
        return ns.nip59_make_gift_wrap(keys, mostro_pk, rumor)
    seal = ns.nip59_make_seal(keys, mostro_pk, rumor)
    eph = ns.Keys.generate()
    enc = ns.nip44_encrypt(eph.secret_key(), mostro_pk, seal.as_json(), ns.Nip44Version.V2)
    return (
        ns.EventBuilder(ns.Kind(1059), enc)
        .tags([ns.Tag.public_key(mostro_pk)])
        .custom_created_at(ns.Timestamp.from_secs(int(time.time()) - 3600))
        .finalize_unsigned(eph.public_key())
        .mine(ns.SingleThreadPow(), pow_bits)
        .sign(eph)
    )


def v2_take(
    keys: ns.Keys,
    mostro: str,
    dispute_id: str,
    request_id: int | None,
    *,
    bits: int = 0,
    created_at: int | None = None,
    payload: str | None = None,
    encrypt_to: str | None = None,
    bad_sig: bool = False,
    signed: bool = True,
) -> ns.Event:
    """The kind-14 take: by Serbero, p + expiration(+3600), NIP-44 `[M, S, null]`, mined."""
    now = created_at or int(time.time())
    msg = take_json(dispute_id, request_id, 2)
    if payload is None:
        sig = (
            json.dumps(schnorr(ns.Keys.generate() if bad_sig else keys, msg)) if signed else "null"
        )
        payload = "[" + msg + "," + sig + ",null]"
    mostro_pk = ns.PublicKey.parse(mostro)
    target = ns.PublicKey.parse(encrypt_to) if encrypt_to else mostro_pk
    content = ns.nip44_encrypt(keys.secret_key(), target, payload, ns.Nip44Version.V2)
    builder = (
        ns.EventBuilder(ns.Kind(14), content)
        .tags([ns.Tag.public_key(mostro_pk), ns.Tag.expiration(ns.Timestamp.from_secs(now + 3600))])
        .custom_created_at(ns.Timestamp.from_secs(now))
    )
    if bits == 0:
        return builder.finalize(keys)
    return builder.finalize_unsigned(keys.public_key()).mine(ns.SingleThreadPow(), bits).sign(keys)


@dataclass
class Reply:
    """A message found in Serbero's inbox: the envelope facts plus the decoded array."""

    kind: int  # outer kind (1059 or 14)
    sender: str  # seal signer (1059) or event author (14)
    created_at: int  # rumor time (1059) or event time (14)
    rumor_kind: int | None
    array: list[Any]
    tags: list[list[str]]
    event_id: str

    @property
    def inner(self) -> dict[str, Any]:
        ((_, inner),) = self.array[0].items()
        return inner

    @property
    def variant(self) -> str:
        return next(iter(self.array[0]))


class SerberoSide:
    """Serbero's keys and connection, with inbox readers for both transports."""

    def __init__(self, url: str, keys: ns.Keys | None = None):
        self.keys = keys or ns.Keys.generate()
        self.client = SimClient(url)

    @property
    def pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    def publish(self, event: ns.Event) -> Any:
        return aio.run(self.client.publish(event))

    def inbox(self, since: int | None = None) -> list[Reply]:
        """Every 1059 and kind-14 message addressed to Serbero that it can open (any sender)."""
        since = since if since is not None else int(time.time()) - 7 * 86400
        events = aio.run(
            self.client.fetch(
                [
                    {"kinds": [1059], "#p": [self.pubkey], "since": since},
                    {"kinds": [14], "#p": [self.pubkey], "since": since},
                ]
            )
        )
        out = []
        for ev in events:
            try:
                if ev.kind().as_u16() == 1059:
                    gift = ns.UnwrappedGift.from_gift_wrap(self.keys, ev)
                    rumor = gift.rumor()
                    out.append(
                        Reply(
                            1059,
                            gift.sender().to_hex(),
                            rumor.created_at().as_secs(),
                            rumor.kind().as_u16(),
                            json.loads(rumor.content()),
                            [],
                            ev.id().to_hex(),
                        )
                    )
                else:
                    assert ev.verify()
                    text = ns.nip44_decrypt(self.keys.secret_key(), ev.author(), ev.content())
                    out.append(
                        Reply(
                            14,
                            ev.author().to_hex(),
                            ev.created_at().as_secs(),
                            None,
                            json.loads(text),
                            [t.to_vec() for t in ev.tags()],
                            ev.id().to_hex(),
                        )
                    )
            except Exception:  # noqa: BLE001 - not for us
                continue
        return sorted(out, key=lambda r: r.created_at)

    def close(self) -> None:
        aio.run(self.client.close())


# -- chat keys (docs/wire-formats.md#party-chat) ------------------------------------------------
def raw_x(secret_hex: str, pubkey_hex: str) -> bytes:
    point = coincurve.PublicKey(b"\x02" + bytes.fromhex(pubkey_hex)).multiply(
        bytes.fromhex(secret_hex)
    )
    return point.format()[1:]


def hkdf_key(x: bytes, label: bytes) -> bytes:
    prk = hmac.new(bytes(32), x, hashlib.sha256).digest()
    for c in range(256):
        out = hmac.new(prk, label + (bytes([c]) if c else b"") + b"\x01", hashlib.sha256).digest()
        if 0 < int.from_bytes(out, "big") < N:
            return out
    raise AssertionError("no key")


@dataclass
class SerberoChannel:
    """Serbero's chat keys with one party."""

    shared: ns.Keys
    conv: ns.Keys
    sign: ns.Keys

    @classmethod
    def of(cls, serbero: ns.Keys, trade_pubkey: str) -> SerberoChannel:
        x = raw_x(serbero.secret_key().to_hex(), trade_pubkey)
        mk = lambda b: ns.Keys(ns.SecretKey.from_bytes(b))  # noqa: E731
        return cls(
            mk(x), mk(hkdf_key(x, b"mostro:chat:conv:v1")), mk(hkdf_key(x, b"mostro:chat:sign:v1"))
        )


def serbero_inner(keys: ns.Keys, text: str, at: int | None = None) -> ns.Event:
    return (
        ns.EventBuilder(ns.Kind(1), text)
        .custom_created_at(ns.Timestamp.from_secs(at or int(time.time())))
        .finalize(keys)
    )


def serbero_legacy(inner: ns.Event, ch: SerberoChannel) -> ns.Event:
    """The legacy gift-wrapped chat envelope (docs/delivery.md#chat-publishing)."""
    eph = ns.Keys.generate()
    target = ch.shared.public_key()
    content = ns.nip44_encrypt(eph.secret_key(), target, inner.as_json(), ns.Nip44Version.V2)
    return (
        ns.EventBuilder(ns.Kind(1059), content)
        .tags([ns.Tag.public_key(target)])
        .custom_created_at(ns.Timestamp.from_secs(int(time.time()) - 5000))
        .finalize(eph)
    )


def serbero_kind14(inner: ns.Event, ch: SerberoChannel) -> ns.Event:
    """The kind-14 chat envelope (docs/delivery.md#chat-publishing)."""
    conv = ch.conv.public_key()
    content = ns.nip44_encrypt(ch.conv.secret_key(), conv, inner.as_json(), ns.Nip44Version.V2)
    return (
        ns.EventBuilder(ns.Kind(14), content)
        .tags([ns.Tag.public_key(conv)])
        .custom_created_at(inner.created_at())
        .finalize(ch.sign)
    )


def serbero_read(side: SerberoSide, ch: SerberoChannel) -> list[tuple[str, ns.Event]]:
    """Serbero's inbound: legacy by #p = pub(x), kind 14 by author = pub(K_sign); returns (envelope, inner)."""
    since = int(time.time()) - 7 * 86400
    events = aio.run(
        side.client.fetch(
            [
                {"kinds": [1059], "#p": [ch.shared.public_key().to_hex()], "since": since},
                {"kinds": [14], "authors": [ch.sign.public_key().to_hex()], "since": since},
            ]
        )
    )
    out = []
    for ev in events:
        if ev.kind().as_u16() == 1059:
            text = ns.nip44_decrypt(ch.shared.secret_key(), ev.author(), ev.content())
            out.append(("giftwrap", ns.Event.from_json(text)))
        else:
            p = [t.to_vec() for t in ev.tags() if t.to_vec()[0] == "p"]
            assert p == [["p", ch.conv.public_key().to_hex()]]
            text = ns.nip44_decrypt(ch.conv.secret_key(), ch.conv.public_key(), ev.content())
            out.append(("kind14", ns.Event.from_json(text)))
    return out
