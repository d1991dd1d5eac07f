"""The messages one handoff delivery sends, built and signed once at claim time.

Each recipient gets the handoff DM and, when a session was opened, the chat transcript after it,
in each of the recipient's envelopes. Every event is built before the claim commits and stored
on the dispatch row (`escalation_dispatches.events_json`); a re-send after a crash republishes
exactly those events, so relays and clients see one message, never a second copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from serbero_cli.delivery.audience import Audience
from serbero_cli.domain.notifications import Envelope, NotificationType

if TYPE_CHECKING:
    from serbero_cli.nostr.dm import SignedEvent


@dataclass(frozen=True)
class PlannedSend:
    """One event to one recipient, with the text it carries (kept for the send record). Sends
    loaded back from the dispatch row carry plain strings, equal to the enum members."""

    recipient: str
    envelope: Envelope
    notif_type: NotificationType  # the handoff itself, or a part of the transcript after it
    body: str
    event_id: str
    event_json: str
    error: str | None = None  # the event could not be built (too long for NIP-44, …): a failed send


def plan_sends(
    audience: Audience,
    recipients: list[str],
    dispute_id: str,
    handoff_body: str,
    transcript: list[str],
    build: Callable[[Envelope, str, str, str], SignedEvent],
) -> list[PlannedSend]:
    """Build every event of a delivery, recipient by recipient: the handoff first, then the
    transcript parts, each in the recipient's envelopes. `build(envelope, recipient, dispute_id,
    text)` signs one event; an event that cannot be built becomes a send that fails, as a relay
    refusing it would."""
    planned = []
    for recipient in recipients:
        texts = [(NotificationType.ESCALATION_HANDOFF, handoff_body)] + [
            (NotificationType.TRANSCRIPT, part) for part in transcript
        ]
        for notif_type, text in texts:
            for envelope in audience.envelopes_of(recipient):
                try:
                    event = build(envelope, recipient, dispute_id, text)
                except Exception as exc:  # noqa: BLE001 - DmBuildError: recorded as a failed send
                    planned.append(
                        PlannedSend(recipient, envelope, notif_type, text, "", "", str(exc)[:200])
                    )
                    continue
                planned.append(
                    PlannedSend(recipient, envelope, notif_type, text, event.id, event.json)
                )
    return planned


def dump(planned: list[PlannedSend]) -> str:
    return json.dumps([asdict(p) for p in planned], separators=(",", ":"), ensure_ascii=False)


def load(text: str | None) -> list[PlannedSend] | None:
    """The stored sends, or None when the row has none (claimed before events were stored)."""
    if not text:
        return None
    try:
        return [PlannedSend(**item) for item in json.loads(text)]
    except (ValueError, TypeError):
        return None
