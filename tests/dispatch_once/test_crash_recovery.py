"""Kill -9 at the test hooks, recovery of unfinished claims and giving up.

A claim stores the delivery's signed events before anything is sent, so a run that died after
its claim is finished by the next run at once, republishing exactly those events: the solver
never sees a second copy. A claim without stored events (written by an older serbero) still
waits until it is stale."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.dispatch_once.conftest import handoff_dms
from tests.helpers import ROOT, run_json


def kill_at_hook(config, hook: str) -> int:
    """Run dispatch-once stopping at checkpoint `hook` (tests/launcher.py), SIGKILL it there; return the handoff id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.launcher",
            "--config",
            str(config),
            "--stop-at",
            hook,
            "dispatch-once",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(f"HOOK {hook} "):
                os.kill(proc.pid, signal.SIGKILL)
                assert proc.wait(timeout=10) == -signal.SIGKILL
                return int(line.split()[2])
        raise AssertionError(f"hook {hook} never fired; exit {proc.wait()}:\n{''.join(seen)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_kill_after_claim_is_republished_at_once_by_the_next_run(
    esc_config, seed, solvers, serbero_pub
):
    writer = solvers[1]
    cfg = esc_config()
    dispute = seed.dispute()
    handoff_id = seed.handoff(dispute)
    assert kill_at_hook(cfg, "after_claim") == handoff_id
    (row,) = seed.dispatches()
    assert (row["status"], row["attempts"], row["finished_at"]) == ("sending", 1, None)
    assert row["events_json"] is not None  # signed and stored before anything was sent
    assert handoff_dms(writer, serbero_pub) == [] and seed.audit("escalation_dispatched") == []
    code, doc, _ = run_json(cfg, "dispatch-once")
    assert code == 0 and doc["counts"]["resends"] == 1 and doc["counts"]["dispatched"] == 1
    assert [(h["action"], h["attempt"], h["status"]) for h in doc["handoffs"]] == [
        ("resend", 2, "dispatched")
    ]
    assert len(handoff_dms(writer, serbero_pub)) == 1
    (row,) = seed.dispatches()
    assert (row["status"], row["attempts"]) == ("dispatched", 2)
    assert len(seed.audit("escalation_dispatched")) == 1
    (note,) = seed.rows("SELECT attempts, status, created_at FROM notifications")
    assert (
        note["attempts"] == 2
        and note["status"] == "sent"
        and note["created_at"] == row["dispatched_at"]
    )


def test_a_claim_without_stored_events_waits_until_stale(esc_config, seed, solvers, serbero_pub):
    writer = solvers[1]
    cfg = esc_config()
    handoff_id = seed.handoff(seed.dispute())
    assert kill_at_hook(cfg, "after_claim") == handoff_id
    seed.execute(
        "UPDATE escalation_dispatches SET events_json = NULL"
    )  # as an older serbero claimed it
    code, doc, _ = run_json(cfg, "dispatch-once")
    assert code == 0 and [(h["action"], h["attempt"]) for h in doc["handoffs"]] == [
        ("skip_in_flight", 1)
    ]
    seed.age_sending()
    code, doc, _ = run_json(cfg, "dispatch-once")
    assert (
        code == 0
        and doc["counts"]["dispatched"] == 1
        and len(handoff_dms(writer, serbero_pub)) == 1
    )


def test_kill_after_send_republishes_the_same_event_so_the_solver_sees_one(
    esc_config, seed, solvers, serbero_pub
):
    writer = solvers[1]
    cfg = esc_config()
    handoff_id = seed.handoff(seed.dispute())
    assert kill_at_hook(cfg, "after_send") == handoff_id
    (first,) = handoff_dms(writer, serbero_pub)
    assert seed.dispatches()[0]["status"] == "sending"
    assert run_json(cfg, "dispatch-once")[0] == 0
    assert [dm.wrap_id for dm in handoff_dms(writer, serbero_pub)] == [first.wrap_id]
    (row,) = seed.dispatches()
    assert (row["status"], row["attempts"]) == ("dispatched", 2)
    assert len(seed.audit("escalation_dispatched")) == 1
    records = seed.rows("SELECT attempts, event_id FROM notifications ORDER BY id")
    assert [r["attempts"] for r in records] == [1, 2] and len({r["event_id"] for r in records}) == 1
    assert run_json(cfg, "dispatch-once")[1]["handoffs"] == []


def test_three_crashed_attempts_then_give_up(esc_config, seed, solvers, serbero_pub):
    writer = solvers[1]
    cfg = esc_config()
    handoff_id = seed.handoff(seed.dispute())
    for attempt in (1, 2, 3):
        assert kill_at_hook(cfg, "after_claim") == handoff_id
        assert seed.dispatches()[0]["attempts"] == attempt
        seed.age_sending()
    code, doc, _ = run_json(cfg, "dispatch-once")
    assert code == 4 and doc["counts"]["gave_up"] == 1
    assert [(h["action"], h["status"], h["deliveries"]) for h in doc["handoffs"]] == [
        ("give_up", "send_failed", [])
    ]
    (row,) = seed.dispatches()
    assert (row["status"], row["attempts"]) == ("send_failed", 3) and row["finished_at"] is not None
    (audit,) = seed.audit("escalation_dispatched")
    assert audit["payload"]["status"] == "send_failed"
    assert handoff_dms(writer, serbero_pub) == [] and seed.rows("SELECT * FROM notifications") == []


def test_a_finalize_that_always_fails_sends_at_most_three_times(
    esc_config, seed, solvers, serbero_pub, run_once, db_path
):
    writer = solvers[1]
    cfg = esc_config()
    seed.handoff(seed.dispute())
    conn = sqlite3.connect(str(db_path))
    conn.execute(
        "CREATE TRIGGER refuse_finalize BEFORE INSERT ON mediation_events "
        "WHEN NEW.kind = 'escalation_dispatched' BEGIN SELECT RAISE(ABORT, 'finalize refused'); END"
    )
    conn.commit()
    conn.close()
    base = int(time.time())
    codes = []
    for run in range(6):
        result = run_once(cfg, clock=lambda run=run: base + run * 1_000)
        codes.append(result.exit_code)
        assert result.errors == [] or "finalize refused" in result.errors[0]
    assert codes == [1] * 6
    (row,) = seed.dispatches()
    assert (row["status"], row["attempts"]) == ("sending", 3)
    assert len(handoff_dms(writer, serbero_pub)) == 1  # three publishes of one stored event
    assert seed.audit("escalation_dispatched") == []
