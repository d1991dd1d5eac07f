"""`run_listen()`: fetch dispute events, apply them, sweep, deliver (core.md §1–§6).

A run is: lock → open (migrate) → connect → fetch → validate → one BEGIN IMMEDIATE that
loads, plans and writes → queue reminders → flush the outbox → result. `--follow` then keeps
the subscription open and repeats the apply and flush steps as events arrive.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from serbero_cli import testhook
from serbero_cli.config import Config
from serbero_cli.core import apply, sweep
from serbero_cli.core.events import DISPUTE_KIND, DisputeEvent, EventRejected, parse_dispute_event
from serbero_cli.core.outbox import flush_outbox
from serbero_cli.core.result import ListenResult
from serbero_cli.errors import DatabaseMissing, NoRelayReachable
from serbero_cli.keys import short
from serbero_cli.nostr.events import NostrEvent
from serbero_cli.runlock import RunLock
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sync
from serbero_cli.store.db import Store, open_db

logger = logging.getLogger(__name__)

CURSOR_OVERLAP_SECONDS = 300


def run_listen(
    config: Config,
    *,
    dry_run: bool = False,
    follow: bool = False,
    clock: Callable[[], float] = time.time,
    progress: Any = None,
    stop: asyncio.Event | None = None,
) -> ListenResult:
    """One listen run (or a `--follow` session). Return the result; raise SerberoError subclasses."""
    if dry_run:
        return asyncio.run(_dry_run(config, clock))
    with RunLock(config.db_path, "listen", "listen"):
        store = open_db(config.db_path)
        try:
            result = asyncio.run(_real_run(store, config, clock, follow, progress, stop))
            sync.save_last_run(store, "listen", result.to_dict(), int(clock()))
            return result
        finally:
            store.close()


def dispute_filter(config: Config, since: int) -> dict[str, Any]:
    return {"kinds": [DISPUTE_KIND], "authors": [config.mostro_pubkey], "since": max(0, since)}


def fetch_since(store: Store | None, config: Config, now: int) -> int:
    """Cursor − 300 s, or now − initial lookback on a first run (core.md §3.2)."""
    cursor = sync.get_cursor(store) if store is not None else None
    if cursor is None:
        return now - config.listen.initial_lookback_seconds
    return cursor - CURSOR_OVERLAP_SECONDS


def validate(events: list[NostrEvent], mostro_pubkey: str) -> tuple[list[DisputeEvent], int]:
    """Parse every event; log and count the rejects. Return (valid events, rejected count)."""
    valid, rejected = [], 0
    for event in events:
        try:
            valid.append(parse_dispute_event(event, mostro_pubkey))
        except EventRejected as exc:
            rejected += 1
            logger.warning("event=%s rejected: %s", short(event.id, 16), exc)
    return valid, rejected


async def _connect(pool, config: Config, result: ListenResult) -> None:
    connected = await pool.connect(config.listen.fetch_timeout_seconds)
    result.relays_connected = len(connected.connected)
    result.relays_failed = len(connected.failed)
    result.relay_errors = dict(connected.failed)
    for url, why in connected.failed.items():
        logger.warning("relay=%s unreachable: %s", url, why)
    _log_step("relays", connected=result.relays_connected, failed=result.relays_failed,
              busy=bool(result.relays_failed))
    if not connected.connected:
        raise NoRelayReachable("; ".join(f"{u}: {w}" for u, w in connected.failed.items()))


async def _real_run(store: Store, config: Config, clock, follow: bool, progress, stop) -> ListenResult:
    from serbero_cli.nostr.dm import DmSender
    from serbero_cli.nostr.relays import RelayPool

    result = ListenResult()
    pool = RelayPool(config.relays)
    try:
        await _connect(pool, config, result)
        sender = DmSender(pool, config.private_key, config.delivery.send_timeout_seconds)
        stream = pool.notifications() if follow else None
        since = fetch_since(store, config, int(clock()))
        events = await pool.fetch([dispute_filter(config, since)], config.listen.fetch_timeout_seconds)
        await _process(store, config, events, sender, clock, progress, result)
        if follow:
            await _follow(store, config, pool, stream, sender, clock, result, stop)
    finally:
        await pool.close()
    return result


async def _process(store, config, events, sender, clock, progress, result: ListenResult,
                   sweep_now: bool = True) -> None:
    """Apply fetched events, run the sweep, flush the outbox; add the counts to `result`."""
    result.events_fetched += len(events)
    valid, rejected = validate(events, config.mostro_pubkey)
    result.events_rejected += rejected
    solvers = [s.pubkey for s in config.solvers]
    counts = apply.ApplyCounts()
    if valid:
        now = int(clock())
        hook = _resolution_hook(config)
        with store.immediate() as conn:
            existing = disputes_store.load_disputes(store, [e.dispute_id for e in valid])
            effects = apply.plan(existing, valid)
            counts = apply.write(conn, effects, mostro_pubkey=config.mostro_pubkey, solvers=solvers, now=now,
                                 on_resolved=hook)
        _add_counts(result, counts)
        testhook.pause("listen_after_commit", len(valid))
        if counts.new and not solvers:
            result.warnings.append("no [[solvers]] configured: disputes are recorded but nobody is notified")
            logger.warning("no solvers configured: %d new disputes recorded, nobody notified", counts.new)
    if events:
        _log_step("events", fetched=len(events), applied=counts.applied, rejected=rejected, new=counts.new,
                  taken=counts.taken, resolved=counts.resolved, queued=counts.queued, busy=True)
    if sweep_now:
        reminders = sweep.queue_renotifications(
            store, solvers=solvers, now=int(clock()), renotification_seconds=config.timeouts.renotification_seconds,
            max_attempts=config.delivery.max_attempts)
        result.notifications_queued += reminders
        _log_step("reminders", queued=reminders, busy=bool(reminders))
    flushed = await flush_outbox(store, sender, clock=clock, max_attempts=config.delivery.max_attempts,
                                 progress=progress)
    result.notifications_sent += flushed.sent
    result.notifications_failed += flushed.failed
    result.notifications_pending = outbox.count_due(store, now=int(clock()), max_attempts=config.delivery.max_attempts)
    _log_step("outbox", sent=flushed.sent, failed=flushed.failed, pending=result.notifications_pending,
              busy=bool(flushed.sent or flushed.failed))


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


def _resolution_hook(config: Config):
    """mediation.md §14: `listen` tells mediation when Mostro reports a dispute resolved."""
    from serbero_cli.mediation.resolution import make_resolution_hook

    return make_resolution_hook(config)


async def _follow(store, config, pool, stream, sender, clock, result: ListenResult, stop) -> None:
    """Stay subscribed; apply events as they arrive; sweep and retry on the check interval."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    await pool.subscribe([dispute_filter(config, int(clock()) - CURSOR_OVERLAP_SECONDS)])
    interval = config.timeouts.renotification_check_interval_seconds
    next_sweep = clock() + interval
    logger.info("following dispute events; sweep every %ds", interval)
    from serbero_cli.nostr.events import from_sdk

    while not stop.is_set():
        wait = max(0.05, min(0.5, next_sweep - clock()))
        raw = await pool.next_event(stream, wait)
        if raw is not None and raw.kind().as_u16() == DISPUTE_KIND:
            await _process(store, config, [from_sdk(raw)], sender, clock, None, result, sweep_now=False)
        if clock() >= next_sweep:
            await _process(store, config, [], sender, clock, None, result)
            next_sweep = clock() + interval
    logger.info("stopping on signal")


