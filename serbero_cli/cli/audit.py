"""`serbero audit`: read-only views of the shared database (docs/operations.md#audit).

Each command parses its options, builds AuditSettings (config, or `--db` alone), calls one
`run_*()` from serbero_cli.audit and renders the result as tables, one JSON document or CSV.
The database is opened `mode=ro`: audit never migrates, never takes a phase lock, never writes.
The common options may be given before or after the sub-command (`audit --db F disputes`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from serbero_cli.cli.common import execute, load, state

if TYPE_CHECKING:
    from serbero_cli.audit.result import AuditResult
    from serbero_cli.store.audit_queries import AuditSettings

app = typer.Typer(
    name="audit",
    help="Inspect disputes, notifications, mediation and escalations (read-only). "
    "Without a sub-command: the dashboard.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_META = "serbero.audit.options"
DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db", show_default=False, help="Read this database file directly; no config needed."
    ),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit",
        "-n",
        show_default=False,
        help="Rows to show, newest first (default 50; 0 = all).",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (stable keys, full values).")
]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV with a header line.")]
ColorOpt = Annotated[
    bool | None,
    typer.Option(
        "--color/--no-color",
        show_default=False,
        help="Colour by state (default: only on a terminal).",
    ),
]
BordersOpt = Annotated[
    bool | None,
    typer.Option(
        "--borders/--no-borders",
        show_default=False,
        help="Table borders (default: only on a terminal).",
    ),
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", show_default=False, help="Only the last 30m, 2h, 7d, ….")
]
DisputeOpt = Annotated[
    str | None, typer.Option("--dispute", show_default=False, help="A dispute id or unique prefix.")
]
UtcOpt = Annotated[bool, typer.Option("--utc", help="Show absolute times (UTC) instead of ages.")]


@dataclass
class Output:
    """The options every audit command shares; None means "not given here" (flags: False)."""

    db: Path | None = None
    limit: int | None = None
    json: bool = False
    csv: bool = False
    color: bool | None = None
    borders: bool | None = None
    utc: bool = False


@dataclass(frozen=True)
class Chosen:
    """The options in force for one command, once merged: the limit is always a number."""

    db: Path | None
    limit: int
    json: bool
    csv: bool
    color: bool | None
    borders: bool | None
    utc: bool


def _merged(ctx: typer.Context, own: Output) -> Chosen:
    """Options given to the sub-command win over those given to `audit` itself."""
    parent = ctx.meta.get(_META) or Output()
    merged = Output(
        **{
            f.name: getattr(own, f.name)
            if getattr(own, f.name) is not None
            else getattr(parent, f.name)
            for f in fields(Output)
        }
    )
    return Chosen(
        merged.db,
        50 if merged.limit is None else merged.limit,
        own.json or parent.json,
        own.csv or parent.csv,
        merged.color,
        merged.borders,
        own.utc or parent.utc,
    )


def _run(
    ctx: typer.Context,
    view: str,
    own: Output,
    build: Callable[[AuditSettings, int, Chosen], AuditResult],
) -> None:
    from serbero_cli.audit.result import error_report

    out = _merged(ctx, own)

    def body() -> int:
        from serbero_cli.errors import UsageError

        if out.json and out.csv:
            raise UsageError("--json and --csv cannot be combined")
        result = build(audit_settings(ctx, out.db), int(time.time()), out)
        _emit(result, out)
        return result.exit_code

    execute(
        ctx,
        json_output=out.json,
        error_report=lambda code, error: error_report(view, code, error),
        body=body,
    )


def audit_settings(ctx: typer.Context, db: Path | None) -> AuditSettings:
    """From the config (the one loader); with `--db` and no explicit `--config`, defaults only."""
    from serbero_cli.store.audit_queries import AuditSettings

    if db is None:
        return AuditSettings.from_config(load(ctx))
    if state(ctx).config_path is not None:
        return AuditSettings.from_config(load(ctx), db_path=db)
    from serbero_cli.logsetup import configure_logging, resolve_level

    configure_logging(resolve_level(state(ctx).log_level, None))
    return AuditSettings.defaults(db)


def _emit(result: AuditResult, out: Chosen) -> None:
    from serbero_cli.audit import export

    if out.json:
        sys.stdout.write(export.to_json(result) + "\n")
    elif out.csv:
        sys.stdout.write(export.to_csv(result))
    else:
        from rich.console import Console

        from serbero_cli.audit.render import render

        tty = sys.stdout.isatty()
        color = (tty and not os.environ.get("NO_COLOR")) if out.color is None else out.color
        console = Console(
            file=sys.stdout,
            highlight=False,
            color_system="auto" if color else None,
            force_terminal=True if color and not tty else None,
            width=None if tty else int(os.environ.get("COLUMNS") or 200),
        )
        render(result, console, borders=tty if out.borders is None else out.borders, utc=out.utc)
    sys.stdout.flush()


@app.callback()
def dashboard(
    ctx: typer.Context,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Dashboard: disputes, notifications, sessions and handoffs by state; last phase runs; schema."""
    own = Output(db, limit, json_output, csv_output, color, borders)
    ctx.meta[_META] = own
    if ctx.invoked_subcommand is None:
        from serbero_cli.audit.views import run_dashboard

        _run(ctx, "dashboard", own, lambda s, now, o: run_dashboard(s, now=now))


