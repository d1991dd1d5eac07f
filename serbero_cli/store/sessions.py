"""Mediation sessions and their chat rows (docs/mediation.md#sessions, docs/architecture.md#database)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from serbero_cli.domain.sessions import SessionState
from serbero_cli.store.clock import FUTURE_LIMIT_SECONDS
from serbero_cli.store.db import Store
from serbero_cli.store.mediation import DISPUTE_EXPR, LIVE_SQL, ROUND_START


@dataclass(frozen=True)
class SessionRow:
    """The session columns mediation steps read."""

    session_id: str
    dispute_id: str
    state: SessionState
    round_count: int
    prompt_bundle_id: str
    policy_hash: str
    buyer_trade_pubkey: str | None
    seller_trade_pubkey: str | None
    buyer_shared_pubkey: str | None
    seller_shared_pubkey: str | None
    buyer_chat_conv_pubkey: str | None
    buyer_chat_sign_pubkey: str | None
    seller_chat_conv_pubkey: str | None
    seller_chat_sign_pubkey: str | None
    buyer_last_seen_inner_ts: int | None
    seller_last_seen_inner_ts: int | None
    started_at: int
    last_transition_at: int
    round_count_last_evaluated: int
    consecutive_eval_failures: int
    take_transport: (
        str | None
    )  # "giftwrap" | "nip44" (mediation/transport.py), None before the take
    take_revision_created_at: int | None
    current_classification: str | None
    current_confidence: float | None

    def trade_pubkey(self, party: str) -> str | None:
        return self.buyer_trade_pubkey if party == "buyer" else self.seller_trade_pubkey

    def last_seen(self, party: str) -> int | None:
        return self.buyer_last_seen_inner_ts if party == "buyer" else self.seller_last_seen_inner_ts


_COLUMNS = ", ".join(SessionRow.__dataclass_fields__)


def _rows(cur: sqlite3.Cursor) -> list[SessionRow]:
    return [SessionRow(*r) for r in cur.fetchall()]


def live_sessions(store: Store) -> list[SessionRow]:
    return _rows(
        store.conn.execute(
            f"SELECT {_COLUMNS} FROM mediation_sessions WHERE state IN {LIVE_SQL} ORDER BY started_at, session_id"
        )
    )


def sessions_in_state(store: Store, state: SessionState) -> list[SessionRow]:
    return _rows(
        store.conn.execute(
            f"SELECT {_COLUMNS} FROM mediation_sessions WHERE state=? ORDER BY started_at, session_id",
            (state,),
        )
    )


def get_session(conn: sqlite3.Connection, session_id: str) -> SessionRow | None:
    rows = _rows(
        conn.execute(f"SELECT {_COLUMNS} FROM mediation_sessions WHERE session_id=?", (session_id,))
    )
    return rows[0] if rows else None


def dispute_of(conn: sqlite3.Connection, session_id: str) -> str | None:
    """The dispute a session belongs to, or None for an unknown session."""
    row = conn.execute(
        "SELECT dispute_id FROM mediation_sessions WHERE session_id=?", (session_id,)
    ).fetchone()
    return row[0] if row else None


def insert_session(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    conn.execute(
        f"INSERT INTO mediation_sessions ({names}) VALUES ({marks})", list(values.values())
    )


def update_session(conn: sqlite3.Connection, session_id: str, **columns: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in columns)
    conn.execute(
        f"UPDATE mediation_sessions SET {sets} WHERE session_id=?", [*columns.values(), session_id]
    )


def insert_message(conn: sqlite3.Connection, values: dict[str, Any]) -> bool:
    """INSERT OR IGNORE a chat row; False when (session_id, inner_event_id) is already stored."""
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    cur = conn.execute(
        f"INSERT OR IGNORE INTO mediation_messages ({names}) VALUES ({marks})",
        list(values.values()),
    )
    return cur.rowcount == 1


def insert_summary(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    names = ", ".join(values)
    conn.execute(
        f"INSERT INTO mediation_summaries ({names}) VALUES ({', '.join('?' * len(values))})",
        list(values.values()),
    )


def fresh_inbound_counts(conn: sqlite3.Connection, session_id: str) -> dict[str, int]:
    """Fresh (non-stale) inbound rows per party."""
    counts = {"buyer": 0, "seller": 0}
    for party, n in conn.execute(
        "SELECT party, COUNT(*) FROM mediation_messages WHERE session_id=? AND direction='inbound' AND stale=0 "
        "GROUP BY party",
        (session_id,),
    ):
        counts[party] = n
    return counts


def has_outbound_text(conn: sqlite3.Connection, session_id: str, party: str, text: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM mediation_messages WHERE session_id=? AND direction='outbound' AND party=? AND content=? "
            "LIMIT 1",
            (session_id, party, text),
        ).fetchone()
        is not None
    )


def has_fresh_kind14_from(conn: sqlite3.Connection, session_id: str, party: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM mediation_messages WHERE session_id=? AND direction='inbound' AND party=? AND stale=0 "
            "AND envelope='kind14' LIMIT 1",
            (session_id, party),
        ).fetchone()
        is not None
    )


def transcript_rows(conn: sqlite3.Connection, session_id: str, limit: int) -> list[dict[str, Any]]:
    """The last `limit` non-stale rows, published outbound and inbound, ascending by (inner ts, id)."""
    cur = conn.execute(
        "SELECT * FROM (SELECT id, direction, party, content, inner_event_created_at FROM mediation_messages "
        "WHERE session_id=? AND stale=0 AND (direction='inbound' OR published_at IS NOT NULL) "
        "ORDER BY inner_event_created_at DESC, id DESC LIMIT ?) ORDER BY inner_event_created_at, id",
        (session_id, limit),
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def full_transcript(conn: sqlite3.Connection, session_id: str) -> list[dict[str, Any]]:
    """Every message the parties sent and every question that went out, in the order they were
    written (their own created_at, then id): what a solver who takes over needs to read."""
    cur = conn.execute(
        "SELECT id, direction, party, content, inner_event_created_at FROM mediation_messages "
        "WHERE session_id=? AND (direction='inbound' OR published_at IS NOT NULL) "
        "ORDER BY inner_event_created_at, id",
        (session_id,),
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def unresolved_disputes_with_sessions(store: Store) -> dict[str, int]:
    """Disputes not resolved yet that had a session this round: id -> when its session started."""
    return dict(
        store.conn.execute(
            "SELECT d.dispute_id, MIN(s.started_at) FROM disputes d JOIN mediation_sessions s "
            "ON s.dispute_id=d.dispute_id AND s.started_at >= COALESCE(d.round_started_at, 0) "
            "WHERE d.lifecycle_state != 'resolved' GROUP BY d.dispute_id"
        ).fetchall()
    )


def unpublished_outbound(store: Store) -> list[dict[str, Any]]:
    """Outbound rows of live sessions that are not fully published yet, oldest first."""
    cur = store.conn.execute(
        "SELECT m.* FROM mediation_messages m JOIN mediation_sessions s ON s.session_id=m.session_id "
        f"WHERE m.direction='outbound' AND m.published_at IS NULL AND s.state IN {LIVE_SQL} ORDER BY m.id"
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def message_by_id(conn: sqlite3.Connection, message_id: int) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM mediation_messages WHERE id=?", (message_id,))
    row = cur.fetchone()
    return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None


def update_message(conn: sqlite3.Connection, message_id: int, **columns: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in columns)
    conn.execute(
        f"UPDATE mediation_messages SET {sets} WHERE id=?", [*columns.values(), message_id]
    )


def count_events(conn: sqlite3.Connection, session_id: str, kind: str) -> int:
    return conn.execute(
        "SELECT COUNT(*) FROM mediation_events WHERE session_id=? AND kind=?", (session_id, kind)
    ).fetchone()[0]


def count_dispute_events(conn: sqlite3.Connection, dispute_id: str, kind: str) -> int:
    """Dispute-scoped events of `kind` in this round of the dispute."""
    return conn.execute(
        f"SELECT COUNT(*) FROM mediation_events WHERE session_id IS NULL AND ({DISPUTE_EXPR}) = ? AND kind=? "
        f"AND occurred_at >= {ROUND_START}",
        (dispute_id, kind, dispute_id),
    ).fetchone()[0]


def eligible_dispute_candidates(
    store: Store, *, now: int, retry_interval: int
) -> list[dict[str, Any]]:
    """Disputes passing eligibility rules 2–6 (docs/mediation.md#eligibility), oldest event_timestamp first.

    Rule 1 (UUID id, buyer/seller initiator) is checked in Python by the caller. Only the current
    round counts: a reopened dispute is eligible again whatever its earlier rounds held.
    """
    this_round = "e.occurred_at >= COALESCE(d.round_started_at, 0)"
    # an attempt logged while the clock ran ahead must not hold retries back until it catches up
    started = (
        f"SELECT MAX(occurred_at) FROM mediation_events e WHERE e.session_id IS NULL "
        f"AND ({DISPUTE_EXPR.replace('payload_json', 'e.payload_json')}) = d.dispute_id "
        f"AND e.kind='start_attempt_started' AND {this_round} "
        f"AND e.occurred_at <= {int(now) + FUTURE_LIMIT_SECONDS}"
    )
    scoped = (
        f"SELECT 1 FROM mediation_events e WHERE e.session_id IS NULL "
        f"AND ({DISPUTE_EXPR.replace('payload_json', 'e.payload_json')}) = d.dispute_id AND {this_round} AND "
    )
    cur = store.conn.execute(
        f"SELECT d.dispute_id, d.initiator_role, d.lifecycle_state, d.event_timestamp, ({started}) AS last_start "
        "FROM disputes d WHERE d.lifecycle_state IN ('new','notified','taken','waiting') "
        "AND NOT EXISTS (SELECT 1 FROM mediation_sessions s WHERE s.dispute_id=d.dispute_id "
        "AND s.started_at >= COALESCE(d.round_started_at, 0)) "
        f"AND NOT EXISTS ({scoped} e.kind='escalation_recommended') "
        f"AND NOT EXISTS ({scoped} e.kind='start_attempt_stopped' AND (CASE WHEN typeof(e.payload_json)='text' "
        "AND json_valid(e.payload_json) THEN json_extract(e.payload_json,'$.stop_reason') END) "
        "IN ('taken_by_other_solver','not_initiated')) "
        "ORDER BY d.event_timestamp, d.dispute_id"
    )
    out = []
    for dispute_id, initiator, state, event_ts, last_start in cur.fetchall():
        if state in ("taken", "waiting") and last_start is None:
            continue  # taken by a human, never attempted by Serbero
        if last_start is not None and now - last_start < retry_interval:
            continue
        out.append(
            {
                "dispute_id": dispute_id,
                "initiator_role": initiator,
                "lifecycle_state": state,
                "event_timestamp": event_ts,
                "last_start": last_start,
            }
        )
    return out
