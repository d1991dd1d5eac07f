"""Parsing and validating Mostro's kind-38386 dispute events (docs/wire-formats.md#dispute-events).

Events from relays are hostile until parsed: every check here turns a bad event into an
EventRejected (counted and logged by the caller), never into any other exception, so no single
event can fail a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from serbero_cli.keytext import is_valid_xonly
from serbero_cli.nostr.events import (
    FUTURE_LIMIT_SECONDS,
    MAX_EVENT_JSON_BYTES,
    NostrEvent,
    is_from_the_future,
    is_uuid,
    parse_int_tag,
)
from serbero_cli.safetext import has_control

DISPUTE_KIND = 38386
MAX_TAG_VALUE = 256
RESOLVED_STATUSES = frozenset({"seller-refunded", "settled", "released", "cooperatively-canceled"})
STATUSES = frozenset({"initiated", "in-progress"}) | RESOLVED_STATUSES
INITIATORS = frozenset({"buyer", "seller"})
# Tags whose values Serbero stores or shows; a control or bidi character in one rejects the event.
STORED_TAGS = ("d", "s", "initiator", "p", "created_at", "published_at")
INTEGER_TAGS = ("created_at", "published_at")


class EventRejected(ValueError):
    """A dispute event failed validation; the message is the reason logged and counted."""


@dataclass(frozen=True)
class DisputeEvent:
    """A validated dispute event. `solver` is a valid lowercase-hex `p` tag or None."""

    event_id: str
    dispute_id: str  # a UUID, lowercased
    status: str
    initiator: str | None
    solver: str | None
    event_timestamp: (
        int  # when the dispute opened (created_at / published_at tag), else the event time
    )
    created_at: int  # the event's own created_at: ordering and the cursor

    @property
    def resolved(self) -> bool:
        return self.status in RESOLVED_STATUSES


def parse_dispute_event(event: NostrEvent, mostro_pubkey: str, *, now: int) -> DisputeEvent:
    """Validate `event` as a dispute from `mostro_pubkey`, read at local time `now`.

    Return a DisputeEvent; raise EventRejected (and nothing else) for any defect.
    """
    _check_envelope(event, mostro_pubkey, now)
    tags = _checked_tags(event.tags)
    dispute_id = _first(tags, "d")
    if not dispute_id:
        raise EventRejected("missing d tag")
    if not is_uuid(dispute_id):
        raise EventRejected("d tag is not a UUID")
    status = _first(tags, "s")
    if not status:
        raise EventRejected("missing s tag")
    if status not in STATUSES:
        raise EventRejected(f"unknown status {status!r}")
    initiator = _first(tags, "initiator")
    if status == "initiated" and initiator not in INITIATORS:
        raise EventRejected("initiated without a valid initiator")
    solver = _first(tags, "p")
    solver = solver.lower() if solver and is_valid_xonly(solver) else None
    opened = {name: _int_tag(tags, name) for name in INTEGER_TAGS}
    opened_at = opened["created_at"] if opened["created_at"] is not None else opened["published_at"]
    return DisputeEvent(
        event_id=event.id,
        dispute_id=dispute_id.lower(),
        status=status,
        initiator=initiator,
        solver=solver,
        event_timestamp=opened_at if opened_at else event.created_at,
        created_at=event.created_at,
    )


def in_apply_order(events: list[DisputeEvent]) -> list[DisputeEvent]:
    """Oldest first; ties broken by the lower event id."""
    return sorted(events, key=lambda e: (e.created_at, e.event_id))


def _check_envelope(event: NostrEvent, mostro_pubkey: str, now: int) -> None:
    if event.kind != DISPUTE_KIND:
        raise EventRejected(f"wrong kind {event.kind!r}")
    if not isinstance(event.pubkey, str) or event.pubkey.lower() != mostro_pubkey:
        raise EventRejected("wrong author")
    if (
        not isinstance(event.id, str)
        or not isinstance(event.created_at, int)
        or isinstance(event.created_at, bool)
    ):
        raise EventRejected("malformed event")
    if not isinstance(event.size, int) or event.size > MAX_EVENT_JSON_BYTES:
        raise EventRejected(f"event larger than {MAX_EVENT_JSON_BYTES} bytes")
    if is_from_the_future(event.created_at, now):
        raise EventRejected(
            f"from the future: created_at is more than {FUTURE_LIMIT_SECONDS}s ahead of the local clock"
        )
    if event.created_at < 0:
        raise EventRejected("created_at is negative")


def _checked_tags(tags: object) -> list[tuple[str, ...]]:
    """The tags as tuples of strings; reject odd types, over-long values and controls in stored tags."""
    if not isinstance(tags, (tuple, list)):
        raise EventRejected("tags are not a list")
    checked = []
    for tag in tags:
        if not isinstance(tag, (tuple, list)) or not all(isinstance(value, str) for value in tag):
            raise EventRejected("a tag is not a list of strings")
        if any(len(value) > MAX_TAG_VALUE for value in tag):
            raise EventRejected(f"tag value over {MAX_TAG_VALUE} characters")
        if tag and tag[0] in STORED_TAGS and any(has_control(value) for value in tag[1:]):
            raise EventRejected(f"{tag[0]} tag holds a control or bidi character")
        checked.append(tuple(tag))
    return checked


def _first(tags: list[tuple[str, ...]], name: str) -> str | None:
    return next((t[1] for t in tags if len(t) >= 2 and t[0] == name), None)


def _int_tag(tags: list[tuple[str, ...]], name: str) -> int | None:
    """The tag's integer, None when absent; reject the event when any such tag is malformed."""
    values = [t[1] for t in tags if len(t) >= 2 and t[0] == name]
    try:
        numbers = [parse_int_tag(value) for value in values]
    except ValueError as exc:
        raise EventRejected(f"{name} tag: {exc}") from None
    return numbers[0] if numbers else None
