"""Disputes and their state transitions (docs/lifecycle.md, docs/architecture.md#database)."""

from __future__ import annotations

import sqlite3

from serbero_cli.domain.lifecycle import DisputeView, LifecycleState
from serbero_cli.store.clock import clamped
from serbero_cli.store.db import Store

_VIEW_COLUMNS = (
    "dispute_id, lifecycle_state, dispute_status, assigned_solver, initiator_role, "
    "event_timestamp, last_notified_at, revision_created_at, last_state_change, reminders_sent, "
    "round_started_at"
)


def load_disputes(store: Store, dispute_ids: list[str]) -> dict[str, DisputeView]:
    """DisputeViews for the given ids that exist, keyed by id (batched IN queries)."""
    found: dict[str, DisputeView] = {}
    ids = list(dict.fromkeys(dispute_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
            f"SELECT {_VIEW_COLUMNS} FROM disputes WHERE dispute_id IN ({marks})", chunk
        ):
            found[row[0]] = DisputeView(*row)
    return found


def get_dispute(source: Store | sqlite3.Connection, dispute_id: str) -> DisputeView | None:
    """One dispute (from a Store, or inside a transaction from its connection), or None."""
    conn = source.conn if isinstance(source, Store) else source
    row = conn.execute(
        f"SELECT {_VIEW_COLUMNS} FROM disputes WHERE dispute_id=?", (dispute_id,)
    ).fetchone()
    return DisputeView(*row) if row else None


def insert_dispute(
    conn: sqlite3.Connection,
    *,
    dispute_id: str,
    event_id: str,
    mostro_pubkey: str,
    initiator_role: str | None,
    dispute_status: str,
    event_timestamp: int,
    now: int,
    lifecycle_state: LifecycleState,
    assigned_solver: str | None,
    revision_created_at: int | None = None,
) -> None:
    """Insert a new dispute and its `NULL → state` transition (trigger `detected`)."""
    conn.execute(
        "INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, "
        "event_timestamp, detected_at, lifecycle_state, assigned_solver, last_state_change, revision_created_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            dispute_id,
            event_id,
            mostro_pubkey,
            initiator_role,
            dispute_status,
            event_timestamp,
            now,
            lifecycle_state,
            assigned_solver,
            now,
            revision_created_at,
        ),
    )
    record_transition(conn, dispute_id, None, lifecycle_state, now, "detected")


def move_dispute(
    conn: sqlite3.Connection,
    dispute_id: str,
    from_state: LifecycleState,
    to_state: LifecycleState,
    now: int,
    trigger: str,
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
    conn: sqlite3.Connection,
    dispute_id: str,
    from_state: LifecycleState | None,
    to_state: LifecycleState,
    now: int,
    trigger: str,
) -> None:
    conn.execute(
        "INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at, trigger) "
        "VALUES (?,?,?,?,?)",
        (dispute_id, from_state, to_state, now, trigger),
    )


def note_revision(conn: sqlite3.Connection, dispute_id: str, created_at: int) -> None:
    """Remember the newest applied revision of a dispute (replays of older ones are ignored)."""
    conn.execute(
        "UPDATE disputes SET revision_created_at=MAX(COALESCE(revision_created_at, 0), ?) "
        "WHERE dispute_id=?",
        (created_at, dispute_id),
    )


_UNFINISHED = "(n.status IN ('pending','sending') OR (n.status='failed' AND n.attempts < :max))"


def disputes_due_reminder(
    store: Store, *, now: int, base_seconds: int, cap_seconds: int, max_attempts: int
) -> list[DisputeView]:
    """Notified disputes whose next reminder is due, oldest first.

    Reminder k (k = reminders_sent + 1) is due `base × 2^(k−1)` after the previous message, at most
    `cap` apart. A dispute with an unfinished reminder (its own row, or a digest that lists it) is
    skipped, so a relay outage never piles up rounds. A stored time in the future counts as now.
    """
    rows = store.conn.execute(
        f"SELECT {_VIEW_COLUMNS} FROM disputes d WHERE d.lifecycle_state='notified' "
        "AND d.last_notified_at IS NOT NULL "
        f"AND {clamped('d.last_notified_at')} + MIN(:base * (1 << MIN(d.reminders_sent, 30)), :cap) <= :now "
        "AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.dispute_id=d.dispute_id "
        f" AND n.notif_type='re-notification' AND {_UNFINISHED}) "
        "AND NOT EXISTS (SELECT 1 FROM notifications n, json_each(n.covers) j "
        f" WHERE n.notif_type='re-notification-digest' AND {_UNFINISHED} AND j.value=d.dispute_id) "
        "ORDER BY d.event_timestamp, d.dispute_id",
        {"now": now, "base": base_seconds, "cap": cap_seconds, "max": max_attempts},
    ).fetchall()
    return [DisputeView(*r) for r in rows]


def round_start(conn: sqlite3.Connection, dispute_id: str) -> int:
    """When the dispute's current round began: 0 for the first round, the reopening time after."""
    row = conn.execute(
        "SELECT round_started_at FROM disputes WHERE dispute_id=?", (dispute_id,)
    ).fetchone()
    return (row[0] or 0) if row else 0


def lifecycle_state(conn: sqlite3.Connection, dispute_id: str) -> LifecycleState | None:
    row = conn.execute(
        "SELECT lifecycle_state FROM disputes WHERE dispute_id=?", (dispute_id,)
    ).fetchone()
    return row[0] if row else None
