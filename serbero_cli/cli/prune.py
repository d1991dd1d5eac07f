"""`serbero prune --resolved-before DUR`: delete disputes resolved long ago and all that hangs off them."""

from __future__ import annotations

from typing import Annotated

import typer

from serbero_cli.cli.common import emit_json, execute, load


def prune(
    ctx: typer.Context,
    resolved_before: Annotated[
        str,
        typer.Option(
            "--resolved-before",
            metavar="DUR",
            show_default=False,
            help="Delete disputes resolved longer ago than this: 180d, 26w, … (at least 7d).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (prune/v1).")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            min=0,
            help="How long to wait for mediate-once and dispatch-once to "
            "finish a pass before giving up with exit 75.",
        ),
    ] = 30.0,
) -> None:
    """Delete disputes resolved longer ago than DUR, with their notifications, transitions, mediation
    sessions, messages, summaries, events, rationales and escalation dispatches.

    Age counts from the dispute's latest transition to resolved. Each batch of 500 disputes is one
    transaction. A real run holds the mediate-once and dispatch-once locks, waiting --wait seconds
    for a running pass to finish (exit 75 if it does not); listen may keep running. Take a `serbero backup` first:
    what is pruned is gone. The file does not shrink; SQLite reuses the freed pages.
    """

    def body() -> int:
        import time

        from serbero_cli.upkeep.prune import parse_age, run_prune

        older_than = parse_age(resolved_before)
        config = load(ctx)
        result = run_prune(
            config,
            older_than_seconds=older_than,
            dry_run=dry_run,
            now=int(time.time()),
            lock_wait_seconds=wait,
        )
        if json_output:
            emit_json(result.to_dict())
        else:
            from serbero_cli.cli.render import summary_line

            fields = {"dry_run": "yes"} if dry_run else {}
            print(
                summary_line(
                    "prune",
                    {
                        **fields,
                        "resolved_before": resolved_before.strip(),
                        "cutoff": result.cutoff,
                        **result.counts,
                    },
                )
            )
        return result.exit_code

    execute(
        ctx,
        json_output=json_output,
        body=body,
        error_report=lambda code, error: {
            "report": "prune/v1",
            "dry_run": dry_run,
            "exit_code": code,
            "error": error,
        },
    )
