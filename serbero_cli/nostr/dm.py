"""NIP-17 private direct messages to solvers (core.md §5.1)."""

from __future__ import annotations

import nostr_sdk as ns

from serbero_cli.keys import Secret
from serbero_cli.nostr.keys import keys_from_secret, public_key
from serbero_cli.nostr.relays import PublishOutcome, RelayPool


class DmSender:
    """Builds and publishes NIP-17 DMs from Serbero's key; one instance per run."""

    def __init__(self, pool: RelayPool, sender: Secret, send_timeout_seconds: float):
        self.pool = pool
        self.keys = keys_from_secret(sender)
        self.timeout = send_timeout_seconds

    async def send(self, receiver_hex: str, text: str) -> PublishOutcome:
        """Gift-wrap `text` to `receiver_hex` and publish it; an invalid key is a failed send."""
        try:
            receiver = public_key(receiver_hex)
        except Exception as exc:  # noqa: BLE001 - NostrSdkError subclasses
            return PublishOutcome("", error=f"invalid pubkey: {str(exc)[:120]}")
        try:
            event = ns.nip17_make_private_msg(self.keys, receiver, text)
        except Exception as exc:  # noqa: BLE001 - e.g. "message too long" past NIP-44's size limit
            return PublishOutcome("", error=f"cannot build message: {str(exc)[:120]}")
        return await self.pool.publish(event, self.timeout)
