"""Numbered, forward-only migrations (docs/architecture.md#migrations): version = position in MIGRATIONS + 1.

Each migration runs under `BEGIN IMMEDIATE` with `MAX(version)` re-read inside the transaction,
so two first runs at once apply each migration exactly once, and a failure leaves it pending.
Never edit a migration that has landed; add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from serbero_cli.errors import DatabaseTooNew

if TYPE_CHECKING:
    from serbero_cli.store.db import Store


def _run(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT our BEGIN IMMEDIATE; run statement by statement instead.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def create_core_tables(conn: sqlite3.Connection) -> None:
    """Disputes, the notifications outbox, transitions, sync_state."""
    _run(
        conn,
        """
CREATE TABLE disputes (
    dispute_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    mostro_pubkey TEXT NOT NULL,
    initiator_role TEXT,
    dispute_status TEXT NOT NULL,
    event_timestamp INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    lifecycle_state TEXT NOT NULL DEFAULT 'new',
    assigned_solver TEXT,
    last_notified_at INTEGER,
    last_state_change INTEGER
);
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dispute_id TEXT NOT NULL REFERENCES disputes(dispute_id),
    solver_pubkey TEXT NOT NULL,
    notif_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending','sending','sent','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_at INTEGER,
    created_at INTEGER NOT NULL,
    sent_at INTEGER,
    error_message TEXT,
    body TEXT NOT NULL,
    relays_accepted TEXT
);
CREATE TABLE dispute_state_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dispute_id TEXT NOT NULL REFERENCES disputes(dispute_id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    transitioned_at INTEGER NOT NULL,
    trigger TEXT
);
CREATE TABLE sync_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX idx_notifications_dispute ON notifications(dispute_id);
CREATE INDEX idx_notifications_status ON notifications(status);
CREATE INDEX idx_disputes_lifecycle ON disputes(lifecycle_state);
CREATE INDEX idx_transitions_dispute ON dispute_state_transitions(dispute_id)
""",
    )


def add_mediation_tables(conn: sqlite3.Connection) -> None:
    """Mediation sessions, their messages, audit events, rationales, summaries and solver auth."""
    _run(
        conn,
        """
CREATE TABLE mediation_sessions (
    session_id TEXT PRIMARY KEY,
    dispute_id TEXT NOT NULL REFERENCES disputes(dispute_id),
    state TEXT NOT NULL,
    round_count INTEGER NOT NULL DEFAULT 0,
    prompt_bundle_id TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    instructions_version TEXT,
    assigned_solver TEXT,
    current_classification TEXT,
    current_confidence REAL,
    buyer_shared_pubkey TEXT,
    seller_shared_pubkey TEXT,
    buyer_last_seen_inner_ts INTEGER,
    seller_last_seen_inner_ts INTEGER,
    started_at INTEGER NOT NULL,
    last_transition_at INTEGER NOT NULL,
    round_count_last_evaluated INTEGER NOT NULL DEFAULT 0,
    consecutive_eval_failures INTEGER NOT NULL DEFAULT 0,
    buyer_trade_pubkey TEXT,
    seller_trade_pubkey TEXT
);
CREATE INDEX idx_mediation_sessions_dispute ON mediation_sessions(dispute_id);
CREATE INDEX idx_mediation_sessions_state ON mediation_sessions(state);
CREATE TABLE mediation_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES mediation_sessions(session_id),
    direction TEXT NOT NULL,
    party TEXT NOT NULL,
    shared_pubkey TEXT NOT NULL,
    inner_event_id TEXT NOT NULL,
    inner_event_created_at INTEGER NOT NULL,
    outer_event_id TEXT,
    content TEXT NOT NULL,
    prompt_bundle_id TEXT,
    policy_hash TEXT,
    persisted_at INTEGER NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
    published_at INTEGER,
    publish_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX uq_mediation_messages_inner_event ON mediation_messages(session_id, inner_event_id);
