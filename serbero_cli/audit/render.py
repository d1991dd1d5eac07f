"""Rich tables of the audit list views, for people: short ids, relative ages, colour by state.

Every renderer takes the result and an `Out` (the console, borders, UTC times). Text from the
database is always wrapped in `rich.text.Text` after `safetext.for_terminal()`, so neither rich
markup nor terminal escape sequences inside a party's message reach the terminal as anything but
visible characters.

Tables fit the console width without breaking a word: ids, states, numbers and times never wrap;
only free-text columns wrap, at spaces (a word longer than the column ends in `…`). When even that
does not fit, columns marked droppable go, lowest `drop` first. The dashboard, timeline,
transcript and check views live in render_story.py; `render()` picks the renderer by view name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serbero_cli.audit.result import AuditResult
from serbero_cli.audit.text import age, one_line, payload_summary, span
from serbero_cli.safetext import for_terminal, short

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

STATE_STYLES = {
    # dispute lifecycle
    "new": "yellow",
    "notified": "cyan",
    "taken": "blue",
    "waiting": "magenta",
    "escalated": "bold red",
    "resolved": "green",
    # notifications
    "pending": "yellow",
    "sending": "cyan",
    "sent": "green",
    "failed_retrying": "yellow",
    "failed_final": "bold red",
    "failed": "red",
    # sessions
    "awaiting_response": "yellow",
    "classified": "cyan",
    "summary_pending": "magenta",
    "summary_delivered": "green",
    "closed": "dim",
    "escalation_recommended": "bold red",
    "superseded_by_human": "blue",
    # handoffs and dispatches
    "dispatched": "green",
    "send_failed": "bold red",
    "superseded": "dim",
    "unroutable": "bold red",
    "parse_failed": "bold red",
}
# A free-text column keeps at least this many cells before other columns are dropped.
TEXT_MIN_WIDTH = 20
# Wide enough that measuring a table never clamps it to the console.
_UNBOUNDED = 100_000


@dataclass(frozen=True)
class Out:
    """Where and how to render: the console, table borders, absolute UTC times instead of ages."""

    console: Console
    borders: bool
    utc: bool = False


@dataclass(frozen=True)
class Col:
    """A table column. `drop` 0 = always shown, else dropped (lowest first) when the table is too
    wide; `wrap` marks free text, the only kind of cell that may take more than one line."""

    name: str
    drop: int = 0
    wrap: bool = False


def text(value: Any, style: str = "") -> Text:
    """A never-markup `Text` of any value, controls shown as U+FFFD."""
    from rich.text import Text

    return Text(for_terminal("" if value is None else value), style=style)


def state(value: Any) -> Text:
    """A state name coloured by STATE_STYLES."""
    return text(value if value is not None else "-", STATE_STYLES.get(str(value), ""))


def when(out: Out, now: int, at: int | None) -> str:
    """`at` as an age (`12m`) or, with `--utc`, as `YYYY-MM-DD HH:MM:SS`."""
    if at is None:
        return "-"
    if out.utc:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(at)))
    return age(now, at)


def when_column(out: Out, drop: int = 0) -> Col:
    return Col("time (UTC)" if out.utc else "age", drop)


def heading(out: Out, title: Any, style: str = "bold") -> None:
    """A line above a table (not a table title: titles wrap inside the table's width)."""
    out.console.print(text(title, style))


def show(out: Out, title: Any, columns: list[Col], rows: list[list[Any]]) -> None:
    """Print `title` and a table of `rows` that fits the console (see the module docstring)."""
    if title:
        heading(out, title)
    out.console.print(fit_table(out, columns, rows))


def fit_table(out: Out, columns: list[Col], rows: list[list[Any]]) -> Table:
    """The widest table of `columns` that fits `out.console.width`, dropping columns in `drop` order."""
    cells = [[c if _is_text(c) else text(c) for c in row] for row in rows]
    kept = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop)
    while droppable and _needed_width(out, columns, kept, cells) > out.console.width:
        kept.remove(droppable.pop(0))
    return _table(out, [columns[i] for i in kept], [[row[i] for i in kept] for row in cells])


