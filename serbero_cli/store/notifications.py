"""The shared `notifications` outbox and dispatch-once's send records (docs/delivery.md).

One row is one message to one recipient in one envelope. A row's signed event is stored in the
transaction that first claims it and republished unchanged on every retry; outcomes are written
one message at a time. Decisions (which rows are due, what a retry waits) are in
`serbero_cli/delivery/outbox.py`; this module only reads and writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from serbero_cli.domain.notifications import Envelope, NotificationStatus, NotificationType
from serbero_cli.store.db import Store

# A `sending` row without a stored event older than this belongs to a run that died before it
# could publish anything.
STALE_SENDING_SECONDS = 120
OBSERVER_EXPIRY_SECONDS = 86_400


@dataclass(frozen=True)
class OutboxRow:
    id: int
    dispute_id: str
    solver_pubkey: str
    notif_type: str  # a NotificationType, or a type a newer Serbero wrote
    status: NotificationStatus
    attempts: int
    claimed_at: int | None
    body: str
    envelope: Envelope
    event_json: str | None
    created_at: int
    covers: str | None

    @property
    def covered_disputes(self) -> list[str]:
        """The disputes this row speaks for: a digest's list, else its own dispute."""
        if self.covers:
            try:
                ids = json.loads(self.covers)
            except ValueError:
                ids = None
            if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
                return ids
        return [self.dispute_id]


@dataclass(frozen=True)
class Delivery:
    """One message to queue: recipient, envelope and text."""

    recipient: str
    envelope: Envelope
    body: str


_ROW_COLUMNS = (
    "id, dispute_id, solver_pubkey, notif_type, status, attempts, claimed_at, body, envelope, "
    "event_json, created_at, covers"
)


def queue(
    conn: sqlite3.Connection,
    dispute_id: str,
    notif_type: NotificationType,
    deliveries: Iterable[Delivery],
    now: int,
    *,
    covers: list[str] | None = None,
) -> int:
    """Insert one `pending` row per delivery; return how many. Call inside the deciding transaction."""
    covers_json = json.dumps(covers, separators=(",", ":")) if covers else None
    rows = [
        (
            dispute_id,
            d.recipient,
            notif_type,
            NotificationStatus.PENDING,
            0,
            now,
            d.body,
            d.envelope,
            covers_json,
        )
        for d in deliveries
    ]
    conn.executemany(
        "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, created_at, body, "
        "envelope, covers) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    return len(rows)


def _due_where(
    now: int, max_attempts: int, types: Iterable[str] | None
) -> tuple[str, list[object]]:
    """The WHERE clause of every due-row query, with its parameters.

    Pending rows; retryable failed rows (an observer row's back-off is decided in Python, its 24 h
    expiry here); `sending` rows with a stored event (a run died or stopped mid-send: republish at
    once); `sending` rows without one only once stale. Dispatch records never match: they are
    inserted with `claimed_at` NULL and have their own type.
    """
    params: list[object] = [
        NotificationType.OBSERVER,
        max_attempts,
        NotificationType.OBSERVER,
        now - OBSERVER_EXPIRY_SECONDS,
        now - STALE_SENDING_SECONDS,
        NotificationType.ESCALATION_HANDOFF,
    ]
    where = (
        "(status='pending'"
        " OR (status='failed' AND claimed_at IS NOT NULL AND notif_type != ? AND attempts < ?)"
        " OR (status='failed' AND claimed_at IS NOT NULL AND notif_type = ? AND created_at > ?)"
        " OR (status='sending' AND event_json IS NOT NULL)"
        " OR (status='sending' AND claimed_at < ?)"
        ") AND notif_type != ?"
    )
    if types is not None:
        types = list(types)
        where += f" AND notif_type IN ({','.join('?' * len(types))})"
        params.extend(types)
    return where, params


def due(
    store: Store,
    *,
    now: int,
    max_attempts: int,
    types: Iterable[str] | None = None,
    limit: int = 500,
    after_id: int = 0,
) -> list[OutboxRow]:
    """Candidate rows for a flush, oldest first (see `_due_where`)."""
    where, params = _due_where(now, max_attempts, types)
    rows = store.conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM notifications WHERE id > ? AND {where} ORDER BY id LIMIT ?",
        [after_id, *params, limit],
    ).fetchall()
    return [OutboxRow(*r) for r in rows]


def count_due(
    store: Store, *, now: int, max_attempts: int, types: Iterable[str] | None = None
) -> int:
    """How many rows `due()` would return, counted in SQL (no bodies loaded)."""
    where, params = _due_where(now, max_attempts, types)
    return store.conn.execute(
        f"SELECT COUNT(*) FROM notifications WHERE {where}", params
    ).fetchone()[0]


def expire_observer_rows(conn: sqlite3.Connection, now: int) -> int:
    """Observer rows still undelivered 24 h after they were queued give up: `failed`, 'expired'."""
    cur = conn.execute(
        "UPDATE notifications SET status='failed', error_message='expired', sent_at=NULL "
        "WHERE notif_type=? AND status IN ('pending','failed') AND created_at <= ? "
        "AND error_message IS NOT 'expired'",
        (NotificationType.OBSERVER, now - OBSERVER_EXPIRY_SECONDS),
    )
    return cur.rowcount


