"""`serbero doctor` on the database file: its mode, side files left by another user, damaged
pages, and a db_path whose folder does not exist. Real files, the real CLI, the doctor/v1 JSON."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from serbero_cli.store.db import open_db
from tests.helpers import ROOT, run_json
from tests.ops.test_doctor import FAST, doctor_json, row

NOBODY = 65534


def fill(db_path: Path) -> None:
    """A database with enough rows that its tables span several pages."""
    store = open_db(db_path)
    with store.immediate() as conn:
        for i in range(300):
            conn.execute(
                "INSERT INTO sync_state (key, value, updated_at) VALUES (?,?,?)",
                (f"k{i}", "v" * 200, i),
            )
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def test_doctor_fails_a_database_readable_by_group_or_others_and_gives_the_chmod(
    cli, make_config, db_path
):
    config = make_config(sections=FAST)
    open_db(db_path).close()
    db_path.chmod(0o644)
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 4
    check = row(doc, "database mode")
    assert check["status"] == "fail" and "serbero.db 0644" in check["detail"]
    # SQLite gives the -wal and -shm files a reader creates the database's mode, so they are named too
    assert check["hint"].startswith(f"chmod 600 {db_path}")
    for path in [db_path, *(Path(f"{db_path}{s}") for s in ("-wal", "-shm"))]:
        path.chmod(0o600) if path.exists() else None
    result, doc = doctor_json(cli, config)
    assert row(doc, "database mode") == {
        "name": "database mode",
        "status": "ok",
        "hint": "",
        "detail": "serbero.db mode 0600",
    }


def test_doctor_runs_quick_check_and_fails_a_damaged_database(cli, make_config, db_path):
    config = make_config(sections=FAST)
    fill(db_path)
    result, doc = doctor_json(cli, config)
    assert row(doc, "database integrity")["status"] == "ok"
    conn = sqlite3.connect(db_path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='sync_state'").fetchone()[0]
    conn.close()
    data = bytearray(db_path.read_bytes())
    data[(root - 1) * page_size : root * page_size] = (
        b"\xff" * page_size
    )  # the header page stays intact
    db_path.write_bytes(bytes(data))
    before = db_path.read_bytes()
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 4
    check = row(doc, "database integrity")
    assert check["status"] == "fail" and check["detail"].startswith("quick_check: Page ")
    assert "restore" in check["hint"]
    assert db_path.read_bytes() == before  # doctor only reads


def held_writer(db_path: Path):
    """An open writer with uncommitted-to-the-main-file pages, so the -wal file is real and non-empty.

    SQLite resets the mode of an empty side file it opens, so only a live one keeps a wrong mode.
    """
    store = open_db(db_path)
    with store.immediate() as conn:
        conn.execute("INSERT INTO sync_state (key, value, updated_at) VALUES ('held', 'x', 0)")
    assert Path(f"{db_path}-wal").stat().st_size > 0
    return store


def test_doctor_fails_a_side_file_this_user_cannot_write(make_config, db_path):
    """A `-wal` left behind by a run as another user (root, say) blocks every later run."""
    if os.geteuid() == 0:
        _run_side_file_case_as_nobody(make_config, db_path)
        return
    config = make_config(sections=FAST)
    writer = held_writer(db_path)
    wal = Path(f"{db_path}-wal")
    try:
        wal.chmod(0o400)
        code, doc, _ = run_json(config, "doctor")
    finally:
        wal.chmod(0o600)
        writer.close()
    assert code == 4
    check = row(doc, "database files")
    assert check["status"] == "fail" and f"{wal} is not writable by this user" in check["detail"]


def _run_side_file_case_as_nobody(make_config, db_path: Path) -> None:
    # root writes anything, so doctor runs as root without the capabilities that bypass file modes,
    # on a -wal another user (nobody) left behind
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the file-mode override")
    config = make_config(sections=FAST)
    open_db(db_path).close()
    wal = Path(f"{db_path}-wal")
    wal.write_bytes(b"")
    wal.chmod(0o600)
    os.chown(wal, NOBODY, NOBODY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    proc = subprocess.run(
        [
            setpriv,
            "--bounding-set",
            "-dac_override,-dac_read_search,-fowner",
            "--inh-caps=-all",
            sys.executable,
            "-m",
            "serbero_cli",
            "--config",
            str(config),
            "doctor",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=90,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 4, proc.stderr
    check = row(doc, "database files")
    assert check["status"] == "fail" and f"{wal} is not writable by this user" in check["detail"]
    assert str(wal) in check["hint"]


def test_doctor_fails_a_db_path_whose_folder_does_not_exist_as_a_config_error(
    cli, make_config, tmp_path
):
    missing = tmp_path / "typo" / "serbero.db"
    config = make_config(sections={**FAST, "serbero": {"db_path": str(missing)}})
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 2
    assert row(doc, "database folder")["status"] == "fail"
    assert f"mkdir -m 700 {missing.parent}" in row(doc, "database folder")["hint"]
    assert row(doc, "database")["status"] == "fail"
    assert not missing.parent.exists()


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_doctor_fails_a_loose_side_file_too(cli, make_config, db_path, suffix):
    config = make_config(sections=FAST)
    writer = held_writer(db_path)
    side = Path(f"{db_path}{suffix}")
    try:
        side.chmod(0o664)
        result, doc = doctor_json(cli, config)
    finally:
        writer.close()
    check = row(doc, "database mode")
    assert check["status"] == "fail" and f"{side.name} 0664" in check["detail"]
    assert check["hint"] == f"chmod 600 {side}"
