"""Stored timestamps from a clock that was wrong: read as now, so waiting work resumes once it is fixed.

A timestamp Serbero wrote while its clock ran ahead (by a year, say) would otherwise hold a
reminder, a retry or a timeout back until real time catches up. Every due-time computation reads
a value more than FUTURE_LIMIT_SECONDS ahead of now as now: in SQL through `clamped()`, in
Python through `clamp()`. Real runs also rewrite such values to now (`repair_future_timestamps`),
so an interval that counts from them starts when the clock was fixed instead of never ending.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import overload

logger = logging.getLogger(__name__)

FUTURE_LIMIT_SECONDS = 600

# Mutable columns that record when something happened and that due times count from. Columns that
# hold a due time (a next probe) may rightly lie ahead and are bounded by their own limit instead;
# append-only logs are never rewritten, their readers ignore entries from the future.
REPAIRABLE = (
    ("disputes", "last_notified_at"),
    ("disputes", "round_started_at"),
    ("notifications", "claimed_at"),
    ("mediation_sessions", "started_at"),
    ("mediation_sessions", "buyer_last_seen_inner_ts"),
    ("mediation_sessions", "seller_last_seen_inner_ts"),
    ("mediation_solver_auth", "first_failure_at"),
)


def clamped(column: str, now_param: str = ":now") -> str:
    """SQL for `column` read as `now_param` when it lies more than FUTURE_LIMIT_SECONDS ahead of it."""
    return f"(CASE WHEN {column} > {now_param} + {FUTURE_LIMIT_SECONDS} THEN {now_param} ELSE {column} END)"


@overload
def clamp(value: int, now: int) -> int: ...
@overload
def clamp(value: int | None, now: int) -> int | None: ...
def clamp(value: int | None, now: int) -> int | None:
    """`value`, or `now` when it lies more than FUTURE_LIMIT_SECONDS ahead of `now` (None stays None)."""
    return now if value is not None and value > now + FUTURE_LIMIT_SECONDS else value


def repair_future_timestamps(conn: sqlite3.Connection, now: int) -> int:
    """Rewrite every REPAIRABLE value more than FUTURE_LIMIT_SECONDS ahead of `now` to `now`.

    Run inside the caller's transaction; return how many values changed (and log them).
    """
    changed = 0
    for table, column in REPAIRABLE:
        try:
            cur = conn.execute(
                f"UPDATE {table} SET {column}=? WHERE {column} > ?",
                (now, now + FUTURE_LIMIT_SECONDS),
            )
        except sqlite3.OperationalError as exc:
            if "no such" in str(exc):  # a table or column this database does not have yet
                continue
            raise
        if cur.rowcount:
            logger.warning(
                "%d %s.%s value(s) were in the future (the clock was wrong?); read as now",
                cur.rowcount,
                table,
                column,
            )
            changed += cur.rowcount
    return changed
