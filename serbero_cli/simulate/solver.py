"""A simulated human solver: reads its NIP-17 inbox from the relay and decrypts each DM."""

from __future__ import annotations

import time
from dataclasses import dataclass

import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient
from serbero_cli.simulate.mostrix import MostrixReader, SolverMessage

# Gift wraps are backdated up to 2 days: read at least 3 days back.
INBOX_LOOKBACK_SECONDS = 3 * 86400


@dataclass(frozen=True)
class ReceivedDm:
    wrap_id: str
    sender: str  # hex of the seal signer
    rumor_kind: int
    content: str
    rumor_created_at: int

    def key_lines(self) -> dict[str, str]:
        """`key: value` lines of the body (the first, human line is skipped)."""
        out: dict[str, str] = {}
        for line in self.content.split("\n")[1:]:
            if ": " in line:
                key, value = line.split(": ", 1)
                out.setdefault(key, value)
        return out


class SimSolver:
    """A solver with its own keys; `inbox()` returns every DM addressed to it, de-duplicated by wrap id."""

    def __init__(
        self,
        relay_urls: list[str] | str,
        keys: ns.Keys | None = None,
        permission: str = "read",
        name: str = "solver",
    ):
        self.keys = keys or ns.Keys.generate()
        self.permission = permission
        self.name = name
        self.client = SimClient(relay_urls)

    @property
    def pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    async def inbox_async(self, sender: str | None = None) -> list[ReceivedDm]:
        since = int(time.time()) - INBOX_LOOKBACK_SECONDS
        events = await self.client.fetch([{"kinds": [1059], "#p": [self.pubkey], "since": since}])
        out = []
        for ev in events:
            try:
                gift = ns.UnwrappedGift.from_gift_wrap(self.keys, ev)
            except Exception:  # noqa: BLE001 - not for us / garbage
                continue
            rumor = gift.rumor()
            dm = ReceivedDm(
                ev.id().to_hex(),
                gift.sender().to_hex(),
                rumor.kind().as_u16(),
                rumor.content(),
                rumor.created_at().as_secs(),
            )
            if sender is None or dm.sender == sender:
                out.append(dm)
        return sorted(out, key=lambda d: (d.rumor_created_at, d.wrap_id))

    def inbox(self, sender: str | None = None) -> list[ReceivedDm]:
        return aio.run(self.inbox_async(sender))

    def mostrix(self, serbero: str) -> list[SolverMessage]:
        """What this solver's Mostrix shows from Serbero (the `mostro` envelope), oldest first."""
        reader = MostrixReader(self.client.urls, self.keys, [serbero])
        try:
            return reader.messages()
        finally:
            reader.close()

    def close(self) -> None:
        aio.run(self.client.close())
