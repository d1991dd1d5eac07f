"""All SQL of `dispatch-once` (docs/delivery.md#dispatch): candidate scans, audit rows, claims, finalize.

Handoff payloads share `mediation_events` with audit rows and may be malformed; `json_extract`
raises on malformed JSON and SQLite does not promise `AND` evaluation order, so every
`json_extract` here sits inside a CASE whose WHEN checks kind, type and validity.
Each writer is one short `BEGIN IMMEDIATE` that re-checks its preconditions, so two processes
(or a stale view of the database) never record an outcome twice.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from serbero_cli.domain.dispatches import DispatchStatus, Route
from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.notifications import Envelope, NotificationType
from serbero_cli.store import notifications
from serbero_cli.store.db import Store
from serbero_cli.store.mediation import handoff_ref, insert_event

# run.py catches this around lookups (a failed dispute lookup writes nothing and is retried next
# run) without importing sqlite3 itself.
DbError = sqlite3.Error

HANDOFF_KIND = "handoff_prepared"
DISPATCHED = "escalation_dispatched"
SUPERSEDED = "escalation_superseded"
UNROUTABLE = "escalation_dispatch_unroutable"
PARSE_FAILED = "escalation_dispatch_parse_failed"
PAGE_SIZE = 500
MAX_ATTEMPTS = 3


def _handoff_ref(alias: str, kinds: tuple[str, ...]) -> str:
    return f"({handoff_ref(alias, kinds)})"


@dataclass(frozen=True)
class HandoffRow:
    """A `handoff_prepared` row without its payload (loaded one at a time: it may be up to 1 MiB or more)."""

    id: int
    session_id: str | None
    prompt_bundle_id: str | None
    policy_hash: str | None
    occurred_at: int


@dataclass(frozen=True)
class DispatchRow:
    """An `escalation_dispatches` row (docs/delivery.md#claim-send-finalize)."""

    dispatch_id: str
    dispute_id: str
    session_id: str | None
    handoff_event_id: int
    target_solver: str
    dispatched_at: int
    created_at: int
    status: DispatchStatus
    fallback_broadcast: int
    route: Route | None
    attempts: int
    finished_at: int | None
    events_json: str | None = None  # the signed events of this delivery, stored at claim

    @property
    def recipients(self) -> list[str]:
        return [k for k in self.target_solver.split(",") if k]


_DISPATCH_COLS = (
    "dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, "
    "created_at, status, fallback_broadcast, route, attempts, finished_at, events_json"
)
_HANDOFF_COLS = "h.id, h.session_id, h.prompt_bundle_id, h.policy_hash, h.occurred_at"


def fresh_handoffs(store: Store, *, after_id: int = 0, limit: int = PAGE_SIZE) -> list[HandoffRow]:
    """Handoffs with id > after_id, no dispatch row in any status and no parse-failed row, by id."""
    rows = store.conn.execute(
        f"SELECT {_HANDOFF_COLS} FROM mediation_events h "
        "WHERE h.kind = ? AND h.id > ? "
        "AND NOT EXISTS (SELECT 1 FROM escalation_dispatches d WHERE d.handoff_event_id = h.id) "
        f"AND h.id NOT IN (SELECT hid FROM (SELECT {_handoff_ref('a', (PARSE_FAILED,))} AS hid "
        "  FROM mediation_events a WHERE a.kind = ?) WHERE hid IS NOT NULL) "
        "ORDER BY h.id LIMIT ?",
        (HANDOFF_KIND, after_id, PARSE_FAILED, limit),
    ).fetchall()
    return [HandoffRow(*r) for r in rows]


def iter_fresh_pages(store: Store, *, page_size: int = PAGE_SIZE) -> Iterator[list[HandoffRow]]:
    """Page through fresh handoffs by key (`id > last`), never with one overall LIMIT."""
    last = 0
    while True:
        page = fresh_handoffs(store, after_id=last, limit=page_size)
        if not page:
            return
        yield page
        last = page[-1].id


def handoff_payload(store: Store, handoff_id: int) -> Any:
    """The raw `payload_json` value: str for TEXT (invalid UTF-8 as surrogate escapes), bytes for a BLOB."""
    row = store.conn.execute(
        "SELECT typeof(payload_json), CASE WHEN typeof(payload_json) IN ('text', 'blob') "
        "THEN CAST(payload_json AS BLOB) ELSE payload_json END FROM mediation_events WHERE id = ?",
        (handoff_id,),
    ).fetchone()
    if row is None:
        return None
    kind, value = row
    if kind == "text":
        # Python's sqlite3 raises on invalid UTF-8 in TEXT; read bytes and let the parser reject it.
        return bytes(value).decode("utf-8", "surrogateescape")
    return bytes(value) if kind == "blob" else value


def sending_dispatches(store: Store) -> list[tuple[DispatchRow, HandoffRow]]:
    """Every `sending` dispatch row with its handoff row, by handoff id (stale and in flight alike)."""
    rows = store.conn.execute(
        f"SELECT {', '.join('d.' + c.strip() for c in _DISPATCH_COLS.split(','))}, {_HANDOFF_COLS} "
        "FROM escalation_dispatches d JOIN mediation_events h ON h.id = d.handoff_event_id "
        "WHERE d.status = 'sending' ORDER BY d.handoff_event_id",
    ).fetchall()
    return [(DispatchRow(*r[:13]), HandoffRow(*r[13:])) for r in rows]


def dispatch_for_handoff(store: Store | sqlite3.Connection, handoff_id: int) -> DispatchRow | None:
    """The dispatch row of a handoff, or None. Raises on a missing table (never reads as "none")."""
    conn = store.conn if isinstance(store, Store) else store
    row = conn.execute(
        f"SELECT {_DISPATCH_COLS} FROM escalation_dispatches WHERE handoff_event_id = ?",
        (handoff_id,),
    ).fetchone()
    return DispatchRow(*row) if row else None


def audit_kinds_for(store: Store, handoff_ids: Iterable[int]) -> dict[int, set[str]]:
    """Superseded/unroutable audit kinds already on file for these handoff ids (one scan per page)."""
    ids = set(handoff_ids)
    if not ids:
        return {}
    kinds = (SUPERSEDED, UNROUTABLE)
    rows = store.conn.execute(
        f"SELECT kind, hid FROM (SELECT a.kind AS kind, {_handoff_ref('a', kinds)} AS hid "
        "FROM mediation_events a WHERE a.kind IN (?, ?)) WHERE hid BETWEEN ? AND ?",
        (*kinds, min(ids), max(ids)),
    ).fetchall()
    found: dict[int, set[str]] = {}
    for kind, hid in rows:
        if hid in ids:
            found.setdefault(hid, set()).add(kind)
    return found


def has_audit(conn: sqlite3.Connection, kind: str, handoff_id: int) -> bool:
    """True when an audit row of `kind` names this handoff id (as a JSON integer)."""
    return (
        conn.execute(
            f"SELECT 1 FROM mediation_events a WHERE a.kind = ? AND {_handoff_ref('a', (kind,))} = ? LIMIT 1",
            (kind, handoff_id),
        ).fetchone()
        is not None
    )


def record_parse_failed(
    store: Store, handoff: HandoffRow, *, dispute_id: str, reason: str, detail: str, now: int
) -> bool:
    """Write the parse-failed row unless the handoff is claimed or already recorded. True if written."""
    with store.immediate() as conn:
        if dispatch_for_handoff(conn, handoff.id) or has_audit(conn, PARSE_FAILED, handoff.id):
            return False
        _audit(
            conn,
            PARSE_FAILED,
            handoff,
            now,
            {
                "detail": detail,
                "dispute_id": dispute_id,
                "handoff_event_id": int(handoff.id),
                "reason": reason,
            },
        )
    return True


def record_superseded(store: Store, handoff: HandoffRow, *, dispute_id: str, now: int) -> bool:
    """Write `escalation_superseded` once per handoff, if still unclaimed and the dispute still resolved."""
    with store.immediate() as conn:
        if (
            dispatch_for_handoff(conn, handoff.id)
            or has_audit(conn, SUPERSEDED, handoff.id)
            or _lifecycle(conn, dispute_id) != LifecycleState.RESOLVED
        ):
            return False
        _audit(
            conn,
            SUPERSEDED,
            handoff,
            now,
            {
                "dispute_id": dispute_id,
                "handoff_event_id": int(handoff.id),
                "reason": "dispute_already_resolved",
            },
        )
    return True


def record_unroutable(
    store: Store, handoff: HandoffRow, *, dispute_id: str, configured_solver_count: int, now: int
) -> bool:
    """Write `escalation_dispatch_unroutable` once per handoff, if still unclaimed and its dispute unresolved."""
    with store.immediate() as conn:
        state = _lifecycle(conn, dispute_id)
        if (
            dispatch_for_handoff(conn, handoff.id)
            or has_audit(conn, UNROUTABLE, handoff.id)
            or state is None
            or state == LifecycleState.RESOLVED
        ):
            return False
        # `fallback_to_all_solvers` is true only when routing fell back to every solver: never here.
        _audit(
            conn,
            UNROUTABLE,
            handoff,
            now,
            {
                "configured_solver_count": int(configured_solver_count),
                "dispute_id": dispute_id,
                "fallback_to_all_solvers": False,
                "handoff_event_id": int(handoff.id),
            },
        )
    return True


def claim_handoff(
    store: Store,
    handoff: HandoffRow,
    *,
    dispute_id: str,
    route: Route,
    recipients: list[str],
    fallback_broadcast: bool,
    now: int,
    events_json: str | None = None,
) -> tuple[str | None, str]:
    """Insert the `sending` row with the delivery's signed events. Return (dispatch_id, "claimed")
    or (None, why not). A concurrent claim of the same handoff loses on the UNIQUE index on
    handoff_event_id.
    """
    dispatch_id = str(uuid.uuid4())
    try:
        with store.immediate() as conn:
            if has_audit(conn, PARSE_FAILED, handoff.id):
                return None, "parse failure on file"
            state = _lifecycle(conn, dispute_id)
            if state is None or state == LifecycleState.RESOLVED:
                return None, "dispute changed since the scan"
            conn.execute(
                f"INSERT INTO escalation_dispatches ({_DISPATCH_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    dispatch_id,
                    dispute_id,
                    handoff.session_id,
                    handoff.id,
                    ",".join(recipients),
                    now,
                    now,
                    DispatchStatus.SENDING,
                    1 if fallback_broadcast else 0,
                    route,
                    1,
                    None,
                    events_json,
                ),
            )
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" not in str(exc):
            raise
        return None, "claimed by another run"
    return dispatch_id, "claimed"


