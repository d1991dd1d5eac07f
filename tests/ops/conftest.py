"""Fixtures for the operator tools: an in-process CLI runner with a clean environment, a Mostro info
event builder (kind 38385) for the doctor checks, and `parse_cli` for documented command lines."""

from __future__ import annotations

import os

import nostr_sdk as ns
import pytest
import typer.main
from typer.testing import CliRunner

from serbero_cli.cli.app import app


@pytest.fixture
def clean_env(monkeypatch):
    """No SERBERO_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("SERBERO_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def cli(clean_env):
    """Invoke the real Typer app in-process: cli("keys", "show", env={...}) -> Result (stdout/stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, list(args), catch_exceptions=False, env=env)

    return invoke


def build_info_event(
    keys: ns.Keys, tags: dict[str, str], created_at: int | None = None
) -> ns.Event:
    """A kind-38385 info event as a Mostro node publishes it (d = its own pubkey, empty content)."""
    all_tags = (
        [["d", keys.public_key().to_hex()]] + [[k, v] for k, v in tags.items()] + [["z", "info"]]
    )
    builder = ns.EventBuilder(ns.Kind(38385), "").tags([ns.Tag.parse(t) for t in all_tags])
    if created_at is not None:
        builder = builder.custom_created_at(ns.Timestamp.from_secs(created_at))
    return builder.finalize(keys)


def parse_cli(argv: list[str]) -> None:
    """Parse argv through the real command tree (raises on unknown commands or options), running nothing."""
    command, name, ctx = typer.main.get_command(app), "serbero", None
    args = list(argv)
    while True:
        ctx = command.make_context(name, args, parent=ctx)
        if not hasattr(command, "resolve_command"):
            return
        rest = (
            list(
                getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []
            )
            + ctx.args
        )
        if not rest:
            return
        if (
            not rest[0].startswith("-")
            and command.get_command(ctx, rest[0]) is None
            and ctx.parent is None
        ):
            pytest.skip(f"{rest[0]} is not registered in this build yet")
        name, command, args = command.resolve_command(ctx, rest)
