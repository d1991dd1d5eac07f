"""No starvation, the per-run limit and budget, the run lock (docs/delivery.md#dispatch-run-order)."""

from __future__ import annotations

import json
import os
import time
import uuid

from serbero_cli.runlock import RunLock
from serbero_cli.store import dispatches
from serbero_cli.store.db import open_db
from serbero_cli.store.dispatches import HandoffRow
from tests.dispatch_once.conftest import BUNDLE, handoff_dms, package_json
from tests.helpers import db_checksum, run_json, run_serbero


def bulk_handoffs(db_path, count: int, *, state: str) -> list[str]:
    """`count` disputes in `state`, each with one handoff, written with executemany (the starvation test needs 1200)."""
    now = int(time.time())
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with open_db(db_path) as store, store.immediate() as conn:
        conn.executemany(
            "INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, "
            "event_timestamp, detected_at, lifecycle_state, last_state_change) VALUES (?,?,?,?,?,?,?,?,?)",
            [(d, "e" * 64, "f" * 64, "buyer", "initiated", now, now, state, now) for d in ids],
        )
        conn.executemany(
            "INSERT INTO mediation_events (kind, payload_json, prompt_bundle_id, policy_hash, occurred_at) "
            "VALUES ('handoff_prepared', ?, ?, ?, ?)",
            [(package_json(d), *BUNDLE, now) for d in ids],
        )
    return ids


def test_twelve_hundred_unconsumed_handoffs_do_not_starve_a_new_one(
    esc_config, seed, solvers, serbero_pub, db_path, run_once
):
    reader, writer = solvers
    # Part A. No writer is configured, so notified handoffs are unroutable; the deliverable
    # one is an abandoned claim made while a writer was configured (re-sends skip routing).
    bulk_handoffs(db_path, 600, state="resolved")
    bulk_handoffs(db_path, 600, state="notified")
    claimed = seed.dispute()
    handoff_id = seed.handoff(claimed)
    with open_db(db_path) as store:
        dispatches.claim_handoff(
            store,
            HandoffRow(handoff_id, None, *BUNDLE, 0),
            dispute_id=claimed,
            route="targeted",
            recipients=[writer.pubkey],
            fallback_broadcast=False,
            now=int(time.time()) - 10_000,
        )
    readers_only = esc_config(solver_list=[(reader.pubkey, "read")], name="readers.toml")
    started = time.monotonic()
    code, doc, stderr = run_json(readers_only, "dispatch-once", "--limit", "1")
    elapsed_a = time.monotonic() - started
    assert code == 4, stderr
    assert doc["counts"] == {
        "dispatched": 1,
        "send_failed": 0,
        "gave_up": 0,
        "resends": 1,
        "superseded": 600,
        "unroutable": 600,
        "parse_failed": 0,
        "deferred": 0,
        "in_flight": 0,
    }
    assert (
        doc["handoffs"][-1]["handoff_event_id"] == handoff_id
        and doc["handoffs"][-1]["status"] == "dispatched"
    )
    assert len(handoff_dms(writer, serbero_pub)) == 1
    # Part B. With a writer back and the 600 unroutable disputes resolved, 1200 superseded handoffs
    # (600 with their audit row already on file) sit before one fresh handoff.
    with open_db(db_path) as store, store.immediate() as conn:
        conn.execute(
            "UPDATE disputes SET lifecycle_state = 'resolved' WHERE lifecycle_state = 'notified'"
        )
    fresh = seed.dispute()
    fresh_id = seed.handoff(fresh)
    started = time.monotonic()
    result = run_once(esc_config(), limit=1)
    elapsed_b = time.monotonic() - started
    assert result.counts["dispatched"] == 1 and result.counts["superseded"] == 1200
    assert [h.handoff_event_id for h in result.handoffs if h.action == "send"] == [fresh_id]
    assert len(handoff_dms(writer, serbero_pub)) == 2
    assert len(seed.audit("escalation_superseded")) == 1200
    assert elapsed_a < 10 and elapsed_b < 10, (elapsed_a, elapsed_b)


def test_limit_defers_the_rest_to_later_runs(esc_config, seed, solvers, serbero_pub):
    cfg = esc_config()
    ids = [seed.handoff(seed.dispute()) for _ in range(5)]
    sent: list[int] = []
    for expected_sent, expected_deferred in ((2, 3), (2, 1), (1, 0)):
        code, doc, stderr = run_json(cfg, "dispatch-once", "--limit", "2")
        assert code == 0, stderr
        assert (
            doc["counts"]["dispatched"] == expected_sent
            and doc["counts"]["deferred"] == expected_deferred
        )
        deferred = [h for h in doc["handoffs"] if h["action"] == "defer"]
        assert all(h["detail"] == "deferred: limit" and h["dispatch_id"] is None for h in deferred)
        sent += [h["handoff_event_id"] for h in doc["handoffs"] if h["action"] == "send"]
    assert sent == ids
    assert len(handoff_dms(solvers[1], serbero_pub)) == 5


def test_config_limit_and_run_budget_also_defer(esc_config, seed, run_once):
    for _ in range(3):
        seed.handoff(seed.dispute())
    result = run_once(esc_config(escalation={"max_dispatches_per_run": 1}))
    assert (result.counts["dispatched"], result.counts["deferred"]) == (1, 2)

    def clock() -> float:
        # Time moves 100 s with every claim, so the second claim finds the 20 s budget spent.
        return 1_800_000_000 + 100 * len(seed.dispatches())

    result = run_once(
        esc_config(escalation={"run_budget_seconds": 20}, name="budget.toml"), clock=clock
    )
    assert (result.counts["dispatched"], result.counts["deferred"]) == (1, 1)
    assert result.handoffs[-1].detail == "deferred: budget"


def test_dispatch_lock_held_exits_75_and_changes_nothing(esc_config, seed, db_path):
    cfg = esc_config()
    seed.handoff(seed.dispute())
    before = db_checksum(db_path)
    with RunLock(db_path, "dispatch", "test"):
        proc = run_serbero(cfg, "dispatch-once")
        assert proc.returncode == 75
        assert f"dispatch-once: lock held by pid {os.getpid()}" in proc.stderr
        code, doc, _ = run_json(cfg, "dispatch-once")
        assert code == 75 and doc["exit_code"] == 75 and doc["handoffs"] == []
        assert "lock held" in doc["error"]
    assert db_checksum(db_path) == before
    assert (
        json.loads(run_serbero(cfg, "dispatch-once", "--json").stdout)["counts"]["dispatched"] == 1
    )
