"""`audit dispute ID`: one dispute's whole story as a single timeline, ordered by time.

Seven sources are merged: lifecycle transitions, solver notifications, mediation sessions,
party messages, mediation events (classifications, summaries, escalations, handoffs and
dispatch-once's audit kinds), summaries and dispatch rows. Each entry keeps its full row under
`data` for `--json`; `text` is the one-liner the table shows. Rationale text is never read.
With `--limit N` the newest N entries are kept (each source is read newest first, N + 1 rows).
"""

from __future__ import annotations

from typing import Any

from serbero_cli.audit.result import AuditResult
from serbero_cli.audit.text import one_line, parse_json, parse_object, payload_summary
from serbero_cli.audit.views import check_limit
from serbero_cli.safetext import short
from serbero_cli.store import audit_queries as q
from serbero_cli.store.audit_queries import AuditSettings, open_source

# Same-second entries read in causal order: a state change, then what it opened, then what was sent.
SOURCE_ORDER = ("transition", "session", "event", "message", "summary", "notification", "dispatch")
TIMELINE_COLUMNS = ("at", "source", "kind", "ref", "text")


def run_dispute(settings: AuditSettings, *, now: int, dispute: str, limit: int = 50) -> AuditResult:
    """The dispute header plus its timeline entries, oldest first."""
    check_limit(limit)
    with open_source(settings) as src:
        dispute_id = src.resolve("dispute", dispute)
        header = q.get_dispute(src, dispute_id)
        story = q.dispute_story(src, dispute_id, limit)
    entries = merge(story)
    truncated = bool(limit) and len(entries) > limit
    if truncated:
        entries = entries[-limit:]
    return AuditResult(
        "dispute",
        now,
        rows=entries,
        columns=TIMELINE_COLUMNS,
        limit=limit,
        truncated=truncated,
        document={"dispute": header, "counts": {s: len(story[s]) for s in SOURCE_ORDER}},
    )


def merge(story: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """All sources as timeline entries, oldest first; ties broken by source order, then row id."""
    entries = [entry(source, row) for source in SOURCE_ORDER for row in story.get(source, [])]
    rank = {s: i for i, s in enumerate(SOURCE_ORDER)}
    entries.sort(
        key=lambda e: (
            e["at"] if e["at"] is not None else 0,
            rank[e["source"]],
            (0, e["ref"], "") if isinstance(e["ref"], int) else (1, 0, str(e["ref"])),
        )
    )
    return entries


def entry(source: str, row: dict[str, Any]) -> dict[str, Any]:
    """One timeline entry: when, what kind, a reference id, a one-line text, the full row."""
    row = _prepare(source, row)
    at, kind, ref, text = _DESCRIBE[source](row)
    return {"at": at, "source": source, "kind": kind, "ref": ref, "text": text, "data": row}


def _prepare(source: str, row: dict[str, Any]) -> dict[str, Any]:
    """Decode the stored JSON columns, so `--json` shows values rather than strings of JSON."""
    if source == "notification":
        relays = parse_json(row.get("relays_accepted"))
        return {
            **row,
            "relays_accepted": relays if isinstance(relays, list) else row.get("relays_accepted"),
        }
    if source == "event":
        return {**row, "payload": parse_object(row["payload_json"])}
    return row


def _transition(r: dict[str, Any]) -> tuple:
    return (
        r["transitioned_at"],
        "transition",
        r["id"],
        f"{r['from_state'] or '(none)'} → {r['to_state']} ({r['trigger'] or 'no trigger'})",
    )


def _notification(r: dict[str, Any]) -> tuple:
    parts = [f"to {short(r['solver_pubkey'])}: {r['outcome']}", f"attempts {r['attempts']}"]
    if isinstance(r["relays_accepted"], list) and r["relays_accepted"]:
        parts.append(f"accepted by {len(r['relays_accepted'])} relay(s)")
    if r.get("error_message"):
        parts.append("error: " + one_line(r["error_message"], 50))
    return r["created_at"], r["notif_type"], r["id"], ", ".join(parts)


def _session(r: dict[str, Any]) -> tuple:
    return (
        r["started_at"],
        "session_started",
        r["session_id"],
        f"session {short(r['session_id'])} started; now {r['state']}, {r['round_count']} round(s)"
        + (
            f", {r['current_classification']} {r['current_confidence']}"
            if r["current_classification"]
            else ""
        ),
    )


def _message(r: dict[str, Any]) -> tuple:
    mark = " [stale]" if r["stale"] else ""
    way = "to" if r["direction"] == "outbound" else "from"
    return (
        r["inner_event_created_at"],
        r["direction"],
        r["id"],
        f"{way} {r['party']}{mark}: {one_line(r['content'], 50)}",
    )


def _event(r: dict[str, Any]) -> tuple:
    return (
        r["occurred_at"],
        r["kind"],
        r["id"],
        one_line(payload_summary(r["payload"], r["payload_json"]), 80),
    )


def _summary(r: dict[str, Any]) -> tuple:
    return (
        r["generated_at"],
        "summary",
        r["id"],
        f"{r['classification']} ({r['confidence']}): {one_line(r['summary_text'], 50)}",
    )


def _dispatch(r: dict[str, Any]) -> tuple:
    recipients = len([s for s in (r["target_solver"] or "").split(",") if s])
    return (
        r["created_at"],
        "dispatch",
        r["dispatch_id"],
        f"dispatch {short(r['dispatch_id'])} {r['status']} ({r['route'] or 'no route'}) to {recipients} "
        f"solver(s), attempt {r['attempts']}",
    )


_DESCRIBE = {
    "transition": _transition,
    "notification": _notification,
    "session": _session,
    "message": _message,
    "event": _event,
    "summary": _summary,
    "dispatch": _dispatch,
}
