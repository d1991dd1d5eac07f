"""Delivering handoffs through a real relay to simulated solvers (docs/delivery.md#dispatch)."""

from __future__ import annotations

import json
import socket

from serbero_cli.config import load_config
from serbero_cli.listen.run import run_listen
from tests.dispatch_once.conftest import handoff_dms
from tests.helpers import db_rows, run_json

RECONCILE_SQL = """
SELECT d.dispatch_id FROM escalation_dispatches d
 WHERE d.status IN ('dispatched','send_failed') AND NOT EXISTS (
   SELECT 1 FROM mediation_events a WHERE a.kind = 'escalation_dispatched'
     AND (CASE WHEN a.kind = 'escalation_dispatched' THEN json_extract(a.payload_json, '$.dispatch_id') END)
         = d.dispatch_id)
UNION ALL
SELECT (CASE WHEN a.kind = 'escalation_dispatched' THEN json_extract(a.payload_json, '$.dispatch_id') END)
  FROM mediation_events a
 WHERE a.kind = 'escalation_dispatched' AND NOT EXISTS (
   SELECT 1 FROM escalation_dispatches d WHERE d.status IN ('dispatched','send_failed')
     AND d.dispatch_id = (CASE WHEN a.kind = 'escalation_dispatched'
                               THEN json_extract(a.payload_json, '$.dispatch_id') END))
"""


def table_counts(db_path) -> dict[str, int]:
    names = [
        r["name"]
        for r in db_rows(
            db_path,
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'",
        )
    ]
    return {n: db_rows(db_path, f"SELECT COUNT(*) AS n FROM {n}")[0]["n"] for n in names}


