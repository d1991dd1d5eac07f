"""The Typer app: global options and one registration line per subcommand module.

`serbero listen` runs from cron every minute, so start-up counts (docs/operations.md#benchmarks).
Turning a Typer app into a click command inspects every command's signature; `main()` therefore
builds an app holding only the command named on the command line. `--help`, an unknown name and
shell completion get the full app, which is also what `app` (this module's attribute) is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from serbero_cli.cli.common import state


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


def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $SERBERO_CONFIG, else ./config.toml).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="debug, info, warning or error (beats SERBERO_LOG and the config).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="Print `serbero <version>` and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Global options shared by every subcommand."""
    from serbero_cli.logsetup import LEVELS

    if log_level is not None and log_level.strip().lower() not in LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(LEVELS)}", param_hint="--log-level"
        )
    st = state(ctx)
    st.config_path = config
    st.log_level = log_level.strip().lower() if log_level is not None else None


# name -> (module under serbero_cli.cli, attribute, is a sub-app)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "listen": ("listen", "listen", False),
    "mediate-once": ("mediate_once", "mediate_once", False),
    "dispatch-once": ("dispatch_once", "dispatch_once", False),
    "audit": ("audit", "app", True),
    "status": ("status", "status", False),
    "init": ("init", "init", False),
    "keys": ("keys", "app", True),
    "doctor": ("doctor", "doctor", False),
    "demo": ("demo", "demo", False),
    "backup": ("backup", "backup", False),
    "prune": ("prune", "prune", False),
}

# Root options that take a value as the next argument (`--config FILE`).
_VALUE_OPTIONS = frozenset({"--config", "-c", "--log-level"})


def build_app(only: str | None = None) -> typer.Typer:
    """The serbero app with every command, or with the one command `only` names."""
    from importlib import import_module

    built = typer.Typer(
        name="serbero",
        help="Serbero coordinates Mostro disputes over Nostr: it notifies solvers, mediates, escalates and audits. "
        "It never moves funds.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
        rich_markup_mode=None,
    )
    built.callback()(root)
    for name, (module_name, attribute, is_group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(import_module(f"serbero_cli.cli.{module_name}"), attribute)
        if is_group:
            built.add_typer(target, name=name)
        else:
            built.command(name)(target)
    return built


def requested_command(argv: list[str], environ: Mapping[str, str]) -> str | None:
    """The subcommand `argv` runs, when building only that one behaves exactly like the full app."""
    if "_SERBERO_COMPLETE" in environ:  # shell completion lists every command
        return None
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in ("--help", "-h", "--"):
            return None
        elif arg in _VALUE_OPTIONS:
            skip_value = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main() -> None:
    import os
    import sys

    build_app(requested_command(sys.argv[1:], os.environ))()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the full app, built once on first use (tests, man pages, README)
        full = globals()["app"] = build_app()
        return full
    raise AttributeError(name)
