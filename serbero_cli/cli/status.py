"""`serbero status`: one line saying whether anything needs a person, for humans and monitors."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from serbero_cli.cli.common import emit_json, execute


def status(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (status/v1) on stdout.")
    ] = False,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", show_default=False, help="Read this database file directly; no config needed."
        ),
    ] = None,
) -> None:
    """Print one line: `ok: …` (exit 0) or `attention: …` (exit 4), by the rules of the audit dashboard.

    Read-only: the database is opened mode=ro, never migrated, and no phase lock is taken.
    """
    from serbero_cli.audit.health import status_error_report

    def body() -> int:
        from serbero_cli.audit.health import run_status
        from serbero_cli.cli.audit import audit_settings

        result = run_status(audit_settings(ctx, db), now=int(time.time()))
        if json_output:
            emit_json(result.to_dict())
        else:
            from serbero_cli.safetext import for_terminal

            sys.stdout.write(for_terminal(result.line).replace("\n", " ") + "\n")
        return result.exit_code

    execute(ctx, json_output=json_output, error_report=status_error_report, body=body)