async def _dry_run(config: Config, clock) -> ListenResult:
    """Fetch and plan, write nothing, publish nothing; report what a real run would do."""
    from serbero_cli.nostr.relays import RelayPool

    result = ListenResult(dry_run=True)
    try:
        store: Store | None = open_db(config.db_path, readonly=True)
    except DatabaseMissing:
        store = None
        logger.info("dry run: no database yet at %s; planning as for a first run", config.db_path)
    try:
        pool = RelayPool(config.relays)
        try:
            await _connect(pool, config, result)
            now = int(clock())
            events = await pool.fetch([dispute_filter(config, fetch_since(store, config, now))],
                                      config.listen.fetch_timeout_seconds)
        finally:
            await pool.close()
        _plan_dry(store, config, events, now, result)
    finally:
        if store is not None:
            store.close()
    return result


def _plan_dry(store: Store | None, config: Config, events, now: int, result: ListenResult) -> None:
    result.events_fetched = len(events)
    valid, result.events_rejected = validate(events, config.mostro_pubkey)
    solvers = [s.pubkey for s in config.solvers]
    existing = disputes_store.load_disputes(store, [e.dispute_id for e in valid]) if store and valid else {}
    effects = apply.plan(existing, valid)
    _add_counts(result, apply.count_effects(effects, len(solvers)))
    for effect in effects:
        if effect.decision.notify and solvers:
            result.planned_sends.append({"dispute_id": effect.event.dispute_id, "type": effect.decision.notify,
                                         "recipients": solvers, "reason": "event"})
    if store is None:
        result.notifications_pending = result.notifications_queued
        return
    due = sweep.due_disputes(store, now=now, renotification_seconds=config.timeouts.renotification_seconds,
                             max_attempts=config.delivery.max_attempts) if solvers else []
    for dispute in due:
        result.planned_sends.append({"dispute_id": dispute.dispute_id, "type": "re-notification",
                                     "recipients": solvers, "reason": "sweep"})
    result.notifications_queued += len(due) * len(solvers)
    retries = outbox.due(store, now=now, max_attempts=config.delivery.max_attempts, limit=1_000_000)
    for row in retries:
        result.planned_sends.append({"dispute_id": row.dispute_id, "type": row.notif_type,
                                     "recipients": [row.solver_pubkey], "reason": f"outbox {row.status}"})
    result.notifications_pending = result.notifications_queued + len(retries)
    logger.info("dry run: %d sends planned, nothing written or published", len(result.planned_sends))
