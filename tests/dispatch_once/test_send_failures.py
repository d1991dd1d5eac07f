"""Relays that reject, half-accept, are dead, or refuse some recipients."""

from __future__ import annotations

import json

from serbero_cli.config import load_config
from serbero_cli.listen.run import run_listen
from serbero_cli.simulate.relay import start_relay
from serbero_cli.simulate.solver import SimSolver
from tests.dispatch_once.conftest import handoff_dms
from tests.helpers import invoke_json

DEAD = "ws://127.0.0.1:1"


def test_every_relay_rejects_gives_send_failed_and_exit_4(
    esc_config, make_config, seed, make_solver, serbero_pub, relay
):
    w1, w2 = make_solver("write", "w1"), make_solver("write", "w2")
    pow_relay = start_relay(min_pow=30)
    try:
        writers = [(w1.pubkey, "write"), (w2.pubkey, "write")]
        cfg = esc_config(relays=[pow_relay.url], solver_list=writers)
        dispute = seed.dispute()
        handoff_id = seed.handoff(dispute)
        code, doc, stderr = invoke_json(cfg, "dispatch-once")
        assert code == 4 and doc["exit_code"] == 4, stderr
        assert doc["counts"]["send_failed"] == 1 and doc["counts"]["dispatched"] == 0
        (entry,) = doc["handoffs"]
        assert entry["status"] == "send_failed" and [d["ok"] for d in entry["deliveries"]] == [
            False,
            False,
        ]
        assert all(
            "pow" in reason for d in entry["deliveries"] for reason in d["rejected"].values()
        )
        (row,) = seed.dispatches()
        assert row["status"] == "send_failed" and row["target_solver"] == f"{w1.pubkey},{w2.pubkey}"
        notes = seed.rows(
            "SELECT solver_pubkey, status, attempts, error_message, sent_at, relays_accepted "
            "FROM notifications ORDER BY id"
        )
        assert [n["solver_pubkey"] for n in notes] == [w1.pubkey, w2.pubkey]
        for note in notes:
            assert note["status"] == "failed" and note["attempts"] == 1 and note["sent_at"] is None
            assert (
                note["error_message"].startswith("no relay accepted: ")
                and "pow" in note["error_message"]
            )
            assert json.loads(note["relays_accepted"]) == []
        (audit,) = seed.audit("escalation_dispatched")
        assert (
            audit["payload"]["status"] == "send_failed"
            and audit["payload"]["handoff_event_id"] == handoff_id
        )
        code, doc, _ = invoke_json(cfg, "dispatch-once")
        assert code == 0 and doc["handoffs"] == []
        listen_cfg = make_config(relays=[relay.url], solver_list=writers, name="listen.toml")
        assert run_listen(load_config(listen_cfg)).exit_code == 0
        assert (
            seed.rows("SELECT status, attempts FROM notifications")
            == [{"status": "failed", "attempts": 1}] * 2
        )
        assert handoff_dms(w1, serbero_pub) == handoff_dms(w2, serbero_pub) == []
    finally:
        pow_relay.shutdown()


def test_one_relay_accepts_one_rejects_the_send_counts(
    esc_config, seed, solvers, serbero_pub, relay
):
    pow_relay = start_relay(min_pow=30)
    try:
        cfg = esc_config(relays=[relay.url, pow_relay.url])
        seed.handoff(seed.dispute())
        code, doc, stderr = invoke_json(cfg, "dispatch-once")
        assert code == 0, stderr
        (delivery,) = doc["handoffs"][0]["deliveries"]
        assert delivery["ok"] is True and delivery["pubkey"] == solvers[1].pubkey
        assert [u.rstrip("/") for u in delivery["accepted_by"]] == [relay.url.rstrip("/")]
        ((rejected_url, reason),) = delivery["rejected"].items()
        assert rejected_url.rstrip("/") == pow_relay.url.rstrip("/") and "pow" in reason
        (note,) = seed.rows("SELECT status, relays_accepted, error_message FROM notifications")
        assert note["status"] == "sent" and note["error_message"] is None
        assert [u.rstrip("/") for u in json.loads(note["relays_accepted"])] == [
            relay.url.rstrip("/")
        ]
        assert len(handoff_dms(solvers[1], serbero_pub)) == 1
    finally:
        pow_relay.shutdown()


def test_only_a_dead_relay_exits_3_and_leaves_it_pending(
    esc_config, seed, solvers, serbero_pub, relay
):
    dead = esc_config(relays=[DEAD], escalation={"connect_timeout_seconds": 1}, name="dead.toml")
    handoff_id = seed.handoff(seed.dispute())
    code, doc, stderr = invoke_json(dead, "dispatch-once")
    assert code == 3 and doc["exit_code"] == 3, stderr
    assert [(h["action"], h["detail"]) for h in doc["handoffs"]] == [
        ("defer", "deferred: no relay reachable")
    ]
    assert seed.dispatches() == [] and seed.rows("SELECT * FROM notifications") == []
    assert [r["key"] for r in seed.rows("SELECT key FROM sync_state")] == [
        "dispatch_once_run_record"
    ]
    assert seed.rows("SELECT kind FROM mediation_events") == [{"kind": "handoff_prepared"}]
    code, doc, _ = invoke_json(esc_config(name="live.toml"), "dispatch-once")
    assert code == 0 and doc["handoffs"][0]["handoff_event_id"] == handoff_id
    assert len(handoff_dms(solvers[1], serbero_pub)) == 1


def test_refused_recipients_do_not_stop_the_loop(
    esc_config, seed, policy_relay, serbero_pub, run_once
):
    sims = [SimSolver([], name=f"w{i}") for i in range(3)]
    keys = [s.pubkey for s in sims]
    writers = [(k, "write") for k in keys]
    mixed = policy_relay({keys[0], keys[2]})
    seed.handoff(seed.dispute())
    result = run_once(esc_config(relays=[mixed.url], solver_list=writers, name="mixed.toml"))
    (outcome,) = result.handoffs
    assert outcome.status == "dispatched" and result.exit_code == 4
    assert [(d["pubkey"], d["ok"]) for d in outcome.deliveries] == list(
        zip(keys, [False, True, False], strict=True)
    )
    (row,) = seed.dispatches()
    assert row["status"] == "dispatched" and row["target_solver"] == ",".join(keys)
    notes = seed.rows("SELECT solver_pubkey, status, error_message FROM notifications ORDER BY id")
    assert [(n["solver_pubkey"], n["status"]) for n in notes] == list(
        zip(keys, ["failed", "sent", "failed"], strict=True)
    )
    assert (
        "refused by test policy" in notes[0]["error_message"] and notes[1]["error_message"] is None
    )
    reader = SimSolver(mixed.url, keys=sims[1].keys)
    try:
        assert len(handoff_dms(reader, serbero_pub)) == 1
    finally:
        reader.close()
    closed = policy_relay(set(keys))
    seed.handoff(seed.dispute())
    result = run_once(esc_config(relays=[closed.url], solver_list=writers, name="closed.toml"))
    (outcome,) = result.handoffs
    assert outcome.status == "send_failed" and [d["ok"] for d in outcome.deliveries] == [False] * 3
    assert seed.dispatches()[1]["status"] == "send_failed" and result.exit_code == 4
