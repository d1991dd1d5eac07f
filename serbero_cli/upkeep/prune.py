"""`run_prune()`: delete disputes resolved longer ago than a duration, and all that hangs off them.

Party transcripts are personal data; operators keep only what they must. A real run holds the
`mediate-once` and `dispatch-once` locks (waiting a little for a running pass to finish), because
those phases read a dispute's rows in one transaction and write rows that refer to them in a later
one. `listen` keeps running: it never writes for a dispute resolved a week ago except inside a
transaction that reads the dispute again, and `listen --follow` holds its lock for good.

One read lists the qualifying disputes; each batch of up to 500 is checked again and deleted in one
`BEGIN IMMEDIATE` transaction, so an interruption leaves whole disputes, never half of one. A dry run opens the database read-only,
takes no lock, and counts what a real run would delete.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serbero_cli.config import Config
from serbero_cli.errors import DatabaseMissing, LockHeld, UsageError
from serbero_cli.runlock import RunLock
from serbero_cli.store import prune as prune_store
from serbero_cli.store.db import open_db

logger = logging.getLogger(__name__)

MIN_AGE_SECONDS = 7 * 86400
# The phase locks a real prune holds: (lock name, command).
PHASE_LOCKS = (("mediate", "mediate-once"), ("dispatch", "dispatch-once"))
LOCK_WAIT_SECONDS = 30.0
LOCK_RETRY_SECONDS = 0.25


@dataclass
class PruneResult:
    """What one prune run deleted (or, in a dry run, would delete)."""

    dry_run: bool
    older_than_seconds: int  # the --resolved-before duration
    cutoff: int  # unix seconds: disputes resolved before this qualify
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(prune_store.TABLES, 0))
    batches: int = 0  # transactions committed (a dry run: batches counted)

    @property
    def exit_code(self) -> int:
        return 0

    def add(self, batch: dict[str, int]) -> None:
        self.batches += 1
        for table, n in batch.items():
            self.counts[table] += n

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "prune/v1",
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "error": None,
            "resolved_before_seconds": self.older_than_seconds,
            "cutoff": self.cutoff,
            "batches": self.batches,
            "counts": dict(self.counts),
        }


def parse_age(text: str) -> int:
    """Seconds in a `--resolved-before` duration (`180d`, `12w`, …); UsageError under 7 days."""
    from serbero_cli.typed_input import parse_duration

    seconds = parse_duration(text, "--resolved-before")
    if seconds < MIN_AGE_SECONDS:
        raise UsageError(
            f"--resolved-before: {text.strip()} is under the minimum of 7 days (7d); "
            "recently resolved disputes are kept so a late question can still be answered"
        )
    return seconds


def run_prune(
    config: Config,
    *,
    older_than_seconds: int,
    dry_run: bool,
    now: int,
    lock_wait_seconds: float = LOCK_WAIT_SECONDS,
    batch_size: int = prune_store.BATCH_SIZE,
) -> PruneResult:
    """Prune (or count, with `dry_run`) disputes resolved before `now - older_than_seconds`, up to
    `batch_size` disputes per transaction.

    Raise DatabaseMissing (2) when there is no database, LockHeld (75) when a phase keeps its lock
    past `lock_wait_seconds`, DatabaseError (1) when SQLite fails.
    """
    result = PruneResult(
        dry_run=dry_run, older_than_seconds=older_than_seconds, cutoff=now - older_than_seconds
    )
    if not Path(config.db_path).exists():
        raise DatabaseMissing(f"database not found: {config.db_path}")
    if dry_run:
        with open_db(config.db_path, readonly=True) as store:
            for chunk in _chunks(prune_store.resolved_before(store, result.cutoff), batch_size):
                result.add(prune_store.count_batch(store, chunk))
        logger.info(
            "dry run: %d disputes resolved before %d would be deleted; nothing written",
            result.counts["disputes"],
            result.cutoff,
        )
        return result
    with (
        holding_phase_locks(config.db_path, wait_seconds=lock_wait_seconds),
        open_db(config.db_path, busy_timeout_seconds=config.busy_timeout_seconds) as store,
    ):
        for chunk in _chunks(prune_store.resolved_before(store, result.cutoff), batch_size):
            with store.immediate() as conn:
                batch = prune_store.delete_batch(
                    conn, prune_store.still_resolved_before(conn, result.cutoff, chunk)
                )
            result.add(batch)
            logger.info(
                "batch=%d %s", result.batches, " ".join(f"{t}={n}" for t, n in batch.items())
            )
    return result


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def holding_phase_locks(
    db_path: Path, *, wait_seconds: float, clock: Callable[[], float] = time.monotonic
) -> Iterator[None]:
    """Hold every lock in PHASE_LOCKS; retry while one is held, for up to `wait_seconds`.

    A phase pass takes seconds, so a short wait nearly always finds the gap between two runs;
    raise LockHeld (exit 75) when it does not.
    """
    deadline = clock() + wait_seconds
    while True:
        stack = contextlib.ExitStack()
        try:
            for name, command in PHASE_LOCKS:
                stack.enter_context(RunLock(db_path, name, f"prune: {command}"))
        except LockHeld:
            stack.close()
            if clock() >= deadline:
                raise
            time.sleep(LOCK_RETRY_SECONDS)
            continue
        with stack:
            yield
        return
