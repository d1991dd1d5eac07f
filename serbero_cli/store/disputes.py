"""Disputes and their state transitions (core.md §4, §7)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from serbero_cli.store.clock import clamped
from serbero_cli.store.db import Store


@dataclass(frozen=True)
class DisputeView:
    """The columns lifecycle decisions need."""

    dispute_id: str
    lifecycle_state: str
    dispute_status: str
    assigned_solver: str | None
    initiator_role: str | None = None
    event_timestamp: int = 0
    last_notified_at: int | None = None


_VIEW_COLUMNS = ("dispute_id, lifecycle_state, dispute_status, assigned_solver, initiator_role, "
                 "event_timestamp, last_notified_at")


def load_disputes(store: Store, dispute_ids: list[str]) -> dict[str, DisputeView]:
    """DisputeViews for the given ids that exist, keyed by id (batched IN queries)."""
    found: dict[str, DisputeView] = {}
    ids = list(dict.fromkeys(dispute_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
            f"SELECT {_VIEW_COLUMNS} FROM disputes WHERE dispute_id IN ({marks})", chunk
        ):
            found[row[0]] = DisputeView(*row)
    return found


def get_dispute(store: Store, dispute_id: str) -> DisputeView | None:
    row = store.conn.execute(f"SELECT {_VIEW_COLUMNS} FROM disputes WHERE dispute_id=?", (dispute_id,)).fetchone()
    return DisputeView(*row) if row else None


def insert_dispute(
    conn: sqlite3.Connection, *, dispute_id: str, event_id: str, mostro_pubkey: str,
    initiator_role: str | None, dispute_status: str, event_timestamp: int, now: int,
    lifecycle_state: str, assigned_solver: str | None,
) -> None:
    """Insert a new dispute and its `NULL → state` transition (trigger `detected`)."""
    conn.execute(
        "INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, "
        "event_timestamp, detected_at, lifecycle_state, assigned_solver, last_state_change) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, event_timestamp, now,
         lifecycle_state, assigned_solver, now),
    )
    record_transition(conn, dispute_id, None, lifecycle_state, now, "detected")


def move_dispute(
    conn: sqlite3.Connection, dispute_id: str, from_state: str, to_state: str, now: int, trigger: str,
    **columns: object,
) -> bool:
    """Compare-and-set the lifecycle state (plus extra columns) and record the transition.

    Return False (writing nothing) when the dispute is no longer in `from_state`.
    """
    sets = ["lifecycle_state=?", "last_state_change=?"] + [f"{name}=?" for name in columns]
    params = [to_state, now, *columns.values(), dispute_id, from_state]
    cur = conn.execute(
        f"UPDATE disputes SET {', '.join(sets)} WHERE dispute_id=? AND lifecycle_state=?", params
    )
    if cur.rowcount != 1:
        return False
    record_transition(conn, dispute_id, from_state, to_state, now, trigger)
    return True


def update_dispute(conn: sqlite3.Connection, dispute_id: str, **columns: object) -> None:
    """Update plain columns (no state change, no transition row)."""
    if not columns:
        return
    sets = ", ".join(f"{name}=?" for name in columns)
    conn.execute(f"UPDATE disputes SET {sets} WHERE dispute_id=?", [*columns.values(), dispute_id])


def record_transition(
    conn: sqlite3.Connection, dispute_id: str, from_state: str | None, to_state: str, now: int, trigger: str
) -> None:
    conn.execute(
        "INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at, trigger) "
        "VALUES (?,?,?,?,?)",
        (dispute_id, from_state, to_state, now, trigger),
    )


def disputes_due_renotification(store: Store, older_than: int, max_attempts: int,
                                now: int | None = None) -> list[DisputeView]:
    """Notified disputes last notified before `older_than` with no unfinished re-notification row.

    With `now`, a `last_notified_at` from a clock that ran ahead is read as `now` (store/clock.py).
    """
    last_notified = clamped("d.last_notified_at") if now is not None else "d.last_notified_at"
    rows = store.conn.execute(
        f"SELECT {_VIEW_COLUMNS} FROM disputes d WHERE d.lifecycle_state='notified' "
        f"AND {last_notified} < :older_than AND NOT EXISTS ("
        " SELECT 1 FROM notifications n WHERE n.dispute_id=d.dispute_id AND n.notif_type='re-notification'"
        " AND (n.status IN ('pending','sending') OR (n.status='failed' AND n.attempts < :max_attempts)))"
        " ORDER BY d.event_timestamp",
        {"older_than": older_than, "max_attempts": max_attempts, "now": now},
    ).fetchall()
    return [DisputeView(*r) for r in rows]
