"""`serbero init`: write a commented config with a fresh key and say what to do next (docs/operations.md#commands)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from serbero_cli.cli.common import execute, state

if TYPE_CHECKING:
    from serbero_cli.setup.init import InitResult

WHY_READ = (
    "Register it with :read: the Mostro node itself then keeps Serbero away from funds "
    "(no admin-settle or admin-cancel), and only a dispute held by a read solver can be "
    "taken over by a human write solver."
)


def init(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            metavar="PATH",
            show_default=False,
            help="File to write (default: the global --config, else $SERBERO_CONFIG, else ./config.toml).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing file (atomically; the new file is still mode 0600).",
        ),
    ] = False,
    key_to_env: Annotated[
        bool,
        typer.Option(
            "--key-to-env",
            help="Leave private_key out of the file and print SERBERO_PRIVATE_KEY=nsec1… once, "
            "for a systemd EnvironmentFile.",
        ),
    ] = False,
    mostro_pubkey: Annotated[
        str | None,
        typer.Option(
            "--mostro-pubkey",
            metavar="PUBKEY",
            show_default=False,
            help="The Mostro node's public key (hex, npub1… or nostr:npub1…).",
        ),
    ] = None,
    relay: Annotated[
        list[str] | None,
        typer.Option(
            "--relay",
            metavar="URL",
            show_default=False,
            help="A relay URL (ws:// or wss://); replaces the sample relay.",
        ),
    ] = None,
    solver: Annotated[
        list[str] | None,
        typer.Option(
            "--solver",
            metavar="PUBKEY[:read|:write]",
            show_default=False,
            help="A human solver to notify; the permission is read unless :write is given.",
        ),
    ] = None,
    db_path: Annotated[
        str | None,
        typer.Option(
            "--db-path",
            metavar="PATH",
            show_default=False,
            help="Database file to write into [serbero] db_path (relative to the config's folder); "
            "its folder is created, mode 0700.",
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            metavar="PATH",
            show_default=False,
            help="Write SERBERO_PRIVATE_KEY=nsec1… to PATH (mode 0600; --force replaces it) and leave "
            "private_key out of the config; nothing secret is printed.",
        ),
    ] = None,
) -> None:
    """Write a commented config.toml (mode 0600) with a fresh Serbero key, and print its public key.

    The file holds every key with its default. Fill in [mostro] pubkey, [[relays]] and [[solvers]]
    (or pass --mostro-pubkey, --relay and --solver), register the printed npub1…:read string on
    the Mostro node, then run `serbero doctor`. An existing file is never overwritten without --force.
    """

    def body() -> int:
        from serbero_cli.config import default_config_path
        from serbero_cli.setup.init import run_init

        target = path or state(ctx).config_path or default_config_path()
        result = run_init(
            target,
            force=force,
            key_to_env=key_to_env,
            mostro_pubkey=mostro_pubkey,
            relays=relay or (),
            solvers=solver or (),
            db_path=db_path,
            env_file=env_file,
        )
        render_init(result, config_option=_config_option(target))
        return 0

    execute(ctx, json_output=False, error_report=None, body=body)


def _config_option(target: Path) -> str:
    """The `--config X ` prefix later commands need, empty when they would find the file anyway."""
    from serbero_cli.config import default_config_path

    if target.resolve() == default_config_path().resolve():
        return ""
    return f"--config {target} "


def render_init(result: InitResult, *, config_option: str) -> None:
    verb = "replaced" if result.replaced else "wrote"
    lines = [
        f"{verb} {result.path} (mode 0600)"
        + (f"; database: {result.db_path}" if result.db_path else ""),
        "",
        "Serbero's public key:",
        f"  npub  {result.npub}",
        f"  hex   {result.public_key}",
        "",
        "Register it on the Mostro node, one of two ways:",
        "  (a) Mostro >= 0.19.2: add this line under [mostro] in mostrod's settings.toml, then restart mostrod",
        f'      serbero_pubkey = "{result.npub}"',
        "      The node registers it as a read solver and announces it (the Mostro app then labels it Assistant).",
        "  (b) Older nodes: admin-add-solver, sent from the node's own key, with exactly",
        f"      {result.registration}",
        WHY_READ,
        "Warning: a key's permission cannot be changed by registering it again (the node keeps the first",
        "registration; a second admin-add-solver fails without a reply). A key first registered read-write,",
        "e.g. as a bare npub1… without :read, must be replaced by a new key (serbero keys generate).",
    ]
    if result.env_file is not None:
        lines += [
            "",
            f"The private key is NOT in the config: it is in {result.env_file} (mode 0600) as SERBERO_PRIVATE_KEY.",
            "Point the systemd units' EnvironmentFile= at that file (or load it before running serbero).",
        ]
    if result.env_secret is not None:
        from serbero_cli.keytext import nsec

        lines += [
            "",
            "The private key is NOT in the file. Put the next line in a mode-0600 EnvironmentFile",
            "(for the systemd units: /etc/serbero/serbero.env, owned by root). It is shown only this once:",
            f"SERBERO_PRIVATE_KEY={nsec(result.env_secret)}",
        ]
    steps = []
    if result.unfilled:
        steps.append(
            f"Edit {result.path}: set {', '.join(result.unfilled)} (check [[relays]] too)."
        )
    doctor = f"serbero {config_option}doctor"
    if result.env_file is not None:
        check = f"Check everything with the key loaded: (set -a; . {result.env_file}; {doctor})"
    else:
        check = f"Check everything{' with SERBERO_PRIVATE_KEY set' if result.env_secret else ''}: {doctor}"
    steps += [
        f'Ask the Mostro operator to register it: serbero_pubkey = "{result.npub}" (Mostro >= 0.19.2) '
        f"or {result.registration}.",
        check,
        "Schedule listen, mediate-once and dispatch-once: scripts/crontab.example or scripts/systemd/.",
    ]
    lines += ["", "Next steps:"] + [f"  {n}. {step}" for n, step in enumerate(steps, start=1)]
    print("\n".join(lines))
