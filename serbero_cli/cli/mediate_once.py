"""`serbero mediate-once`: AI-guided mediation with both parties (docs/mediation.md)."""

from __future__ import annotations

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
    from serbero_cli.mediation.result import MediationResult


def mediate_once(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
    max_starts: Annotated[
        int | None,
        typer.Option(
            "--max-starts",
            min=1,
            show_default=False,
            help="Start at most N new sessions (overrides the config).",
        ),
    ] = None,
    reset_solver_auth: Annotated[
        bool,
        typer.Option(
            "--reset-solver-auth", help="Forget Mostro's earlier refusals and try again now."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List due work from the database; contact nobody.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Run one mediation pass: read replies, ask the model, send questions, summaries or escalations, start sessions.

    Needs [mediation].enabled and [reasoning].enabled; otherwise it does nothing and exits 0 (a
    terminal is told "mediation disabled"; cron and pipes get no output).
    """
    from serbero_cli.mediation.result import error_report

    def body() -> int:
        config = load(ctx)
        maybe_init_nostr_logger(ctx)
        from serbero_cli.cli.render import show_result
        from serbero_cli.mediation.run import run_mediate_once

        result = run_mediate_once(
            config, max_starts=max_starts, reset_solver_auth=reset_solver_auth, dry_run=dry_run
        )
        if json_output:
            emit_json(result.to_dict())
        else:
            show_result(
                exit_code=result.exit_code,
                quiet=quiet,
                table=lambda: render_mediation(result),
                line=lambda: mediation_line(result),
            )
        return result.exit_code

    execute(ctx, json_output=json_output, error_report=error_report, body=body)


def mediation_line(result: MediationResult) -> str | None:
    """The one summary line (None when mediation is disabled: nothing to say)."""
    from serbero_cli.cli.render import summary_line

    if result.disabled:
        return None
    if result.dry_run:
        due = {k: len(v) if isinstance(v, list | dict) else v for k, v in result.due.items()}
        return summary_line("mediate-once", {"dry_run": "yes", **due, "exit": result.exit_code})
    return summary_line(
        "mediate-once",
        {
            "sessions": result.live_sessions,
            "opened": result.sessions_opened,
            "replies": result.replies_fresh,
            "evaluations": result.evaluations,
            "evaluation_failures": result.evaluation_failures,
            "followups": result.followups_sent,
            "summaries": result.summaries_generated,
            "escalations": sum(result.escalations.values()),
            "delivered": result.dms_delivered,
            "failed": result.dms_failed,
            "take_failures": result.take_failures,
            "solver_auth": result.solver_auth_status,
            "exit": result.exit_code,
        },
    )


def render_mediation(result: MediationResult) -> None:
    from serbero_cli.cli.render import kv_table, plain

    out = console()
    if result.disabled:
        out.print("mediation disabled")
        return
    d = result.to_dict()
    if result.dry_run:
        rows = [
            (k, v if not isinstance(v, list) else (", ".join(x[:8] for x in v) or "-"))
            for k, v in d["due"].items()
        ]
        out.print(kv_table("mediate-once (dry run: nothing contacted or written)", rows))
        return
    keys = (
        "provider_healthy",
        "transport",
        "transport_source",
        "take_pow_bits",
        "live_sessions",
        "replies_fresh",
        "replies_stale",
        "replies_duplicate",
        "replies_rejected",
        "evaluations",
        "evaluation_failures",
        "followups_sent",
        "summaries_generated",
        "dms_delivered",
        "dms_failed",
        "starts_attempted",
        "sessions_opened",
        "take_failures",
        "solver_auth_status",
    )
    rows = [(k, d[k]) for k in keys]
    rows += [(f"escalations.{k}", v) for k, v in d["escalations"].items()]
    rows += [(f"starts_skipped.{k}", v) for k, v in d["starts_skipped"].items()]
    out.print(kv_table("mediate-once", rows))
    for error in d["errors"]:
        out.print(plain(f"error: {error}"))
