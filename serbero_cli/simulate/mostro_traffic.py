"""Traffic a test scripts around the simulated node: stale replies, forged replies, a human takeover.

A mixin of MostroNodeSim (it uses the node's keys, client, transport, clock and records).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient
from serbero_cli.simulate.mostro_messages import cant_do_reply, solver_dispute_info, took_reply
from serbero_cli.simulate.mostro_records import AttackerReply
from serbero_cli.simulate.mostro_wire import NIP44, build_node_reply, build_take_request

if TYPE_CHECKING:
    from serbero_cli.simulate.mostro_records import NodeModes, TakeRequest


class _Node(Protocol):
    """What these methods use of the node they are mixed into (MostroNodeSim)."""

    keys: Any
    client: SimClient
    modes: NodeModes
    solvers: dict[str, str]
    pow: int
    pow_first_contact: int
    requests: list[TakeRequest]

    @property
    def transport(self) -> str: ...
    @property
    def pubkey(self) -> str: ...
    def now(self) -> int: ...
    def active_keys(self) -> set[str]: ...
    def _recipients(self, to: str | list[str] | None) -> list[str]: ...
    async def preseed_old_replies_async(
        self,
        dispute_id: str,
        reason: str | None,
        age_seconds: int,
        *,
        to: str | list[str] | None = None,
        request_id: int | None = None,
    ) -> list[str]: ...
    async def attacker_reply_async(
        self,
        dispute_id: str | None,
        *,
        to: str | list[str] | None = None,
        request_id: int | None = None,
    ) -> AttackerReply: ...
    async def takeover_async(
        self, dispute_id: str, by_solver_keys: Any, *, timeout: float = 3.0
    ) -> str: ...


class ScriptedTraffic:
    """Methods that publish scripted traffic on behalf of (or against) the node."""

    def _recipients(self: _Node, to: str | list[str] | None) -> list[str]:
        if to is None:
            return list(self.solvers)
        return [to] if isinstance(to, str) else list(to)

    async def preseed_old_replies_async(
        self: _Node,
        dispute_id: str,
        reason: str | None,
        age_seconds: int,
        *,
        to: str | list[str] | None = None,
        request_id: int | None = None,
    ) -> list[str]:
        version = 2 if self.transport == NIP44 else 1
        at, ids = self.now() - age_seconds, []
        for receiver in self._recipients(to):
            event = build_node_reply(
                self.keys,
                receiver,
                cant_do_reply(dispute_id, request_id, version, reason),
                transport=self.transport,
                rumor_kind=self.modes.rumor_kind,
                now=at,
            )
            await self.client.publish(event)
            ids.append(event.id().to_hex())
        return ids

    def preseed_old_replies(
        self: _Node, dispute_id: str, reason: str | None, age_seconds: int, **kwargs: Any
    ) -> list[str]:
        """Publish genuine but old cant-do replies (rumor/event dated `age_seconds` ago) for
        `dispute_id` (known or not) to `to` (default: every registered solver); return their ids."""
        return aio.run(self.preseed_old_replies_async(dispute_id, reason, age_seconds, **kwargs))

    async def attacker_reply_async(
        self: _Node,
        dispute_id: str | None,
        *,
        to: str | list[str] | None = None,
        request_id: int | None = None,
    ) -> AttackerReply:
        attacker, buyer, seller = ns.Keys.generate(), ns.Keys.generate(), ns.Keys.generate()
        version = 2 if self.transport == NIP44 else 1
        info = solver_dispute_info(
            order_id=str(uuid.uuid4()),
            initiator="buyer",
            buyer_pubkey=buyer.public_key().to_hex(),
            seller_pubkey=seller.public_key().to_hex(),
            order_created_at=self.now() - 3600,
            taken_at=self.now(),
        )
        message = took_reply(dispute_id or str(uuid.uuid4()), request_id, version, info)
        ids = []
        for receiver in self._recipients(to):
            event = build_node_reply(
                attacker,
                receiver,
                message,
                transport=self.transport,
                rumor_kind=self.modes.rumor_kind,
                now=self.now(),
            )
            await self.client.publish(event)
            ids.append(event.id().to_hex())
        return AttackerReply(
            attacker, buyer.public_key().to_hex(), seller.public_key().to_hex(), ids
        )

    def attacker_reply(self: _Node, dispute_id: str | None, **kwargs: Any) -> AttackerReply:
        """An `admin-took-dispute` with attacker trade keys, sent by a NON-Mostro key in this node's
        transport to `to` (default: every registered solver)."""
        return aio.run(self.attacker_reply_async(dispute_id, **kwargs))

    async def takeover_async(
        self: _Node, dispute_id: str, by_solver_keys: ns.Keys, *, timeout: float = 3.0
    ) -> str:
        author = by_solver_keys.public_key().to_hex()
        self.solvers.setdefault(author, "write")
        bits = self.pow
        if self.transport == NIP44 and author not in self.active_keys():
            bits = max(bits, self.pow_first_contact)
        request_id = random.randint(1, 2**63 - 1)
        event = build_take_request(
            by_solver_keys,
            self.pubkey,
            dispute_id,
            transport=self.transport,
            request_id=request_id,
            pow_bits=bits,
            now=self.now(),
        )
        solver_client = SimClient(self.client.urls)
        try:
            await solver_client.publish(event)
        finally:
            await solver_client.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.requests:
                if entry.request_id == request_id and entry.author == author:
                    return entry.outcome
            await asyncio.sleep(0.05)
        return "timeout"

    def takeover(
        self: _Node, dispute_id: str, by_solver_keys: ns.Keys, *, timeout: float = 3.0
    ) -> str:
        """A human solver sends a real take request over the relay (registered as write if unknown).

        On success the node publishes a new `in-progress` revision and tells the parties the new
        admin. Returns the recorded outcome, or "timeout" when the node (not started?) never decided.
        """
        return aio.run(
            self.takeover_async(dispute_id, by_solver_keys, timeout=timeout), timeout=timeout + 30
        )
