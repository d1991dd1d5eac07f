"""What listen's resolution hook reports and closes (docs/mediation.md#resolution-hook); prompt edits between
runs, the solver-authorization back-off, session timeouts, the run lock and races with listen."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from serbero_cli.runlock import RunLock
from serbero_cli.simulate.llm import Reply, classification_json
from tests.helpers import (
    ROOT,
    body_after_marker,
    content_checksum_without_run_records,
    db_checksum,
    marker_of,
    run_record,
)
from tests.mediate_once.conftest import API_ENV, ask, summarize, summary
from tests.mediate_once.test_ingest_and_summary import opened

NONE_SESSION = "Session: <none \u2014 dispute-scoped handoff>"


def report_bodies(h) -> list[str]:
    return [
        r["body"]
        for r in h.rows(
            "SELECT body FROM notifications WHERE notif_type='mediation_resolution_report' ORDER BY id"
        )
    ]


def resolve(h, dispute_id: str, status: str = "settled") -> dict:
    h.node.set_status(dispute_id, status)
    return h.listen()


def test_settled_dispute_with_a_full_session_reports_everything_to_every_solver(harness):
    h = harness()
    dispute_id = h.node.open_dispute()
    h.listen()
    h.llm.push(ask(confidence=0.88))
    h.mediate()
    session_id = h.session()["session_id"]
    doc = resolve(h, dispute_id)
    assert doc["notifications"]["sent"] == 2
    bodies = report_bodies(h)
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[0].split("\n")[0] == f"Dispute {dispute_id} \u00b7 resolved: settled"
    lines = body_after_marker(bodies[0])
    assert lines[:6] == [
        "mediation_resolution_report/v2",
        f"Dispute: {dispute_id}",
        f"Session: {session_id}",
        "Classification: coordination_failure_resolvable (confidence 0.88)",
        "Outbound party messages: 2",
        "Final dispute status: settled",
    ]
    assert lines[6] == "" and "by a solver or by the parties" in lines[7]
    assert len(h.events("resolved_externally_reported")) == 1
    for solver in h.solvers:
        assert any(
            marker_of(dm.content) == "mediation_resolution_report/v2" for dm in solver.inbox()
        )


def test_resolution_report_counts_buyer_only_outbound_and_says_no_classification(harness):
    h = harness()
    dispute_id, _, _ = opened(h)
    h.execute("UPDATE mediation_messages SET published_at=NULL WHERE party='seller'")
    h.execute("DELETE FROM mediation_events WHERE kind='classification_produced'")
    h.execute("DELETE FROM mediation_events WHERE kind='reasoning_verdict'")
    resolve(h, dispute_id)
    (body, _) = report_bodies(h)
    assert "Outbound party messages: 1" in body and "Classification: <none recorded>" in body


def test_escalated_session_stays_escalated_and_is_named_in_the_resolution_report(harness):
    h = harness()
    dispute_id, _, _ = opened(h)
    h.execute("UPDATE mediation_sessions SET started_at=started_at-100000")
    h.mediate()  # party_unresponsive
    assert h.session()["state"] == "escalation_recommended"
    handoffs = len(h.events("handoff_prepared"))
    resolve(h, dispute_id, "seller-refunded")
    assert h.session()["state"] == "escalation_recommended"
    body = report_bodies(h)[0]
    assert "escalation_recommended" in body and "Final dispute status: seller-refunded" in body
    assert len(h.events("handoff_prepared")) == handoffs
    assert h.events("superseded_by_human") == []


def test_resolution_report_with_only_a_dispute_scoped_verdict_names_no_session(harness):
    h = harness()
    dispute_id = h.open()
    h.llm.push(Reply(content=classification_json("unclear", 0.42, "escalate")))
    h.mediate()
    resolve(h, dispute_id)
    body = report_bodies(h)[0]
    assert NONE_SESSION in body and "Classification: unclear (confidence 0.42)" in body
    assert "Outbound party messages: 0" in body


def test_resolution_without_mediation_context_sends_no_report_and_writes_no_event(harness):
    h = harness()
    dispute_id = h.open()
    for _ in range(2):
        resolve(h, dispute_id)
    assert report_bodies(h) == [] and h.events() == []
    assert h.rows("SELECT lifecycle_state FROM disputes") == [{"lifecycle_state": "resolved"}]


def test_bare_start_attempts_are_not_mediation_context_for_a_report(harness):
    h = harness()
    dispute_id = h.open()
    h.llm.push(Reply(status=500, body="x"))
    h.mediate()  # start_attempt_started + reasoning_call_failed + stopped: no verdict
    resolve(h, dispute_id)
    assert report_bodies(h) == []


def test_same_resolution_event_twice_reports_once(harness):
    h = harness()
    dispute_id, _, _ = opened(h)
    h.node.set_status(dispute_id, "settled")
    h.listen()
    h.listen()
    assert len(report_bodies(h)) == 2  # one per solver
    assert len(h.events("resolved_externally_reported")) == 1


def test_live_session_closes_when_the_dispute_is_settled_or_released(harness):
    for status in ("settled", "released"):
        h = harness()
        h.execute("DELETE FROM mediation_sessions") if h.db_path.exists() else None
        dispute_id, _, _ = opened(h)
        resolve(h, dispute_id, status)
        session = [
            s for s in h.rows("SELECT * FROM mediation_sessions") if s["dispute_id"] == dispute_id
        ][0]
        assert session["state"] == "closed"
        sup = [
            e for e in h.events("superseded_by_human") if e["session_id"] == session["session_id"]
        ]
        assert len(sup) == 1 and sup[0]["payload"]["resolution_status"] == status
        assert sup[0]["payload"]["reason"] == "dispute_resolved_externally"
        closed = [e for e in h.events("session_closed") if e["session_id"] == session["session_id"]]
        assert len(closed) == 1
        assert (sup[0]["prompt_bundle_id"], sup[0]["policy_hash"]) == (
            session["prompt_bundle_id"],
            session["policy_hash"],
        )


def test_a_second_resolution_of_a_resolved_dispute_changes_nothing(harness):
    h = harness()
    dispute_id, _, _ = opened(h)
    resolve(h, dispute_id)
    before = db_checksum(h.db_path)
    h.node.set_status(dispute_id, "seller-refunded")
    h.listen()
    rows = h.rows("SELECT COUNT(*) AS n FROM mediation_events")
    assert rows == [{"n": len(h.events())}]
    assert before  # and no new report rows:
    assert len(report_bodies(h)) == 2


def test_prompt_edit_between_runs_records_once_and_does_not_escalate(harness, tmp_path):
    h = harness()
    _, buyer, seller = opened(h)
    pinned = h.session()["policy_hash"]
    edited = tmp_path / "style.md"
    edited.write_text("Be brief, neutral and kind. Never promise an outcome.\n")
    h2 = harness(prompts={"mediation_style_path": str(edited)})
    buyer.reply("paid", created_at=int(time.time()) - 30)
    h2.llm.push(ask())
    result = h2.mediate()
    assert result.escalations == {} and result.policy_hash != pinned
    assert h2.session()["policy_hash"] == pinned
    changed = h2.events("policy_bundle_changed")
    assert len(changed) == 1 and changed[0]["payload"] == {
        "loaded_hash": result.policy_hash,
        "pinned_hash": pinned,
    }
    new_rows = h2.rows("SELECT DISTINCT policy_hash FROM mediation_messages WHERE id > 2")
    assert new_rows == [{"policy_hash": result.policy_hash}]
    seller.reply("not yet", created_at=int(time.time()) - 20)
    h2.llm.push(ask())
    h2.mediate()
    assert len(h2.events("policy_bundle_changed")) == 1


def test_solver_authorization_backoff_probe_recovery_and_termination(harness):
    h = harness(
        mediation={"solver_auth_retry_initial_seconds": 60, "solver_auth_retry_max_attempts": 2}
    )
    first = h.open()
    h.node.set_modes(refuse_with="not_authorized")
    h.llm.push(ask())
    result = h.mediate()
    assert result.take_failures == 1 and result.solver_auth_status == "unauthorized"
    (auth,) = h.rows("SELECT * FROM mediation_solver_auth")
    assert auth["status"] == "unauthorized" and auth["attempts"] == 1
    assert auth["next_probe_at"] - auth["last_failure_at"] == 60
    assert h.events("auth_retry_attempt")[0]["payload"] == {
        "attempt": 1,
        "error": "cant_do:not_authorized",
    }
    # Backoff: nothing starts, no model call.
    calls = len(h.llm.model_requests())
    result = h.mediate()
    assert result.starts_skipped == {"auth_backoff": 1} and len(h.llm.model_requests()) == calls
    # Probe due: exactly one start; a refusal terminates after max_attempts.
    h.execute("UPDATE mediation_solver_auth SET next_probe_at=0")
    h.llm.push(ask())
    result = h.mediate()
    assert result.starts_attempted == 1 and result.solver_auth_status == "terminated"
    assert h.events("auth_retry_terminated")[0]["payload"]["attempt"] == 2
    second = h.open()
    result = h.mediate()
    assert result.escalations == {"authorization_lost": 2}
    for solver in h.solvers:
        alerts = [dm for dm in solver.inbox() if marker_of(dm.content) == "mediation_escalation/v2"]
        assert {body_after_marker(a.content)[1] for a in alerts} == {
            f"Dispute: {first}",
            f"Dispute: {second}",
        }
    assert h.mediate().escalations == {}  # each dispute once
    # --reset-solver-auth clears the state; a new dispute starts and the node now accepts.
    h.node.set_modes(refuse_with=None)
    third = h.open()
    h.llm.push(ask())
    code, doc, _ = h.mediate_cli("--reset-solver-auth")
    assert code == 0 and doc["sessions_opened"] == 1
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_solver_auth") == [{"n": 0}]
    assert h.events("auth_retry_recovered")[-1]["payload"] == {"attempt": 0}
    assert h.rows("SELECT dispute_id FROM mediation_sessions") == [{"dispute_id": third}]


def test_a_successful_solver_auth_probe_recovers(harness):
    h = harness()
    h.open()
    h.node.set_modes(refuse_with="not_authorized")
    h.llm.push(ask())
    h.mediate()
    h.node.set_modes(refuse_with=None)
    h.execute("UPDATE mediation_solver_auth SET next_probe_at=0")
    h.llm.push(ask())
    result = h.mediate()
    assert result.sessions_opened == 1 and result.solver_auth_status == "authorized"
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_solver_auth") == [{"n": 0}]
    assert h.events("auth_retry_recovered")[0]["payload"] == {"attempt": 1}


def test_refusal_for_a_dispute_taken_by_another_solver_is_not_an_auth_failure(harness):
    h = harness()
    dispute_id = h.open()
    human = "cd" * 32
    h.node.set_status(dispute_id, "in-progress", solver=None)  # someone else took it meanwhile
    h.node.dispute(dispute_id).holder = human
    h.execute("UPDATE disputes SET lifecycle_state='notified'")  # listen has not seen it yet
    h.llm.push(ask())
    result = h.mediate()
    assert result.take_failures == 1 and result.solver_auth_status == "authorized"
    stops = [e["payload"]["stop_reason"] for e in h.events("start_attempt_stopped")]
    assert stops == ["taken_by_other_solver"]
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_solver_auth") == [{"n": 0}]
    assert h.mediate().starts_attempted == 0  # never chased again


def test_session_timeout_escalates_and_zero_disables(harness):
    h = harness(mediation={"party_response_timeout_seconds": 0, "session_timeout_seconds": 3600})
    opened(h)
    h.execute("UPDATE mediation_sessions SET started_at=started_at-7200")
    assert h.mediate().escalations == {"mediation_timeout": 1}
    h0 = harness(mediation={"party_response_timeout_seconds": 0, "session_timeout_seconds": 0})
    h0.execute(
        "UPDATE mediation_sessions SET state='awaiting_response', started_at=started_at-999999"
    )
    assert h0.mediate().escalations == {}


def test_second_mediate_once_exits_75_under_the_lock_and_dead_relays_exit_3(
    harness, make_config, med_sections
):
    h = harness()
    opened(h)
    with RunLock(h.db_path, "mediate", "mediate-once"):
        code, doc, err = h.mediate_process()
        assert code == 75 and doc["exit_code"] == 75 and "mediate-once: lock held by pid" in err
    before = content_checksum_without_run_records(h.db_path)
    dead = make_config(relays=["ws://127.0.0.1:1"], sections=med_sections(), name="dead.toml")
    h.config_path = dead
    code, doc, _ = h.mediate_process()
    assert code == 3 and doc["exit_code"] == 3
    assert content_checksum_without_run_records(h.db_path) == before
    assert run_record(h.db_path, "mediate_once")["exit_code"] == 3


def test_a_resolution_while_the_model_evaluates_closes_the_session_and_sends_no_follow_up(harness):
    """listen resolves the dispute while mediate-once (another process) waits for the model's verdict:
    the verdict that then arrives finds the session closed and queues no follow-up question.

    The model holds its answer until the test has run listen, so the order never depends on timing.
    """
    h = harness(reasoning={"request_timeout_seconds": 60})
    dispute_id, buyer, seller = opened(h)
    buyer.reply("paid", created_at=int(time.time()) - 20)
    seller.reply("not received", created_at=int(time.time()) - 10)
    evaluating, resolved = threading.Event(), threading.Event()

    def held_verdict(path, body):
        evaluating.set()
        resolved.wait(60)
        return Reply(
            content=classification_json(
                "coordination_failure_resolvable",
                0.8,
                "ask_clarification",
                buyer="When exactly?",
                seller="Which bank?",
            )
        )

    h.llm.responder = held_verdict
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serbero_cli",
            "--config",
            str(h.config_path),
            "mediate-once",
            "--json",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**API_ENV, "PATH": "/usr/bin:/bin"},
    )
    try:
        assert evaluating.wait(60), "mediate-once never asked the model to evaluate"
        resolve(h, dispute_id)
        assert h.session()["state"] == "closed"
    finally:
        resolved.set()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["sessions_opened"] == 0
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_messages WHERE content LIKE 'Round%'") == [
        {"n": 0}
    ]
    assert h.rows(
        "SELECT COUNT(*) AS n FROM mediation_messages WHERE direction='outbound' "
        "AND content LIKE '%When exactly?%'"
    ) == [{"n": 0}]
    assert h.session()["state"] == "closed"


def test_listen_and_mediate_racing_on_a_pending_row_send_it_once(harness):
    h = harness()
    dispute_id = h.open()
    h.llm.push(summarize(), summary())
    h.execute(
        "UPDATE notifications SET status='pending', attempts=0"
    )  # listen's initials due again
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "serbero_cli", "--config", str(h.config_path), cmd, "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**API_ENV, "PATH": "/usr/bin:/bin"},
        )
        for cmd in ("listen", "mediate-once", "listen")
    ]
    for p in procs:
        p.wait(60)
    rows = h.rows("SELECT notif_type, solver_pubkey, status, attempts FROM notifications")
    for row in rows:
        assert row["status"] == "sent" and row["attempts"] == 1
    for solver in h.solvers:
        initials = [dm for dm in solver.inbox() if "status: initiated" in dm.content]
        # The reset row was sent once more, as the event stored with it: the solver still holds one.
        assert len(initials) == 1
    assert dispute_id


def test_dry_run_lists_due_work_and_leaves_the_file_byte_identical(harness):
    from tests.helpers import file_bytes

    h = harness()
    _, buyer, seller = opened(h)
    fresh = h.open()
    buyer.reply("paid", created_at=int(time.time()) - 20)
    h.llm.push(ask())
    h.mediate()  # ingests the reply and asks a follow-up
    requests_before = len(h.llm.requests)
    takes_before = len(h.node.requests)
    before, raw = db_checksum(h.db_path), file_bytes(h.db_path)
    code, doc, _ = h.mediate_cli("--dry-run")
    assert code == 0 and doc["dry_run"] is True
    due = doc["due"]
    assert fresh in due["eligible_disputes"] and due["would_start"] == [fresh]
    assert due["auth_gate"] == "open"
    assert file_bytes(h.db_path) == raw and db_checksum(h.db_path) == before
    assert len(h.llm.requests) == requests_before and len(h.node.requests) == takes_before
    with RunLock(
        h.db_path, "mediate", "mediate-once"
    ):  # a dry run takes no lock, so a held one is fine
        assert h.mediate_cli("--dry-run")[0] == 0