def footer(result: AuditResult, out: Out, noun: str) -> None:
    """Say when nothing matched, and when more rows exist than were shown."""
    if not result.rows:
        out.console.print(text(f"no {noun} match"))
    if result.truncated:
        out.console.print(
            text(
                f"showing the newest {result.limit} {noun}; more are on file (--limit 0 shows all)"
            )
        )


def render(result: AuditResult, console: Console, *, borders: bool, utc: bool = False) -> None:
    """Print `result` as tables on `console`."""
    from serbero_cli.audit import render_story

    renderer = {**RENDERERS, **render_story.RENDERERS}[result.view]
    renderer(result, Out(console, borders, utc))


def render_disputes(result: AuditResult, out: Out) -> None:
    now = result.now
    columns = [
        Col("id"),
        Col("initiator", 3),
        Col("lifecycle"),
        Col("mostro status", 2),
        Col("solver", 1),
        Col("age"),
        Col("last notified", 4),
    ]
    rows = [
        [
            short(r["dispute_id"]),
            r["initiator_role"] or "-",
            state(r["lifecycle_state"]),
            r["dispute_status"],
            short(r["assigned_solver"]),
            age(now, r["event_timestamp"]),
            age(now, r["last_notified_at"]),
        ]
        for r in result.rows
    ]
    show(out, "disputes (newest first)", columns, rows)
    footer(result, out, "disputes")


def render_notifications(result: AuditResult, out: Out) -> None:
    now, most = result.now, result.document.get("max_attempts")
    columns = [
        Col("id"),
        Col("age"),
        Col("dispute"),
        Col("solver", 2),
        Col("type"),
        Col("envelope", 1),
        Col("status"),
        Col("attempts", 4),
        Col("relays", 1),
        Col("sent", 3),
        Col("error", wrap=True),
    ]
    rows = []
    for r in result.rows:
        relays = r["relays_accepted"] if isinstance(r["relays_accepted"], list) else []
        rows.append(
            [
                r["id"],
                age(now, r["created_at"]),
                short(r["dispute_id"]),
                short(r["solver_pubkey"]),
                r["notif_type"],
                r.get("envelope") or "-",
                state(r["outcome"]),
                f"{r['attempts']}/{most}",
                len(relays) or "-",
                age(now, r["sent_at"]),
                one_line(r["error_message"], 60) or "-",
            ]
        )
    show(out, "notifications (newest first)", columns, rows)
    footer(result, out, "notifications")


def render_sessions(result: AuditResult, out: Out) -> None:
    now = result.now
    columns = [
        Col("session"),
        Col("dispute", 5),
        Col("state"),
        Col("rounds", 4),
        Col("classification", 3),
        Col("confidence", 2),
        Col("policy", 1),
        Col("started", 6),
        Col("last change", 7),
    ]
    rows = []
    for r in result.rows:
        confidence = "-" if r["current_confidence"] is None else f"{r['current_confidence']:.2f}"
        rows.append(
            [
                short(r["session_id"]),
                short(r["dispute_id"]),
                state(r["state"]),
                r["round_count"],
                r["current_classification"] or "-",
                confidence,
                short(r["policy_hash"], 12),
                age(now, r["started_at"]),
                age(now, r["last_transition_at"]),
            ]
        )
    show(out, "mediation sessions (newest first)", columns, rows)
    footer(result, out, "sessions")


def render_events(result: AuditResult, out: Out) -> None:
    now = result.now
    columns = [
        Col("id"),
        when_column(out),
        Col("kind"),
        Col("session", 2),
        Col("dispute", 1),
        Col("payload", wrap=True),
    ]
    rows = [
        [
            r["id"],
            when(out, now, r["occurred_at"]),
            r["kind"],
            short(r["session_id"]),
            short(r["dispute_id"]),
            one_line(payload_summary(r["payload"], r["payload_json"]), 90),
        ]
        for r in result.rows
    ]
    show(out, "mediation events (newest first)", columns, rows)
    footer(result, out, "events")


