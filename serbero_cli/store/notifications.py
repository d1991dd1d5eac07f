"""The shared `notifications` outbox (core.md §5.2) and dispatch-once's send records (escalation.md §4.2)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from serbero_cli.store.db import Store

# core.md §5.2: a `sending` row older than this belongs to a run that died.
STALE_SENDING_SECONDS = 120
HANDOFF_RECORD_TYPE = "escalation_handoff"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    dispute_id: str
    solver_pubkey: str
    notif_type: str
    status: str
    attempts: int
    claimed_at: int | None
    body: str


_ROW_COLUMNS = "id, dispute_id, solver_pubkey, notif_type, status, attempts, claimed_at, body"


def queue(
    conn: sqlite3.Connection, dispute_id: str, notif_type: str, messages: Iterable[tuple[str, str]], now: int
) -> int:
    """Insert one `pending` row per (solver_pubkey, body); return how many. Call inside the deciding transaction."""
    rows = [(dispute_id, solver, notif_type, "pending", 0, now, body) for solver, body in messages]
    conn.executemany(
        "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, created_at, body) "
        "VALUES (?,?,?,?,?,?,?)",
        rows,
    )
    return len(rows)


def _due_where(now: int, max_attempts: int, types: Iterable[str] | None) -> tuple[str, list[object]]:
    """The WHERE clause of every due-row query, with its parameters (after `id > ?`)."""
    params: list[object] = [max_attempts, now - STALE_SENDING_SECONDS, HANDOFF_RECORD_TYPE]
    where = ("(status='pending'"
             " OR (status='failed' AND claimed_at IS NOT NULL AND attempts < ?)"
             " OR (status='sending' AND claimed_at < ?)"
             ") AND notif_type != ?")
    if types is not None:
        types = list(types)
        where += f" AND notif_type IN ({','.join('?' * len(types))})"
        params.extend(types)
    return where, params


def due(
    store: Store, *, now: int, max_attempts: int, types: Iterable[str] | None = None, limit: int = 500,
    after_id: int = 0,
) -> list[OutboxRow]:
    """Rows a flush should send, oldest first: pending, retryable failed, and stale sending rows.

    Failed rows with `claimed_at IS NULL` are dispatch-once's records and are never selected;
    neither is any row of type `escalation_handoff`.
    """
    where, params = _due_where(now, max_attempts, types)
    rows = store.conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM notifications WHERE id > ? AND {where} ORDER BY id LIMIT ?",
        [after_id, *params, limit],
    ).fetchall()
    return [OutboxRow(*r) for r in rows]


def count_due(store: Store, *, now: int, max_attempts: int, types: Iterable[str] | None = None) -> int:
    """How many rows `due()` would return, counted in SQL (no bodies loaded)."""
    where, params = _due_where(now, max_attempts, types)
    return store.conn.execute(f"SELECT COUNT(*) FROM notifications WHERE {where}", params).fetchone()[0]


def claim(conn: sqlite3.Connection, row: OutboxRow, now: int) -> bool:
    """Compare-and-set the row to `sending` (attempts + 1); True only if this process won it."""
    if row.status == "sending":
        cur = conn.execute(
            "UPDATE notifications SET status='sending', claimed_at=?, attempts=attempts+1 "
            "WHERE id=? AND status='sending' AND claimed_at < ? AND attempts=?",
            (now, row.id, now - STALE_SENDING_SECONDS, row.attempts),
        )
    else:
        cur = conn.execute(
            "UPDATE notifications SET status='sending', claimed_at=?, attempts=attempts+1 "
            "WHERE id=? AND status IN ('pending','failed') AND attempts=?",
            (now, row.id, row.attempts),
        )
    return cur.rowcount == 1


def abandon(conn: sqlite3.Connection, row: OutboxRow, now: int) -> bool:
    """A stale `sending` row past max attempts becomes `failed` ('abandoned') without a send."""
    cur = conn.execute(
        "UPDATE notifications SET status='failed', error_message='abandoned' "
        "WHERE id=? AND status='sending' AND claimed_at < ? AND attempts=?",
        (row.id, now - STALE_SENDING_SECONDS, row.attempts),
    )
    return cur.rowcount == 1


def mark_sent(conn: sqlite3.Connection, notification_id: int, now: int, relays: list[str]) -> None:
    conn.execute(
        "UPDATE notifications SET status='sent', sent_at=?, error_message=NULL, relays_accepted=? "
        "WHERE id=? AND status='sending'",
        (now, json.dumps(sorted(relays)), notification_id),
    )


def mark_failed(conn: sqlite3.Connection, notification_id: int, error_message: str) -> None:
    conn.execute(
        "UPDATE notifications SET status='failed', error_message=?, sent_at=NULL WHERE id=? AND status='sending'",
        (error_message[:1000], notification_id),
    )


def insert_send_record(
    conn: sqlite3.Connection, *, dispute_id: str, solver_pubkey: str, notif_type: str, sent: bool,
    attempts: int, body: str, created_at: int, relays_accepted: list[str], error_message: str | None,
) -> None:
    """dispatch-once's record of one recipient send: inserted already `sent`/`failed`, never claimed."""
    conn.execute(
        "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, claimed_at, "
        "created_at, sent_at, error_message, body, relays_accepted) VALUES (?,?,?,?,?,NULL,?,?,?,?,?)",
        (dispute_id, solver_pubkey, notif_type, "sent" if sent else "failed", attempts, created_at,
         created_at if sent else None, None if sent else error_message, body, json.dumps(sorted(relays_accepted))),
    )


def statuses_for(store: Store, dispute_id: str, notif_type: str) -> list[tuple[str, int]]:
    """(status, attempts) of every row of a type for a dispute."""
    return [tuple(r) for r in store.conn.execute(
        "SELECT status, attempts FROM notifications WHERE dispute_id=? AND notif_type=? ORDER BY id",
        (dispute_id, notif_type),
    )]
