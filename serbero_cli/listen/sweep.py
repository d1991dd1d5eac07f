"""Reminders while a notified dispute stays untaken, spaced so people can bear them.

Reminder k comes `renotification_seconds × 2^(k−1)` after the previous message, at most
`renotification_max_interval_seconds` apart (5, 10, 20, 40 min, … then every 6 h by default).
When one run owes a solver reminders for more than `DIGEST_THRESHOLD` disputes, that solver's
`nip17` envelope gets one digest listing them all instead of one message each; the `mostro`
envelope keeps one message per dispute, because a `send-dm` belongs to one dispute and Mostrix
files it under that dispute. See docs/delivery.md#reminders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from serbero_cli.delivery.audience import Audience
from serbero_cli.domain.lifecycle import DisputeView
from serbero_cli.domain.notifications import Envelope, NotificationType
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import Store
from serbero_cli.store.notifications import Delivery

logger = logging.getLogger(__name__)

DIGEST_THRESHOLD = 3
DIGEST_ENVELOPE = Envelope.NIP17


@dataclass(frozen=True)
class ReminderPlan:
    """What one sweep queues: per-dispute deliveries, and per-solver digests (solver, disputes)."""

    per_dispute: dict[str, list[Delivery]]
    digests: list[tuple[str, list[DisputeView]]]

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.per_dispute.values()) + len(self.digests)


def plan_reminders(due: list[DisputeView], audience: Audience, now: int) -> ReminderPlan:
    """Decide the reminder deliveries for `due` disputes (pure)."""
    # The message texts load only when something is due (start-up budget of an idle listen).
    from serbero_cli.domain import notices as messages

    per_dispute: dict[str, list[Delivery]] = {d.dispute_id: [] for d in due}
    digests: list[tuple[str, list[DisputeView]]] = []
    for solver in audience.solvers:
        envelopes = audience.envelopes_of(solver)
        digest = len(due) > DIGEST_THRESHOLD and DIGEST_ENVELOPE in envelopes
        if digest:
            digests.append((solver, list(due)))
        for dispute in due:
            body = messages.renotification_body(dispute.dispute_id, _elapsed(dispute, now))
            for envelope in envelopes:
                if not (digest and envelope == DIGEST_ENVELOPE):
                    per_dispute[dispute.dispute_id].append(Delivery(solver, envelope, body))
    return ReminderPlan(per_dispute, digests)


def _elapsed(dispute: DisputeView, now: int) -> int:
    return max(0, now - dispute.event_timestamp)


def due_disputes(
    store: Store,
    *,
    now: int,
    renotification_seconds: int,
    max_interval_seconds: int,
    max_attempts: int,
) -> list[DisputeView]:
    """Disputes that need a reminder now (read-only)."""
    return disputes_store.disputes_due_reminder(
        store,
        now=now,
        base_seconds=renotification_seconds,
        cap_seconds=max_interval_seconds,
        max_attempts=max_attempts,
    )


def queue_renotifications(
    store: Store,
    *,
    audience: Audience,
    now: int,
    renotification_seconds: int,
    max_interval_seconds: int,
    max_attempts: int,
) -> int:
    """Queue this run's reminders (one transaction); return the rows queued."""
    if not audience.solvers:
        return 0
    queued = 0
    with store.immediate() as conn:
        due = due_disputes(
            store,
            now=now,
            renotification_seconds=renotification_seconds,
            max_interval_seconds=max_interval_seconds,
            max_attempts=max_attempts,
        )
        if not due:
            return 0
        plan = plan_reminders(due, audience, now)
        from serbero_cli.domain import notices as messages

        for dispute_id, deliveries in plan.per_dispute.items():
            queued += outbox.queue(
                conn, dispute_id, NotificationType.RE_NOTIFICATION, deliveries, now
            )
        for solver, disputes in plan.digests:
            body = messages.digest_body(
                [(d.dispute_id, d.initiator_role, d.event_timestamp) for d in disputes], now
            )
            queued += outbox.queue(
                conn,
                disputes[0].dispute_id,
                NotificationType.DIGEST,
                [Delivery(solver, DIGEST_ENVELOPE, body)],
                now,
                covers=[d.dispute_id for d in disputes],
            )
    logger.info(
        "reminders queued: %d disputes, %d messages (%d digests)",
        len(due),
        queued,
        len(plan.digests),
    )
    for dispute in due:
        logger.debug(
            "dispute=%s reminder %d queued", short(dispute.dispute_id), dispute.reminders_sent + 1
        )
    return queued