@app.command("disputes")
def disputes(
    ctx: typer.Context,
    state_: Annotated[
        str | None,
        typer.Option(
            "--state",
            show_default=False,
            help="new, notified, taken, waiting, escalated, resolved.",
        ),
    ] = None,
    since: SinceOpt = None,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Disputes, newest first: id, initiator, lifecycle, Mostro status, solver, age, last notified."""
    from serbero_cli.audit.views import run_disputes

    _run(
        ctx,
        "disputes",
        Output(db, limit, json_output, csv_output, color, borders),
        lambda s, now, o: run_disputes(s, now=now, state=state_, since=since, limit=o.limit),
    )


@app.command("dispute")
def dispute(
    ctx: typer.Context,
    dispute_id: Annotated[str, typer.Argument(help="Dispute id or unique prefix.")],
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
    utc: UtcOpt = False,
) -> None:
    """One dispute's story as a timeline: transitions, notifications, mediation, escalation, dispatches."""
    from serbero_cli.audit.timeline import run_dispute

    _run(
        ctx,
        "dispute",
        Output(db, limit, json_output, csv_output, color, borders, utc),
        lambda s, now, o: run_dispute(s, now=now, dispute=dispute_id, limit=o.limit),
    )


@app.command("notifications")
def notifications(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            show_default=False,
            help=("pending, sending, sent, failed, failed_retrying, failed_final."),
        ),
    ] = None,
    notif_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            show_default=False,
            help="initial, assignment, re-notification, escalation_handoff, ….",
        ),
    ] = None,
    dispute: DisputeOpt = None,
    since: SinceOpt = None,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Solver messages, newest first, with attempts and error messages."""
    from serbero_cli.audit.views import run_notifications

    _run(
        ctx,
        "notifications",
        Output(db, limit, json_output, csv_output, color, borders),
        lambda s, now, o: run_notifications(
            s,
            now=now,
            status=status,
            notif_type=notif_type,
            dispute=dispute,
            since=since,
            limit=o.limit,
        ),
    )


@app.command("sessions")
def sessions(
    ctx: typer.Context,
    state_: Annotated[
        str | None, typer.Option("--state", show_default=False, help="A session state, or `live`.")
    ] = None,
    since: SinceOpt = None,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Mediation sessions, newest first: state, rounds, classification, confidence, policy hash."""
    from serbero_cli.audit.views import run_sessions

    _run(
        ctx,
        "sessions",
        Output(db, limit, json_output, csv_output, color, borders),
        lambda s, now, o: run_sessions(s, now=now, state=state_, since=since, limit=o.limit),
    )


@app.command("transcript")
def transcript(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Session id or unique prefix.")],
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
    utc: UtcOpt = False,
) -> None:
    """A session's chat in order: time, direction, party, text (stale messages marked)."""
    from serbero_cli.audit.views import run_transcript

    _run(
        ctx,
        "transcript",
        Output(db, limit, json_output, csv_output, color, borders, utc),
        lambda s, now, o: run_transcript(s, now=now, session=session_id, limit=o.limit),
    )


