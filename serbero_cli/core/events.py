"""Parsing and validating Mostro's kind-38386 dispute events (core.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

from serbero_cli.keys import is_valid_xonly
from serbero_cli.nostr.events import NostrEvent

DISPUTE_KIND = 38386
MAX_TAG_VALUE = 256
RESOLVED_STATUSES = frozenset({"seller-refunded", "settled", "released", "cooperatively-canceled"})
STATUSES = frozenset({"initiated", "in-progress"}) | RESOLVED_STATUSES
INITIATORS = frozenset({"buyer", "seller"})


class EventRejected(ValueError):
    """A dispute event failed validation; the message is the reason logged and counted."""


@dataclass(frozen=True)
class DisputeEvent:
    """A validated dispute event. `solver` is a valid lowercase-hex `p` tag or None."""

    event_id: str
    dispute_id: str
    status: str
    initiator: str | None
    solver: str | None
    event_timestamp: int  # when the dispute opened (created_at / published_at tag), else the event time
    created_at: int  # the event's own created_at: ordering and the cursor

    @property
    def resolved(self) -> bool:
        return self.status in RESOLVED_STATUSES


def parse_dispute_event(event: NostrEvent, mostro_pubkey: str) -> DisputeEvent:
    """Validate `event` as a dispute from `mostro_pubkey`. Return a DisputeEvent; raise EventRejected."""
    if event.kind != DISPUTE_KIND:
        raise EventRejected(f"wrong kind {event.kind}")
    if event.pubkey.lower() != mostro_pubkey:
        raise EventRejected("wrong author")
    for tag in event.tags:
        if any(len(value) > MAX_TAG_VALUE for value in tag):
            raise EventRejected(f"tag value over {MAX_TAG_VALUE} characters")
    dispute_id = event.first_tag("d")
    if not dispute_id:
        raise EventRejected("missing d tag")
    status = event.first_tag("s")
    if not status:
        raise EventRejected("missing s tag")
    if status not in STATUSES:
        raise EventRejected(f"unknown status {status!r}")
    initiator = event.first_tag("initiator")
    if status == "initiated" and initiator not in INITIATORS:
        raise EventRejected("initiated without a valid initiator")
    solver = event.first_tag("p")
    solver = solver.lower() if solver and is_valid_xonly(solver) else None
    opened = _int_or_none(event.first_tag("created_at")) or _int_or_none(event.first_tag("published_at"))
    return DisputeEvent(
        event_id=event.id,
        dispute_id=dispute_id,
        status=status,
        initiator=initiator,
        solver=solver,
        event_timestamp=opened if opened is not None else event.created_at,
        created_at=event.created_at,
    )


def in_apply_order(events: list[DisputeEvent]) -> list[DisputeEvent]:
    """Oldest first; ties broken by the lower event id (core.md §3.1)."""
    return sorted(events, key=lambda e: (e.created_at, e.event_id))


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    number = int(value.strip())
    return number if 0 < number < 2**63 else None
