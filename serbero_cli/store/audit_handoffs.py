"""Queries of the escalation views (docs/operations.md#audit): handoffs, dispatch rows, `--check` data.

A handoff's state is its dispatch row's status, else the latest dispatch-once audit row that
names it (parse_failed, superseded, unroutable), else `pending`. The audit lookup uses
`handoff_ref()`, the expression of the index `idx_mediation_events_handoff_audit`: guarded like
DISPUTE_EXPR, so a malformed payload never aborts the view.
"""

from __future__ import annotations

from typing import Any

from serbero_cli.store.audit_queries import DISPATCH_COLUMNS, Source
from serbero_cli.store.mediation import handoff_ref

HANDOFF_STATES = (
    "pending",
    "sending",
    "dispatched",
    "send_failed",
    "superseded",
    "unroutable",
    "parse_failed",
)
DISPATCH_STATUSES = ("sending", "dispatched", "send_failed")
STUCK_STATES = ("superseded", "unroutable", "sending")
_GUARD = "typeof(h.payload_json) = 'text' AND json_valid(h.payload_json)"
_TABLES = ("mediation_events", "escalation_dispatches")
_D_COLUMNS = ", ".join("d." + c.strip() for c in DISPATCH_COLUMNS.split(","))

# One row per handoff: its state, with the trigger, the dispatch columns and the handoff row's session.
# `+h.id` strips the column's INTEGER affinity: compared with a plain `h.id`, SQLite applies that
# affinity to the expression and can no longer use the (affinity-less) expression index.
HANDOFF_SQL = f"""
SELECT h.id AS handoff_event_id, h.occurred_at, h.session_id, h.prompt_bundle_id, h.policy_hash,
  CASE WHEN {_GUARD} THEN json_extract(h.payload_json, '$.dispute_id') END AS dispute_id,
  CASE WHEN {_GUARD} THEN json_extract(h.payload_json, '$.trigger') END AS trigger,
  COALESCE(d.status,
    (SELECT CASE a.kind WHEN 'escalation_dispatch_parse_failed' THEN 'parse_failed'
                        WHEN 'escalation_superseded' THEN 'superseded' ELSE 'unroutable' END
       FROM mediation_events a
      WHERE ({handoff_ref("a")}) = +h.id
      ORDER BY a.id DESC LIMIT 1),
    'pending') AS state,
  d.dispatch_id, d.route, d.target_solver, d.attempts, d.created_at AS claimed_at, d.finished_at,
  d.finished_at - h.occurred_at AS latency_s, h.payload_json
FROM mediation_events h LEFT JOIN escalation_dispatches d ON d.handoff_event_id = h.id
WHERE h.kind = 'handoff_prepared'"""


