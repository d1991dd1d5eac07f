"""One `run_*()` per audit view: check the options, open the database read-only, query, and
return an `AuditResult`. Nothing here prints or writes; `cli/audit.py` renders the result.

Option values are checked before the database is opened, so a typo answers at once (exit 2).
"""

from __future__ import annotations

from typing import Any

from serbero_cli.audit.attention import attention
from serbero_cli.audit.health import phase_runs, read_health
from serbero_cli.audit.result import AuditResult, cut, sql_limit
from serbero_cli.audit.text import parse_json, parse_object
from serbero_cli.domain.notifications import NotificationType
from serbero_cli.domain.sessions import LIVE_STATES
from serbero_cli.errors import UsageError
from serbero_cli.store import audit_handoffs as hq
from serbero_cli.store import audit_queries as q
from serbero_cli.store.audit_queries import AuditSettings, Source, names, open_source
from serbero_cli.typed_input import since_cutoff

# Large enough for any real listing, small enough that LIMIT n + 1 stays a 64-bit integer.
MAX_LIMIT = 1_000_000_000
# Values of `notifications.notif_type` and `mediation_events.kind` this code writes.
NOTIFICATION_TYPES: tuple[NotificationType, ...] = tuple(NotificationType)
EVENT_KINDS = (
    "start_attempt_started",
    "start_attempt_stopped",
    "reasoning_verdict",
    "reasoning_call_failed",
    "take_dispute_issued",
    "session_opened",
    "classification_produced",
    "outbound_sent",
    "summary_generated",
    "escalation_recommended",
    "handoff_prepared",
    "policy_bundle_changed",
    "auth_retry_attempt",
    "auth_retry_recovered",
    "auth_retry_terminated",
    "superseded_by_human",
    "session_closed",
    "resolved_externally_reported",
    "escalation_dispatched",
    "escalation_superseded",
    "escalation_dispatch_unroutable",
    "escalation_dispatch_parse_failed",
)
HANDOFF_COLUMNS = (
    "handoff_event_id",
    "occurred_at",
    "dispute_id",
    "session_id",
    "trigger",
    "state",
    "stuck",
    "dispatch_id",
    "route",
    "target_solver",
    "attempts",
    "claimed_at",
    "finished_at",
    "latency_s",
    "slow",
    "prompt_bundle_id",
    "policy_hash",
    "payload_json",
)
EVENT_COLUMNS = (
    "id",
    "occurred_at",
    "kind",
    "session_id",
    "dispute_id",
    "rationale_id",
    "prompt_bundle_id",
    "policy_hash",
    "payload_json",
    "payload",
)


