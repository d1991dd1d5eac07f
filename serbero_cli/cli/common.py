"""Plumbing every command shares: loading config, the error wrapper, JSON output, the console."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from serbero_cli.errors import ConfigError, ExitCode, LockHeld, SerberoError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from serbero_cli.config import Config

logger = logging.getLogger("serbero")

QUIET_HELP = (
    "Print nothing when the run succeeds; otherwise only the one summary line "
    "(logs still go to stderr)."
)


@dataclass
class AppState:
    """Global options, stored on the Typer context by the root callback."""

    config_path: Path | None = None
    log_level: str | None = None


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def load(ctx: typer.Context) -> Config:
    """Load the config named by --config / SERBERO_CONFIG / ./config.toml and set up logging."""
    from serbero_cli.config import default_config_path, load_config
    from serbero_cli.logsetup import configure_logging, resolve_level

    st = state(ctx)
    path = st.config_path or default_config_path()
    try:
        config = load_config(path)
    except ConfigError:
        try:
            level = resolve_level(st.log_level, None)
        except UsageError:  # a bad SERBERO_LOG is already among the loader's problems
            level = "info"
        configure_logging(level)
        raise
    level = resolve_level(st.log_level, config.log_level)
    configure_logging(level)
    for warning in config.warnings:
        logger.warning("%s", warning)
    return config


def debug_enabled(ctx: typer.Context) -> bool:
    return (
        logging.getLogger().isEnabledFor(logging.DEBUG)
        or (state(ctx).log_level or "").lower() == "debug"
    )


def maybe_init_nostr_logger(ctx: typer.Context) -> None:
    """nostr_sdk's own log, only at debug level: it is verbose (nostr/debuglog.py moves it to stderr)."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    from serbero_cli.nostr.debuglog import init_sdk_logger

    init_sdk_logger()


def emit_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def execute(
    ctx: typer.Context,
    *,
    json_output: bool,
    error_report: Callable[[int, str], dict[str, Any]] | None,
    body: Callable[[], int],
) -> None:
    """Run `body` (which renders and returns an exit code); turn failures into the shared exit codes.

    A SerberoError prints one line per problem to stderr (or the JSON report with `exit_code` and
    `error`) and exits with its code. Anything else exits 1, with a traceback only at debug level.
    """
    try:
        code = body()
    except SerberoError as exc:
        code = int(exc.exit_code)
        message = str(exc)
        if isinstance(exc, ConfigError):
            for line in exc.problems:
                sys.stderr.write(f"{line}\n")
            message = "; ".join(exc.problems)
        elif isinstance(exc, LockHeld):
            sys.stderr.write(f"{message}\n")
        else:
            sys.stderr.write(f"error: {message}\n")
        if json_output and error_report:
            emit_json(error_report(code, message))
    except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become exit 1
        code = int(ExitCode.INTERNAL)
        if debug_enabled(ctx):
            traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"internal error: {exc.__class__.__name__}: {_safe(exc)}\n")
        if json_output and error_report:
            emit_json(error_report(code, f"internal error: {exc.__class__.__name__}"))
    raise typer.Exit(code)


def _safe(exc: Exception) -> str:
    # Exception text can carry secrets only if code put them there; we never do, but cap it.
    return str(exc)[:300]


def console(stderr: bool = False) -> Console:
    """A rich Console; no colour when not a TTY or when NO_COLOR is set (rich handles both)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
