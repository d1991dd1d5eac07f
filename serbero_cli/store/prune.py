"""Deleting disputes resolved long ago, with every row that hangs off them.

A dispute qualifies when it is in state `resolved` now and its latest transition to `resolved`
happened before the cutoff. What hangs off a batch of disputes:

* `dispute_state_transitions`, `notifications`, `escalation_dispatches`, `mediation_summaries` and
  `mediation_sessions` by `dispute_id`;
* `mediation_messages` through their sessions;
* `mediation_events` through their sessions, and the dispute-scoped ones (no session) whose payload
  names the dispute, found through `DISPUTE_EXPR`, the expression of the partial index
  `idx_mediation_events_dispute`, so the lookup is an index search and a malformed payload cannot
  abort it;
* `reasoning_rationales` of those sessions, summaries and events that no surviving row refers to
  (one that survives but was bound to a deleted session is left unbound).

Children go before parents, so foreign keys hold at every statement. Ids travel as one JSON array
parameter (`json_each`), so a batch of 500 disputes is one bound value whatever SQLite's limit on
host parameters.
"""

from __future__ import annotations

import json
import sqlite3

from serbero_cli.store.db import Store
from serbero_cli.store.mediation import DISPUTE_EXPR

BATCH_SIZE = 500
# Report order: the dispute, then what hangs off it.
TABLES = (
    "disputes",
    "dispute_state_transitions",
    "notifications",
    "mediation_sessions",
    "mediation_messages",
    "mediation_summaries",
    "mediation_events",
    "reasoning_rationales",
    "escalation_dispatches",
)

_IDS = "SELECT value FROM json_each(:ids)"
_SESSIONS = f"SELECT session_id FROM mediation_sessions WHERE dispute_id IN ({_IDS})"
# With `IN (list)` the planner prefers the (session_id, kind) index and walks every session-less
# event; INDEXED BY holds it to the expression index (and fails loudly if that index were gone).
_EVENTS = (
    f"SELECT id FROM mediation_events WHERE session_id IN ({_SESSIONS}) "
    "UNION ALL SELECT id FROM mediation_events INDEXED BY idx_mediation_events_dispute "
    f"WHERE session_id IS NULL AND ({DISPUTE_EXPR}) IN ({_IDS})"
)
_SUMMARIES = f"SELECT id FROM mediation_summaries WHERE dispute_id IN ({_IDS}) OR session_id IN ({_SESSIONS})"
_DISPATCHES = (
    f"SELECT dispatch_id FROM escalation_dispatches WHERE dispute_id IN ({_IDS}) "
    f"OR session_id IN ({_SESSIONS}) OR handoff_event_id IN ({_EVENTS})"
)
_RATIONALE_CANDIDATES = (
    f"SELECT rationale_id FROM reasoning_rationales WHERE session_id IN ({_SESSIONS}) "
    f"UNION SELECT rationale_id FROM mediation_summaries WHERE id IN ({_SUMMARIES}) AND rationale_id IS NOT NULL "
    f"UNION SELECT rationale_id FROM mediation_events WHERE id IN ({_EVENTS}) AND rationale_id IS NOT NULL"
)
# A rationale stays while a row outside the batch still refers to it. `rationale_id` has no index
# on the event table, so these lists are built once per batch (one pass each), never per rationale.
_REFERENCED_ELSEWHERE = (
    f"SELECT rationale_id FROM mediation_summaries WHERE rationale_id IN ({{c}}) AND id NOT IN ({_SUMMARIES}) "
    f"UNION SELECT rationale_id FROM mediation_events WHERE rationale_id IN ({{c}}) AND id NOT IN ({_EVENTS})"
)
_REFERENCED_AT_ALL = (
    "SELECT rationale_id FROM mediation_summaries WHERE rationale_id IN ({c}) "
    "UNION SELECT rationale_id FROM mediation_events WHERE rationale_id IN ({c})"
)
_CANDIDATES = "SELECT value FROM json_each(:c)"

