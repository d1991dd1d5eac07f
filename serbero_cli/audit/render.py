"""Rich tables of the audit list views, for people: short ids, relative ages, colour by state.

Every renderer takes the `console` to print on (tests pass one writing to a StringIO) and
`borders`. Text from the database is always wrapped in `rich.text.Text` after `clean()`, so
neither rich markup nor terminal escape sequences inside a party's message reach the terminal
as anything but visible characters. The dashboard, timeline, transcript and check views live
in render_story.py; `render()` picks the renderer by view name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from serbero_cli.audit.result import AuditResult
from serbero_cli.audit.text import age, one_line, payload_summary, short, span

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

STATE_STYLES = {
    # dispute lifecycle
    "new": "yellow", "notified": "cyan", "taken": "blue", "waiting": "magenta", "escalated": "bold red",
    "resolved": "green",
    # notifications
    "pending": "yellow", "sending": "cyan", "sent": "green", "failed_retrying": "yellow", "failed_final": "bold red",
    "failed": "red",
    # sessions
    "awaiting_response": "yellow", "classified": "cyan", "summary_pending": "magenta",
    "summary_delivered": "green", "closed": "dim", "escalation_recommended": "bold red",
    "superseded_by_human": "blue",
    # handoffs and dispatches
    "dispatched": "green", "send_failed": "bold red", "superseded": "dim", "unroutable": "bold red",
    "parse_failed": "bold red",
}
# C0/C1 controls (ESC starts terminal escape sequences) and bidi overrides that can disguise text.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """`value` as text with control and bidi-override characters shown as `\\xNN` escapes."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None else str(value))


def text(value: Any, style: str = "") -> Text:
    """A cleaned, never-markup `Text` of any value."""
    from rich.text import Text

    return Text(clean(value), style=style)


def state(value: Any) -> Text:
    """A state name coloured by STATE_STYLES."""
    return text(value if value is not None else "-", STATE_STYLES.get(str(value), ""))


def table(title: str, columns: tuple[str, ...], borders: bool, **kwargs: Any) -> Table:
    """A rich Table: rounded borders on request, plain aligned columns otherwise (grep-friendly)."""
    from rich import box
    from rich.table import Table

    grid = Table(title=title, title_justify="left", box=box.ROUNDED if borders else None, show_edge=borders,
                 header_style="bold", pad_edge=borders, **kwargs)
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


def add(grid: Table, *cells: Any) -> None:
    """Add a row; plain values become cleaned Text (never parsed as markup)."""
    from rich.text import Text

    grid.add_row(*[c if isinstance(c, Text) else text(c) for c in cells])


def footer(result: AuditResult, console: Console, noun: str) -> None:
    """Say when nothing matched, and when more rows exist than were shown."""
    if not result.rows:
        console.print(text(f"no {noun} match"))
    if result.truncated:
        console.print(text(f"showing the newest {result.limit} {noun}; more are on file (--limit 0 shows all)"))


def render(result: AuditResult, console: Console, *, borders: bool) -> None:
    """Print `result` as tables on `console`."""
    from serbero_cli.audit import render_story

    renderer = {**RENDERERS, **render_story.RENDERERS}[result.view]
    renderer(result, console, borders)


def render_disputes(result: AuditResult, console: Console, borders: bool) -> None:
    now = result.now
    grid = table("disputes (newest first)", ("id", "initiator", "lifecycle", "mostro status", "solver", "age",
                                             "last notified"), borders)
    for r in result.rows:
        add(grid, short(r["dispute_id"]), r["initiator_role"] or "-", state(r["lifecycle_state"]),
            r["dispute_status"], short(r["assigned_solver"]), age(now, r["event_timestamp"]),
            age(now, r["last_notified_at"]))
    console.print(grid)
    footer(result, console, "disputes")


