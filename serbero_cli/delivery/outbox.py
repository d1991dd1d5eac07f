"""Delivering outbox rows: claim with the signed event, publish, record each outcome.

Shared by listen and mediate-once (docs/delivery.md). The rules:

* Every row's event is built and signed before its first publish and stored in the transaction
  that claims the row; every retry republishes that same event, so relays and clients
  deduplicate by id and a crash can never show anyone a second copy.
* Claims are compare-and-set updates, so two processes flushing the same row at once both publish
  the one stored event at worst; no transaction is open while a message is on the network.
* A row is `sent` only when a configured relay said OK. Up to SEND_CONCURRENCY sends are on the
  network at once; answers are committed in batches no larger than that (one transaction per
  message would cost more than the sending), and only then logged.
* When asked to stop (SIGTERM), nothing new is claimed; sends in flight get a short grace, and
  whatever is still unanswered stays `sending` with its event, republished by the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.notifications import Envelope, NotificationStatus, NotificationType
from serbero_cli.safetext import for_log, short
from serbero_cli.stopping import StopRequested
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import Connection, Store

logger = logging.getLogger(__name__)

Sent = tuple["outbox.OutboxRow", Any]  # a published row and the relays' outcome

SEND_CONCURRENCY = 16
PAGE_SIZE = 200
STOP_GRACE_SECONDS = 5.0
STOP_POLL_SECONDS = 0.25  # how often a wait for sends looks at the stop flag
OBSERVER_FIRST_RETRY_SECONDS = 60
OBSERVER_MAX_RETRY_SECONDS = 3600


@dataclass
class FlushResult:
    """Counts for one flush; `sent_ids` lets callers act on what went out."""

    sent: int = 0
    failed: int = 0
    interrupted: int = 0  # left `sending` with their event when a stop was requested
    sent_ids: list[int] = field(default_factory=list)
    sent_types: dict[str, int] = field(default_factory=dict)
    by_envelope: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, envelope: Envelope, outcome: str) -> None:
        per = self.by_envelope.setdefault(envelope, {"sent": 0, "failed": 0})
        per[outcome] = per.get(outcome, 0) + 1


def observer_retry_due(row: outbox.OutboxRow, now: int) -> bool:
    """Observer rows back off: 60 s after the first failure, doubling, at most an hour apart."""
    if row.status != NotificationStatus.FAILED or row.claimed_at is None:
        return True
    wait = min(
        OBSERVER_FIRST_RETRY_SECONDS * 2 ** max(0, row.attempts - 1), OBSERVER_MAX_RETRY_SECONDS
    )
    return (
        row.claimed_at + wait <= now
    )  # a claim time from a clock that ran ahead is repaired at run start


def after_sent(conn: Connection, row: outbox.OutboxRow, now: int) -> None:
    """Lifecycle effects of a delivered message: the first one that reaches anyone counts."""
    if row.notif_type == NotificationType.INITIAL:
        disputes_store.move_dispute(
            conn,
            row.dispute_id,
            LifecycleState.NEW,
            LifecycleState.NOTIFIED,
            now,
            "initial_notification",
            last_notified_at=now,
        )
    elif row.notif_type in (NotificationType.RE_NOTIFICATION, NotificationType.DIGEST):
        outbox.note_reminded(conn, row.covered_disputes, row.created_at, now)


async def flush_outbox(
    store: Store,
    sender: Any,
    *,
    clock: Callable[[], float],
    max_attempts: int,
    types: Iterable[str] | None = None,
    progress: Any = None,
    stop: StopRequested | None = None,
    inbox_relays: Callable[[str], list[str]] | None = None,
) -> FlushResult:
    """Send every due row (optionally only `types`), oldest first. Return the counts."""
    result = FlushResult()
    types = list(types) if types is not None else None
    now = int(clock())
    with store.immediate() as conn:
        outbox.expire_observer_rows(conn, now)
    if progress is not None:
        progress.start(outbox.count_due(store, now=now, max_attempts=max_attempts, types=types))
    in_flight: set[asyncio.Task[Sent]] = set()
    answered: list[Sent] = []  # sent, outcome not yet committed
    last_id = 0
    try:
        while not _stopping(stop):
            page = outbox.due(
                store,
                now=int(clock()),
                max_attempts=max_attempts,
                types=types,
                limit=PAGE_SIZE,
                after_id=last_id,
            )
            if not page:
                break
            last_id = page[-1].id
            for start in range(0, len(page), SEND_CONCURRENCY):
                if _stopping(stop):
                    break
                claimed = _claim(
                    store,
                    sender,
                    page[start : start + SEND_CONCURRENCY],
                    int(clock()),
                    max_attempts,
                    result,
                )
                for index, (row, event_json, event) in enumerate(claimed):
                    while len(in_flight) >= SEND_CONCURRENCY and not _stopping(stop):
                        done, in_flight = await asyncio.wait(
                            in_flight,
                            timeout=STOP_POLL_SECONDS,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        answered += _outcomes(done)
                    if _stopping(stop):  # claimed with their events: the next run publishes them
                        result.interrupted += len(claimed) - index
                        break
                    if len(answered) >= SEND_CONCURRENCY:
                        _record(store, answered, clock, result, progress)
                        answered = []
                    in_flight.add(
                        asyncio.create_task(
                            _publish(sender, row, event_json, event, _extra(row, inbox_relays))
                        )
                    )
        answered += await _drain(in_flight, stop, result)
        in_flight = set()
        _record(store, answered, clock, result, progress)
    finally:
        for task in in_flight:
            task.cancel()
    if result.interrupted:
        logger.warning(
            "stopping: %d messages were still in flight; the next run republishes them",
            result.interrupted,
        )
    return result


async def _drain(
    tasks: set[asyncio.Task[Sent]], stop: StopRequested | None, result: FlushResult
) -> list[Sent]:
    """Wait for the sends in flight; return their outcomes. Once a stop is requested they get
    STOP_GRACE_SECONDS more at most; the unanswered ones are cancelled and stay `sending`."""
    pending, finished = set(tasks), set()
    loop = asyncio.get_running_loop()
    deadline = None
    while pending:
        if deadline is None and _stopping(stop):
            deadline = loop.time() + STOP_GRACE_SECONDS
        timeout = STOP_POLL_SECONDS if deadline is None else max(0.0, deadline - loop.time())
        done, pending = await asyncio.wait(pending, timeout=timeout)
        finished |= done
        if deadline is not None and loop.time() >= deadline:
            break
    for task in pending:
        task.cancel()
    result.interrupted += len(pending)
    return _outcomes(finished)


def _extra(row: outbox.OutboxRow, inbox_relays: Callable[[str], list[str]] | None) -> list[str]:
    return (
        inbox_relays(row.solver_pubkey) if inbox_relays and row.envelope == Envelope.NIP17 else []
    )


def _outcomes(finished: set[asyncio.Task[Sent]]) -> list[Sent]:
    """The (row, outcome) of each finished send; re-raise the first failure (the row stays
    `sending` with its event, and the next run republishes it)."""
    for task in finished:
        failure = task.exception()
        if failure is not None:
            raise failure
    return sorted((task.result() for task in finished), key=lambda pair: pair[0].id)


def _stopping(stop: StopRequested | None) -> bool:
    return stop is not None and stop.is_set()


def _claim(
    store: Store,
    sender: Any,
    rows: list[outbox.OutboxRow],
    now: int,
    max_attempts: int,
    result: FlushResult,
) -> list[tuple[outbox.OutboxRow, str, Any]]:
    """Claim a batch in one short transaction, storing each new row's signed event with its claim.

    Events are built before the transaction opens (signing costs CPU, not a lock); a row some
    other process claimed meanwhile loses its CAS and the event built for it is dropped. Each claimed
    row comes back with the JSON to publish and, when built here, the same event as an SDK object.
    """
    plans: list[_Plan] = []
    for row in rows:
        observer = row.notif_type == NotificationType.OBSERVER
        if observer and not observer_retry_due(row, now):
            continue
        if (
            row.status == NotificationStatus.SENDING
            and row.attempts >= max_attempts
            and not observer
        ):
            plans.append(_Plan(row, "abandon"))
            continue
        if row.event_json is not None:
            plans.append(_Plan(row, "send", publish=row.event_json))
            continue
        try:
            built = sender.build(row.envelope, row.solver_pubkey, row.dispute_id, row.body, now)
        except Exception as exc:  # noqa: BLE001 - DmBuildError and anything the SDK raises
            plans.append(_Plan(row, "unbuildable", error=str(exc)))
            continue
        plans.append(
            _Plan(
                row, "send", publish=built.json, new_event=(built.id, built.json), event=built.event
            )
        )
    claimed = []
    with store.immediate() as conn:
        for plan in plans:
            row = plan.row
            if plan.action == "abandon":
                if outbox.abandon(conn, row):
                    logger.warning(
                        "notification=%d dispute=%s abandoned after %d attempts",
                        row.id,
                        short(row.dispute_id),
                        row.attempts,
                    )
                continue
            event_id, event_json = plan.new_event or (None, None)
            if not outbox.claim(conn, row, now, event_id, event_json):
                continue  # another process won the row
            if plan.action == "unbuildable":
                outbox.mark_failed(conn, row.id, plan.error or "cannot build message")
                result.failed += 1
                result.count(row.envelope, "failed")
                logger.warning(
                    "notification=%d dispute=%s %s",
                    row.id,
                    short(row.dispute_id),
                    for_log(plan.error),
                )
                continue
            claimed.append((row, plan.publish, plan.event))
    return claimed


class _Plan(NamedTuple):
    """What to do with one due row, decided before the claim transaction opens."""

    row: outbox.OutboxRow
    action: Literal["abandon", "send", "unbuildable"]
    publish: str = ""  # send: the event to publish, stored on the row or built just now
    new_event: tuple[str, str] | None = None  # (id, json) built this run, stored with the claim
    error: str = ""  # unbuildable: why
    event: Any = (
        None  # send: the event built just now, as an SDK object (publishing it skips a parse)
    )


async def _publish(
    sender: Any, row: outbox.OutboxRow, event_json: str, event: Any, extra: list[str]
) -> Sent:
    return row, await sender.publish(event_json, extra_relays=extra, event=event)


def _record(
    store: Store,
    outcomes: list[Sent],
    clock: Callable[[], float],
    result: FlushResult,
    progress: Any,
) -> None:
    """Commit outcomes together (a batch is at most SEND_CONCURRENCY, the sends in flight); count and
    log them only once committed."""
    for start in range(0, len(outcomes), SEND_CONCURRENCY):
        batch = outcomes[start : start + SEND_CONCURRENCY]
        now = int(clock())
        with store.immediate() as conn:
            for row, outcome in batch:
                if outcome.ok:
                    if outbox.mark_sent(conn, row.id, now, outcome.accepted):
                        after_sent(conn, row, now)
                else:
                    outbox.mark_failed(conn, row.id, outcome.error_message())
        if progress is not None:
            progress.advance(len(batch))
        for row, outcome in batch:
            _count(row, outcome, result)


def _count(row: outbox.OutboxRow, outcome: Any, result: FlushResult) -> None:
    if outcome.ok:
        result.sent += 1
        result.sent_ids.append(row.id)
        result.sent_types[row.notif_type] = result.sent_types.get(row.notif_type, 0) + 1
        result.count(row.envelope, "sent")
        logger.debug(
            "notification=%d dispute=%s to=%s type=%s envelope=%s sent relays=%d",
            row.id,
            short(row.dispute_id),
            short(row.solver_pubkey),
            row.notif_type,
            row.envelope,
            len(outcome.accepted),
        )
    else:
        result.failed += 1
        result.count(row.envelope, "failed")
        logger.warning(
            "notification=%d dispute=%s to=%s type=%s envelope=%s failed attempt=%d: %s",
            row.id,
            short(row.dispute_id),
            short(row.solver_pubkey),
            row.notif_type,
            row.envelope,
            row.attempts + 1,
            for_log(outcome.error_message()),
        )