def list_handoffs(
    src: Source, *, state: str | None, stuck_before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest handoff first. `stuck_before`: also keep `pending` handoffs older than this time."""
    outer: list[str] = []
    params: list[object] = []
    if state is not None:
        outer.append("state = ?")
        params.append(state)
    if stuck_before is not None:
        outer.append(
            f"(state IN ({','.join('?' * len(STUCK_STATES))}) OR (state = 'pending' AND occurred_at < ?))"
        )
        params.extend((*STUCK_STATES, stuck_before))
    if not outer:
        return src.rows(HANDOFF_SQL + " ORDER BY h.id DESC LIMIT ?", (limit,), tables=_TABLES)
    # MATERIALIZED: each handoff's state is computed once, not once per filter term that names it.
    return src.rows(
        f"WITH handoff AS MATERIALIZED ({HANDOFF_SQL}) SELECT * FROM handoff WHERE {' AND '.join(outer)} "
        "ORDER BY handoff_event_id DESC LIMIT ?",
        (*params, limit),
        tables=_TABLES,
    )


def count_handoffs_by_state(src: Source, overdue_before: int) -> list[dict[str, Any]]:
    """Per state: how many handoffs, the oldest one's time, and how many are older than `overdue_before`."""
    return src.rows(
        f"WITH handoff AS MATERIALIZED ({HANDOFF_SQL}) SELECT state, COUNT(*) AS n, "
        "MIN(occurred_at) AS oldest_at, SUM(occurred_at < ?) AS older FROM handoff GROUP BY state",
        (overdue_before,),
        tables=_TABLES,
    )


def list_dispatches(
    src: Source, *, status: str | None, dispute_id: str | None, since: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest claim first: every column, the run time and the latency from the handoff."""
    clauses = [
        (c, v)
        for c, v in (
            ("d.status = ?", status),
            ("d.dispute_id = ?", dispute_id),
            ("d.created_at >= ?", since),
        )
        if v is not None
    ]
    where = (" WHERE " + " AND ".join(c for c, _ in clauses)) if clauses else ""
    return src.rows(
        f"SELECT {_D_COLUMNS}, d.finished_at - d.created_at AS duration_s, d.finished_at - h.occurred_at AS latency_s "
        f"FROM escalation_dispatches d LEFT JOIN mediation_events h ON h.id = d.handoff_event_id{where} "
        "ORDER BY d.created_at DESC, d.rowid DESC LIMIT ?",
        (*[v for _, v in clauses], limit),
        tables=_TABLES,
    )


def get_dispatch(src: Source, dispatch_id: str) -> dict[str, Any] | None:
    return src.one(
        f"SELECT {_D_COLUMNS}, d.finished_at - d.created_at AS duration_s, d.finished_at - h.occurred_at AS latency_s "
        "FROM escalation_dispatches d LEFT JOIN mediation_events h ON h.id = d.handoff_event_id "
        "WHERE d.dispatch_id = ?",
        (dispatch_id,),
        tables=_TABLES,
    )


def dispatch_notifications(
    src: Source, dispatch: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """The `notifications` records of one dispatch's sends (`audit dispatches --id`)."""
    from serbero_cli.store.audit_queries import NOTIFICATION_COLUMNS

    return src.rows(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications "
        "WHERE dispute_id = ? AND notif_type = 'escalation_handoff' AND created_at BETWEEN ? AND ? "
        "AND instr(',' || ? || ',', ',' || solver_pubkey || ',') > 0 ORDER BY created_at, id LIMIT ?",
        (
            dispatch["dispute_id"],
            dispatch["created_at"],
            dispatch["finished_at"] or dispatch["dispatched_at"],
            dispatch["target_solver"],
            limit,
        ),
        tables=("notifications",),
    )


# --- `audit dispatches --check` --------------------------------------------------------------


def terminal_dispatch_ids(src: Source) -> list[dict[str, Any]]:
    return src.rows(
        "SELECT dispatch_id, dispute_id, status FROM escalation_dispatches "
        "WHERE status IN ('dispatched', 'send_failed')",
        tables=_TABLES,
    )


def dispatched_audit_rows(src: Source) -> list[dict[str, Any]]:
    """Every `escalation_dispatched` row with the dispatch id its payload names (NULL if unreadable)."""
    return src.rows(
        "SELECT id, CASE WHEN typeof(payload_json) = 'text' AND json_valid(payload_json) "
        "THEN json_extract(payload_json, '$.dispatch_id') END AS dispatch_id FROM mediation_events "
        "WHERE kind = 'escalation_dispatched'",
        tables=_TABLES,
    )


def duplicate_handoff_dispatches(src: Source) -> list[dict[str, Any]]:
    return src.rows(
        "SELECT handoff_event_id, COUNT(*) AS n FROM escalation_dispatches "
        "GROUP BY handoff_event_id HAVING COUNT(*) > 1",
        tables=_TABLES,
    )


def stale_sending(src: Source, before: int) -> list[dict[str, Any]]:
    return src.rows(
        "SELECT dispatch_id, dispute_id, handoff_event_id, dispatched_at, attempts "
        "FROM escalation_dispatches WHERE status = 'sending' AND dispatched_at < ?",
        (before,),
        tables=_TABLES,
    )


def latencies_since(src: Source, since: int) -> list[int]:
    """`finished_at - occurred_at` of every dispatch row finished at or after `since`."""
    rows = src.rows(
        "SELECT d.finished_at - h.occurred_at AS latency_s FROM escalation_dispatches d "
        "JOIN mediation_events h ON h.id = d.handoff_event_id WHERE d.finished_at >= ?",
        (since,),
        tables=_TABLES,
    )
    return [r["latency_s"] for r in rows if r["latency_s"] is not None]