CREATE INDEX idx_mediation_messages_session ON mediation_messages(session_id);
CREATE INDEX idx_mediation_messages_direction ON mediation_messages(direction);
CREATE TABLE reasoning_rationales (
    rationale_id TEXT PRIMARY KEY,
    session_id TEXT REFERENCES mediation_sessions(session_id),
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_bundle_id TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    rationale_text TEXT NOT NULL,
    generated_at INTEGER NOT NULL
);
CREATE TABLE mediation_summaries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES mediation_sessions(session_id),
    dispute_id TEXT NOT NULL REFERENCES disputes(dispute_id),
    classification TEXT NOT NULL,
    confidence REAL NOT NULL,
    suggested_next_step TEXT NOT NULL,
    summary_text TEXT NOT NULL,
    prompt_bundle_id TEXT NOT NULL,
    policy_hash TEXT NOT NULL,
    rationale_id TEXT REFERENCES reasoning_rationales(rationale_id),
    generated_at INTEGER NOT NULL
);
CREATE TABLE mediation_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT REFERENCES mediation_sessions(session_id),
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL DEFAULT '{}',
    rationale_id TEXT REFERENCES reasoning_rationales(rationale_id),
    prompt_bundle_id TEXT,
    policy_hash TEXT,
    occurred_at INTEGER NOT NULL
);
CREATE INDEX idx_mediation_events_session_kind ON mediation_events(session_id, kind);
CREATE INDEX idx_mediation_events_kind ON mediation_events(kind);
CREATE INDEX idx_mediation_events_dispute ON mediation_events(
    CASE WHEN typeof(payload_json) = 'text' AND json_valid(payload_json)
         THEN json_extract(payload_json, '$.dispute_id') END)
    WHERE session_id IS NULL;
CREATE TABLE mediation_solver_auth (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    status TEXT NOT NULL CHECK (status IN ('unauthorized','terminated')),
    attempts INTEGER NOT NULL,
    first_failure_at INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    next_probe_at INTEGER,
    last_reason TEXT,
    updated_at INTEGER NOT NULL
)
""",
    )


def add_escalation_dispatches(conn: sqlite3.Connection) -> None:
    """The dispatch claims of dispatch-once."""
    _run(
        conn,
        """
