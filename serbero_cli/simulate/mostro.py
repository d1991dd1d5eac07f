"""A simulated Mostro node: publishes kind-38386 dispute events signed with its own key."""

from __future__ import annotations

import time
import uuid
from typing import Any

import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient

DISPUTE_KIND = 38386


def build_dispute_event(
    keys: ns.Keys,
    dispute_id: str,
    status: str,
    *,
    initiator: str | None = "buyer",
    created_at: int | None = None,
    opened_at: int | None = None,
    solver: str | None = None,
    extra_tags: list[list[str]] | None = None,
) -> ns.Event:
    """A kind-38386 event as real Mostro publishes it (d, s, initiator, created_at tag, y, z)."""
    tags = [["d", dispute_id], ["s", status]]
    if initiator is not None:
        tags.append(["initiator", initiator])
    if solver is not None:
        tags.append(["p", solver])
    if opened_at is not None:
        tags.append(["created_at", str(opened_at)])
    tags += [["y", "mostro"], ["z", "dispute"]]
    tags += extra_tags or []
    builder = ns.EventBuilder(ns.Kind(DISPUTE_KIND), "").tags([ns.Tag.parse(t) for t in tags])
    if created_at is not None:
        builder = builder.custom_created_at(ns.Timestamp.from_secs(created_at))
    return builder.finalize(keys)


class SimMostro:
    """Mostro's keys plus a relay connection; the take protocol lives in simulate/mostro_node.py."""

    def __init__(self, relay_urls: list[str] | str, keys: ns.Keys | None = None):
        self.keys = keys or ns.Keys.generate()
        self.client = SimClient(relay_urls)

    @property
    def pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    async def publish_async(self, event: ns.Event) -> Any:
        return await self.client.publish(event)

    def publish(self, event: ns.Event) -> Any:
        return aio.run(self.publish_async(event))

    def open_dispute(
        self,
        dispute_id: str | None = None,
        *,
        initiator: str = "buyer",
        created_at: int | None = None,
    ) -> str:
        """Publish an `initiated` dispute; return its id."""
        dispute_id = dispute_id or str(uuid.uuid4())
        now = created_at or int(time.time())
        self.publish(
            build_dispute_event(
                self.keys,
                dispute_id,
                "initiated",
                initiator=initiator,
                created_at=now,
                opened_at=now,
            )
        )
        return dispute_id

    def set_status(
        self,
        dispute_id: str,
        status: str,
        *,
        created_at: int | None = None,
        solver: str | None = None,
        initiator: str | None = "buyer",
    ) -> None:
        """Publish a newer revision of the dispute with `status`."""
        self.publish(
            build_dispute_event(
                self.keys,
                dispute_id,
                status,
                initiator=initiator,
                created_at=created_at or int(time.time()),
                solver=solver,
            )
        )

    def close(self) -> None:
        aio.run(self.client.close())
