"""Mediation audit events and session lookups shared by listen, mediate-once and dispatch-once.

Every dispute-scoped lookup uses DISPUTE_EXPR, the exact expression of the partial index
`idx_mediation_events_dispute`: a bare json_extract over a malformed
payload would abort the query, and only the identical expression lets SQLite use the index.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from serbero_cli.domain.sessions import LIVE_STATES, SessionState

DISPUTE_EXPR = (
    "CASE WHEN typeof(payload_json) = 'text' AND json_valid(payload_json) "
    "THEN json_extract(payload_json, '$.dispute_id') END"
)
LIVE_SQL = "(" + ",".join(f"'{s}'" for s in LIVE_STATES) + ")"
# A reopened dispute starts a new round: lookups that decide what to do next see only rows from
# the current round (the first round starts at 0). `?` is the dispute id.
ROUND_START = "(SELECT COALESCE(MAX(round_started_at), 0) FROM disputes WHERE dispute_id = ?)"


HANDOFF_AUDIT_KINDS = (
    "escalation_superseded",
    "escalation_dispatch_unroutable",
    "escalation_dispatch_parse_failed",
)


def handoff_ref(alias: str | None = None, kinds: tuple[str, ...] = HANDOFF_AUDIT_KINDS) -> str:
    """`$.handoff_event_id` of a dispatch-once audit row, guarded so a malformed payload yields NULL,
    never an error. With the default kinds and no alias it is the expression of the index
    `idx_mediation_events_handoff_audit`, which SQLite then uses."""
    col = f"{alias}." if alias else ""
    quoted = ", ".join(f"'{k}'" for k in kinds)
    return (
        f"CASE WHEN {col}kind IN ({quoted}) AND typeof({col}payload_json) = 'text' "
        f"AND json_valid({col}payload_json) THEN json_extract({col}payload_json, '$.handoff_event_id') END"
    )


def audit_json(payload: dict[str, Any]) -> str:
    """Audit payload serialisation (docs/mediation.md#audit-events): sorted keys, compact, raw UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def insert_event(
    conn: sqlite3.Connection,
    kind: str,
    payload: dict[str, Any] | str,
    *,
    now: int,
    session_id: str | None = None,
    rationale_id: str | None = None,
    bundle: tuple[str | None, str | None] = (None, None),
) -> int:
    """Insert a `mediation_events` row; a str payload is stored as given (handoff packages keep their order)."""
    text = payload if isinstance(payload, str) else audit_json(payload)
    cur = conn.execute(
        "INSERT INTO mediation_events (session_id, kind, payload_json, rationale_id, prompt_bundle_id, "
        "policy_hash, occurred_at) VALUES (?,?,?,?,?,?,?)",
        (session_id, kind, text, rationale_id, bundle[0], bundle[1], now),
    )
    if cur.lastrowid is None:  # an INSERT into a rowid table always sets it
        raise sqlite3.DatabaseError("mediation_events insert returned no row id")
    return cur.lastrowid


def dispute_scoped_events(
    conn: sqlite3.Connection, dispute_id: str, kinds: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Dispute-scoped events (session_id NULL) of the given kinds for a dispute, oldest first."""
    marks = ",".join("?" * len(kinds))
    cur = conn.execute(
        f"SELECT id, kind, payload_json, rationale_id, occurred_at FROM mediation_events "
        f"WHERE session_id IS NULL AND ({DISPUTE_EXPR}) = ? AND kind IN ({marks}) "
        f"AND occurred_at >= {ROUND_START} ORDER BY id",
        (dispute_id, *kinds, dispute_id),
    )
    return [
        {
            "id": r[0],
            "kind": r[1],
            "payload": _loads(r[2]),
            "rationale_id": r[3],
            "occurred_at": r[4],
        }
        for r in cur.fetchall()
    ]


def has_dispute_scoped(conn: sqlite3.Connection, dispute_id: str, kind: str) -> bool:
    """Whether this round of the dispute has a dispute-scoped event of `kind`."""
    return (
        conn.execute(
            f"SELECT 1 FROM mediation_events WHERE session_id IS NULL AND ({DISPUTE_EXPR}) = ? AND kind = ? "
            f"AND occurred_at >= {ROUND_START} LIMIT 1",
            (dispute_id, kind, dispute_id),
        ).fetchone()
        is not None
    )


def session_events(conn: sqlite3.Connection, session_id: str, kind: str) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT id, payload_json, rationale_id, occurred_at FROM mediation_events WHERE session_id=? AND kind=? "
        "ORDER BY id",
        (session_id, kind),
    )
    return [
        {"id": r[0], "payload": _loads(r[1]), "rationale_id": r[2], "occurred_at": r[3]}
        for r in cur.fetchall()
    ]


def latest_session(conn: sqlite3.Connection, dispute_id: str) -> dict[str, Any] | None:
    """The newest session of this round of the dispute by started_at (then rowid), as a dict, or None."""
    cur = conn.execute(
        f"SELECT * FROM mediation_sessions WHERE dispute_id=? AND started_at >= {ROUND_START} "
        "ORDER BY started_at DESC, rowid DESC LIMIT 1",
        (dispute_id, dispute_id),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def has_any_session(conn: sqlite3.Connection, dispute_id: str) -> bool:
    """Whether this round of the dispute already had a session (one per round, ever)."""
    return (
        conn.execute(
            f"SELECT 1 FROM mediation_sessions WHERE dispute_id=? AND started_at >= {ROUND_START} "
            "LIMIT 1",
            (dispute_id, dispute_id),
        ).fetchone()
        is not None
    )


def move_session(
    conn: sqlite3.Connection,
    session_id: str,
    from_states: tuple[SessionState, ...],
    to_state: SessionState,
    now: int,
) -> bool:
    """Conditional session transition (docs/mediation.md#sessions); False when another actor won."""
    marks = ",".join("?" * len(from_states))
    cur = conn.execute(
        f"UPDATE mediation_sessions SET state=?, last_transition_at=? WHERE session_id=? AND state IN ({marks})",
        (to_state, now, session_id, *from_states),
    )
    return cur.rowcount == 1


def published_parties(conn: sqlite3.Connection, session_id: str) -> int:
    """Distinct parties with at least one published outbound row (0–2)."""
    return conn.execute(
        "SELECT COUNT(DISTINCT party) FROM mediation_messages WHERE session_id=? AND direction='outbound' "
        "AND published_at IS NOT NULL",
        (session_id,),
    ).fetchone()[0]


def _loads(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
