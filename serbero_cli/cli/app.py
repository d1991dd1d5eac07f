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
    add_completion=True,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        text = package_version("serbero")
    except PackageNotFoundError:  # running from a checkout that was never installed
        text = "unknown"
    print(f"serbero {text}")
    raise typer.Exit(0)


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
    version: Annotated[
        bool,
        typer.Option("--version", "-V", help="Print `serbero <version>` and exit.", is_eager=True,
                     callback=_print_version),
    ] = False,
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
        backup,
        demo,
        dispatch_once,
        doctor,
        init,
        keys,
        listen,
        mediate_once,
        prune,
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
    app.command("backup")(backup.backup)
    app.command("prune")(prune.prune)


_register()
