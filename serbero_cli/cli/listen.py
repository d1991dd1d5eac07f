"""`serbero listen`: detect disputes, notify every solver, follow the lifecycle (docs/lifecycle.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from serbero_cli.cli.common import (
    QUIET_HELP,
    console,
    emit_json,
    execute,
    load,
    maybe_init_nostr_logger,
)

if TYPE_CHECKING:
    from serbero_cli.config import Config
    from serbero_cli.domain.dispute_events import DisputeEvent
    from serbero_cli.domain.lifecycle import DisputeView
    from serbero_cli.listen.apply import ResolvedHook
    from serbero_cli.listen.result import ListenResult
    from serbero_cli.store.db import Connection


def listen(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", help="Stay connected and apply events as they arrive.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Fetch and show what would happen; write and send nothing."),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (listen/v1) on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Fetch new Mostro dispute events, record them, notify solvers, remind them, and exit.

    Run it from cron or a timer every minute, or once with --follow as a long-running service.
    """
    from serbero_cli.listen.result import error_report

    def body() -> int:
        from serbero_cli.errors import UsageError

        if follow and dry_run:
            raise UsageError("--follow cannot be combined with --dry-run")
        # The run first: it loads nostr_sdk, which the config loader then uses to derive our public
        # key instead of loading coincurve as well (docs/operations.md#benchmarks).
        from serbero_cli.listen.run import run_listen

        config = load(ctx)
        maybe_init_nostr_logger(ctx)
        from serbero_cli.cli.render import ProgressBar, show_result

        bar = ProgressBar("sending", enabled=sys.stdout.isatty() and not json_output and not quiet)
        try:
            result = run_listen(
                config,
                dry_run=dry_run,
                follow=follow,
                progress=bar,
                on_resolved=resolution_hook(config),
            )
        finally:
            bar.close()
        if json_output:
            emit_json(result.to_dict())
        else:
            show_result(
                exit_code=result.exit_code,
                quiet=quiet,
                table=lambda: render_listen(result),
                line=lambda: listen_line(result),
            )
        return result.exit_code

    execute(
        ctx,
        json_output=json_output,
        error_report=lambda c, e: error_report(c, e, dry_run),
        body=body,
    )


def listen_line(result: ListenResult) -> str:
    """The one summary line: `listen: events=3 new=1 … sent=3 failed=0 exit=0`."""
    from serbero_cli.cli.render import summary_line

    d = result.to_dict()
    events, disputes, notes, relays = d["events"], d["disputes"], d["notifications"], d["relays"]
    fields: dict[str, object] = {"dry_run": "yes"} if result.dry_run else {}
    fields |= {
        "events": events["fetched"],
        "applied": events["applied"],
        "rejected": events["rejected"],
        "new": disputes["new"],
        "taken": disputes["taken"],
        "resolved": disputes["resolved"],
        "queued": notes["queued"],
    }
    if not result.dry_run:
        fields |= {"sent": notes["sent"], "failed": notes["failed"]}
    fields |= {
        "pending": notes["pending"],
        "relays_failed": relays["failed"],
        "exit": result.exit_code,
    }
    return summary_line("listen", fields)


def render_listen(result: ListenResult) -> None:
    from rich.table import Table

    from serbero_cli.cli.render import plain

    out = console()
    title = "listen (dry run: nothing written or sent)" if result.dry_run else "listen"
    table = Table(title=title, title_justify="left")
    for name in ("events", "disputes", "notifications", "relays"):
        table.add_column(name)
    d = result.to_dict()
    table.add_row(
        "fetched {fetched}\napplied {applied}\nrejected {rejected}".format(**d["events"]),
        "new {new}\ntaken {taken}\nresolved {resolved}".format(**d["disputes"]),
        (
            "would queue {queued}\nwould stay pending {pending}"
            if result.dry_run
            else "queued {queued}\nsent {sent}\nfailed {failed}\npending {pending}"
        ).format(**d["notifications"]),
        "connected {connected}\nfailed {failed}".format(**d["relays"]),
    )
    out.print(table)
    if result.dry_run and result.planned_sends:
        plan = Table(title="would send", title_justify="left")
        for col in ("dispute", "type", "recipients", "why"):
            plan.add_column(col)
        for item in result.planned_sends:
            plan.add_row(
                plain(item["dispute_id"][:12]),
                plain(item["type"]),
                plain(", ".join(r[:8] for r in item["recipients"])),
                plain(item["reason"]),
            )
        out.print(plan)
    for warning in result.warnings:
        out.print(plain(f"warning: {warning}"))


def resolution_hook(config: Config) -> ResolvedHook:
    """Mediation's hook for disputes Mostro reports resolved, imported only when one is: a run with
    nothing resolved never loads the mediation code (start-up budget)."""
    made: list[ResolvedHook] = []

    def hook(conn: Connection, event: DisputeEvent, before: DisputeView, now: int) -> int:
        if not made:
            from serbero_cli.mediation.resolution import make_resolution_hook

            made.append(make_resolution_hook(config))
        return made[0](conn, event, before, now)

    return hook
