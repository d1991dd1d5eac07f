"""`listen --follow`: stay subscribed, apply dispute events as they arrive, sweep on the interval.

A follower runs for weeks, so it must outlive what ends a one-shot run: a database another
process holds past SQLite's busy timeout (a backup, a long audit) and relays that drop. It logs,
backs off (1 s doubling to 30 s) and carries on, keeping the events it received until they are
applied; it stops on SIGTERM or SIGINT, or on an error that waiting cannot fix.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from serbero_cli.nostr.events import NostrEvent
from serbero_cli.stopping import StopRequested
from serbero_cli.store.db import is_busy

logger = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
RELAY_CHECK_SECONDS = 1.0
POLL_SECONDS = 0.5


@dataclass
class Backoff:
    """Delays for retrying a locked database: first, then doubling up to maximum; reset on success."""

    first: float = BACKOFF_FIRST_SECONDS
    maximum: float = BACKOFF_MAX_SECONDS
    current: float = 0.0

    def next_delay(self) -> float:
        self.current = self.first if not self.current else min(self.current * 2, self.maximum)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class RelayWatch:
    """Logs a warning when a relay drops and an info line when it is connected again."""

    def __init__(self, pool: Any):
        self.pool = pool
        self.up: dict[str, bool] = {}
        self.next_check = 0.0

    async def check(self, now: float) -> None:
        if now < self.next_check:
            return
        self.next_check = now + RELAY_CHECK_SECONDS
        try:
            statuses = await self.pool.statuses()
        except Exception:  # noqa: BLE001 - a status read must never end the follower
            logger.debug("relay status read failed", exc_info=True)
            return
        for url, status in statuses.items():
            up, before = status == "connected", self.up.get(url)
            if before is True and not up:
                logger.warning(
                    "relay=%s dropped (%s); events from it wait until it is back", url, status
                )
            elif before is False and up:
                logger.info("relay=%s is back", url)
            self.up[url] = up


async def follow(
    pool: Any,
    stream: Any,
    *,
    filters: list[dict[str, Any]],
    kind: int,
    apply_events: Callable[[list[NostrEvent]], Awaitable[None]],
    deliver: Callable[[bool], Awaitable[None]],
    interval_seconds: float,
    clock: Callable[[], float],
    stop: StopRequested,
) -> None:
    """Subscribe with `filters` and loop until `stop` is set (the run routes SIGTERM and SIGINT to it).

    Events of `kind` go to `apply_events`; then `deliver(sweep_now)` flushes, sweeping every
    `interval_seconds`. A locked database (SQLite busy past its timeout) is retried with Backoff;
    any other exception ends the loop.
    """
    from serbero_cli.nostr.events import from_sdk

    await pool.subscribe(filters)
    watch, backoff = RelayWatch(pool), Backoff()
    received: list[NostrEvent] = []
    next_sweep, retry_at = clock() + interval_seconds, 0.0
    logger.info("following dispute events; sweep every %ds", interval_seconds)
    while not stop.is_set():
        raw = await pool.next_event(stream, max(0.05, min(POLL_SECONDS, next_sweep - clock())))
        if raw is not None and raw.kind().as_u16() == kind:
            received.append(from_sdk(raw))
        await watch.check(clock())
        sweep_now = clock() >= next_sweep
        if not (received or sweep_now) or clock() < retry_at:
            continue
        try:
            if received:
                await apply_events(received)
                received = []
            await deliver(sweep_now)
        except Exception as exc:
            if not is_busy(exc):
                raise
            delay = backoff.next_delay()
            retry_at = clock() + delay
            logger.warning(
                "database is locked by another process (%s); retrying in %.0fs with %d event(s) kept",
                exc,
                delay,
                len(received),
            )
            continue
        if backoff.current:
            logger.info("database is writable again")
        backoff.reset()
        if sweep_now:
            next_sweep = clock() + interval_seconds
    logger.info("stopping on %s", stop.name or "request")
