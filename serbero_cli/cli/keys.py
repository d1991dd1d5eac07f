"""`serbero keys generate | show | convert`: key tools that never need a relay (docs/operations.md#commands)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from serbero_cli.cli.common import emit_json, execute, state

app = typer.Typer(
    name="keys",
    help="Generate a key pair, show the public key a config uses, convert between hex and npub/nsec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SECRET_WARNING = "warning: the output holds a secret key; anyone who has it can act as this key"


@app.command("generate")
def generate(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print a fresh key pair: the secret key (nsec and hex) and its public key (npub and hex).

    Printing a new secret key is what this command is for: copy it into the config (mode 0600) or an
    EnvironmentFile, then clear the terminal. `serbero init` does the same and writes the file for you.
    """

    def body() -> int:
        from serbero_cli.keytext import generate_secret, nsec
        from serbero_cli.setup.keytools import identity_of

        secret = generate_secret()
        ident = identity_of(secret)
        if json_output:
            emit_json(
                {
                    "secret_key_nsec": nsec(secret),
                    "secret_key_hex": secret.reveal(),
                    **ident.to_dict(),
                }
            )
        else:
            _print_rows(
                [
                    ("secret key (nsec)", nsec(secret)),
                    ("secret key (hex)", secret.reveal()),
                    ("public key (npub)", ident.npub),
                    ("public key (hex)", ident.public_key),
                    ("register as", ident.registration),
                ]
            )
        sys.stderr.write(SECRET_WARNING + "\n")
        return 0

    execute(ctx, json_output=json_output, error_report=_error_report, body=body)


@app.command("show")
def show(
    ctx: typer.Context,
    secret_from_env: Annotated[
        bool,
        typer.Option(
            "--secret-from-env",
            help="Read the key from SERBERO_PRIVATE_KEY (or SERBERO_PRIVATE_KEY_FILE, or the "
            "serbero-private-key systemd credential) instead of the config file.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print the public key (npub and hex) and the npub1…:read registration string; never the secret.

    The key is the one Serbero would use: SERBERO_PRIVATE_KEY, else the file SERBERO_PRIVATE_KEY_FILE
    names, else the serbero-private-key systemd credential, else [serbero] private_key from the config.
    """

    def body() -> int:
        from serbero_cli.config import default_config_path
        from serbero_cli.setup.keytools import configured_secret, identity_of
        from serbero_cli.setup.keytools import secret_from_env as read_env

        notes: list[str] = []
        if secret_from_env:
            secret = read_env(os.environ)
        else:
            secret, notes = configured_secret(
                state(ctx).config_path or default_config_path(), os.environ
            )
        ident = identity_of(secret)
        if json_output:
            emit_json(ident.to_dict())
        else:
            _print_rows(
                [
                    ("public key (npub)", ident.npub),
                    ("public key (hex)", ident.public_key),
                    ("register as", ident.registration),
                ]
            )
        for note in notes:
            sys.stderr.write(f"note: {note}\n")
        return 0

    execute(ctx, json_output=json_output, error_report=_error_report, body=body)


@app.command("convert")
def convert(
    ctx: typer.Context,
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="A key: 64 hex, npub1…, nostr:npub1… or nsec1….")
    ],
    as_kind: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="public|secret",
            show_default=False,
            help="What a 64-hex VALUE is (required for hex, which could be either).",
        ),
    ] = None,
) -> None:
    """Convert a key: hex to npub (--as public) or nsec (--as secret), and npub or nsec to hex.

    Only the converted value goes to stdout. Converting a secret key prints a secret, and a warning
    on stderr says so.
    """

    def body() -> int:
        from serbero_cli.setup.keytools import convert_key

        result = convert_key(value, as_kind)
        print(result.value)
        if result.is_secret:
            sys.stderr.write(SECRET_WARNING + "\n")
        return 0

    execute(ctx, json_output=False, error_report=None, body=body)


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print("\n".join(f"{label.ljust(width)}  {value}" for label, value in rows))


def _error_report(code: int, error: str) -> dict:
    return {"exit_code": code, "error": error}
