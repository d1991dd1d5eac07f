"""Messages to solvers and observers, in each envelope their programs read.

* `mostro`: the Mostro protocol v2 `send-dm` (Mostrix, mostro-watchdog, any v2 client). One kind-14
  event signed by Serbero, tags exactly `[["p", recipient]]`, created now, content the NIP-44 v2
  encryption (Serbero's key, recipient) of `[message, signature, null]`. The receiver re-serializes
  the message the way Rust's serde does and checks the BIP-340 signature against those bytes, so
  the message JSON is built here in that exact key order and escaping (see docs/wire-formats.md).
* `nip17`: the NIP-17 private message (kind-14 rumor, sealed, gift-wrapped) that general Nostr DM
  apps read.

Every event is built and signed once, stored by the caller, and republished unchanged on every
retry (`publish`), so relays and clients deduplicate a retry by its id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nostr_sdk as ns

from serbero_cli.domain.notifications import Envelope
from serbero_cli.keytext import Secret
from serbero_cli.nostr.relays import PublishOutcome, RelayPool
from serbero_cli.nostr.sdk_keys import keys_from_secret, public_key
from serbero_cli.safetext import valid_unicode

SEND_DM_ACTION = "send-dm"


class DmBuildError(Exception):
    """The event could not be built (bad recipient key, text too long for NIP-44, …)."""


@dataclass(frozen=True)
class SignedEvent:
    """A signed event ready to publish: its id and its JSON (what is stored).

    `event` is the same event as a nostr_sdk object, kept while the run that built it publishes it
    (parsing the stored JSON back costs as much as signing); a republish reads the JSON.
    """

    id: str
    json: str
    event: Any = field(default=None, compare=False, repr=False)


def send_dm_message_json(dispute_id: str, text: str) -> str:
    """The `send-dm` message, byte for byte as serde serializes it.

    Key order version, request_id, trade_index, id, action, payload; compact; `"`, `\\` and
    control characters escaped (`\\n`, `\\t`, … else `\\u00xx`), everything else raw UTF-8.
    Python's json with ensure_ascii=False escapes exactly that set, the same way.
    """
    message = {
        "dm": {
            "version": 2,
            "request_id": None,
            "trade_index": None,
            "id": dispute_id,
            "action": SEND_DM_ACTION,
            "payload": {"text_message": valid_unicode(text)},
        }
    }
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def send_dm_plaintext(secret: Secret, dispute_id: str, text: str) -> str:
    """`[message,"signature",null]` with the message spliced in verbatim (its bytes are what was signed)."""
    message = send_dm_message_json(dispute_id, text)
    import hashlib  # only the mostro envelope needs it (start-up budget of an idle listen)

    digest = hashlib.sha256(message.encode("utf-8")).digest()
    signature = keys_from_secret(secret).sign_schnorr(digest)
    return "[" + message + ',"' + signature + '",null]'


def build_mostro_dm(
    secret: Secret, recipient_hex: str, dispute_id: str, text: str, now: int
) -> SignedEvent:
    keys = keys_from_secret(secret)
    receiver = public_key(recipient_hex)
    content = ns.nip44_encrypt(
        keys.secret_key(), receiver, send_dm_plaintext(secret, dispute_id, text), ns.Nip44Version.V2
    )
    event = (
        ns.EventBuilder(ns.Kind(14), content)
        .tags([ns.Tag.public_key(receiver)])
        .custom_created_at(ns.Timestamp.from_secs(now))
        .finalize(keys)
    )
    return SignedEvent(event.id().to_hex(), event.as_json(), event)


def build_nip17_dm(secret: Secret, recipient_hex: str, text: str) -> SignedEvent:
    event = ns.nip17_make_private_msg(
        keys_from_secret(secret), public_key(recipient_hex), valid_unicode(text)
    )
    return SignedEvent(event.id().to_hex(), event.as_json(), event)


def build_dm(
    secret: Secret, envelope: Envelope, recipient_hex: str, dispute_id: str, text: str, now: int
) -> SignedEvent:
    """Build and sign one message in `envelope`. Raise DmBuildError when it cannot be built."""
    try:
        if envelope == Envelope.MOSTRO:
            return build_mostro_dm(secret, recipient_hex, dispute_id, text, now)
        if envelope == Envelope.NIP17:
            return build_nip17_dm(secret, recipient_hex, text)
    except Exception as exc:  # noqa: BLE001 - NostrSdkError: invalid key, message too long
        raise DmBuildError(f"cannot build {envelope} message: {str(exc)[:120]}") from None
    raise DmBuildError(f"unknown envelope {envelope!r}")


class DmSender:
    """Builds and publishes Serbero's messages on one relay pool; one instance per run."""

    def __init__(self, pool: RelayPool, secret: Secret, send_timeout_seconds: float):
        self.pool = pool
        self.secret = secret
        self.timeout = send_timeout_seconds

    def build(
        self, envelope: Envelope, recipient_hex: str, dispute_id: str, text: str, now: int
    ) -> SignedEvent:
        return build_dm(self.secret, envelope, recipient_hex, dispute_id, text, now)

    async def publish(
        self, event_json: str, extra_relays: Sequence[str] = (), *, event: Any = None
    ) -> PublishOutcome:
        """Publish a stored event, byte for byte: `event` when this run built it (the same event as
        `event_json`), else the stored JSON. Only the configured relays' answers count."""
        if event is not None:
            return await self.pool.publish(event, self.timeout, extra_relays=extra_relays)
        return await self.pool.publish_json(event_json, self.timeout, extra_relays=extra_relays)
