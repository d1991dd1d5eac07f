"""Re-notification sweep (core.md §6): remind solvers while a notified dispute stays untaken."""

from __future__ import annotations

import logging

from serbero_cli.core import messages
from serbero_cli.keys import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import Store

logger = logging.getLogger(__name__)


def due_disputes(store: Store, *, now: int, renotification_seconds: int, max_attempts: int):
    """Disputes that need a reminder now (read-only)."""
    return disputes_store.disputes_due_renotification(store, now - renotification_seconds, max_attempts)


def queue_renotifications(
    store: Store, *, solvers: list[str], now: int, renotification_seconds: int, max_attempts: int
) -> int:
    """Queue one re-notification per solver for every due dispute; return the rows queued."""
    if not solvers:
        return 0
    queued = 0
    with store.immediate() as conn:
        for dispute in due_disputes(store, now=now, renotification_seconds=renotification_seconds,
                                    max_attempts=max_attempts):
            body = messages.renotification_body(dispute.dispute_id, max(0, now - dispute.event_timestamp))
            queued += outbox.queue(conn, dispute.dispute_id, "re-notification", [(s, body) for s in solvers], now)
            logger.info("dispute=%s re-notification queued for %d solvers", short(dispute.dispute_id), len(solvers))
    return queued
