"""A record of every phase run that opened the database, whatever its exit code.

`listen`, `mediate-once` and `dispatch-once` wrap their work in `recorded_run()` right after
opening the database. On the way out, success or exception, it upserts
`sync_state.<phase>_run_record` with when the run started and finished, its exit code and a
one-line error, so a run that ends with "no relay" (3) or an internal error (1) replaces the
previous success on the dashboard. Runs that stop earlier (config error 2, lock held 75) never
reach the database and are not recorded. The older `<phase>_last_run` summary stays as it was:
it is written only by runs that finished their work (exit 0 or 4).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from serbero_cli.errors import ExitCode, SerberoError
from serbero_cli.store import sync
from serbero_cli.store.db import Store

logger = logging.getLogger(__name__)

ERROR_CHARS = 300
# Result keys that count failed work, by phase report; named in the record's error for exit 4.
FAILURE_COUNTERS = (
    ("notifications", "failed", "notification(s) failed"),
    ("counts", "send_failed", "handoff(s) send_failed"),
    ("counts", "gave_up", "handoff(s) given up"),
    ("counts", "unroutable", "handoff(s) unroutable"),
    (None, "dms_failed", "DM(s) failed"),
    (None, "publish_failures", "chat message(s) not published"),
    (None, "evaluation_failures", "evaluation(s) failed"),
)


@dataclass
class RunRecord:
    """One run of a phase, as stored in `sync_state`.

    `phase` is the command key (`listen`, `mediate_once`, `dispatch_once`); times are unix
    seconds; `error` is one line (None when the run exited 0).
    """

    phase: str
    started_at: int
    finished_at: int | None = None
    exit_code: int | None = None
    error: str | None = None

    def finish(self, result: Any) -> None:
        """Take the exit code and a one-line error from a phase result (`exit_code`, `to_dict()`)."""
        self.exit_code = int(result.exit_code)
        self.error = None if self.exit_code == 0 else describe_failure(result.to_dict())


@contextlib.contextmanager
def recorded_run(store: Store, phase: str, clock: Callable[[], float]) -> Iterator[RunRecord]:
    """Yield a RunRecord; save it when the block ends, also when it raises (the error is re-raised).

    The block calls `record.finish(result)`; a block that ends without doing so counts as exit 0.
    """
    record = RunRecord(phase, int(clock()))
    try:
        yield record
    except BaseException as exc:
        record.exit_code, record.error = exit_code_of(exc), error_line(exc)
        _save(store, record, clock)
        raise
    if record.exit_code is None:
        record.exit_code = int(ExitCode.OK)
    _save(store, record, clock)


def exit_code_of(exc: BaseException) -> int:
    """The exit code the CLI gives this exception (a SerberoError's own, else 1)."""
    return int(exc.exit_code) if isinstance(exc, SerberoError) else int(ExitCode.INTERNAL)


def error_line(exc: BaseException) -> str:
    """One line about `exc`. Unexpected errors give their type only: their text may hold anything."""
    if isinstance(exc, SerberoError):
        return one_line(str(exc)) or exc.__class__.__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"internal error: {exc.__class__.__name__}"


def describe_failure(document: dict[str, Any]) -> str:
    """A one-line error for a run that finished with failures: its own error text, else what failed."""
    for key in ("error", "errors"):
        value = document.get(key)
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value)
        if value:
            return one_line(str(value))
    parts = []
    for section, name, words in FAILURE_COUNTERS:
        holder = document.get(section) if section else document
        count = holder.get(name) if isinstance(holder, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            parts.append(f"{count} {words}")
    return one_line(", ".join(parts)) or "finished with failures"


def one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ERROR_CHARS else flat[: ERROR_CHARS - 1] + "…"


def _save(store: Store, record: RunRecord, clock: Callable[[], float]) -> None:
    record.finished_at = int(clock())
    if sync.save_run_record(store, record.phase, asdict(record), record.finished_at):
        logger.debug("run record: phase=%s exit=%s", record.phase, record.exit_code)
