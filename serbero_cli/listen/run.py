"""`run_listen()`: fetch dispute events, apply them, sweep, deliver (docs/architecture.md#phase-run).

A run is: lock → open (migrate) → connect → fetch → validate → one BEGIN IMMEDIATE that
loads, plans and writes → queue reminders → flush the outbox → result. `--follow` then keeps
the subscription open and repeats the apply and flush steps as events arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serbero_cli.config import Config
from serbero_cli.delivery.audience import Audience
from serbero_cli.delivery.outbox import flush_outbox
from serbero_cli.domain.dispute_events import (
    DISPUTE_KIND,
    DisputeEvent,
    EventRejected,
    parse_dispute_event,
)
from serbero_cli.errors import DatabaseMissing, NoRelayReachable
from serbero_cli.listen import sweep
from serbero_cli.listen.result import ListenResult
from serbero_cli.nostr.events import NostrEvent
from serbero_cli.nostr.relays import RelayPool
from serbero_cli.runlock import RunLock
from serbero_cli.runrecord import recorded_run
from serbero_cli.safetext import for_log, short
from serbero_cli.stopping import StopRequested, stop_on_signals
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sync
from serbero_cli.store.clock import repair_future_timestamps
from serbero_cli.store.db import Store, is_busy, open_db

if TYPE_CHECKING:  # planning and writing events load only when there are events (start-up budget)
    from serbero_cli.listen import apply

logger = logging.getLogger(__name__)

CURSOR_OVERLAP_SECONDS = 300


def run_listen(
    config: Config,
    *,
    dry_run: bool = False,
    follow: bool = False,
    clock: Callable[[], float] = time.time,
    progress: Any = None,
    stop: StopRequested | None = None,
    on_resolved: apply.ResolvedHook | None = None,
    checkpoint: Checkpoint | None = None,
) -> ListenResult:
    """One listen run (or a `--follow` session). Return the result; raise SerberoError subclasses.

    `on_resolved` is called inside the transaction that resolves a dispute (the CLI passes
    mediation's resolution hook); `checkpoint(name, detail)` is called at named points of the run
    (tests stop a run there to prove nothing is lost).
    """
    if dry_run:
        return asyncio.run(_dry_run(config, clock))
    stop = stop or StopRequested()
    with RunLock(config.db_path, "listen", "listen"):
        store = open_db(config.db_path, busy_timeout_seconds=config.busy_timeout_seconds)
        try:
            with recorded_run(store, "listen", clock) as run, stop_on_signals(stop):
                hooks = _Hooks(on_resolved, checkpoint or _no_checkpoint)
                result = asyncio.run(_real_run(store, config, clock, follow, progress, stop, hooks))
                if stop.is_set():
                    result.stopped_by = stop.name
                    result.warnings.append(
                        f"stopped by {stop.name}: unfinished deliveries are left for the next run"
                    )
                    logger.warning(
                        "stopped by %s: unfinished deliveries are left for the next run", stop.name
                    )
                _save_last_run(store, result, int(clock()))
                run.finish(result)
            return result
        finally:
            store.close()


def dispute_filter(config: Config, since: int) -> dict[str, Any]:
    return {"kinds": [DISPUTE_KIND], "authors": [config.mostro_pubkey], "since": max(0, since)}


def fetch_since(store: Store | None, config: Config, now: int) -> int:
    """The node's cursor − 300 s, or now − initial lookback on a first run (docs/wire-formats.md#dispute-events)."""
    cursor = sync.get_cursor(store, config.mostro_pubkey, now) if store is not None else None
    if cursor is None:
        return now - config.listen.initial_lookback_seconds
    return cursor - CURSOR_OVERLAP_SECONDS


def validate(
    events: list[NostrEvent], mostro_pubkey: str, now: int
) -> tuple[list[DisputeEvent], int]:
    """Parse every event read at `now`; log and count the rejects. Return (valid events, rejected count).

    Never raises for an event: a parser bug becomes one more counted rejection, not a failed run.
    """
    valid, rejected = [], 0
    for event in events:
        try:
            valid.append(parse_dispute_event(event, mostro_pubkey, now=now))
        except EventRejected as exc:
            rejected += 1
            logger.warning("event=%s rejected: %s", for_log(short(str(event.id), 16)), for_log(exc))
        except Exception as exc:  # noqa: BLE001 - one hostile event must not fail the run
            rejected += 1
            logger.warning(
                "event=%s rejected: unparseable (%s)",
                for_log(short(str(event.id), 16)),
                exc.__class__.__name__,
            )
    return valid, rejected


async def _connect(pool: RelayPool, config: Config, result: ListenResult) -> list[str]:
    """Connect every relay; return the URLs that connected. Raise NoRelayReachable when none did."""
    connected = await pool.connect(config.listen.fetch_timeout_seconds)
    result.relays_connected = len(connected.connected)
    result.relays_failed = len(connected.failed)
    result.relay_errors = dict(connected.failed)
    for url, why in connected.failed.items():
        logger.warning("relay=%s unreachable: %s", url, for_log(why))
    _log_step(
        "relays",
        connected=result.relays_connected,
        failed=result.relays_failed,
        busy=bool(result.relays_failed),
    )
    if not connected.connected:
        raise NoRelayReachable("; ".join(f"{u}: {w}" for u, w in connected.failed.items()))
    return connected.connected


async def _fetch(
    pool: RelayPool, config: Config, since: int, connected: list[str], result: ListenResult
) -> list[NostrEvent]:
    """Fetch dispute events; a relay that connected but answered nothing in time counts as failed.

    Raise NoRelayReachable when no relay answered: "no new events" must never be claimed on the
    word of relays that said nothing.
    """
    timeout = config.listen.fetch_timeout_seconds
    fetched = await pool.fetch_answered([dispute_filter(config, since)], timeout, connected)
    silent = [url for url in connected if url not in fetched.answered]
    for url in silent:
        why = f"connected but answered no request within {timeout}s"
        logger.warning("relay=%s %s", url, why)
        result.relay_errors[url] = why
    result.relays_connected -= len(silent)
    result.relays_failed += len(silent)
    if len(silent) == len(connected):
        raise NoRelayReachable("; ".join(f"{u}: {w}" for u, w in result.relay_errors.items()))
    return fetched.events


async def _real_run(
    store: Store,
    config: Config,
    clock: Callable[[], float],
    follow: bool,
    progress: Any,
    stop: StopRequested,
    hooks: _Hooks,
) -> ListenResult:
    from serbero_cli.nostr.dm import DmSender

    result = ListenResult()
    pool = RelayPool(config.relays)
    try:
        connected = await _connect(pool, config, result)
        sender = DmSender(pool, config.private_key, config.delivery.send_timeout_seconds)
        stream = pool.notifications() if follow else None
        since = fetch_since(store, config, int(clock()))
        events = await _fetch(pool, config, since, connected, result)
        _repair_clock(store, clock)
        run = _Run(store, config, pool, sender, clock, stop, hooks)
        if not stop.is_set():
            run.apply_events(events, result)
            await run.deliver(progress, result, sweep_now=True)
        if follow:
            await _follow(run, stream, result)
    finally:
        await pool.close()
    return result


Checkpoint = Callable[[str, object], None]


def _no_checkpoint(name: str, detail: object) -> None:
    return None


@dataclass(frozen=True)
class _Hooks:
    """What the caller plugs into a run: the resolution hook and the checkpoint callback."""

    on_resolved: apply.ResolvedHook | None
    checkpoint: Checkpoint


class _Run:
    """What every pass of one listen run shares: the store, config, relays, sender and stop flag."""

    def __init__(
        self,
        store: Store,
        config: Config,
        pool: Any,
        sender: Any,
        clock: Callable[[], float],
        stop: StopRequested,
        hooks: _Hooks,
    ):
        self.store, self.config, self.pool, self.sender, self.clock, self.stop = (
            store,
            config,
            pool,
            sender,
            clock,
            stop,
        )
        self.audience = Audience.from_config(config)
        self.hooks = hooks

    def apply_events(self, events: list[NostrEvent], result: ListenResult) -> None:
        """Validate and apply `events` in one transaction; count them only once it committed."""
        if not events:
            return
        from serbero_cli.listen import apply

        config, store, clock = self.config, self.store, self.clock
        valid, rejected = validate(events, config.mostro_pubkey, int(clock()))
        counts = apply.ApplyCounts()
        if valid:
            now = int(clock())
            with store.immediate() as conn:
                existing = disputes_store.load_disputes(store, [e.dispute_id for e in valid])
                effects = apply.plan(existing, valid)
                counts = apply.write(
                    conn,
                    effects,
                    mostro_pubkey=config.mostro_pubkey,
                    audience=self.audience,
                    now=now,
                    on_resolved=self.hooks.on_resolved,
                )
            _add_counts(result, counts)
            self.hooks.checkpoint("listen_after_commit", len(valid))
            if counts.new and not self.audience.solvers:
                result.warnings.append(
                    "no [[solvers]] configured: disputes are recorded but nobody is notified"
                )
                logger.warning(
                    "no solvers configured: %d new disputes recorded, nobody notified", counts.new
                )
        result.events_fetched += len(events)
        result.events_rejected += rejected
        _log_step(
            "events",
            fetched=len(events),
            applied=counts.applied,
            rejected=rejected,
            new=counts.new,
            taken=counts.taken,
            resolved=counts.resolved,
            queued=counts.queued,
            busy=True,
        )

    async def deliver(self, progress: Any, result: ListenResult, *, sweep_now: bool) -> None:
        """Queue due reminders (when `sweep_now`), flush the outbox; add the counts to `result`."""
        config, store, clock = self.config, self.store, self.clock
        max_attempts = config.delivery.max_attempts
        if sweep_now:
            reminders = sweep.queue_renotifications(
                store,
                audience=self.audience,
                now=int(clock()),
                renotification_seconds=config.timeouts.renotification_seconds,
                max_interval_seconds=config.timeouts.renotification_max_interval_seconds,
                max_attempts=max_attempts,
            )
            result.notifications_queued += reminders
            _log_step("reminders", queued=reminders, busy=bool(reminders))
        relays = (
            await self.inbox_relays()
            if outbox.count_due(store, now=int(clock()), max_attempts=max_attempts)
            else {}
        )
        flushed = await flush_outbox(
            store,
            self.sender,
            clock=clock,
            max_attempts=max_attempts,
            progress=progress,
            stop=self.stop,
            inbox_relays=lambda pubkey: relays.get(pubkey, []),
        )
        result.add_flush(flushed)
        result.notifications_pending = outbox.count_due(
            store, now=int(clock()), max_attempts=max_attempts
        )
        _log_step(
            "outbox",
            sent=flushed.sent,
            failed=flushed.failed,
            pending=result.notifications_pending,
            busy=bool(flushed.sent or flushed.failed),
        )

    async def inbox_relays(self) -> dict[str, list[str]]:
        from serbero_cli.delivery import inbox

        return await inbox.for_audience(
            self.store,
            self.pool,
            self.audience,
            int(self.clock()),
            self.config.listen.fetch_timeout_seconds,
        )


def _log_step(step: str, *, busy: bool, **counts: int) -> None:
    """One line per run step: info when the step did something, debug when it had nothing to do,
    so an idle run every minute adds nothing to the log at the default level."""
    fields = " ".join(f"{name}={value}" for name, value in counts.items())
    logger.log(logging.INFO if busy else logging.DEBUG, "%s %s", step, fields)


def _add_counts(result: ListenResult, counts: apply.ApplyCounts) -> None:
    result.events_applied += counts.applied
    result.disputes_new += counts.new
    result.disputes_taken += counts.taken
    result.disputes_resolved += counts.resolved
    result.notifications_queued += counts.queued


async def _follow(run: _Run, stream: Any, result: ListenResult) -> None:
    """Stay subscribed; apply events as they arrive; sweep and retry on the check interval."""
    from serbero_cli.listen.follow import follow

    async def apply_events(events: list[NostrEvent]) -> None:
        run.apply_events(events, result)

    async def deliver(sweep_now: bool) -> None:
        if sweep_now:  # the clock may have been fixed while following
            _repair_clock(run.store, run.clock)
        await run.deliver(None, result, sweep_now=sweep_now)

    config = run.config
    await follow(
        run.pool,
        stream,
        filters=[dispute_filter(config, int(run.clock()) - CURSOR_OVERLAP_SECONDS)],
        kind=DISPUTE_KIND,
        apply_events=apply_events,
        deliver=deliver,
        interval_seconds=config.timeouts.renotification_check_interval_seconds,
        clock=run.clock,
        stop=run.stop,
    )


def _repair_clock(store: Store, clock: Callable[[], float]) -> None:
    """Read stored timestamps from a clock that ran ahead as now, so reminders and retries resume."""
    with store.immediate() as conn:
        repair_future_timestamps(conn, int(clock()))


def _save_last_run(store: Store, result: ListenResult, now: int) -> None:
    """Record the summary; a database still locked when a follower stops only costs this row."""
    try:
        sync.save_last_run(store, "listen", result.to_dict(), now)
    except Exception as exc:
        if not is_busy(exc):
            raise
        logger.warning("last-run summary not saved: the database is locked by another process")


async def _dry_run(config: Config, clock: Callable[[], float]) -> ListenResult:
    """Fetch and plan, write nothing, publish nothing; report what a real run would do."""
    result = ListenResult(dry_run=True)
    try:
        store: Store | None = open_db(config.db_path, readonly=True)
    except DatabaseMissing:
        store = None
        logger.info("dry run: no database yet at %s; planning as for a first run", config.db_path)
    try:
        pool = RelayPool(config.relays)
        try:
            connected = await _connect(pool, config, result)
            now = int(clock())
            events = await _fetch(pool, config, fetch_since(store, config, now), connected, result)
        finally:
            await pool.close()
        _plan_dry(store, config, events, now, result)
    finally:
        if store is not None:
            store.close()
    return result


def _plan_dry(
    store: Store | None, config: Config, events: list[NostrEvent], now: int, result: ListenResult
) -> None:
    from serbero_cli.listen import apply

    result.events_fetched = len(events)
    valid, result.events_rejected = validate(events, config.mostro_pubkey, now)
    audience = Audience.from_config(config)
    solvers = list(audience.solvers)
    existing = (
        disputes_store.load_disputes(store, [e.dispute_id for e in valid])
        if store and valid
        else {}
    )
    effects = apply.plan(existing, valid)
    _add_counts(result, apply.count_effects(effects, audience.fanout()))
    for effect in effects:
        if effect.decision.notify and solvers:
            result.planned_sends.append(
                {
                    "dispute_id": effect.event.dispute_id,
                    "type": effect.decision.notify,
                    "recipients": solvers,
                    "reason": "event",
                }
            )
    if store is None:
        result.notifications_pending = result.notifications_queued
        return
    due = (
        sweep.due_disputes(
            store,
            now=now,
            renotification_seconds=config.timeouts.renotification_seconds,
            max_interval_seconds=config.timeouts.renotification_max_interval_seconds,
            max_attempts=config.delivery.max_attempts,
        )
        if solvers
        else []
    )
    plan = sweep.plan_reminders(due, audience, now)
    for dispute in due:
        result.planned_sends.append(
            {
                "dispute_id": dispute.dispute_id,
                "type": "re-notification",
                "recipients": sorted({d.recipient for d in plan.per_dispute[dispute.dispute_id]}),
                "reason": "sweep",
            }
        )
    for solver, disputes in plan.digests:
        result.planned_sends.append(
            {
                "dispute_id": disputes[0].dispute_id,
                "type": "re-notification-digest",
                "recipients": [solver],
                "reason": f"sweep ({len(disputes)} disputes)",
            }
        )
    result.notifications_queued += plan.size
    retries = outbox.due(store, now=now, max_attempts=config.delivery.max_attempts, limit=1_000_000)
    for row in retries:
        result.planned_sends.append(
            {
                "dispute_id": row.dispute_id,
                "type": row.notif_type,
                "recipients": [row.solver_pubkey],
                "reason": f"outbox {row.status}",
            }
        )
    result.notifications_pending = result.notifications_queued + len(retries)
    logger.info(
        "dry run: %d sends planned, nothing written or published", len(result.planned_sends)
    )