CREATE TABLE escalation_dispatches (
    dispatch_id TEXT PRIMARY KEY,
    dispute_id TEXT NOT NULL,
    session_id TEXT,
    handoff_event_id INTEGER NOT NULL,
    target_solver TEXT NOT NULL,
    dispatched_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'dispatched'
        CHECK (status IN ('sending', 'dispatched', 'send_failed')),
    fallback_broadcast INTEGER NOT NULL DEFAULT 0,
    route TEXT CHECK (route IN ('targeted', 'broadcast', 'fallback')),
    attempts INTEGER NOT NULL DEFAULT 1 CHECK (attempts BETWEEN 1 AND 3),
    finished_at INTEGER,
    FOREIGN KEY (dispute_id) REFERENCES disputes(dispute_id),
    FOREIGN KEY (session_id) REFERENCES mediation_sessions(session_id),
    FOREIGN KEY (handoff_event_id) REFERENCES mediation_events(id)
);
CREATE INDEX IF NOT EXISTS idx_escalation_dispatches_dispute ON escalation_dispatches(dispute_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_escalation_dispatches_handoff ON escalation_dispatches(handoff_event_id);
CREATE INDEX IF NOT EXISTS idx_escalation_dispatches_sending ON escalation_dispatches(status, dispatched_at)
""",
    )


def add_kind14_chat_columns(conn: sqlite3.Connection) -> None:
    """Kind-14 chat: chat keys, take transport, takeover cursor, per-envelope outbound state."""
    _run(
        conn,
        """
ALTER TABLE mediation_sessions ADD COLUMN buyer_chat_conv_pubkey TEXT;
ALTER TABLE mediation_sessions ADD COLUMN buyer_chat_sign_pubkey TEXT;
ALTER TABLE mediation_sessions ADD COLUMN seller_chat_conv_pubkey TEXT;
ALTER TABLE mediation_sessions ADD COLUMN seller_chat_sign_pubkey TEXT;
ALTER TABLE mediation_sessions ADD COLUMN take_transport TEXT;
ALTER TABLE mediation_sessions ADD COLUMN take_revision_created_at INTEGER;
ALTER TABLE mediation_messages ADD COLUMN envelope TEXT;
ALTER TABLE mediation_messages ADD COLUMN kind14_event_id TEXT;
ALTER TABLE mediation_messages ADD COLUMN legacy_required INTEGER NOT NULL DEFAULT 1;
UPDATE mediation_messages SET envelope = 'giftwrap' WHERE direction = 'inbound'
""",
    )


def add_audit_indexes(conn: sqlite3.Connection) -> None:
    """Indexes the audit views order and filter by, so every list view is fast by construction.

    Each list view reads `ORDER BY <time> DESC LIMIT n` from an index that starts with its
    filter column, so it stops after n rows; the dashboard counts notifications from a covering
    index (status, type, attempts, claimed_at), never from the table. The handoff-audit
    expression is `store/mediation.py` handoff_ref() (a test compares them), and is guarded
    like the dispute index so a malformed payload can never make an INSERT fail.
    """
    _run(
        conn,
        """
CREATE INDEX IF NOT EXISTS idx_disputes_event_timestamp ON disputes(event_timestamp);
CREATE INDEX IF NOT EXISTS idx_disputes_state_timestamp ON disputes(lifecycle_state, event_timestamp);
CREATE INDEX IF NOT EXISTS idx_notifications_created ON notifications(created_at);
CREATE INDEX IF NOT EXISTS idx_notifications_status_created ON notifications(status, created_at);
CREATE INDEX IF NOT EXISTS idx_notifications_type_created ON notifications(notif_type, created_at);
CREATE INDEX IF NOT EXISTS idx_notifications_outcome ON notifications(status, notif_type, attempts, claimed_at);
CREATE INDEX IF NOT EXISTS idx_mediation_sessions_started ON mediation_sessions(started_at);
CREATE INDEX IF NOT EXISTS idx_mediation_sessions_state_started ON mediation_sessions(state, started_at);
CREATE INDEX IF NOT EXISTS idx_mediation_summaries_dispute ON mediation_summaries(dispute_id);
CREATE INDEX IF NOT EXISTS idx_escalation_dispatches_created ON escalation_dispatches(created_at);
CREATE INDEX IF NOT EXISTS idx_mediation_events_handoff_audit ON mediation_events(
    CASE WHEN kind IN ('escalation_superseded', 'escalation_dispatch_unroutable',
                       'escalation_dispatch_parse_failed')
              AND typeof(payload_json) = 'text' AND json_valid(payload_json)
         THEN json_extract(payload_json, '$.handoff_event_id') END)
""",
    )


def add_envelopes_and_rounds(conn: sqlite3.Connection) -> None:
    """Delivery envelopes, signed-once events, reopened disputes and reminder back-off.

    * `notifications.envelope`: each envelope (`mostro`, `nip17`) of a message is its own row;
      `covers`: the dispute ids a reminder digest stands for (JSON list), NULL otherwise.
    * `event_id` / `event_json`: the signed event, stored when the row is first claimed and
      republished unchanged on every retry, so a crash can never show anyone a second copy.
    * `disputes.revision_created_at`: the newest applied 38386 revision (tells a reopening
      `initiated` revision from a replay of the old one); `round_started_at`: when the current
      round began (NULL for the first); `reminders_sent`: reminders delivered this round.
    * The signed events of handoff DMs and of party chat wraps, for the same republish rule.
    """
    _run(
        conn,
        """
ALTER TABLE notifications ADD COLUMN envelope TEXT NOT NULL DEFAULT 'nip17';
ALTER TABLE notifications ADD COLUMN event_id TEXT;
ALTER TABLE notifications ADD COLUMN event_json TEXT;
ALTER TABLE notifications ADD COLUMN covers TEXT;
ALTER TABLE disputes ADD COLUMN revision_created_at INTEGER;
ALTER TABLE disputes ADD COLUMN round_started_at INTEGER;
ALTER TABLE disputes ADD COLUMN reminders_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE escalation_dispatches ADD COLUMN events_json TEXT;
ALTER TABLE mediation_messages ADD COLUMN kind14_event_json TEXT;
ALTER TABLE mediation_messages ADD COLUMN legacy_event_json TEXT;
CREATE INDEX IF NOT EXISTS idx_notifications_dispute_type ON notifications(dispute_id, notif_type)
""",
    )


def add_foreign_key_indexes(conn: sqlite3.Connection) -> None:
    """Indexes on the child side of every foreign key that had none.

    Deleting a parent row makes SQLite look for children; without an index on the child column
    that look is a scan of the whole child table per deleted row, which made `serbero prune` take
    minutes on a few thousand disputes. The rationale columns are mostly NULL, so their indexes are
    partial (an equality lookup implies IS NOT NULL, so SQLite still uses them).
    """
    _run(
        conn,
        """
CREATE INDEX IF NOT EXISTS idx_reasoning_rationales_session ON reasoning_rationales(session_id);
CREATE INDEX IF NOT EXISTS idx_mediation_summaries_session ON mediation_summaries(session_id);
CREATE INDEX IF NOT EXISTS idx_mediation_summaries_rationale ON mediation_summaries(rationale_id)
    WHERE rationale_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_mediation_events_rationale ON mediation_events(rationale_id)
    WHERE rationale_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_escalation_dispatches_session ON escalation_dispatches(session_id)
""",
    )


def widen_outcome_index(conn: sqlite3.Connection) -> None:
    """The outcome index also carries `dispute_id`.

    The dashboard counts failed-for-good messages of disputes still open: with the dispute id in
    the index that count reads the index alone (no table row per failed message), which took it
    from 0.40 s to 0.15 s on 75 000 failed rows.
    """
    _run(
        conn,
        """
DROP INDEX IF EXISTS idx_notifications_outcome;
CREATE INDEX idx_notifications_outcome ON notifications(status, notif_type, attempts, claimed_at, dispute_id)
""",
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    create_core_tables,
    add_mediation_tables,
    add_escalation_dispatches,
    add_kind14_chat_columns,
    add_audit_indexes,
    add_envelopes_and_rounds,
    add_foreign_key_indexes,
    widen_outcome_index,
)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version on file; 0 for a database without `schema_version`."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def too_new(path: object, version: int, known: int | None = None) -> DatabaseTooNew:
    """The error for a database whose schema is newer than this code (exit 2)."""
    known = len(MIGRATIONS) if known is None else known
    return DatabaseTooNew(
        f"database {path} was written by a newer serbero (schema {version}; this one "
        f"knows {known}); upgrade serbero"
    )


def pending(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations not applied yet (read-only)."""
    return [m.__name__ for m in MIGRATIONS[current_version(conn) :]]


def apply(
    store: Store, migrations: tuple[Callable[[sqlite3.Connection], None], ...] | None = None
) -> list[str]:
    """Apply every pending migration, each in its own BEGIN IMMEDIATE. Return the names applied."""
    conn = store.conn
    chain = MIGRATIONS if migrations is None else migrations
    version = current_version(conn)
    if version > len(chain):
        raise too_new(store.path, version, len(chain))
    if version == len(chain):
        return []
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
    applied: list[str] = []
    for number, migration in enumerate(chain, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            on_file = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version"
            ).fetchone()[0]
            if on_file >= number:
                conn.execute("COMMIT")
                continue
            migration(conn)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(migration.__name__)
    return applied
