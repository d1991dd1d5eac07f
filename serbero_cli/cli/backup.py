"""`serbero backup PATH`: a consistent copy of the database, safe while the phases run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serbero_cli.cli.common import emit_json, execute, load


def backup(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH", show_default=False, help="File to write (its folder must exist)."
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (backup/v1).")
    ] = False,
) -> None:
    """Copy the database to PATH (mode 0600) while listen, mediate-once and dispatch-once keep running.

    The copy is the database as of one moment (SQLite's online backup API), in one file, and is
    checked with PRAGMA quick_check before it gets its name. Exit 0 when the check passes, 4 when
    it finds damage (the copy is kept: it is as good as the database), 2 when PATH exists and
    --force was not given.
    """

    def body() -> int:
        from serbero_cli.store.backup import backup_database

        config = load(ctx)
        result = backup_database(config.db_path, path, force=force)
        if json_output:
            emit_json(result.to_dict())
        else:
            from serbero_cli.cli.render import summary_line

            print(
                summary_line(
                    "backup",
                    {
                        "path": result.path,
                        "size": result.size_bytes,
                        "pages": result.pages,
                        "quick_check": result.check,
                        "seconds": f"{result.seconds:.2f}",
                    },
                )
            )
        return 0 if result.ok else 4

    execute(
        ctx,
        json_output=json_output,
        body=body,
        error_report=lambda code, error: {"report": "backup/v1", "exit_code": code, "error": error},
    )
