"""Runs that fail inside exit 1 (internal error) with one line on stderr: an unexpected
exception anywhere in a phase, and a database that cannot be opened or brought up to date. The
traceback appears only at `--log-level debug`; with `--json` the error is also in the report.

These are about the process's exit code and streams, so `serbero` runs as a subprocess.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.helpers import file_bytes, run_serbero

ESCALATION_ON = {"escalation": {"enabled": True}}


@pytest.fixture
def refusing_db(make_config, mostro, db_path):
    """A config whose database refuses every new dispute (a planted trigger) and one new dispute on
    the relay: the next listen run raises an exception no code path expects."""
    cfg = make_config()
    assert run_serbero(cfg, "listen").returncode == 0
    conn = sqlite3.connect(str(db_path))
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON disputes BEGIN SELECT RAISE(ABORT, 'planted'); END"
    )
    conn.commit()
    conn.close()
    mostro.open_dispute()
    return cfg


def test_an_unexpected_exception_exits_1_with_one_line_on_stderr_and_no_traceback(refusing_db):
    proc = run_serbero(refusing_db, "listen")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["internal error: IntegrityError: planted"]


def test_at_debug_level_the_traceback_comes_before_the_same_line(refusing_db):
    proc = run_serbero(refusing_db, "--log-level", "debug", "listen")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[-1] == "internal error: IntegrityError: planted"
    assert "Traceback (most recent call last):" in lines
    assert lines[-2] == "sqlite3.IntegrityError: planted"


def test_with_json_the_report_names_the_error_by_type_only(refusing_db):
    proc = run_serbero(refusing_db, "listen", "--json")
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 1
    doc = json.loads(proc.stdout)
    assert doc["report"] == "listen/v1" and doc["exit_code"] == 1
    # The exception's text could hold anything, so the report carries only its type.
    assert doc["error"] == "internal error: IntegrityError" and "planted" not in proc.stdout
    assert proc.stderr.splitlines() == ["internal error: IntegrityError: planted"]


def not_a_database(path):
    path.write_bytes(b"this is not a database" * 100)


def missing_tables(path):
    """A file that says it is at schema version 1 but holds none of version 1's tables."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("command", ["listen", "dispatch-once"])
@pytest.mark.parametrize(
    "spoil,message",
    [
        pytest.param(
            not_a_database,
            "cannot open database {path}: file is not a database",
            id="not-a-database",
        ),
        pytest.param(
            missing_tables,
            "cannot migrate database {path}: no such table: main.disputes",
            id="migration-fails",
        ),
    ],
)
def test_a_database_that_cannot_be_opened_or_migrated_exits_1_with_one_line(
    make_config, db_path, command, spoil, message
):
    cfg = make_config(relays=["ws://127.0.0.1:1"], sections=ESCALATION_ON)
    spoil(db_path)
    before = file_bytes(db_path)
    proc = run_serbero(cfg, command)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: " + message.format(path=db_path)]
    if spoil is not_a_database:
        assert file_bytes(db_path) == before
    proc = run_serbero(cfg, command, "--json")
    doc = json.loads(proc.stdout)
    assert (
        proc.returncode == 1
        and doc["exit_code"] == 1
        and doc["error"] == message.format(path=db_path)
    )
