"""audit never writes, never migrates, never locks; missing, old, new, empty and broken files get
one clear line and the documented exit code, never a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serbero_cli.runlock import RunLock
from serbero_cli.store import migrations
from serbero_cli.store.db import open_db
from tests.audit.conftest import SESSION, A, plant
from tests.helpers import db_checksum, run_serbero

EVERY_COMMAND = [
    [],
    ["disputes"],
    ["disputes", "--state", "notified", "--since", "7d"],
    ["dispute", A],
    ["notifications"],
    ["notifications", "--status", "failed_final"],
    ["sessions"],
    ["transcript", SESSION],
    ["events"],
    ["events", "--dispute", A],
    ["handoffs"],
    ["handoffs", "--stuck"],
    ["dispatches"],
    ["dispatches", "--id", "{dispatch}"],
    ["dispatches", "--check"],
    ["authority"],
    ["rationale", "{rationale}"],
]


def disk_state(db: Path) -> tuple[bytes, bytes]:
    """The main file's bytes and the WAL's (empty when absent): what a writer would change."""
    wal = Path(str(db) + "-wal")
    return db.read_bytes(), wal.read_bytes() if wal.exists() else b""


def test_database_is_byte_identical_after_every_audit_command(audit, audit_db, story):
    _, db = audit_db
    dispatch_id = json.loads(audit("dispatches", "--json").stdout)["rows"][0]["dispatch_id"]
    checksum = db_checksum(db)
    before = disk_state(db)
    assert before[1] == b""
    for command in EVERY_COMMAND:
        args = [a.format(dispatch=dispatch_id, rationale=story.rationale_id) for a in command]
        for output in ([], ["--json"], ["--csv"]):
            result = audit(*args, *output)
            assert result.exit_code == 0, (args, output, result.stderr)
            assert disk_state(db) == before, f"audit {' '.join(args + output)} changed the file"
    assert db_checksum(db) == checksum


def test_missing_database_is_one_line_and_exit_2_and_creates_nothing(make_config, db_path):
    config = make_config()
    proc = run_serbero(config, "audit", "disputes")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: database not found: {db_path} (check [serbero].db_path, or pass --db PATH)"
    ]
    assert not db_path.exists()
    proc = run_serbero(config, "audit", "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert (
        doc["exit_code"] == 2
        and "database not found" in doc["error"]
        and doc["report"] == "audit.dashboard/v1"
    )


def test_older_schema_asks_for_a_phase_run_and_is_not_migrated(tmp_path):
    db = tmp_path / "old.db"
    store = open_db(db, migrate=False)
    migrations.apply(store, migrations.MIGRATIONS[:3])
    store.close()
    before = db_checksum(db)
    proc = run_serbero(None, "audit", "--db", str(db))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        f"error: database {db} has schema version 3, this serbero needs {len(migrations.MIGRATIONS)}: "
        "run `serbero listen` (or any phase) once to upgrade"
    )
    assert db_checksum(db) == before
    assert migrations.current_version(sqlite3.connect(str(db))) == 3


def test_file_without_serbero_tables_or_not_sqlite_exits_2(tmp_path):
    runner = CliRunner()
    from serbero_cli.cli.app import app

    empty = tmp_path / "empty.db"
    sqlite3.connect(str(empty)).close()
    result = runner.invoke(app, ["audit", "--db", str(empty)])
    assert (
        result.exit_code == 2 and "has no serbero tables yet: run `serbero listen`" in result.stderr
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["audit", "disputes", "--db", str(junk)])
    assert result.exit_code == 2 and "cannot read database" in result.stderr
    assert junk.read_bytes() == b"this is not a database" * 100


def test_newer_schema_refuses_with_exit_2(tmp_path):
    db = tmp_path / "new.db"
    open_db(db).close()
    plant(db, "INSERT INTO schema_version (version) VALUES (99)")
    proc = run_serbero(None, "audit", "--db", str(db))
    assert proc.returncode == 2 and "written by a newer serbero (schema 99" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_empty_database_gives_zeros_and_empty_lists(tmp_path):
    db = tmp_path / "fresh.db"
    open_db(db).close()
    from serbero_cli.cli.app import app

    runner = CliRunner()
    doc = json.loads(runner.invoke(app, ["audit", "--db", str(db), "--json"]).stdout)
    assert doc["disputes_total"] == 0 and set(doc["notifications"].values()) == {0}
    assert doc["last_runs"] == {"listen": None, "mediate-once": None, "dispatch-once": None}
    for view in ("disputes", "notifications", "sessions", "events", "handoffs", "dispatches"):
        result = runner.invoke(app, ["audit", view, "--db", str(db)])
        assert result.exit_code == 0 and f"no {view} match" in result.stdout
    for check in (["authority"], ["dispatches", "--check"]):
        assert runner.invoke(app, ["audit", *check, "--db", str(db)]).exit_code == 0
    result = runner.invoke(app, ["audit", "dispute", "abc", "--db", str(db)])
    assert result.exit_code == 2 and "no dispute id starts with 'abc'" in result.stderr


def test_a_missing_later_phase_table_reads_as_empty(audit, audit_db):
    _, db = audit_db
    plant(db, "DROP TABLE escalation_dispatches")
    assert json.loads(audit("dispatches", "--json").stdout)["rows"] == []
    assert json.loads(audit("--json").stdout)["disputes_total"] == 4
    assert audit("dispatches", "--check").exit_code == 0


def test_audit_runs_while_a_phase_holds_its_lock_and_a_write_transaction(audit_db):
    config, db = audit_db
    writer = sqlite3.connect(str(db), isolation_level=None)
    try:
        with RunLock(db, "listen", "listen"), RunLock(db, "dispatch", "dispatch-once"):
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE disputes SET lifecycle_state = 'resolved'")
            proc = run_serbero(config, "audit", "--json")
            writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert proc.returncode == 0, proc.stderr
    assert (
        json.loads(proc.stdout)["disputes"]["resolved"] == 1
    )  # the uncommitted change is not seen


@pytest.mark.parametrize("args", [["disputes", "--db", "{db}"], ["--db", "{db}", "disputes"]])
def test_db_option_works_without_any_config_before_or_after_the_sub_command(audit_db, args):
    _, db = audit_db
    proc = run_serbero(None, "audit", *[a.format(db=db) for a in args], "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["rows"]) == 4 and doc["report"] == "audit.disputes/v1"
