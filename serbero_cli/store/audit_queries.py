"""Read-only queries behind the audit views: plain SQL over a `mode=ro` connection, rows as dicts.

Every list query is ordered by an indexed column and LIMITed (`add_audit_indexes` holds the
indexes; tests/audit checks the plans on 100 000 disputes). A table that is not on file reads as
empty rather than failing, so a view never crashes on a partly built database; `open_source()`
refuses databases older than this code with one clear line (exit 2) before any query runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serbero_cli.domain.lifecycle import STATES, UNTAKEN
from serbero_cli.domain.sessions import RESERVED_STATES, SessionState
from serbero_cli.errors import DatabaseMissing, DatabaseUnreadable
from serbero_cli.store.db import Store, open_db
from serbero_cli.store.mediation import DISPUTE_EXPR
from serbero_cli.typed_input import pick_unique, prefix_bounds

LIFECYCLE_STATES = STATES
# The written session states, then the reserved ones (accepted by --state).
WRITTEN_SESSION_STATES: tuple[SessionState, ...] = tuple(SessionState)
SESSION_STATES: tuple[str, ...] = (*WRITTEN_SESSION_STATES, *RESERVED_STATES)
# Notification outcomes: the four statuses, with `failed` split the way the outbox splits it
# (docs/delivery.md#outbox): a flush retries `failed` rows it claimed itself while attempts < max_attempts;
# anything else failed (past the limit, or a dispatch-once record) is final.
NOTIFICATION_OUTCOMES = ("pending", "sending", "sent", "failed_retrying", "failed_final")
NOTIFICATION_STATUS_FILTERS = (
    "pending",
    "sending",
    "sent",
    "failed",
    "failed_retrying",
    "failed_final",
)
# A failed message is retried while it has attempts left (handoff copies are never retried here).
RETRYING_SQL = (
    "(claimed_at IS NOT NULL AND attempts < :max_attempts AND notif_type != 'escalation_handoff')"
)
OUTCOME_SQL = f"CASE WHEN status != 'failed' THEN status WHEN {RETRYING_SQL} THEN 'failed_retrying' ELSE 'failed_final' END"
LAST_RUN_KEYS = ("listen_last_run", "mediate_once_last_run", "dispatch_once_last_run")
# Every run that opened the database leaves one of these, whatever its exit code (runrecord.py).
RUN_RECORD_KEYS = ("listen_run_record", "mediate_once_run_record", "dispatch_once_run_record")
UNTAKEN_STATES = UNTAKEN  # disputes nobody (no solver, not Serbero) has taken yet
ID_COLUMNS = {
    "dispute": ("disputes", "dispute_id"),
    "session": ("mediation_sessions", "session_id"),
    "dispatch": ("escalation_dispatches", "dispatch_id"),
    "rationale": ("reasoning_rationales", "rationale_id"),
}
PREFIX_CANDIDATES = 6

DISPUTE_COLUMNS = (
    "dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, event_timestamp, "
    "detected_at, lifecycle_state, assigned_solver, last_notified_at, last_state_change"
)
NOTIFICATION_COLUMNS = (
    "id, dispute_id, solver_pubkey, notif_type, envelope, status, attempts, claimed_at, "
    "created_at, sent_at, error_message, relays_accepted, body"
)
MESSAGE_COLUMNS = (
    "id, session_id, direction, party, shared_pubkey, inner_event_id, inner_event_created_at, "
    "outer_event_id, content, prompt_bundle_id, policy_hash, persisted_at, stale, published_at, "
    "publish_attempts, envelope, kind14_event_id, legacy_required"
)
SESSION_COLUMNS = (
    "session_id, dispute_id, state, round_count, prompt_bundle_id, policy_hash, instructions_version, "
    "assigned_solver, current_classification, current_confidence, buyer_shared_pubkey, "
    "seller_shared_pubkey, buyer_last_seen_inner_ts, seller_last_seen_inner_ts, started_at, "
    "last_transition_at, round_count_last_evaluated, consecutive_eval_failures, buyer_trade_pubkey, "
    "seller_trade_pubkey, buyer_chat_conv_pubkey, buyer_chat_sign_pubkey, seller_chat_conv_pubkey, "
    "seller_chat_sign_pubkey, take_transport, take_revision_created_at"
)
# Every column but the rationale text itself, which only `audit rationale` shows.
SUMMARY_COLUMNS = (
    "id, session_id, dispute_id, classification, confidence, suggested_next_step, summary_text, "
    "prompt_bundle_id, policy_hash, rationale_id, generated_at"
)
DISPATCH_COLUMNS = (
    "dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, created_at, "
    "status, fallback_broadcast, route, attempts, finished_at"
)
EVENT_COLUMNS = (
    "id, session_id, kind, payload_json, rationale_id, prompt_bundle_id, policy_hash, occurred_at"
)


class OutdatedSchema(DatabaseMissing):
    """The database predates this code; a writing phase upgrades it (audit never migrates)."""


@dataclass(frozen=True)
class AuditSettings:
    """What audit needs from the config: the file and the thresholds its views judge by.

    `config_path` is None when `--db` was used without a config (thresholds are then the
    documented defaults).
    """

    db_path: Path
    max_attempts: int
    dispatch_interval_seconds: int
    sending_stale_seconds: int
    config_path: Path | None = None
    renotification_seconds: int = 300
    mediation_enabled: bool | None = None  # None: not known (no config loaded)
    escalation_enabled: bool | None = None  # None: not known (no config loaded)

    @classmethod
    def from_config(cls, config: Any, db_path: Path | None = None) -> AuditSettings:
        return cls(
            Path(db_path or config.db_path),
            config.delivery.max_attempts,
            config.escalation.dispatch_interval_seconds,
            config.escalation.sending_stale_seconds,
            config.path,
            config.timeouts.renotification_seconds,
            bool(config.mediation_active),
            bool(config.escalation.enabled),
        )

    @classmethod
    def defaults(cls, db_path: Path) -> AuditSettings:
        """Settings for `--db` without a config: every threshold at its config.toml default, and
        whether mediation and escalation are on left unknown."""
        from serbero_cli.config import KEYS

        value = {(k.section, k.name): k.default for k in KEYS}
        return cls(
            Path(db_path),
            value[("delivery", "max_attempts")],
            value[("escalation", "dispatch_interval_seconds")],
            value[("escalation", "sending_stale_seconds")],
            None,
            value[("timeouts", "renotification_seconds")],
        )


class Source:
    """A read-only database for the audit views: the store, the tables on file, the schema version."""

    def __init__(self, store: Store, settings: AuditSettings, version: int):
        self.store = store
        self.settings = settings
        self.schema_version = version
        self.tables = {
            r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type='table'")
        }

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def has(self, *tables: str) -> bool:
        return all(t in self.tables for t in tables)

    def rows(self, sql: str, params: Any = (), *, tables: tuple[str, ...]) -> list[dict[str, Any]]:
        """Run a SELECT; an empty list when one of `tables` is not on file."""
        return self.store.query(sql, params) if self.has(*tables) else []

    def one(self, sql: str, params: Any = (), *, tables: tuple[str, ...]) -> dict[str, Any] | None:
        found = self.rows(sql, params, tables=tables)
        return found[0] if found else None

    def resolve(self, what: str, typed: str) -> str:
        """The full id of a `dispute`/`session`/`dispatch`/`rationale` from a unique prefix."""
        table, column = ID_COLUMNS[what]
        typed = (typed or "").strip()
        candidates = self._ids_starting(table, column, typed)
        if not candidates and typed != typed.lower():
            candidates = self._ids_starting(table, column, typed.lower())
            typed = typed.lower()
        return pick_unique(what, typed, candidates)

    def _ids_starting(self, table: str, column: str, prefix: str) -> list[str]:
        if not prefix:
            return []
        low, high = prefix_bounds(prefix)
        found = self.rows(
            f"SELECT {column} AS id FROM {table} WHERE {column} >= ? AND {column} < ? "
            f"ORDER BY {column} LIMIT ?",
            (low, high, PREFIX_CANDIDATES),
            tables=(table,),
        )
        return [r["id"] for r in found]


def open_source(settings: AuditSettings) -> Source:
    """Open the database read-only and check it is current.

    Raise DatabaseMissing (exit 2) when the file is absent or unreadable, OutdatedSchema (exit 2)
    when it is older than this code, DatabaseTooNew (exit 2) when it is newer.
    """
    from serbero_cli.store.migrations import MIGRATIONS, current_version

    path = settings.db_path
    if not Path(path).exists():
        raise DatabaseMissing(
            f"database not found: {path} (check [serbero].db_path, or pass --db PATH)"
        )
    try:
        store = open_db(path, readonly=True)
    except (
        DatabaseUnreadable
    ) as exc:  # audit reads what it is pointed at: a wrong file is a usage error
        raise DatabaseMissing(str(exc)) from None
    version = current_version(store.conn)
    expected = len(MIGRATIONS)
    if version < expected:
        store.close()
        if version == 0:
            raise OutdatedSchema(
                f"database {path} has no serbero tables yet: "
                "run `serbero listen` (or any phase) once to create them"
            )
        raise OutdatedSchema(
            f"database {path} has schema version {version}, this serbero needs {expected}: "
            "run `serbero listen` (or any phase) once to upgrade"
        )
    return Source(store, settings, version)


# --- dashboard -----------------------------------------------------------------------------


def count_disputes_by_state(src: Source) -> dict[str, int]:
    rows = src.rows(
        "SELECT lifecycle_state AS state, COUNT(*) AS n FROM disputes GROUP BY lifecycle_state",
        tables=("disputes",),
    )
    return {r["state"]: r["n"] for r in rows}


def count_notifications_by_outcome(src: Source) -> dict[str, int]:
    """Messages per outcome (OUTCOME_SQL): counted per status from the status index, then the failed
    rows still being retried from the outcome index. Grouping on the CASE expression itself
    evaluates it on every row, five times slower on 300 000 of them."""
    rows = src.rows(
        "SELECT status, COUNT(*) AS n FROM notifications GROUP BY status", tables=("notifications",)
    )
    counts = {r["status"]: r["n"] for r in rows}
    failed = counts.pop("failed", 0)
    if failed:
        row = src.one(
            f"SELECT COUNT(*) AS n FROM notifications WHERE status = 'failed' AND {RETRYING_SQL}",
            {"max_attempts": src.settings.max_attempts},
            tables=("notifications",),
        )
        retrying = row["n"] if row else 0
        counts.update(
            {
                k: v
                for k, v in (("failed_retrying", retrying), ("failed_final", failed - retrying))
                if v
            }
        )
    return dict(sorted(counts.items()))  # in outcome order, as GROUP BY on the outcome gave them


def count_sessions_by_state(src: Source) -> dict[str, int]:
    rows = src.rows(
        "SELECT state, COUNT(*) AS n FROM mediation_sessions GROUP BY state",
        tables=("mediation_sessions",),
    )
    return {r["state"]: r["n"] for r in rows}


def last_runs(src: Source) -> list[dict[str, Any]]:
    """The `sync_state` rows of the last-run summaries and the run records."""
    keys = (*LAST_RUN_KEYS, *RUN_RECORD_KEYS)
    marks = ",".join("?" * len(keys))
    return src.rows(
        f"SELECT key, value, updated_at FROM sync_state WHERE key IN ({marks})",
        keys,
        tables=("sync_state",),
    )


def untaken_disputes(src: Source, opened_before: int) -> dict[str, Any]:
    """Untaken disputes: how many in all, how many opened before `opened_before`, the oldest opening time."""
    marks = ",".join("?" * len(UNTAKEN_STATES))
    row = src.one(
        f"SELECT COUNT(*) AS total, SUM(event_timestamp < ?) AS overdue, MIN(event_timestamp) AS oldest_at "
        f"FROM disputes WHERE lifecycle_state IN ({marks})",
        (opened_before, *UNTAKEN_STATES),
        tables=("disputes",),
    )
    if row is None:
        return {"total": 0, "overdue": 0, "oldest_at": None}
    return {"total": row["total"], "overdue": row["overdue"] or 0, "oldest_at": row["oldest_at"]}


def open_failed_deliveries(src: Source) -> int:
    """Notifications failed for good whose dispute is not resolved yet (they still matter)."""
    row = src.one(
        f"SELECT COUNT(*) AS n FROM notifications n JOIN disputes d ON d.dispute_id = n.dispute_id "
        f"WHERE n.status = 'failed' AND d.lifecycle_state != 'resolved' AND NOT {RETRYING_SQL}",
        {"max_attempts": src.settings.max_attempts},
        tables=("notifications", "disputes"),
    )
    return row["n"] if row else 0


def notifications_by_outcome_and_envelope(src: Source) -> list[dict[str, Any]]:
    return src.rows(
        f"SELECT {OUTCOME_SQL} AS outcome, envelope, COUNT(*) AS n FROM notifications "
        "GROUP BY outcome, envelope",
        {"max_attempts": src.settings.max_attempts},
        tables=("notifications",),
    )


def solver_auth(src: Source) -> dict[str, Any] | None:
    return src.one(
        "SELECT status, attempts, first_failure_at, last_failure_at, next_probe_at, last_reason, "
        "updated_at FROM mediation_solver_auth WHERE id = 1",
        tables=("mediation_solver_auth",),
    )


# --- list views ----------------------------------------------------------------------------


def list_disputes(
    src: Source, *, state: str | None, since: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first by `event_timestamp` (when Mostro opened the dispute)."""
    where, params = _where([("lifecycle_state = ?", state), ("event_timestamp >= ?", since)])
    return src.rows(
        f"SELECT {DISPUTE_COLUMNS} FROM disputes{where} "
        "ORDER BY event_timestamp DESC, rowid DESC LIMIT ?",
        (*params, limit),
        tables=("disputes",),
    )