def render_handoffs(result: AuditResult, out: Out) -> None:
    now = result.now
    columns = [
        Col("id"),
        Col("age"),
        Col("dispute"),
        Col("session", 1),
        Col("trigger", 3),
        Col("state"),
        Col("attempts", 2),
        Col("latency", 4),
        Col("note", 5),
    ]
    rows = []
    for r in result.rows:
        note = ", ".join(n for n, on in (("stuck", r["stuck"]), ("slow", r["slow"])) if on) or "-"
        rows.append(
            [
                r["handoff_event_id"],
                age(now, r["occurred_at"]),
                short(r["dispute_id"]),
                short(r["session_id"]) if r["session_id"] else "(dispute)",
                r["trigger"] or "-",
                state(r["state"]),
                r["attempts"] if r["attempts"] is not None else "-",
                span(r["latency_s"]) if r["latency_s"] is not None else "-",
                note,
            ]
        )
    show(out, "escalation handoffs (newest first)", columns, rows)
    footer(result, out, "handoffs")


DISPATCH_COLUMNS = [
    Col("dispatch"),
    Col("age"),
    Col("dispute", 3),
    Col("handoff", 2),
    Col("status"),
    Col("route", 4),
    Col("attempts", 5),
    Col("recipients", 1),
    Col("took", 6),
    Col("latency", 7),
]


def render_dispatches(result: AuditResult, out: Out) -> None:
    show(
        out,
        "escalation dispatches (newest first)",
        DISPATCH_COLUMNS,
        [dispatch_cells(r, result.now) for r in result.rows],
    )
    footer(result, out, "dispatches")


def dispatch_cells(r: dict[str, Any], now: int) -> list[Any]:
    recipients = [s for s in (r["target_solver"] or "").split(",") if s]
    latency = (
        "-" if r["latency_s"] is None else span(r["latency_s"]) + (" slow" if r["slow"] else "")
    )
    return [
        short(r["dispatch_id"]),
        age(now, r["created_at"]),
        short(r["dispute_id"]),
        r["handoff_event_id"],
        state(r["status"]),
        r["route"] or "-",
        r["attempts"],
        " ".join(short(s) for s in recipients) or "-",
        "-" if r["duration_s"] is None else span(r["duration_s"]),
        latency,
    ]


RENDERERS = {
    "disputes": render_disputes,
    "notifications": render_notifications,
    "sessions": render_sessions,
    "events": render_events,
    "handoffs": render_handoffs,
    "dispatches": render_dispatches,
}


def _is_text(value: Any) -> bool:
    from rich.text import Text

    return isinstance(value, Text)


def _table(
    out: Out, columns: list[Col], rows: list[list[Text]], widths: list[int] | None = None
) -> Table:
    """Rounded borders on request, plain aligned columns otherwise (grep-friendly)."""
    from rich import box
    from rich.table import Table

    grid = Table(
        box=box.ROUNDED if out.borders else None,
        show_edge=out.borders,
        header_style="bold",
        pad_edge=out.borders,
    )
    for i, column in enumerate(columns):
        grid.add_column(
            column.name,
            no_wrap=not column.wrap,
            overflow="ellipsis",
            width=widths[i] if widths else None,
        )
    for row in rows:
        grid.add_row(*row)
    return grid


def _needed_width(out: Out, columns: list[Col], kept: list[int], cells: list[list[Text]]) -> int:
    """The narrowest width the kept columns need: every fixed cell whole, free text at TEXT_MIN_WIDTH."""
    from rich.measure import Measurement

    widths = []
    for i in kept:
        longest = max([len(columns[i].name), *(row[i].cell_len for row in cells)], default=1)
        widths.append(min(longest, TEXT_MIN_WIDTH) if columns[i].wrap else longest)
    probe = _table(
        out, [columns[i] for i in kept], [[row[i] for i in kept] for row in cells], widths
    )
    console = out.console
    return Measurement.get(console, console.options.update_width(_UNBOUNDED), probe).minimum
