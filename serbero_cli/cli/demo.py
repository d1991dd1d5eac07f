"""`serbero demo`: watch the whole system work on loopback, with no configuration and no network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from serbero_cli.cli.common import console, execute

if TYPE_CHECKING:
    from rich.console import Console


def demo(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option("--scenario", help="cooperative, escalation or both.")
    ] = "both",
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Keep the demo's config and database here (default: a new temporary folder).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a loopback relay, a simulated Mostro, parties, solvers and model, then the real phases, narrated.

    Exits 0 only if every expected message was really received by its participant, else 4.
    """

    def body() -> int:
        from serbero_cli.errors import UsageError
        from serbero_cli.logsetup import configure_logging

        if scenario not in ("cooperative", "escalation", "both"):
            raise UsageError("--scenario must be cooperative, escalation or both")
        configure_logging("warning")
        from rich.text import Text

        from serbero_cli.safetext import for_terminal
        from serbero_cli.simulate.demo import SCENARIOS, run_demo

        out = console()
        chosen = SCENARIOS if scenario == "both" else (scenario,)

        def narrate(who: str, text: str) -> None:
            # The narration quotes decrypted DMs and model answers: data, never markup.
            if who == "audit":
                _render_audit(out, Path(text))
            else:
                out.print(
                    Text.assemble((for_terminal(f"{who:>22}"), "bold"), "  ", for_terminal(text)),
                    highlight=False,
                )

        report = run_demo(chosen, directory=directory, narrate=narrate)
        out.print()
        for e in report.expectations:
            mark = ("✓", "green") if e.met else ("✗", "red")
            out.print(Text.assemble(mark, " ", for_terminal(f"{e.who}: {e.what}")))
        out.print(
            "demo passed: every expected message arrived"
            if report.ok
            else "demo FAILED: see ✗ above"
        )
        return 0 if report.ok else 4

    execute(ctx, json_output=False, error_report=None, body=body)


def _render_audit(out: Console, config_path: Path) -> None:
    """The real `serbero audit` dashboard over the demo's database."""
    import time

    from serbero_cli.audit.render import render
    from serbero_cli.audit.views import run_dashboard
    from serbero_cli.config import load_config
    from serbero_cli.store.audit_queries import AuditSettings

    out.print()
    out.print("serbero audit (the dashboard an operator sees)", style="bold", markup=False)
    settings = AuditSettings.from_config(load_config(config_path))
    render(run_dashboard(settings, now=int(time.time())), out, borders=True)
