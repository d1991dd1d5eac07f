"""A simulated Mostro node that answers `admin-take-dispute` over protocol v1 (gift wrap) or v2 (kind 14).

It is a real Nostr client on the relay: it publishes its kind-38385 info event and kind-38386
dispute revisions, subscribes to requests addressed to it, applies the node's gates
(docs/wire-formats.md#take-request), authorizes solvers as mostrod does and replies like it.
Test modes reproduce a silent, slow, duplicating, confused or refusing node and a few attacks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.crypto import leading_zero_bits
from serbero_cli.simulate.mostro import SimMostro, build_dispute_event
from serbero_cli.simulate.mostro_messages import (
    TAKE_ACTION,
    cant_do_reply,
    peer_notice,
    solver_dispute_info,
    took_reply,
)
from serbero_cli.simulate.mostro_records import (
    OPEN_STATUSES,
    DisputeRecord,
    DroppedEvent,
    NodeModes,
    TakeDetail,
    TakeRequest,
    decide_take,
)
from serbero_cli.simulate.mostro_traffic import ScriptedTraffic
from serbero_cli.simulate.mostro_wire import (
    GIFT_WRAP_KIND,
    GIFTWRAP,
    NIP44,
    PRIVATE_KIND,
    Dropped,
    InboundRequest,
    ReplayCache,
    build_node_reply,
    open_v1_request,
    open_v2_request,
)

logger = logging.getLogger(__name__)

INFO_KIND = 38385
# The harness reads gift wraps a week back (they are backdated up to two days).
V1_SINCE_SECONDS = 7 * 86400


class MostroNodeSim(ScriptedTraffic, SimMostro):
    """A Mostro node on the relay. Use `start()`, `open_dispute()`, then read `.requests`."""

    def __init__(
        self,
        relay_urls: list[str] | str,
        keys: ns.Keys | None = None,
        *,
        protocol: int | None = 2,
        pow: int = 0,
        pow_first_contact: int = 0,
        publish_info: bool = True,
        info_tags: dict[str, str | None] | None = None,
        mostro_version: str = "0.18.5",
        solvers: dict[str, str] | None = None,
        modes: NodeModes | None = None,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(relay_urls, keys)
        if protocol not in (1, 2, None):
            raise ValueError("protocol must be 1, 2 or None")
        self.protocol = protocol
        self.pow = pow
        self.pow_first_contact = pow_first_contact
        self.publish_info_event = publish_info
        self.info_overrides = dict(info_tags or {})
        self.mostro_version = mostro_version
        self.solvers: dict[str, str] = dict(solvers or {})
        self.modes = modes or NodeModes()
        self.clock = clock
        self.disputes: dict[str, DisputeRecord] = {}
        self.requests: list[TakeRequest] = []
        self.request_log: list[TakeDetail] = []
        self.dropped: list[DroppedEvent] = []
        self._replay = ReplayCache()
        self._last_info_at = 0
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_sim(cls, sim: SimMostro, **kwargs: Any) -> MostroNodeSim:
        """A node with the keys and relays of an existing SimMostro (e.g. the `mostro` fixture)."""
        return cls(sim.client.urls, sim.keys, **kwargs)

    # -- configuration ---------------------------------------------------------------------
    @property
    def transport(self) -> str:
        return NIP44 if self.protocol == 2 else GIFTWRAP

    def now(self) -> int:
        return int(self.clock())

    def set_modes(self, dispute_id: str | None = None, **changes: Any) -> NodeModes:
        """Change the node-wide modes, or one dispute's (starting from the node-wide ones)."""
        if dispute_id is None:
            self.modes = dataclasses.replace(self.modes, **changes)
            return self.modes
        record = self.disputes[dispute_id]
        record.modes = dataclasses.replace(record.modes or self.modes, **changes)
        return record.modes

    def modes_for(self, dispute_id: str | None) -> NodeModes:
        record = self.disputes.get(dispute_id or "")
        return record.modes if record is not None and record.modes is not None else self.modes

    def active_keys(self) -> set[str]:
        """The first-contact exemptions: solvers and trade keys of open disputes (rebuilt live)."""
        keys: set[str] = set()
        for record in self.disputes.values():
            if record.status in OPEN_STATUSES:
                keys |= {record.buyer_pubkey, record.seller_pubkey}
                if record.holder:
                    keys.add(record.holder)
        return keys

    def info_tags(self) -> list[list[str]]:
        """The 38385 tags this node publishes (after overrides; a None override removes a tag)."""
        values: dict[str, str | None] = {
            "protocol_version": str(self.protocol) if self.protocol else None,
            "pow": str(self.pow),
            "pow_first_contact": (
                str(max(self.pow, self.pow_first_contact))
                if self.protocol == 2
                else str(self.pow)
                if self.protocol == 1
                else None
            ),
            "mostro_version": self.mostro_version,
        }
        values.update(self.info_overrides)
        tags = [["d", self.pubkey]] + [[k, v] for k, v in values.items() if v is not None]
        return tags + [["y", "mostro"], ["z", "info"]]

    async def publish_info_async(self, created_at: int | None = None) -> ns.Event:
        """Publish a fresh 38385 (created_at strictly after the previous one)."""
        at = created_at if created_at is not None else max(self.now(), self._last_info_at + 1)
        self._last_info_at = at
        event = (
            ns.EventBuilder(ns.Kind(INFO_KIND), "")
            .tags([ns.Tag.parse(t) for t in self.info_tags()])
            .custom_created_at(ns.Timestamp.from_secs(at))
            .finalize(self.keys)
        )
        await self.client.publish(event)
        return event

    def publish_info(self, created_at: int | None = None) -> ns.Event:
        return aio.run(self.publish_info_async(created_at))

    def set_protocol(self, protocol: int | None, *, republish: bool = True) -> None:
        """Switch transports (a node restarted with another `transport` setting)."""
        self.protocol = protocol
        if republish and self.publish_info_event:
            self.publish_info()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start_async(self) -> MostroNodeSim:
        if self._task is not None:
            return self
        if self.publish_info_event:
            await self.publish_info_async()
        client = await self.client.ensure()
        stream = client.notifications()
        now = self.now()
        # Both kinds, so a protocol switch needs no resubscription; the kind gate drops the other.
        # Kind 14 is live only (limit 0, like mostrod); `since` would hide stale events from the gates.
        filters = [
            {"kinds": [GIFT_WRAP_KIND], "#p": [self.pubkey], "since": now - V1_SINCE_SECONDS},
            {"kinds": [PRIVATE_KIND], "#p": [self.pubkey], "limit": 0},
        ]
        sdk_filters = [ns.Filter.from_json(json.dumps(f)) for f in filters]
        output = await client.subscribe(ns.ReqTarget.auto(sdk_filters))
        self._task = asyncio.ensure_future(self._listen(stream, output.id))
        return self

    def start(self) -> MostroNodeSim:
        """Publish the info event (unless disabled) and start answering requests in the background."""
        return aio.run(self.start_async())

    async def _listen(self, stream: Any, subscription_id: str) -> None:
        while True:
            note = await stream.next()
            if note is None:
                return
            if note.is_new_event() and note.subscription_id == subscription_id:
                try:
                    await self.process_event(note.event)
                except Exception:  # noqa: BLE001 - one bad event must not stop the node
                    logger.exception("mostro sim: failed on event %s", note.event.id().to_hex()[:8])

    async def stop_async(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for task in list(self._pending):
            task.cancel()
        if self.client.client is not None:
            await self.client.client.unsubscribe_all()

    def stop(self) -> None:
        aio.run(self.stop_async())

    def close(self) -> None:
        self.stop()
        super().close()

    # -- disputes ------------------------------------------------------------------------------
    def _next_revision_at(self, record: DisputeRecord) -> int:
        record.last_revision_at = max(self.now(), record.last_revision_at + 1)
        return record.last_revision_at

    async def _publish_revision(self, record: DisputeRecord, created_at: int | None = None) -> int:
        at = created_at if created_at is not None else self._next_revision_at(record)
        record.last_revision_at = max(record.last_revision_at, at)
        await self.client.publish(
            build_dispute_event(
                self.keys,
                record.dispute_id,
                record.status,
                initiator=record.initiator,
                created_at=at,
                opened_at=record.opened_at,
            )
        )
        return at

    async def open_dispute_async(
        self,
        dispute_id: str | None = None,
        *,
        initiator: str = "buyer",
        created_at: int | None = None,
        order_id: str | None = None,
        holder: str | None = None,
    ) -> str:
        dispute_id = dispute_id or str(uuid.uuid4())
        opened_at = created_at or self.now()
        record = DisputeRecord(
            dispute_id,
            order_id or str(uuid.uuid4()),
            "initiated",
            initiator,
            ns.Keys.generate(),
            ns.Keys.generate(),
            opened_at,
        )
        self.disputes[dispute_id] = record
        await self._publish_revision(record, opened_at)
        if holder is not None:
            record.status, record.holder, record.taken_at = "in-progress", holder, self.now()
            await self._publish_revision(record)
        return dispute_id

    def open_dispute(
        self,
        dispute_id: str | None = None,
        *,
        initiator: str = "buyer",
        created_at: int | None = None,
        order_id: str | None = None,
        holder: str | None = None,
    ) -> str:
        """Create a dispute (fresh order id and buyer/seller trade keys), publish its 38386; return its id.

        `holder` starts it `in-progress` held by that solver (a second revision).
        """
        return aio.run(
            self.open_dispute_async(
                dispute_id,
                initiator=initiator,
                created_at=created_at,
                order_id=order_id,
                holder=holder,
            )
        )

    def dispute(self, dispute_id: str) -> DisputeRecord:
        return self.disputes[dispute_id]

    async def _change_status(
        self, record: DisputeRecord, status: str, holder: str | None, created_at: int | None
    ) -> int:
        # Runs on the simulator loop, so a take being decided there never sees a half-made change.
        record.status = status
        if holder is not None:
            record.holder = holder
        return await self._publish_revision(record, created_at)

    def set_status(
        self,
        dispute_id: str,
        status: str,
        *,
        created_at: int | None = None,
        solver: str | None = None,
        initiator: str | None = "buyer",
    ) -> None:
        """Publish a revision; for a dispute this node knows, the record follows (and time only moves on)."""
        record = self.disputes.get(dispute_id)
        if record is None:
            super().set_status(
                dispute_id, status, created_at=created_at, solver=solver, initiator=initiator
            )
            return
        aio.run(self._change_status(record, status, solver, created_at))

    def auto_close(self, dispute_id: str, status: str = "settled") -> int:
        """The parties resolved it (release → settled, cooperative cancel → seller-refunded).

        Publishes the terminal revision (strictly newer) and returns its created_at.
        """
        if status not in ("settled", "seller-refunded"):
            raise ValueError("auto-close yields settled or seller-refunded")
        return aio.run(self._change_status(self.disputes[dispute_id], status, None, None))

    def users_closed(
        self,
        dispute_id: str,
        action: str = "cooperative-cancel-accepted",
        *,
        publish_revision: bool = False,
    ) -> None:
        """The parties closed it themselves while a solver holds it (mostrod ≥ 0.19.2): the node
        tells the holder with `cooperative-cancel-accepted` or `released`, an `order` message whose
        `id` is the order id and whose payload names the dispute. Optionally also publish the
        matching 38386 revision (a listen run would see it)."""
        record = self.disputes[dispute_id]
        if not record.holder:
            raise ValueError("nobody holds this dispute: the node sends no message")
        message = {
            "order": {
                "version": 2 if self.protocol == 2 else 1,
                "request_id": None,
                "trade_index": None,
                "id": record.order_id,
                "action": action,
                "payload": {"dispute": [dispute_id, None]},
            }
        }
        aio.run(self._send(record.holder, message, self.modes))
        if publish_revision:
            status = "released" if action == "released" else "cooperatively-canceled"
            aio.run(self._change_status(record, status, None, None))

    def takes(self, dispute_id: str | None = None, author: str | None = None) -> list[TakeRequest]:
        """The accepted takes, optionally for one dispute and/or one requester."""
        return [
            r
            for r in self.requests
            if r.outcome == "taken"
            and dispute_id in (None, r.dispute_id)
            and author in (None, r.author)
        ]

    def party(self, dispute_id: str, role: str, chat: str = "kind14") -> Any:
        """A PartySim holding this dispute's `role` trade keys."""
        from serbero_cli.simulate.party import PartySim

        return PartySim(
            role, self.disputes[dispute_id].trade_keys(role), self.client.urls, chat, self.pubkey
        )

    # -- inbound -------------------------------------------------------------------------------
    async def process_event(self, event: ns.Event) -> None:
        """Run one inbound event through the gates and, if it is a take, decide and answer it.

        The subscription calls this; tests may call it again (e.g. to replay an id).
        """
        now, event_id, kind = self.now(), event.id().to_hex(), event.kind().as_u16()
        try:
            if leading_zero_bits(event_id) < self.pow:
                raise Dropped("pow")
            if kind != (PRIVATE_KIND if self.transport == NIP44 else GIFT_WRAP_KIND):
                raise Dropped("wrong_kind")
            if self.transport == NIP44:
                request = open_v2_request(
                    event,
                    self.keys,
                    now=now,
                    first_contact_bits=self.pow_first_contact,
                    is_active=event.author().to_hex() in self.active_keys(),
                    replay=self._replay,
                )
            else:
                request = open_v1_request(event, self.keys, now=now)
            if request.variant != "dispute" or request.inner.get("action") != TAKE_ACTION:
                raise Dropped("unsupported_action")
        except Dropped as drop:
            self.dropped.append(DroppedEvent(kind, event_id, event.author().to_hex(), drop.reason))
            return
        modes = self.modes_for(request.inner.get("id"))
        if modes.attacker_on_request:
            await self.attacker_reply_async(
                request.inner.get("id"),
                to=request.author,
                request_id=request.inner.get("request_id"),
            )
        if modes.delay_seconds > 0:
            task = asyncio.ensure_future(self._answer_later(request, modes, now))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        await self._answer(request, modes, now)

    async def inject_async(self, event: ns.Event) -> None:
        await self.process_event(event)

    def inject(self, event: ns.Event) -> None:
        """Feed one event straight to the gates, as if the subscription delivered it (again)."""
        aio.run(self.process_event(event))

    async def _answer_later(
        self, request: InboundRequest, modes: NodeModes, received_at: int
    ) -> None:
        await asyncio.sleep(modes.delay_seconds)
        await self._answer(request, modes, received_at)

    def _record(self, request: InboundRequest, outcome: str, received_at: int) -> None:
        entry = TakeRequest(
            request.transport,
            request.author,
            request.inner.get("id"),
            request.inner.get("request_id"),
            outcome,
        )
        self.request_log.append(
            TakeDetail(
                entry,
                request.event_id,
                request.inner.get("version"),
                request.pow_bits,
                request.created_at,
                received_at,
                request.message,
            )
        )
        self.requests.append(entry)

    async def _send(
        self,
        receiver: str,
        message: dict[str, Any],
        modes: NodeModes,
        *,
        copies: int = 1,
        at: int | None = None,
    ) -> None:
        for _ in range(copies):
            await self.client.publish(
                build_node_reply(
                    self.keys,
                    receiver,
                    message,
                    transport=self.transport,
                    rumor_kind=modes.rumor_kind,
                    now=at or self.now(),
                )
            )

    async def _answer(self, request: InboundRequest, modes: NodeModes, received_at: int) -> None:
        dispute_id, request_id = request.inner.get("id"), request.inner.get("request_id")
        if modes.null_request_id:
            request_id = None
        version = 2 if self.transport == NIP44 else 1
        record = self.disputes.get(dispute_id or "")
        if record is None:
            return self._record(request, "no_reply:unknown_dispute", received_at)
        if modes.silent:
            return self._record(request, "no_reply:silent", received_at)
        reason = modes.refuse_with or decide_take(
            record.status, record.holder, request.author, self.solvers, self.pubkey
        )
        copies = 2 if modes.duplicate_reply else 1
        if modes.reply_for_other_dispute:
            other = modes.other_dispute_id or str(uuid.uuid4())
            wrong = (
                cant_do_reply(other, request_id, version, reason)
                if reason
                else took_reply(other, request_id, version, self._info(record, modes))
            )
            await self._send(request.author, wrong, modes, copies=copies)
            if modes.reply_for_other_dispute != "then_real":
                return self._record(request, "no_reply:other_dispute", received_at)
        if reason:
            if not modes.drop_reply:
                await self._send(
                    request.author,
                    cant_do_reply(dispute_id, request_id, version, reason),
                    modes,
                    copies=copies,
                )
            return self._record(request, f"cant_do:{reason}", received_at)
        record.status, record.holder, record.taken_at = "in-progress", request.author, self.now()
        if not modes.drop_reply:
            await self._send(
                request.author,
                took_reply(record.dispute_id, request_id, version, self._info(record, modes)),
                modes,
                copies=copies,
            )
        notice = peer_notice(record.order_id, request_id, version, request.author)
        # Successive notices of one dispute get strictly increasing times, so a party that reads
        # several at once (a takeover within the same second) can still tell which is newest.
        record.last_notice_at = max(self.now(), record.last_notice_at + 1)
        for trade_pubkey in (record.buyer_pubkey, record.seller_pubkey):
            await self._send(trade_pubkey, notice, modes, at=record.last_notice_at)
        await self._publish_revision(record)
        self._record(
            request, "taken", received_at
        )  # last, so a test that sees it sees every effect

    def _info(self, record: DisputeRecord, modes: NodeModes) -> dict[str, Any]:
        seller = record.buyer_pubkey if modes.identical_trade_keys else record.seller_pubkey
        return solver_dispute_info(
            order_id=record.order_id,
            initiator=record.initiator,
            buyer_pubkey=record.buyer_pubkey,
            seller_pubkey=seller,
            order_created_at=record.opened_at - 3600,
            taken_at=record.taken_at,
            omit_trade_keys=modes.missing_trade_keys,
        )