def reclaim_dispatch(
    store: Store, dispatch_id: str, *, seen_attempts: int, now: int, events_json: str | None = None
) -> bool:
    """Compare-and-set: attempts + 1 and a new dispatched_at, only if nobody else moved the row.
    A row claimed before events were stored gets them now (`events_json`)."""
    with store.immediate() as conn:
        cur = conn.execute(
            "UPDATE escalation_dispatches SET attempts = attempts + 1, dispatched_at = ?, "
            "events_json = COALESCE(events_json, ?) WHERE dispatch_id = ? AND status = 'sending' AND attempts = ?",
            (now, events_json, dispatch_id, seen_attempts),
        )
        return cur.rowcount == 1


def finalize_dispatch(
    store: Store, dispatch: DispatchRow, handoff: HandoffRow, *, status: DispatchStatus, now: int
) -> bool:
    """The terminal status plus the `escalation_dispatched` row, in one transaction
    (docs/delivery.md#claim-send-finalize).

    `dispatch.attempts` must be the attempt this process owns; False when the row moved on.
    """
    with store.immediate() as conn:
        cur = conn.execute(
            "UPDATE escalation_dispatches SET status = ?, finished_at = ? "
            "WHERE dispatch_id = ? AND status = 'sending' AND attempts = ?",
            (status, now, dispatch.dispatch_id, dispatch.attempts),
        )
        if cur.rowcount != 1:
            return False
        _audit(
            conn,
            DISPATCHED,
            handoff,
            now,
            {
                "dispatch_id": dispatch.dispatch_id,
                "dispute_id": dispatch.dispute_id,
                "fallback_broadcast": bool(dispatch.fallback_broadcast),
                "handoff_event_id": int(handoff.id),
                "status": status,
                "target_solver": dispatch.target_solver,
            },
        )
    return True


