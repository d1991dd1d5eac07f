"""An in-process loopback relay (nostr_sdk LocalRelay) with a raised rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nostr_sdk as ns

from serbero_cli.simulate import aio


@dataclass
class RelayHandle:
    """A running relay; keep this object alive (dropping it stops the relay)."""

    url: str
    relay: Any

    def shutdown(self) -> None:
        try:
            self.relay.shutdown()
        except Exception:  # noqa: BLE001 - already stopped
            pass


async def start_relay_async(
    *, min_pow: int | None = None, max_reqs: int = 10_000, notes_per_minute: int = 1_000_000
) -> RelayHandle:
    builder = (
        ns.LocalRelayBuilder()
        .addr("127.0.0.1")
        .rate_limit(ns.RateLimit(max_reqs=max_reqs, notes_per_minute=notes_per_minute))
    )
    if min_pow:
        builder = builder.min_pow(min_pow)
    relay = builder.build()
    await relay.run()
    return RelayHandle(str(await relay.url()), relay)


def start_relay(**kwargs: Any) -> RelayHandle:
    """Start a relay on 127.0.0.1 (random port) and return its handle."""
    return aio.run(start_relay_async(**kwargs))
