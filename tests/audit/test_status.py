"""`serbero status`: one line and exit 0 or 4 by the dashboard's attention rules; read-only."""

from __future__ import annotations

import json
import re
import sqlite3
import time

from serbero_cli.runlock import RunLock
from tests.helpers import db_checksum, invoke, invoke_json, run_serbero


def plant_listen_record(db_path, finished_at: int, exit_code: int = 0) -> None:
    record = {
        "phase": "listen",
        "started_at": finished_at - 1,
        "finished_at": finished_at,
        "exit_code": exit_code,
        "error": None,
    }
    conn = sqlite3.connect(str(db_path))
    conn.execute(
        "UPDATE sync_state SET value = ?, updated_at = ? WHERE key = 'listen_run_record'",
        (json.dumps(record), finished_at),
    )
    conn.commit()
    conn.close()


def test_status_is_ok_after_a_clean_listen_and_says_when_it_ran(make_config, mostro, db_path):
    cfg = make_config()
    mostro.open_dispute()
    assert invoke_json(cfg, "listen")[0] == 0
    proc = invoke(cfg, "status")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"ok: 1 untaken, last listen \d+s ago\n", proc.stdout)
    code, doc, _ = invoke_json(cfg, "status")
    assert (
        code == 0
        and doc["report"] == "status/v1"
        and doc["status"] == "ok"
        and doc["attention"] == []
    )
    assert doc["untaken"] == 1 and doc["last_runs"]["listen"]["exit_code"] == 0
    assert set(doc["last_runs"]["listen"]) == {"exit_code", "started_at", "finished_at", "error"}


def test_status_names_disputes_untaken_longer_than_twice_the_reminder_interval(
    make_config, mostro, db_path
):
    cfg = make_config()
    mostro.open_dispute(created_at=int(time.time()) - 1000)
    mostro.open_dispute()
    assert invoke_json(cfg, "listen")[0] == 0
    proc = invoke(cfg, "status")
    assert proc.returncode == 4
    assert re.fullmatch(r"attention: 1 dispute untaken for 1[67]m\n", proc.stdout)
    code, doc, _ = invoke_json(cfg, "status")
    (finding,) = doc["attention"]
    assert finding["kind"] == "untaken_disputes" and finding["count"] == 1 and doc["untaken"] == 2


def test_an_overdue_phase_is_attention_unless_it_holds_its_lock(make_config, db_path):
    cfg = make_config()
    assert invoke_json(cfg, "listen")[0] == 0
    plant_listen_record(db_path, int(time.time()) - 600)
    proc = invoke(cfg, "status")
    assert proc.returncode == 4 and proc.stdout.startswith(
        "attention: listen last finished 10m ago"
    )
    # A long `listen --follow` holds the lock and records only when it stops: it is not late.
    with RunLock(db_path, "listen", "listen"):
        proc = run_serbero(cfg, "status")
    assert proc.returncode == 0 and proc.stdout.startswith("ok: 0 untaken, last listen 10m ago")


def test_status_reads_only_takes_no_lock_and_needs_no_config_with_db(
    make_config, mostro, db_path, tmp_path
):
    cfg = make_config()
    mostro.open_dispute()
    assert invoke_json(cfg, "listen")[0] == 0
    before = db_checksum(db_path)
    locks = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".lock"))
    with RunLock(db_path, "mediate", "mediate-once"), RunLock(db_path, "dispatch", "dispatch-once"):
        assert run_serbero(cfg, "status").returncode == 0
    proc = invoke(None, "status", "--db", str(db_path))
    assert proc.returncode == 0 and proc.stdout.startswith("ok: 1 untaken")
    assert db_checksum(db_path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".lock")) == sorted(
        {*locks, "serbero.db.mediate.lock", "serbero.db.dispatch.lock"}
    )


def test_status_without_a_database_exits_2_with_one_json_document(make_config, db_path):
    cfg = make_config()
    code, doc, err = invoke_json(cfg, "status")
    assert (
        code == 2
        and doc["exit_code"] == 2
        and doc["status"] == "unknown"
        and "database not found" in doc["error"]
    )
    assert not db_path.exists()
