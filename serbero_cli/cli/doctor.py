"""`serbero doctor`: check config, database, relays, Mostro, solvers, reasoning, locks and files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from serbero_cli.cli.common import console, emit_json, execute, state

if TYPE_CHECKING:
    from rich.console import Console

    from serbero_cli.setup.checks import DoctorReport


def doctor(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (doctor/v1) on stdout.")
    ] = False,
    send_test_dm: Annotated[
        bool,
        typer.Option(
            "--send-test-dm",
            help="Also send each solver one test message in each of its envelopes and report "
            "which relays accepted it (the only check that publishes).",
        ),
    ] = False,
) -> None:
    """Check that this Serbero can run: config, database, relays, Mostro, solvers, reasoning, locks, files.

    Nothing is written or published (except with --send-test-dm): the database is opened read-only and
    never created. Prints one
    table with ✓ (ok), ! (warning) or ✗ (failed) per check and a hint for each problem. Exit 0 when
    nothing failed, 2 when the config has errors (all are listed), 4 when another check failed.
    """

    def body() -> int:
        from serbero_cli.config import default_config_path
        from serbero_cli.logsetup import configure_logging, resolve_level
        from serbero_cli.setup.doctor import run_doctor

        configure_logging(resolve_level(state(ctx).log_level, None))
        report = run_doctor(
            state(ctx).config_path or default_config_path(), send_test_dm=send_test_dm
        )
        if json_output:
            emit_json(report.to_dict())
        else:
            render_doctor(report)
        return report.exit_code

    execute(
        ctx,
        json_output=json_output,
        error_report=lambda code, error: {
            "report": "doctor/v1",
            "exit_code": code,
            "error": error,
            "counts": {},
            "checks": [],
        },
        body=body,
    )


def render_doctor(report: DoctorReport, out: Console | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    from serbero_cli.cli.render import plain
    from serbero_cli.setup.checks import SYMBOLS

    out = out or console()
    table = Table(title="serbero doctor", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("hint", overflow="fold")
    styles = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check in report.checks:
        # Text, not markup: details such as "[mostro] pubkey" must print as written.
        table.add_row(
            Text(SYMBOLS[check.status], style=styles[check.status]),
            plain(check.name),
            plain(check.detail),
            plain(check.hint),
        )
    out.print(table)
    for check in report.checks:
        if check.name == "registration":
            # Again on one unwrapped line, so it can be copied whole: the node wants exactly this string.
            out.print(plain(check.detail), soft_wrap=True)
    counts = report.counts()
    out.print(
        f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failed; exit {report.exit_code}",
        markup=False,
    )