def test_nothing_pending_stays_offline_and_writes_only_last_run_and_its_record(esc_config, db_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    try:
        port = listener.getsockname()[1]
        cfg = esc_config(relays=["ws://127.0.0.1:1", f"ws://127.0.0.1:{port}"])
        code, doc, stderr = run_json(cfg, "dispatch-once")
        assert code == 0, stderr
        assert doc["exit_code"] == 0 and doc["handoffs"] == [] and doc["error"] is None
        try:
            listener.accept()
            raise AssertionError("dispatch-once opened a connection although nothing was pending")
        except BlockingIOError:
            pass
    finally:
        listener.close()
    counts = table_counts(db_path)
    assert counts.pop("sync_state") == 2
    counts.pop("schema_version")
    assert set(counts.values()) == {0}, counts
    last_run, record = db_rows(db_path, "SELECT key, value FROM sync_state ORDER BY key")
    assert last_run["key"] == "dispatch_once_last_run" and json.loads(last_run["value"]) == doc
    assert (
        record["key"] == "dispatch_once_run_record"
        and json.loads(record["value"])["exit_code"] == 0
    )


def test_session_scoped_handoff_is_targeted_at_the_assigned_writer(
    esc_config, seed, solvers, serbero_pub, db_path, make_config
):
    reader, writer = solvers
    cfg = esc_config()
    dispute = seed.dispute(assigned=writer.pubkey)
    session = seed.session(dispute)
    handoff_id = seed.handoff(dispute, session_id=session)
    code, doc, stderr = run_json(cfg, "dispatch-once")
    assert code == 0, stderr
    (entry,) = doc["handoffs"]
    assert (
        entry["decision"] == "targeted"
        and entry["action"] == "send"
        and entry["status"] == "dispatched"
    )
    assert entry["recipients"] == [writer.pubkey] and entry["attempt"] == 1
    (dm,) = handoff_dms(writer, serbero_pub)
    assert handoff_dms(reader, serbero_pub) == []
    assert dm.content.startswith(f"Dispute {dispute} \u00b7 handed off: ")
    lines = dm.content.split("\n")[2:]
    assert lines[:5] == [
        "escalation_handoff/v2",
        f"Dispute: {dispute}",
        f"Session: {session}",
        "Trigger: conflicting_claims",
        "",
    ]
    assert lines[7] == "Handoff payload (JSON):" and json.loads(lines[8])["session_id"] == session
    (row,) = seed.dispatches()
    assert (row["status"], row["route"], row["attempts"], row["fallback_broadcast"]) == (
        "dispatched",
        "targeted",
        1,
        0,
    )
    assert row["handoff_event_id"] == handoff_id and row["session_id"] == session
    assert row["target_solver"] == writer.pubkey and row["finished_at"] is not None
    assert row["dispatch_id"] == entry["dispatch_id"]
    (audit,) = seed.audit("escalation_dispatched")
    assert audit["payload"] == {
        "dispatch_id": row["dispatch_id"],
        "dispute_id": dispute,
        "fallback_broadcast": False,
        "handoff_event_id": handoff_id,
        "status": "dispatched",
        "target_solver": writer.pubkey,
    }
    assert audit["session_id"] == session and (audit["prompt_bundle_id"], audit["policy_hash"]) == (
        "bundle-a",
        "ab12" * 16,
    )
    (note,) = seed.rows("SELECT * FROM notifications")
    assert note["notif_type"] == "escalation_handoff" and note["status"] == "sent"
    assert note["body"] == dm.content and note["attempts"] == 1 and note["claimed_at"] is None
    assert (
        note["solver_pubkey"] == writer.pubkey
        and note["created_at"] == row["dispatched_at"] == note["sent_at"]
    )
    assert note["error_message"] is None and json.loads(note["relays_accepted"])
    # A listen run flushes the outbox: the handoff record is never picked up.
    run_listen(load_config(cfg))
    assert len(handoff_dms(writer, serbero_pub)) == 1
    assert seed.rows("SELECT status, attempts FROM notifications") == [
        {"status": "sent", "attempts": 1}
    ]


def test_two_writers_dispute_scoped_get_it_in_config_order(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    w1, w2 = make_solver("write", "w1"), make_solver("write", "w2")
    cfg = esc_config(solver_list=[(w1.pubkey, "write"), (w2.pubkey, "write")])
    dispute = seed.dispute()
    seed.handoff(dispute)
    result = run_once(cfg)
    assert result.exit_code == 0 and result.counts["dispatched"] == 1
    for solver in (w1, w2):
        (dm,) = handoff_dms(solver, serbero_pub)
        assert dm.content.split("\n")[4] == "Session: <none \u2014 dispute-scoped handoff>"
    (row,) = seed.dispatches()
    assert row["target_solver"] == f"{w1.pubkey},{w2.pubkey}" and row["route"] == "broadcast"
    assert row["session_id"] is None


def test_read_assignee_and_a_writer_only_the_writer_gets_it(
    esc_config, seed, solvers, serbero_pub, run_once
):
    reader, writer = solvers
    cfg = esc_config()
    dispute = seed.dispute(assigned=reader.pubkey)
    seed.handoff(dispute)
    result = run_once(cfg)
    assert result.exit_code == 0
    assert len(handoff_dms(writer, serbero_pub)) == 1
    assert handoff_dms(reader, serbero_pub) == []
    assert seed.dispatches()[0]["target_solver"] == writer.pubkey


def test_reconciliation_is_clean_and_a_second_run_adds_nothing(
    esc_config, seed, solvers, serbero_pub, run_once, db_path
):
    reader, writer = solvers
    cfg = esc_config()
    seed.handoff(seed.dispute())
    assert run_once(cfg).counts["dispatched"] == 1
    assert db_rows(db_path, RECONCILE_SQL) == []
    second = run_once(cfg)
    assert second.exit_code == 0 and second.handoffs == []
    assert len(handoff_dms(writer, serbero_pub)) == 1
    assert len(seed.dispatches()) == 1 and len(seed.audit("escalation_dispatched")) == 1
    assert db_rows(db_path, RECONCILE_SQL) == []
