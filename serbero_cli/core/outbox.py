"""Delivering outbox rows (core.md §5.2): claim, send as NIP-17, record; shared by listen and mediate-once.

Claims are compare-and-set updates, so two processes flushing the same row send it once; no
transaction is open while a message is on the network. A row is `sent` only when a relay said OK.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from serbero_cli.keys import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import Connection, Store

logger = logging.getLogger(__name__)

SEND_CONCURRENCY = 16
PAGE_SIZE = 200


@dataclass
class FlushResult:
    """Counts for one flush; `sent_ids` lets callers act on what went out."""

    sent: int = 0
    failed: int = 0
    abandoned: int = 0
    lost_claims: int = 0
    sent_ids: list[int] = field(default_factory=list)
    sent_types: dict[str, int] = field(default_factory=dict)


def after_sent(conn: Connection, row: outbox.OutboxRow, now: int) -> None:
    """Lifecycle effects of a delivered message (core.md §5.2, §6)."""
    if row.notif_type == "initial":
        disputes_store.move_dispute(conn, row.dispute_id, "new", "notified", now, "initial_notification",
                                    last_notified_at=now)
    elif row.notif_type == "re-notification":
        conn.execute("UPDATE disputes SET last_notified_at=? WHERE dispute_id=? AND lifecycle_state='notified'",
                     (now, row.dispute_id))


async def flush_outbox(
    store: Store,
    sender: Any,
    *,
    clock: Callable[[], float],
    max_attempts: int,
    types: Iterable[str] | None = None,
    progress: Any = None,
) -> FlushResult:
    """Send every due row (optionally only `types`), oldest first. Return the counts."""
    result = FlushResult()
    types = list(types) if types is not None else None
    if progress is not None:
        progress.start(outbox.count_due(store, now=int(clock()), max_attempts=max_attempts, types=types))
    last_id = 0
    semaphore = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send_one(row: outbox.OutboxRow) -> tuple[outbox.OutboxRow, Any]:
        async with semaphore:
            return row, await sender.send(row.solver_pubkey, row.body)

    while True:
        now = int(clock())
        page = outbox.due(store, now=now, max_attempts=max_attempts, types=types, limit=PAGE_SIZE, after_id=last_id)
        if not page:
            break
        last_id = page[-1].id
        claimed = _claim_page(store, page, now, max_attempts, result)
        if not claimed:
            continue
        outcomes = await asyncio.gather(*(send_one(r) for r in claimed))
        _record(store, outcomes, int(clock()), result)
        if progress is not None:
            progress.advance(len(outcomes))
    return result


def _claim_page(
    store: Store, page: list[outbox.OutboxRow], now: int, max_attempts: int, result: FlushResult
) -> list[outbox.OutboxRow]:
    claimed = []
    with store.immediate() as conn:
        for row in page:
            if row.status == "sending" and row.attempts >= max_attempts:
                if outbox.abandon(conn, row, now):
                    result.abandoned += 1
                    logger.warning("notification=%d dispute=%s abandoned after %d attempts",
                                   row.id, short(row.dispute_id), row.attempts)
                continue
            if outbox.claim(conn, row, now):
                claimed.append(row)
            else:
                result.lost_claims += 1
    return claimed


def _record(store: Store, outcomes: list[tuple[outbox.OutboxRow, Any]], now: int, result: FlushResult) -> None:
    with store.immediate() as conn:
        for row, outcome in outcomes:
            if outcome.ok:
                outbox.mark_sent(conn, row.id, now, outcome.accepted)
                after_sent(conn, row, now)
                result.sent += 1
                result.sent_ids.append(row.id)
                result.sent_types[row.notif_type] = result.sent_types.get(row.notif_type, 0) + 1
                logger.info("notification=%d dispute=%s solver=%s type=%s sent relays=%d", row.id,
                            short(row.dispute_id), short(row.solver_pubkey), row.notif_type, len(outcome.accepted))
            else:
                message = outcome.error_message()
                outbox.mark_failed(conn, row.id, message)
                result.failed += 1
                logger.warning("notification=%d dispute=%s solver=%s type=%s failed attempt=%d: %s", row.id,
                               short(row.dispute_id), short(row.solver_pubkey), row.notif_type,
                               row.attempts + 1, message)