def choose(option: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """`value` if it is one of `allowed` (or None); UsageError naming the choices otherwise."""
    if value is not None and value not in allowed:
        raise UsageError(f"{option}: {value!r} is not one of {', '.join(allowed)}")
    return value


def check_limit(limit: int) -> int:
    """`limit` if it is 0 (all) up to MAX_LIMIT; UsageError otherwise."""
    if limit < 0 or limit > MAX_LIMIT:
        raise UsageError(f"--limit: use a number of rows from 1 to {MAX_LIMIT}, or 0 for all")
    return limit


def choose_on_file(
    src: Source, option: str, value: str | None, known: tuple[str, ...], table: str, column: str
) -> str | None:
    """`value` if it is known, or found in `table.column` (a newer Serbero may write new values);
    UsageError listing the known values otherwise."""
    if value is None or value in known:
        return value
    if q.value_on_file(src, table, column, value):
        return value
    raise UsageError(f"{option}: {value!r} is not one of {', '.join(known)}")


def run_dashboard(settings: AuditSettings, *, now: int) -> AuditResult:
    """What needs a person (attention), counts per state, last phase runs and the schema version."""
    from serbero_cli.store.migrations import MIGRATIONS

    with open_source(settings) as src:
        disputes = _zero_filled(q.LIFECYCLE_STATES, q.count_disputes_by_state(src))
        notifications = _zero_filled(q.NOTIFICATION_OUTCOMES, q.count_notifications_by_outcome(src))
        sessions = _zero_filled(q.WRITTEN_SESSION_STATES, q.count_sessions_by_state(src))
        handoffs, oldest_pending, overdue = _handoff_counts(src, now)
        last_runs = phase_runs(q.last_runs(src))
        facts = read_health(src, now, handoffs=handoffs, runs=last_runs)
        auth = q.solver_auth(src)
    document: dict[str, Any] = {
        "db_path": str(settings.db_path),
        "schema_version": src.schema_version,
        "schema_expected": len(MIGRATIONS),
        "attention": [finding.to_dict() for finding in attention(facts)],
        "features": {
            "mediation": settings.mediation_enabled,
            "escalation": settings.escalation_enabled,
        },
        "thresholds": {
            "max_attempts": settings.max_attempts,
            "dispatch_interval_seconds": settings.dispatch_interval_seconds,
            "sending_stale_seconds": settings.sending_stale_seconds,
            "renotification_seconds": settings.renotification_seconds,
            "from_config": settings.config_path is not None,
        },
        "untaken": {
            "total": facts.untaken_total,
            "overdue": facts.untaken_overdue,
            "oldest_overdue_at": facts.untaken_oldest_at,
        },
        "disputes": disputes,
        "disputes_total": sum(disputes.values()),
        "notifications": notifications,
        "sessions": sessions,
        "sessions_live": sum(sessions.get(s, 0) for s in LIVE_STATES),
        "handoffs": handoffs,
        "handoffs_oldest_pending_at": oldest_pending,
        "handoffs_overdue": overdue,
        "last_runs": last_runs,
        "solver_auth": auth,
    }
    rows = [
        {"section": section, "name": name, "value": value}
        for section in ("disputes", "notifications", "sessions", "handoffs")
        for name, value in document[section].items()
    ]
    rows += [
        {"section": "last_run", "name": phase, "value": None if run is None else run["exit_code"]}
        for phase, run in last_runs.items()
    ]
    rows.append({"section": "schema", "name": "version", "value": src.schema_version})
    rows += [
        {
            "section": "attention",
            "name": a["kind"] + (f":{a['phase']}" if a["phase"] else ""),
            "value": a["count"],
        }
        for a in document["attention"]
    ]
    return AuditResult(
        "dashboard", now, rows=rows, columns=("section", "name", "value"), document=document
    )


def run_disputes(
    settings: AuditSettings,
    *,
    now: int,
    state: str | None = None,
    since: str | None = None,
    limit: int = 50,
) -> AuditResult:
    """Newest first; `--state`, `--since` filter."""
    choose("--state", state, q.LIFECYCLE_STATES)
    check_limit(limit)
    cutoff = since_cutoff(since, now)
    with open_source(settings) as src:
        rows, more = cut(
            q.list_disputes(src, state=state, since=cutoff, limit=sql_limit(limit)), limit
        )
    return AuditResult(
        "disputes",
        now,
        rows=rows,
        columns=names(q.DISPUTE_COLUMNS),
        limit=limit,
        truncated=more,
        document={"filters": {"state": state, "since": cutoff}},
    )


def run_notifications(
    settings: AuditSettings,
    *,
    now: int,
    status: str | None = None,
    notif_type: str | None = None,
    dispute: str | None = None,
    since: str | None = None,
    limit: int = 50,
) -> AuditResult:
    """Newest first; `failed_retrying`/`failed_final` split `failed` as the outbox does
    (docs/delivery.md#outbox)."""
    choose("--status", status, q.NOTIFICATION_STATUS_FILTERS)
    check_limit(limit)
    cutoff = since_cutoff(since, now)
    with open_source(settings) as src:
        choose_on_file(src, "--type", notif_type, NOTIFICATION_TYPES, "notifications", "notif_type")
        dispute_id = src.resolve("dispute", dispute) if dispute is not None else None
        found = q.list_notifications(
            src,
            status=status,
            notif_type=notif_type,
            dispute_id=dispute_id,
            since=cutoff,
            limit=sql_limit(limit),
        )
    rows, more = cut([_notification(r) for r in found], limit)
    return AuditResult(
        "notifications",
        now,
        rows=rows,
        columns=(*names(q.NOTIFICATION_COLUMNS), "outcome"),
        limit=limit,
        truncated=more,
        document={
            "filters": {
                "status": status,
                "type": notif_type,
                "dispute_id": dispute_id,
                "since": cutoff,
            },
            "max_attempts": settings.max_attempts,
        },
    )


def run_sessions(
    settings: AuditSettings,
    *,
    now: int,
    state: str | None = None,
    since: str | None = None,
    limit: int = 50,
) -> AuditResult:
    """`--state live` selects the three live states."""
    choose("--state", state, (*q.SESSION_STATES, "live"))
    check_limit(limit)
    states = LIVE_STATES if state == "live" else ((state,) if state else None)
    cutoff = since_cutoff(since, now)
    with open_source(settings) as src:
        rows, more = cut(
            q.list_sessions(src, states=states, since=cutoff, limit=sql_limit(limit)), limit
        )
    return AuditResult(
        "sessions",
        now,
        rows=rows,
        columns=names(q.SESSION_COLUMNS),
        limit=limit,
        truncated=more,
        document={"filters": {"state": state, "since": cutoff}},
    )


def run_transcript(
    settings: AuditSettings, *, now: int, session: str, limit: int = 50
) -> AuditResult:
    """The newest `limit` messages of a session, shown oldest first."""
    check_limit(limit)
    with open_source(settings) as src:
        session_id = src.resolve("session", session)
        info = q.get_session(src, session_id)
        rows, more = cut(q.transcript(src, session_id, sql_limit(limit)), limit)
    rows.reverse()
    return AuditResult(
        "transcript",
        now,
        rows=rows,
        columns=names(q.MESSAGE_COLUMNS),
        limit=limit,
        truncated=more,
        document={"session": info},
    )


def run_events(
    settings: AuditSettings,
    *,
    now: int,
    kind: str | None = None,
    session: str | None = None,
    dispute: str | None = None,
    limit: int = 50,
) -> AuditResult:
    """Newest first; the dispute filter finds dispute-scoped events and those of its sessions."""
    check_limit(limit)
    with open_source(settings) as src:
        choose_on_file(src, "--kind", kind, EVENT_KINDS, "mediation_events", "kind")
        session_id = src.resolve("session", session) if session is not None else None
        dispute_id = src.resolve("dispute", dispute) if dispute is not None else None
        found = q.list_events(
            src, kind=kind, session_id=session_id, dispute_id=dispute_id, limit=sql_limit(limit)
        )
    rows, more = cut([{**r, "payload": parse_object(r["payload_json"])} for r in found], limit)
    return AuditResult(
        "events",
        now,
        rows=[{k: r[k] for k in EVENT_COLUMNS} for r in rows],
        columns=EVENT_COLUMNS,
        limit=limit,
        truncated=more,
        document={"filters": {"kind": kind, "session_id": session_id, "dispute_id": dispute_id}},
    )


def run_handoffs(
    settings: AuditSettings,
    *,
    now: int,
    state: str | None = None,
    stuck: bool = False,
    limit: int = 50,
) -> AuditResult:
    """`--stuck` = superseded, unroutable, sending, or pending past 2× the interval."""
    choose("--state", state, hq.HANDOFF_STATES)
    check_limit(limit)
    overdue_before = now - 2 * settings.dispatch_interval_seconds
    with open_source(settings) as src:
        found = hq.list_handoffs(
            src, state=state, stuck_before=overdue_before if stuck else None, limit=sql_limit(limit)
        )
    rows, more = cut([_handoff(r, settings, overdue_before) for r in found], limit)
    return AuditResult(
        "handoffs",
        now,
        rows=rows,
        columns=HANDOFF_COLUMNS,
        limit=limit,
        truncated=more,
        document={
            "filters": {"state": state, "stuck": stuck},
            "dispatch_interval_seconds": settings.dispatch_interval_seconds,
        },
    )


def run_dispatches(
    settings: AuditSettings,
    *,
    now: int,
    status: str | None = None,
    dispute: str | None = None,
    since: str | None = None,
    limit: int = 50,
) -> AuditResult:
    """Newest claim first: every column, run time, latency, `slow` flag."""
    choose("--status", status, hq.DISPATCH_STATUSES)
    check_limit(limit)
    cutoff = since_cutoff(since, now)
    with open_source(settings) as src:
        dispute_id = src.resolve("dispute", dispute) if dispute is not None else None
        found = hq.list_dispatches(
            src, status=status, dispute_id=dispute_id, since=cutoff, limit=sql_limit(limit)
        )
    rows, more = cut([_dispatch(r, settings) for r in found], limit)
    return AuditResult(
        "dispatches",
        now,
        rows=rows,
        columns=_DISPATCH_ROW_COLUMNS,
        limit=limit,
        truncated=more,
        document={"filters": {"status": status, "dispute_id": dispute_id, "since": cutoff}},
    )


def run_dispatch(
    settings: AuditSettings, *, now: int, dispatch: str, limit: int = 50
) -> AuditResult:
    """`audit dispatches --id X`: one dispatch row and the notification records of its sends."""
    check_limit(limit)
    with open_source(settings) as src:
        dispatch_id = src.resolve("dispatch", dispatch)
        row = hq.get_dispatch(src, dispatch_id)
        if row is None:  # resolve() found it a moment ago: pruned since
            raise UsageError(f"dispatch {dispatch_id} is no longer on file")
        found = hq.dispatch_notifications(src, row, sql_limit(limit))
    rows, more = cut([_notification(r) for r in found], limit)
    return AuditResult(
        "dispatch",
        now,
        rows=rows,
        columns=names(q.NOTIFICATION_COLUMNS),
        limit=limit,
        truncated=more,
        document={"dispatch": _dispatch(row, settings)},
    )


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    relays = parse_json(row.get("relays_accepted"))
    return {
        **row,
        "relays_accepted": relays if isinstance(relays, list) else row.get("relays_accepted"),
    }


def _handoff(row: dict[str, Any], settings: AuditSettings, overdue_before: int) -> dict[str, Any]:
    state = row["state"]
    stuck = state in hq.STUCK_STATES or (state == "pending" and row["occurred_at"] < overdue_before)
    latency = row["latency_s"]
    slow = latency is not None and latency > 2 * settings.dispatch_interval_seconds
    return {
        **{k: row.get(k) for k in HANDOFF_COLUMNS},
        "stuck": stuck,
        "slow": slow,
        "payload": parse_object(row["payload_json"]),
    }


_DISPATCH_ROW_COLUMNS = (*names(q.DISPATCH_COLUMNS), "duration_s", "latency_s", "slow")


def _dispatch(row: dict[str, Any], settings: AuditSettings) -> dict[str, Any]:
    latency = row["latency_s"]
    slow = latency is not None and latency > 2 * settings.dispatch_interval_seconds
    return {**{k: row.get(k) for k in _DISPATCH_ROW_COLUMNS}, "slow": slow}


def _zero_filled(known: tuple[str, ...], counts: dict[str, int]) -> dict[str, int]:
    """Every known state (0 when absent), then any other value found on file."""
    filled = {state: counts.get(state, 0) for state in known}
    filled.update({state: n for state, n in counts.items() if state not in filled})
    return filled


def _handoff_counts(src: Source, now: int) -> tuple[dict[str, int], int | None, int]:
    """Handoffs per state, when the oldest pending one was prepared, how many are overdue."""
    rows = {
        r["state"]: r
        for r in hq.count_handoffs_by_state(src, now - 2 * src.settings.dispatch_interval_seconds)
    }
    counts = _zero_filled(hq.HANDOFF_STATES, {s: r["n"] for s, r in rows.items()})
    pending = rows.get("pending")
    return counts, (pending["oldest_at"] if pending else None), (pending["older"] if pending else 0)


RATIONALE_WARNING = (
    "Model rationale: operator-only. Never forward it to parties or solvers; "
    "it is not a decision and may be wrong."
)
RATIONALE_COLUMNS = (
    "rationale_id",
    "session_id",
    "dispute_id",
    "provider",
    "model",
    "prompt_bundle_id",
    "policy_hash",
    "generated_at",
    "rationale_text",
)


def run_rationale(settings: AuditSettings, *, now: int, rationale: str) -> AuditResult:
    """The one view that shows rationale text (docs/mediation.md#rationales), under a warning."""
    with open_source(settings) as src:
        rationale_id = src.resolve("rationale", rationale)
        row = q.get_rationale(src, rationale_id)
        if row is None:  # resolve() found it a moment ago: pruned since
            raise UsageError(f"rationale {rationale_id} is no longer on file")
    return AuditResult(
        "rationale",
        now,
        rows=[row],
        columns=RATIONALE_COLUMNS,
        limit=1,
        document={"warning": RATIONALE_WARNING},
    )
