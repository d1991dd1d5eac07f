"""`serbero backup`: a consistent, checked, private copy taken while `listen --follow` keeps writing."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import ROOT, db_rows, invoke, invoke_json, run_json, run_serbero, wait_for


def disputes_in(db_path: Path) -> set[str]:
    return {r["dispute_id"] for r in db_rows(db_path, "SELECT dispute_id FROM disputes")}


def pragma(db_path: Path, name: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return conn.execute(f"PRAGMA {name}").fetchall()
    finally:
        conn.close()


@pytest.fixture
def following(make_config, db_path):
    """`serbero listen --follow` running on the test relay; yields its config."""
    cfg = make_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "serbero_cli", "--config", str(cfg), "listen", "--follow"],
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
        yield cfg
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stderr.close()


def test_backup_taken_while_listen_follow_writes_is_consistent_and_holds_every_earlier_commit(
    following, mostro, db_path, tmp_path
):
    committed = [mostro.open_dispute() for _ in range(5)]

    def settled_rows() -> dict[str, list[dict]]:
        """Every row of the committed disputes in the tables listen writes, once all are notified."""
        return {
            table: db_rows(
                db_path,
                f"SELECT * FROM {table} WHERE dispute_id IN ({','.join('?' * 5)}) ORDER BY rowid",
                tuple(committed),
            )
            for table in ("disputes", "dispute_state_transitions", "notifications")
        }

    wait_for(
        lambda: sum(r["lifecycle_state"] == "notified" for r in settled_rows()["disputes"]) == 5, 15
    )
    before_backup = settled_rows()
    stop = threading.Event()
    published: list[str] = []

    def keep_publishing() -> None:
        while not stop.is_set() and len(published) < 60:
            published.append(mostro.open_dispute())

    writer = threading.Thread(target=keep_publishing)
    writer.start()
    try:
        wait_for(lambda: len(disputes_in(db_path)) > len(committed), 15)  # listen is writing now
        copy = tmp_path / "copy.db"
        proc = run_serbero(following, "backup", str(copy))
    finally:
        stop.set()
        writer.join()
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith("backup: path=") and "quick_check=ok" in line
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert pragma(copy, "quick_check") == [("ok",)] and pragma(copy, "integrity_check") == [("ok",)]
    assert pragma(copy, "foreign_key_check") == [] and pragma(copy, "journal_mode") == [("delete",)]
    assert not Path(f"{copy}-wal").exists()
    copied = disputes_in(copy)
    assert {
        table: db_rows(
            copy,
            f"SELECT * FROM {table} WHERE dispute_id IN ({','.join('?' * 5)}) ORDER BY rowid",
            tuple(committed),
        )
        for table in before_backup
    } == before_backup
    wait_for(lambda: disputes_in(db_path) >= set(committed + published), 20)
    assert copied <= disputes_in(db_path)
    code, doc, err = run_json(
        following, "audit", "disputes", "--limit", "0", env={"SERBERO_DB_PATH": str(copy)}
    )
    assert code == 0 and {r["dispute_id"] for r in doc["rows"]} == copied, err


def test_backup_refuses_to_overwrite_without_force_and_replaces_with_it(
    make_config, mostro, db_path, tmp_path
):
    cfg = make_config()
    mostro.open_dispute()
    assert invoke(cfg, "listen").returncode == 0
    copy = tmp_path / "copy.db"
    code, doc, err = invoke_json(cfg, "backup", str(copy))
    assert code == 0 and doc["quick_check"] == "ok" and doc["replaced"] is False, err
    before = copy.read_bytes()
    proc = run_serbero(cfg, "backup", str(copy))
    assert proc.returncode == 2 and "--force" in proc.stderr and proc.stdout == ""
    assert copy.read_bytes() == before
    mostro.open_dispute()
    assert invoke(cfg, "listen").returncode == 0
    code, doc, err = invoke_json(cfg, "backup", str(copy), "--force")
    assert code == 0 and doc["replaced"] is True, err
    assert len(disputes_in(copy)) == 2 and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".copy.db.")
    ] == []  # no temp file left


@pytest.mark.parametrize(
    "target, why",
    [
        pytest.param("missing-folder/copy.db", "no such folder", id="missing-folder"),
        pytest.param("serbero.db", "the database itself", id="the-database"),
        pytest.param(".", "is a folder", id="a-folder"),
    ],
)
def test_backup_to_a_bad_target_is_exit_2(make_config, mostro, db_path, tmp_path, target, why):
    cfg = make_config()
    assert invoke(cfg, "listen").returncode == 0
    proc = run_serbero(cfg, "backup", str(tmp_path / target), "--force")
    assert proc.returncode == 2 and why in proc.stderr, proc.stderr
    assert pragma(db_path, "quick_check") == [("ok",)]


def test_backup_without_a_database_is_exit_2_and_creates_nothing(make_config, db_path, tmp_path):
    proc = run_serbero(make_config(), "backup", str(tmp_path / "copy.db"))
    assert proc.returncode == 2 and "database not found" in proc.stderr
    assert not (tmp_path / "copy.db").exists() and not db_path.exists()


def test_a_damaged_database_gives_a_copy_that_fails_its_check_and_exit_4(
    make_config, mostro, db_path, tmp_path
):
    cfg = make_config()
    for _ in range(3):
        mostro.open_dispute()
    assert invoke(cfg, "listen").returncode == 0
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name='notifications'"
    ).fetchone()
    conn.close()
    with open(
        db_path, "r+b"
    ) as fh:  # disk damage: garbage over the notifications table's root page
        fh.seek((root - 1) * page_size + 8)
        fh.write(b"\xff" * 64)
    copy = tmp_path / "copy.db"
    code, doc, err = invoke_json(cfg, "backup", str(copy))
    assert code == 4 and doc["exit_code"] == 4 and doc["quick_check"] != "ok", err
    assert copy.exists()  # kept: as good as the database it came from