def record_send(
    store: Store,
    *,
    dispute_id: str,
    solver_pubkey: str,
    sent: bool,
    attempts: int,
    body: str,
    created_at: int,
    relays_accepted: list[str],
    error_message: str | None,
    notif_type: NotificationType = NotificationType.ESCALATION_HANDOFF,
    envelope: Envelope = Envelope.NIP17,
    event_id: str | None = None,
) -> None:
    """One notification record per recipient send, per envelope (never claimed, never retried)."""
    with store.immediate() as conn:
        notifications.insert_send_record(
            conn,
            dispute_id=dispute_id,
            solver_pubkey=solver_pubkey,
            notif_type=notif_type,
            sent=sent,
            attempts=attempts,
            body=body,
            created_at=created_at,
            relays_accepted=relays_accepted,
            error_message=error_message,
            envelope=envelope,
            event_id=event_id,
        )


def schema_pending(store: Store) -> list[str]:
    """Migrations not yet applied (a dry run refuses an unmigrated database)."""
    from serbero_cli.store import migrations

    return migrations.pending(store.conn)


def _lifecycle(conn: sqlite3.Connection, dispute_id: str) -> LifecycleState | None:
    row = conn.execute(
        "SELECT lifecycle_state FROM disputes WHERE dispute_id = ?", (dispute_id,)
    ).fetchone()
    return row[0] if row else None


def _audit(
    conn: sqlite3.Connection, kind: str, handoff: HandoffRow, now: int, payload: dict[str, Any]
) -> None:
    # session_id and the bundle pins come from the handoff ROW, not from its payload
    # (docs/delivery.md#dispatch-audit-rows).
    insert_event(
        conn,
        kind,
        payload,
        now=now,
        session_id=handoff.session_id,
        bundle=(handoff.prompt_bundle_id, handoff.policy_hash),
    )