@app.command("events")
def events(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            show_default=False,
            help=("An event kind: session_opened, classification_produced, handoff_prepared, …."),
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", show_default=False, help="A session id or unique prefix."),
    ] = None,
    dispute: DisputeOpt = None,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
    utc: UtcOpt = False,
) -> None:
    """Mediation and escalation audit events, newest first, with a payload summary."""
    from serbero_cli.audit.views import run_events

    _run(
        ctx,
        "events",
        Output(db, limit, json_output, csv_output, color, borders, utc),
        lambda s, now, o: run_events(
            s, now=now, kind=kind, session=session, dispute=dispute, limit=o.limit
        ),
    )


@app.command("handoffs")
def handoffs(
    ctx: typer.Context,
    state_: Annotated[
        str | None,
        typer.Option(
            "--state",
            show_default=False,
            help=(
                "pending, sending, dispatched, send_failed, superseded, unroutable, parse_failed."
            ),
        ),
    ] = None,
    stuck: Annotated[
        bool,
        typer.Option(
            "--stuck",
            help=(
                "Only superseded, unroutable, sending, or pending past twice the dispatch interval."
            ),
        ),
    ] = False,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Every escalation handoff with its delivery state, newest first."""
    from serbero_cli.audit.views import run_handoffs

    _run(
        ctx,
        "handoffs",
        Output(db, limit, json_output, csv_output, color, borders),
        lambda s, now, o: run_handoffs(s, now=now, state=state_, stuck=stuck, limit=o.limit),
    )


@app.command("dispatches")
def dispatches(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option("--status", show_default=False, help="sending, dispatched, send_failed."),
    ] = None,
    dispute: DisputeOpt = None,
    since: SinceOpt = None,
    dispatch_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            show_default=False,
            help=("Show this dispatch (id or unique prefix) and its notification records."),
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help=("Check dispatch consistency and latency; exit 4 on a problem.")
        ),
    ] = False,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Escalation dispatch rows, newest first (every column plus run time); --id, --check."""
    from serbero_cli.audit import checks, views
    from serbero_cli.errors import UsageError

    def build(s: AuditSettings, now: int, o: Chosen) -> AuditResult:
        if check and dispatch_id is not None:
            raise UsageError("--check and --id cannot be combined")
        if check:
            return checks.run_dispatch_check(s, now=now, limit=o.limit)
        if dispatch_id is not None:
            return views.run_dispatch(s, now=now, dispatch=dispatch_id, limit=o.limit)
        return views.run_dispatches(
            s, now=now, status=status, dispute=dispute, since=since, limit=o.limit
        )

    _run(
        ctx,
        "dispatch-check" if check else "dispatches",
        Output(db, limit, json_output, csv_output, color, borders),
        build,
    )


@app.command("authority")
def authority(
    ctx: typer.Context,
    db: DbOpt = None,
    limit: LimitOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """Fund-safety check: settle/cancel/fund-moving phrases in anything Serbero sent; exit 4 if any."""
    from serbero_cli.audit.checks import run_authority

    _run(
        ctx,
        "authority",
        Output(db, limit, json_output, csv_output, color, borders),
        lambda s, now, o: run_authority(s, now=now, limit=o.limit),
    )


@app.command("rationale")
def rationale(
    ctx: typer.Context,
    rationale_id: Annotated[str, typer.Argument(help="Rationale id or unique prefix.")],
    db: DbOpt = None,
    json_output: JsonOpt = False,
    csv_output: CsvOpt = False,
    color: ColorOpt = None,
    borders: BordersOpt = None,
) -> None:
    """The stored model rationale (operator-only; printed under a warning)."""
    from serbero_cli.audit.views import run_rationale

    _run(
        ctx,
        "rationale",
        Output(db, None, json_output, csv_output, color, borders),
        lambda s, now, o: run_rationale(s, now=now, rationale=rationale_id),
    )


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help=(
                "Write to this file (atomically: a temporary file, then a rename) instead of stdout, "
                "e.g. /var/lib/node_exporter/textfile/serbero.prom."
            ),
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Counts in the Prometheus text format, for node_exporter's textfile collector."""

    def body() -> int:
        from serbero_cli.audit.metrics import run_metrics, write_atomically

        out = _merged(ctx, Output(db))
        text = run_metrics(audit_settings(ctx, out.db), now=int(time.time()))
        if output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomically(output, text)
        return 0

    execute(ctx, json_output=False, error_report=None, body=body)
