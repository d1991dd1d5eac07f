"""The Typer app: global options and one registration line per subcommand module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serbero_cli.cli.common import state

app = typer.Typer(
    name="serbero",
    help="Serbero coordinates Mostro disputes over Nostr: it notifies solvers, mediates, escalates and audits. "
    "It never moves funds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file (default: $SERBERO_CONFIG, else ./config.toml).",
                     show_default=False),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug, info, warning or error (beats SERBERO_LOG and the config).",
                     show_default=False),
    ] = None,
) -> None:
    """Global options shared by every subcommand."""
    from serbero_cli.logsetup import LEVELS

    if log_level is not None and log_level.strip().lower() not in LEVELS:
        raise typer.BadParameter(f"{log_level!r} is not one of {', '.join(LEVELS)}", param_hint="--log-level")
    st = state(ctx)
    st.config_path = config
    st.log_level = log_level.strip().lower() if log_level is not None else None


def _register() -> None:
    """One line per subcommand; each module imports only typer at top level (start-up budget)."""
    from serbero_cli.cli import (
        audit,
        demo,
        dispatch_once,
        doctor,
        init,
        keys,
        listen,
        mediate_once,
        status,
    )

    app.command("listen")(listen.listen)
    app.command("mediate-once")(mediate_once.mediate_once)
    app.command("dispatch-once")(dispatch_once.dispatch_once)
    app.add_typer(audit.app, name="audit")
    app.command("status")(status.status)
    app.command("init")(init.init)
    app.add_typer(keys.app, name="keys")
    app.command("doctor")(doctor.doctor)
    app.command("demo")(demo.demo)


_register()
