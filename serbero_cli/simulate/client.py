"""A connected nostr_sdk Client for a simulated participant."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import nostr_sdk as ns


class SimClient:
    """A participant's connection to one or more relays (connect lazily, reuse across calls)."""

    def __init__(self, relay_urls: list[str] | str):
        self.urls = [relay_urls] if isinstance(relay_urls, str) else list(relay_urls)
        self.client: ns.Client | None = None

    async def ensure(self) -> ns.Client:
        if self.client is None:
            client = ns.Client()
            for url in self.urls:
                await client.add_relay(ns.RelayUrl.parse(url))
            await client.try_connect(timedelta(seconds=3))
            self.client = client
        return self.client

    async def publish(self, event: ns.Event) -> Any:
        client = await self.ensure()
        return await client.send_event(event, ok_timeout=timedelta(seconds=5))

    async def fetch(self, filters: list[dict[str, Any]], timeout: float = 3.0) -> list[ns.Event]:
        client = await self.ensure()
        sdk_filters = [ns.Filter.from_json(json.dumps(f)) for f in filters]
        events = await client.fetch_events(
            ns.ReqTarget.auto(sdk_filters), timeout=timedelta(seconds=timeout)
        )
        seen, unique = set(), []
        for ev in events:
            if ev.id().to_hex() not in seen:
                seen.add(ev.id().to_hex())
                unique.append(ev)
        return unique

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.shutdown()
            except Exception:  # noqa: BLE001
                pass
            self.client = None