def render_notifications(result: AuditResult, console: Console, borders: bool) -> None:
    now, most = result.now, result.document.get("max_attempts")
    grid = table("notifications (newest first)", ("id", "age", "dispute", "solver", "type", "status", "attempts",
                                                  "relays", "sent", "error"), borders)
    for r in result.rows:
        relays = r["relays_accepted"] if isinstance(r["relays_accepted"], list) else []
        add(grid, r["id"], age(now, r["created_at"]), short(r["dispute_id"]), short(r["solver_pubkey"]),
            r["notif_type"], state(r["outcome"]), f"{r['attempts']}/{most}", len(relays) or "-",
            age(now, r["sent_at"]), one_line(r["error_message"], 60) or "-")
    console.print(grid)
    footer(result, console, "notifications")


def render_sessions(result: AuditResult, console: Console, borders: bool) -> None:
    now = result.now
    grid = table("mediation sessions (newest first)", ("session", "dispute", "state", "rounds", "classification",
                                                       "confidence", "policy", "started", "last change"), borders)
    for r in result.rows:
        confidence = "-" if r["current_confidence"] is None else f"{r['current_confidence']:.2f}"
        add(grid, short(r["session_id"]), short(r["dispute_id"]), state(r["state"]), r["round_count"],
            r["current_classification"] or "-", confidence, short(r["policy_hash"], 12),
            age(now, r["started_at"]), age(now, r["last_transition_at"]))
    console.print(grid)
    footer(result, console, "sessions")


def render_events(result: AuditResult, console: Console, borders: bool) -> None:
    now = result.now
    grid = table("mediation events (newest first)", ("id", "age", "kind", "session", "dispute", "payload"),
                 borders)
    for r in result.rows:
        add(grid, r["id"], age(now, r["occurred_at"]), r["kind"], short(r["session_id"]), short(r["dispute_id"]),
            one_line(payload_summary(r["payload"], r["payload_json"]), 90))
    console.print(grid)
    footer(result, console, "events")


def render_handoffs(result: AuditResult, console: Console, borders: bool) -> None:
    now = result.now
    grid = table("escalation handoffs (newest first)", ("id", "age", "dispute", "session", "trigger", "state",
                                                        "attempts", "latency", "note"), borders)
    for r in result.rows:
        note = ", ".join(n for n, on in (("stuck", r["stuck"]), ("slow", r["slow"])) if on) or "-"
        add(grid, r["handoff_event_id"], age(now, r["occurred_at"]), short(r["dispute_id"]),
            short(r["session_id"]) if r["session_id"] else "(dispute)", r["trigger"] or "-", state(r["state"]),
            r["attempts"] if r["attempts"] is not None else "-",
            span(r["latency_s"]) if r["latency_s"] is not None else "-", note)
    console.print(grid)
    footer(result, console, "handoffs")


def render_dispatches(result: AuditResult, console: Console, borders: bool) -> None:
    now = result.now
    grid = table("escalation dispatches (newest first)", ("dispatch", "age", "dispute", "handoff", "status",
                                                          "route", "attempts", "recipients", "took", "latency"),
                 borders)
    for r in result.rows:
        add(grid, *dispatch_cells(r, now))
    console.print(grid)
    footer(result, console, "dispatches")


def dispatch_cells(r: dict[str, Any], now: int) -> list[Any]:
    recipients = [s for s in (r["target_solver"] or "").split(",") if s]
    latency = "-" if r["latency_s"] is None else span(r["latency_s"]) + (" slow" if r["slow"] else "")
    return [short(r["dispatch_id"]), age(now, r["created_at"]), short(r["dispute_id"]), r["handoff_event_id"],
            state(r["status"]), r["route"] or "-", r["attempts"], " ".join(short(s) for s in recipients) or "-",
            "-" if r["duration_s"] is None else span(r["duration_s"]), latency]


RENDERERS = {"disputes": render_disputes, "notifications": render_notifications, "sessions": render_sessions,
             "events": render_events, "handoffs": render_handoffs, "dispatches": render_dispatches}
