"""Every phase run that opened the database is recorded, whatever its exit code, and the dashboard
and `serbero status` judge the last one: real `serbero` subprocesses on a loopback relay."""

from __future__ import annotations

import sqlite3

from serbero_cli.runlock import RunLock
from tests.dispatch_once.conftest import Seeder
from tests.helpers import invoke, invoke_json, run_json, run_record, run_serbero

DEAD = ["ws://127.0.0.1:1"]
KEY_ENV = {"SERBERO_REASONING_API_KEY": "sk-test"}


def test_a_listen_run_without_relays_replaces_the_success_on_the_dashboard(
    make_config, mostro, db_path
):
    cfg = make_config()
    mostro.open_dispute()
    assert invoke_json(cfg, "listen")[0] == 0
    ok = run_record(db_path, "listen")
    assert ok["exit_code"] == 0 and ok["error"] is None and ok["started_at"] <= ok["finished_at"]
    assert run_json(make_config(relays=DEAD, name="dead.toml"), "listen")[0] == 3
    failed = run_record(db_path, "listen")
    assert failed["exit_code"] == 3 and failed["error"].startswith("no relay reachable")
    assert failed["started_at"] >= ok["started_at"]

    code, doc, _ = invoke_json(cfg, "audit")
    run = doc["last_runs"]["listen"]
    assert code == 0 and run["exit_code"] == 3 and run["error"].startswith("no relay reachable")
    assert run["summary"]["exit_code"] == 0  # the last finished run's summary is still there
    (finding,) = [a for a in doc["attention"] if a["kind"] == "phase_failed"]
    assert finding["phase"] == "listen" and "exit 3: no relay reachable" in finding["message"]
    table = invoke(cfg, "audit").stdout
    assert table.splitlines()[0] == "attention: 1 finding(s)"

    proc = invoke(cfg, "status")
    assert proc.returncode == 4 and proc.stdout.startswith(
        "attention: last listen run failed (exit 3: no relay"
    )
    assert invoke_json(cfg, "listen")[0] == 0
    assert invoke(cfg, "status").returncode == 0


def test_runs_stopped_by_a_held_lock_or_a_config_error_are_not_recorded(
    make_config, mostro, db_path, tmp_path
):
    cfg = make_config()
    assert invoke_json(cfg, "listen")[0] == 0
    before = run_record(db_path, "listen")
    with RunLock(db_path, "listen", "listen"):
        assert run_json(cfg, "listen")[0] == 75
    broken = tmp_path / "broken.toml"
    broken.write_text(cfg.read_text() + "\n[listen]\nno_such_key = 1\n")
    assert run_serbero(broken, "listen").returncode == 2
    assert run_record(db_path, "listen") == before


def test_an_internal_error_after_opening_the_database_is_recorded_as_exit_1(
    make_config, mostro, db_path
):
    cfg = make_config()
    assert invoke_json(cfg, "listen")[0] == 0
    conn = sqlite3.connect(str(db_path))
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON disputes BEGIN SELECT RAISE(ABORT, 'planted'); END"
    )
    conn.commit()
    conn.close()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen")
    assert proc.returncode == 1, proc.stderr
    record = run_record(db_path, "listen")
    # Unexpected errors are recorded by type only: their text could hold anything.
    assert (
        record["exit_code"] == 1
        and record["error"].startswith("internal error: ")
        and "planted" not in record["error"]
    )
    code, doc, _ = invoke_json(cfg, "status")
    assert code == 4 and doc["status"] == "attention"
    assert doc["last_runs"]["listen"]["exit_code"] == 1


def test_mediate_once_without_relays_is_recorded_as_exit_3(make_config, db_path):
    sections = {
        "mediation": {"enabled": True},
        "reasoning": {"enabled": True, "api_base": "http://127.0.0.1:1/v1"},
    }
    cfg = make_config(relays=DEAD, sections=sections)
    assert run_serbero(cfg, "mediate-once", env=KEY_ENV).returncode == 3
    record = run_record(db_path, "mediate_once")
    assert record["exit_code"] == 3 and record["error"].startswith("no relay reachable")
    code, doc, _ = invoke_json(cfg, "audit")
    assert (
        doc["last_runs"]["mediate-once"]["exit_code"] == 3
        and doc["last_runs"]["mediate-once"]["summary"] is None
    )


def test_dispatch_once_with_an_unroutable_handoff_records_exit_4_and_what_failed(
    make_config, db_path, solvers
):
    readers_only = [(s.pubkey, "read") for s in solvers]
    cfg = make_config(solver_list=readers_only, sections={"escalation": {"enabled": True}})
    seed = Seeder(db_path)
    seed.handoff(seed.dispute(state="escalated"))
    code, doc, err = run_json(cfg, "dispatch-once")
    assert code == 4 and doc["counts"]["unroutable"] == 1, err
    record = run_record(db_path, "dispatch_once")
    assert record["exit_code"] == 4 and record["error"] == "1 handoff(s) unroutable"
    code, doc, _ = invoke_json(cfg, "status")
    assert code == 4
    assert {a["kind"] for a in doc["attention"]} == {"phase_failed", "unroutable_handoffs"}
    assert "1 handoff unroutable" in doc["line"]