def get_dispute(src: Source, dispute_id: str) -> dict[str, Any] | None:
    return src.one(
        f"SELECT {DISPUTE_COLUMNS} FROM disputes WHERE dispute_id = ?",
        (dispute_id,),
        tables=("disputes",),
    )


def list_notifications(
    src: Source,
    *,
    status: str | None,
    notif_type: str | None,
    dispute_id: str | None,
    since: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first by `created_at`; `failed_retrying`/`failed_final` narrow `failed` by outcome."""
    retrying = "(claimed_at IS NOT NULL AND attempts < ? AND notif_type != 'escalation_handoff')"
    where, params = _where(
        [
            ("status = ?", "failed" if status in ("failed_retrying", "failed_final") else status),
            (retrying, src.settings.max_attempts if status == "failed_retrying" else None),
            (f"NOT {retrying}", src.settings.max_attempts if status == "failed_final" else None),
            ("notif_type = ?", notif_type),
            ("dispute_id = ?", dispute_id),
            ("created_at >= ?", since),
        ]
    )
    return src.rows(
        f"SELECT {NOTIFICATION_COLUMNS}, {_outcome_positional()} AS outcome FROM notifications{where} "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (src.settings.max_attempts, *params, limit),
        tables=("notifications",),
    )


def list_sessions(
    src: Source, *, states: tuple[str, ...] | None, since: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first by `started_at`."""
    clauses: list[str] = []
    params: list[object] = []
    if states:
        clauses.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(states)
    if since is not None:
        clauses.append("started_at >= ?")
        params.append(since)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return src.rows(
        f"SELECT {SESSION_COLUMNS} FROM mediation_sessions{where} ORDER BY started_at DESC, rowid DESC LIMIT ?",
        (*params, limit),
        tables=("mediation_sessions",),
    )


def get_session(src: Source, session_id: str) -> dict[str, Any] | None:
    return src.one(
        f"SELECT {SESSION_COLUMNS} FROM mediation_sessions WHERE session_id = ?",
        (session_id,),
        tables=("mediation_sessions",),
    )


def transcript(src: Source, session_id: str, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` messages of a session, newest first (the view shows them oldest first)."""
    return src.rows(
        f"SELECT {MESSAGE_COLUMNS} FROM mediation_messages WHERE session_id = ? "
        "ORDER BY inner_event_created_at DESC, id DESC LIMIT ?",
        (session_id, limit),
        tables=("mediation_messages",),
    )


def list_events(
    src: Source, *, kind: str | None, session_id: str | None, dispute_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first by id; the dispute of a session event comes from its session."""
    clauses, params = [], []
    if kind is not None:
        clauses.append("e.kind = ?")
        params.append(kind)
    if session_id is not None:
        clauses.append("e.session_id = ?")
        params.append(session_id)
    if dispute_id is not None:
        clauses.append(
            f"((e.session_id IS NULL AND ({_dispute_expr('e')}) = ?) OR e.session_id IN "
            "(SELECT session_id FROM mediation_sessions WHERE dispute_id = ?))"
        )
        params.extend((dispute_id, dispute_id))
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return src.rows(
        f"SELECT e.id, e.session_id, e.kind, e.payload_json, e.rationale_id, e.prompt_bundle_id, e.policy_hash, "
        f"e.occurred_at, COALESCE(s.dispute_id, {_dispute_expr('e')}) AS dispute_id "
        f"FROM mediation_events e LEFT JOIN mediation_sessions s ON s.session_id = e.session_id{where} "
        "ORDER BY e.id DESC LIMIT ?",
        (*params, limit),
        tables=("mediation_events", "mediation_sessions"),
    )


def get_rationale(src: Source, rationale_id: str) -> dict[str, Any] | None:
    """The one query that reads `rationale_text` (operator-only, `audit rationale`)."""
    return src.one(
        "SELECT r.rationale_id, r.session_id, s.dispute_id, r.provider, r.model, r.prompt_bundle_id, "
        "r.policy_hash, r.generated_at, r.rationale_text FROM reasoning_rationales r "
        "LEFT JOIN mediation_sessions s ON s.session_id = r.session_id WHERE r.rationale_id = ?",
        (rationale_id,),
        tables=("reasoning_rationales", "mediation_sessions"),
    )


# --- one dispute's story (timeline) ---------------------------------------------------------


def dispute_story(src: Source, dispute_id: str, limit: int) -> dict[str, list[dict[str, Any]]]:
    """The newest `limit` rows (0 = all) of every source of a dispute's timeline, by source name."""
    n = limit + 1 if limit else -1
    in_sessions = "SELECT session_id FROM mediation_sessions WHERE dispute_id = ?"
    return {
        "transition": src.rows(
            "SELECT id, from_state, to_state, transitioned_at, trigger FROM dispute_state_transitions "
            "WHERE dispute_id = ? ORDER BY transitioned_at DESC, id DESC LIMIT ?",
            (dispute_id, n),
            tables=("dispute_state_transitions",),
        ),
        "notification": src.rows(
            f"SELECT {NOTIFICATION_COLUMNS}, {_outcome_positional()} AS outcome "
            "FROM notifications WHERE dispute_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (src.settings.max_attempts, dispute_id, n),
            tables=("notifications",),
        ),
        "session": src.rows(
            f"SELECT {SESSION_COLUMNS} FROM mediation_sessions WHERE dispute_id = ? ORDER BY started_at DESC "
            "LIMIT ?",
            (dispute_id, n),
            tables=("mediation_sessions",),
        ),
        "message": src.rows(
            f"SELECT {MESSAGE_COLUMNS} FROM mediation_messages WHERE session_id IN ({in_sessions}) "
            "ORDER BY inner_event_created_at DESC, id DESC LIMIT ?",
            (dispute_id, n),
            tables=("mediation_messages", "mediation_sessions"),
        ),
        "event": src.rows(
            f"SELECT {EVENT_COLUMNS} FROM mediation_events WHERE (session_id IS NULL AND ({DISPUTE_EXPR}) = ?) "
            f"OR session_id IN ({in_sessions}) ORDER BY id DESC LIMIT ?",
            (dispute_id, dispute_id, n),
            tables=("mediation_events", "mediation_sessions"),
        ),
        "summary": src.rows(
            f"SELECT {SUMMARY_COLUMNS} FROM mediation_summaries WHERE dispute_id = ? "
            "ORDER BY generated_at DESC, id DESC LIMIT ?",
            (dispute_id, n),
            tables=("mediation_summaries",),
        ),
        "dispatch": src.rows(
            f"SELECT {DISPATCH_COLUMNS}, finished_at - created_at AS duration_s FROM escalation_dispatches "
            "WHERE dispute_id = ? "
            "ORDER BY created_at DESC LIMIT ?",
            (dispute_id, n),
            tables=("escalation_dispatches",),
        ),
    }


def names(columns: str) -> tuple[str, ...]:
    """The column names of a comma-separated column list (CSV headers)."""
    return tuple(c.strip() for c in columns.split(","))


def _outcome_positional() -> str:
    return OUTCOME_SQL.replace(":max_attempts", "?")


def _dispute_expr(alias: str) -> str:
    # The same expression as the partial index idx_mediation_events_dispute, qualified.
    return DISPUTE_EXPR.replace("payload_json", f"{alias}.payload_json")


def _where(pairs: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    used = [(clause, value) for clause, value in pairs if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(c for c, _ in used), [v for _, v in used]


def _like_any(column: str, patterns: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in patterns) + ")"


def outbound_messages_like(src: Source, patterns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Outbound party messages whose text matches any LIKE pattern (escaped with `\\`)."""
    return src.rows(
        f"SELECT m.id, m.session_id, s.dispute_id, m.party, m.content FROM mediation_messages m "
        f"LEFT JOIN mediation_sessions s ON s.session_id = m.session_id "
        f"WHERE m.direction = 'outbound' AND {_like_any('m.content', patterns)} ORDER BY m.id",
        patterns,
        tables=("mediation_messages", "mediation_sessions"),
    )


def notifications_like(
    src: Source, patterns: tuple[str, ...], *, skip_types: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Notifications whose body (outside `skip_types`) or type matches any LIKE pattern."""
    skip = " AND notif_type NOT IN (" + ",".join("?" * len(skip_types)) + ")" if skip_types else ""
    return src.rows(
        f"SELECT id, dispute_id, solver_pubkey, notif_type, body FROM notifications "
        f"WHERE ({_like_any('body', patterns)}{skip}) OR {_like_any('notif_type', patterns)} ORDER BY id",
        (*patterns, *skip_types, *patterns),
        tables=("notifications",),
    )


def value_on_file(src: Source, table: str, column: str, value: str) -> bool:
    """Whether `table.column` holds `value` (the names come from this code, never from input)."""
    return bool(
        src.one(
            f"SELECT 1 AS found FROM {table} WHERE {column} = ? LIMIT 1", (value,), tables=(table,)
        )
    )
