"""The database file as every command meets it: private modes under cron's umask, corrupt or
unreadable files, a schema from a newer serbero, and a db_path whose folder does not exist."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys

import pytest

from serbero_cli.store import migrations
from serbero_cli.store.db import open_db
from tests.helpers import ROOT, db_checksum, run_serbero, wait_for

API_ENV = {"SERBERO_REASONING_API_KEY": "sk-test-database-file"}
PHASES_ON = {
    "mediation": {"enabled": True},
    "reasoning": {"enabled": True, "api_base": "http://127.0.0.1:1/v1", "model": "m"},
    "escalation": {"enabled": True},
}
# Every command that reads the database, dry runs included.
COMMANDS = [
    pytest.param(("listen",), id="listen"),
    pytest.param(("listen", "--dry-run"), id="listen-dry-run"),
    pytest.param(("mediate-once",), id="mediate-once"),
    pytest.param(("mediate-once", "--dry-run"), id="mediate-once-dry-run"),
    pytest.param(("dispatch-once",), id="dispatch-once"),
    pytest.param(("dispatch-once", "--dry-run"), id="dispatch-once-dry-run"),
    pytest.param(("audit",), id="audit"),
]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def only_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_database_wal_shm_and_lock_files_are_private_under_crons_umask(make_config, db_path):
    cfg = make_config(solver_list=[])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    # cron starts jobs with umask 022, under which SQLite alone would create 0644 files
    proc = subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            'umask 022 && exec "$0" "$@"',
            sys.executable,
            "-m",
            "serbero_cli",
            "--config",
            str(cfg),
            "listen",
            "--follow",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = ""
        while "following dispute events" not in line:
            line = proc.stderr.readline()
            assert line, "listen --follow ended early"
        side_files = [db_path.parent / f"{db_path.name}{suffix}" for suffix in ("-wal", "-shm")]
        wait_for(
            lambda: all(p.exists() for p in side_files)
        )  # present while the follower holds the database
        lock = db_path.parent / f"{db_path.name}.listen.lock"
        assert {p.name: mode(p) for p in [db_path, *side_files, lock]} == {
            p.name: 0o600 for p in [db_path, *side_files, lock]
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0


@pytest.mark.parametrize("command", COMMANDS)
def test_a_corrupt_database_is_an_error_in_every_command(make_config, db_path, command):
    cfg = make_config(sections=PHASES_ON)
    junk = b"this is not a database" * 200
    db_path.write_bytes(junk)
    proc = run_serbero(cfg, *command, env=API_ENV)
    line = only_line(proc.stderr)
    # audit reads whatever file it is pointed at, so a file that is not a database is a usage error there
    assert proc.returncode == (2 if command[0] == "audit" else 1), proc.stderr
    assert "file is not a database" in line and str(db_path) in line
    assert "no database yet" not in proc.stdout + proc.stderr
    assert db_path.read_bytes() == junk


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.values[0][0] != "audit"])
def test_an_unreadable_database_is_an_error_in_every_command(make_config, db_path, command):
    if os.geteuid() == 0:
        pytest.skip("root reads every file: an unreadable database cannot be made")
    cfg = make_config(sections=PHASES_ON)
    open_db(db_path).close()
    db_path.chmod(0)
    try:
        proc = run_serbero(cfg, *command, env=API_ENV)
    finally:
        db_path.chmod(0o600)
    assert proc.returncode == 1, proc.stderr
    assert "database" in only_line(proc.stderr)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.values[0][0] != "audit"])
def test_a_database_path_that_cannot_be_opened_is_an_error_in_every_command(
    make_config, db_path, command
):
    cfg = make_config(sections=PHASES_ON)
    db_path.mkdir()  # exists, so it is not "no database yet", and nobody (root included) can open it
    proc = run_serbero(cfg, *command, env=API_ENV)
    assert proc.returncode == 1, proc.stderr
    line = only_line(proc.stderr)
    assert f"database {db_path}" in line and ("unable to open" in line or "disk I/O error" in line)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_from_a_newer_serbero_exits_2_in_every_command(make_config, db_path, command):
    cfg = make_config(sections=PHASES_ON)
    open_db(db_path).close()
    newer = len(migrations.MIGRATIONS) + 3
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (newer,))
    conn.commit()
    conn.close()
    before = db_checksum(db_path)
    proc = run_serbero(cfg, *command, env=API_ENV)
    assert proc.returncode == 2, proc.stderr
    assert f"written by a newer serbero (schema {newer}" in only_line(proc.stderr)
    assert "upgrade serbero" in proc.stderr
    assert db_checksum(db_path) == before


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.values[0][0] != "audit"])
def test_a_db_path_in_a_missing_folder_exits_2_and_creates_nothing(make_config, tmp_path, command):
    missing = tmp_path / "typo" / "serbero.db"
    cfg = make_config(sections={**PHASES_ON, "serbero": {"db_path": str(missing)}})
    proc = run_serbero(cfg, *command, env=API_ENV)
    assert proc.returncode == 2, proc.stderr
    line = only_line(proc.stderr)
    assert f"database folder {missing.parent} does not exist" in line
    assert not missing.parent.exists()


def test_audit_dispute_with_no_such_dispute_exits_2(db_path):
    open_db(db_path).close()
    proc = run_serbero(None, "audit", "dispute", "0123abcd", "--db", str(db_path))
    assert proc.returncode == 2
    assert "no dispute id starts with '0123abcd'" in only_line(proc.stderr)