def claim(
    conn: sqlite3.Connection, row: OutboxRow, now: int, event_id: str | None, event_json: str | None
) -> bool:
    """Compare-and-set the row to `sending` (attempts + 1), storing its signed event if it has none.

    True only if this process won the row. A row that already holds an event keeps it: every
    attempt publishes the same event.
    """
    sets = (
        "status='sending', claimed_at=?, attempts=attempts+1, "
        "event_id=COALESCE(event_id, ?), event_json=COALESCE(event_json, ?)"
    )
    if row.status == NotificationStatus.SENDING and row.event_json is not None:
        where, extra = "status='sending' AND attempts=?", []
    elif row.status == NotificationStatus.SENDING:
        where, extra = (
            "status='sending' AND claimed_at < ? AND attempts=?",
            [now - STALE_SENDING_SECONDS],
        )
    else:
        where, extra = "status IN ('pending','failed') AND attempts=?", []
    cur = conn.execute(
        f"UPDATE notifications SET {sets} WHERE id=? AND {where}",
        [now, event_id, event_json, row.id, *extra, row.attempts],
    )
    return cur.rowcount == 1


def abandon(conn: sqlite3.Connection, row: OutboxRow) -> bool:
    """A `sending` row past max attempts becomes `failed` ('abandoned') without another send."""
    cur = conn.execute(
        "UPDATE notifications SET status='failed', error_message='abandoned' "
        "WHERE id=? AND status='sending' AND attempts=?",
        (row.id, row.attempts),
    )
    return cur.rowcount == 1


def mark_sent(conn: sqlite3.Connection, notification_id: int, now: int, relays: list[str]) -> bool:
    cur = conn.execute(
        "UPDATE notifications SET status='sent', sent_at=?, error_message=NULL, relays_accepted=? "
        "WHERE id=? AND status='sending'",
        (now, json.dumps(sorted(relays)), notification_id),
    )
    return cur.rowcount == 1


def mark_failed(conn: sqlite3.Connection, notification_id: int, error_message: str) -> None:
    conn.execute(
        "UPDATE notifications SET status='failed', error_message=?, sent_at=NULL WHERE id=? AND status='sending'",
        (error_message[:1000], notification_id),
    )


def insert_send_record(
    conn: sqlite3.Connection,
    *,
    dispute_id: str,
    solver_pubkey: str,
    notif_type: NotificationType,
    sent: bool,
    attempts: int,
    body: str,
    created_at: int,
    relays_accepted: list[str],
    error_message: str | None,
    envelope: Envelope = Envelope.NIP17,
    event_id: str | None = None,
) -> None:
    """dispatch-once's record of one recipient send: inserted already `sent`/`failed`, never claimed."""
    conn.execute(
        "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, claimed_at, "
        "created_at, sent_at, error_message, body, relays_accepted, envelope, event_id) "
        "VALUES (?,?,?,?,?,NULL,?,?,?,?,?,?,?)",
        (
            dispute_id,
            solver_pubkey,
            notif_type,
            NotificationStatus.SENT if sent else NotificationStatus.FAILED,
            attempts,
            created_at,
            created_at if sent else None,
            None if sent else error_message,
            body,
            json.dumps(sorted(relays_accepted)),
            envelope,
            event_id,
        ),
    )


def statuses_for(
    store: Store, dispute_id: str, notif_type: NotificationType
) -> list[tuple[NotificationStatus, int]]:
    """(status, attempts) of every row of a type for a dispute."""
    return [
        (r[0], r[1])
        for r in store.conn.execute(
            "SELECT status, attempts FROM notifications WHERE dispute_id=? AND notif_type=? ORDER BY id",
            (dispute_id, notif_type),
        )
    ]


def already_queued(
    conn: sqlite3.Connection,
    dispute_id: str,
    recipient: str,
    notif_type: NotificationType,
    body: str,
    since: int,
) -> bool:
    """True if the same text was queued for this recipient and dispute since `since` (any status)."""
    return (
        conn.execute(
            "SELECT 1 FROM notifications WHERE dispute_id=? AND notif_type=? AND solver_pubkey=? AND body=? "
            "AND created_at >= ? LIMIT 1",
            (dispute_id, notif_type, recipient, body, since),
        ).fetchone()
        is not None
    )


def note_reminded(
    conn: sqlite3.Connection, dispute_ids: list[str], queued_at: int, now: int
) -> None:
    """A reminder round reached someone: count it once per dispute (the first delivered row wins)."""
    conn.executemany(
        "UPDATE disputes SET last_notified_at=?, reminders_sent=reminders_sent+1 "
        "WHERE dispute_id=? AND lifecycle_state='notified' AND last_notified_at < ?",
        [(now, dispute_id, queued_at) for dispute_id in dispute_ids],
    )