# (table, the rows of this batch) in delete order: children before parents.
_DELETE_ORDER = (
    ("escalation_dispatches", f"dispatch_id IN ({_DISPATCHES})"),
    ("mediation_summaries", f"id IN ({_SUMMARIES})"),
    ("mediation_messages", f"session_id IN ({_SESSIONS})"),
    ("mediation_events", f"id IN ({_EVENTS})"),
    ("reasoning_rationales", None),  # below: candidates nobody else refers to
    ("mediation_sessions", f"dispute_id IN ({_IDS})"),
    ("notifications", f"dispute_id IN ({_IDS})"),
    ("dispute_state_transitions", f"dispute_id IN ({_IDS})"),
    ("disputes", f"dispute_id IN ({_IDS})"),
)

_QUALIFIES = (
    "d.lifecycle_state = 'resolved' AND (SELECT MAX(t.transitioned_at) FROM dispute_state_transitions t "
    "WHERE t.dispute_id = d.dispute_id AND t.to_state = 'resolved') < :cutoff"
)


def resolved_before(store: Store, cutoff: int) -> list[str]:
    """Ids (sorted) of disputes in state resolved whose latest transition to resolved happened
    before `cutoff` (unix seconds). One pass over the resolved disputes."""
    rows = store.conn.execute(
        f"SELECT d.dispute_id FROM disputes d WHERE {_QUALIFIES} ORDER BY d.dispute_id",
        {"cutoff": cutoff},
    ).fetchall()
    return [r[0] for r in rows]


def still_resolved_before(
    conn: sqlite3.Connection, cutoff: int, dispute_ids: list[str]
) -> list[str]:
    """The subset of `dispute_ids` that still qualifies: read again inside the deleting transaction,
    since a dispute may have been reopened (or deleted) after the first pass."""
    rows = conn.execute(
        f"SELECT d.dispute_id FROM disputes d WHERE d.dispute_id IN ({_IDS}) AND {_QUALIFIES} "
        "ORDER BY d.dispute_id",
        {"ids": json.dumps(dispute_ids), "cutoff": cutoff},
    ).fetchall()
    return [r[0] for r in rows]


def count_batch(store: Store, dispute_ids: list[str]) -> dict[str, int]:
    """How many rows of each table deleting these disputes would remove (reads only)."""
    params = {"ids": json.dumps(dispute_ids)}
    params["c"] = json.dumps(
        [r[0] for r in store.conn.execute(_RATIONALE_CANDIDATES, params).fetchall()]
    )
    counts = {}
    for table, where in _DELETE_ORDER:
        if where is None:
            sql = (
                f"SELECT COUNT(*) FROM reasoning_rationales WHERE rationale_id IN ({_CANDIDATES}) "
                f"AND rationale_id NOT IN ({_REFERENCED_ELSEWHERE.format(c=_CANDIDATES)})"
            )
        else:
            sql = f"SELECT COUNT(*) FROM {table} WHERE {where}"
        counts[table] = store.conn.execute(sql, params).fetchone()[0]
    return {table: counts[table] for table in TABLES}


def delete_batch(conn: sqlite3.Connection, dispute_ids: list[str]) -> dict[str, int]:
    """Delete these disputes and what hangs off them; return rows deleted per table.

    Run it inside a write transaction: on any error the caller rolls the whole batch back.
    """
    params = {"ids": json.dumps(dispute_ids)}
    # Rationale candidates are read first: deleting summaries and events removes the links to them.
    candidates = {
        "c": json.dumps([r[0] for r in conn.execute(_RATIONALE_CANDIDATES, params).fetchall()])
    }
    counts = {}
    for table, where in _DELETE_ORDER:
        if where is None:
            cur = conn.execute(
                f"DELETE FROM reasoning_rationales WHERE rationale_id IN ({_CANDIDATES}) "
                f"AND rationale_id NOT IN ({_REFERENCED_AT_ALL.format(c=_CANDIDATES)})",
                candidates,
            )
        else:
            if table == "mediation_sessions":
                _unbind_surviving_rationales(conn, params)
            cur = conn.execute(f"DELETE FROM {table} WHERE {where}", params)
        counts[table] = cur.rowcount
    return {table: counts[table] for table in TABLES}


def _unbind_surviving_rationales(conn: sqlite3.Connection, params: dict[str, str]) -> None:
    # Rationale ids are content hashes: two sessions opened in one run with the same rationale text
    # share one row, bound to the first. If that session goes and the row stays (the other session
    # still refers to it), it is left unbound, as an opening rationale is before its session exists.
    conn.execute(
        f"UPDATE reasoning_rationales SET session_id = NULL WHERE session_id IN ({_SESSIONS})",
        params,
    )
