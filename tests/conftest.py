"""Fixtures: a real loopback relay per test, simulated Mostro and solvers, config files, Serbero keys."""

from __future__ import annotations

import functools

import nostr_sdk as ns
import pytest
import typer.testing

from serbero_cli.simulate.mostro import SimMostro
from serbero_cli.simulate.relay import start_relay
from serbero_cli.simulate.solver import SimSolver
from tests.helpers import write_config

# typer's CliRunner turns the Typer app into a click command on every invoke, inspecting the
# signature of every command (about 70 ms of CPU for the full serbero app); the app does not change
# during a run, so each worker builds it once. Typer is pinned below 0.29 in pyproject.toml, where
# the runner looks the converter up as `typer.testing._get_command`.
typer.testing._get_command = functools.cache(typer.testing._get_command)


@pytest.fixture(autouse=True)
def pinned_terminal_size(monkeypatch):
    """Every layout a test sees is 120 columns by 40 lines, whatever terminal started pytest: the
    width reaches `serbero` subprocesses and in-process runs through COLUMNS and LINES (tests that
    are about another width set their own)."""
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("LINES", "40")


@pytest.fixture
def relay():
    handle = start_relay()
    yield handle
    handle.shutdown()


@pytest.fixture
def serbero_keys() -> ns.Keys:
    return ns.Keys.generate()


@pytest.fixture
def mostro(relay):
    sim = SimMostro(relay.url)
    yield sim
    sim.close()


@pytest.fixture
def solvers(relay):
    """Two solvers: one read, one write."""
    sims = [
        SimSolver(relay.url, permission="read", name="reader"),
        SimSolver(relay.url, permission="write", name="writer"),
    ]
    yield sims
    for sim in sims:
        sim.close()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "serbero.db"


@pytest.fixture
def make_config(tmp_path, relay, mostro, solvers, serbero_keys, db_path):
    """Build a config file; keyword overrides: relays, solvers, sections, name."""

    def build(
        *,
        relays=None,
        solver_list=None,
        sections=None,
        name="config.toml",
        envelopes=None,
        observers=None,
    ):
        return write_config(
            tmp_path / name,
            private_key=serbero_keys.secret_key().to_hex(),
            mostro_pubkey=mostro.pubkey,
            relays=relays if relays is not None else [relay.url],
            solvers=solver_list
            if solver_list is not None
            else [(s.pubkey, s.permission) for s in solvers],
            db_path=str(db_path),
            sections=sections,
            envelopes=envelopes,
            observers=observers,
        )

    return build
