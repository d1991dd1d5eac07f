"""Handoffs that are recorded but not delivered: superseded by a resolution, or with nobody to route to."""

from __future__ import annotations

from tests.dispatch_once.conftest import BUNDLE, handoff_dms


def test_resolved_dispute_gets_one_superseded_row_and_no_dm(
    esc_config, seed, solvers, serbero_pub, run_once
):
    cfg = esc_config()
    dispute = seed.dispute(state="resolved")
    session = seed.session(dispute)
    handoff_id = seed.handoff(dispute, session_id=session)
    for _ in range(2):
        result = run_once(cfg)
        assert result.exit_code == 0 and result.counts["superseded"] == 1
    assert [h.action for h in result.handoffs] == ["none"]
    assert seed.dispatches() == [] and seed.rows("SELECT * FROM notifications") == []
    assert all(handoff_dms(s, serbero_pub) == [] for s in solvers)
    (row,) = seed.audit("escalation_superseded")
    assert row["payload"] == {
        "dispute_id": dispute,
        "handoff_event_id": handoff_id,
        "reason": "dispute_already_resolved",
    }
    assert row["session_id"] == session and (row["prompt_bundle_id"], row["policy_hash"]) == BUNDLE
    assert row["rationale_id"] is None


def test_resolved_after_dispatch_nothing_resent_and_no_superseded_row(
    esc_config, seed, solvers, serbero_pub, run_once
):
    cfg = esc_config()
    dispute = seed.dispute()
    seed.handoff(dispute)
    assert run_once(cfg).counts["dispatched"] == 1
    seed.set_state(dispute, "resolved")
    result = run_once(cfg)
    assert result.handoffs == [] and result.exit_code == 0
    assert seed.audit("escalation_superseded") == []
    assert len(handoff_dms(solvers[1], serbero_pub)) == 1


def test_superseded_then_unresolved_dispatches_and_keeps_the_old_row(
    esc_config, seed, solvers, serbero_pub, run_once
):
    cfg = esc_config()
    dispute = seed.dispute(state="resolved")
    seed.handoff(dispute)
    assert run_once(cfg).counts["superseded"] == 1
    seed.set_state(dispute, "notified")
    result = run_once(cfg)
    assert result.counts["dispatched"] == 1 and result.counts["superseded"] == 0
    assert len(handoff_dms(solvers[1], serbero_pub)) == 1
    assert len(seed.audit("escalation_superseded")) == 1
    assert len(seed.audit("escalation_dispatched")) == 1


def test_two_handoffs_for_one_resolved_dispute_give_two_rows(esc_config, seed, run_once):
    dispute = seed.dispute(state="resolved")
    ids = [seed.handoff(dispute), seed.handoff(dispute, trigger="round_limit")]
    assert run_once(esc_config()).counts["superseded"] == 2
    assert (
        sorted(r["payload"]["handoff_event_id"] for r in seed.audit("escalation_superseded")) == ids
    )


def test_one_reader_without_fallback_is_unroutable_once(
    esc_config, seed, solvers, serbero_pub, run_once
):
    reader = solvers[0]
    cfg = esc_config(solver_list=[(reader.pubkey, "read")])
    dispute = seed.dispute()
    handoff_id = seed.handoff(dispute)
    for _ in range(2):
        result = run_once(cfg)
        assert result.exit_code == 4 and result.counts["unroutable"] == 1
    (row,) = seed.audit("escalation_dispatch_unroutable")
    assert row["payload"] == {
        "configured_solver_count": 1,
        "dispute_id": dispute,
        "fallback_to_all_solvers": False,
        "handoff_event_id": handoff_id,
    }
    assert handoff_dms(reader, serbero_pub) == [] and seed.dispatches() == []


def test_two_readers_with_fallback_both_receive_it(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    r1, r2 = make_solver("read", "r1"), make_solver("read", "r2")
    cfg = esc_config(
        solver_list=[(r1.pubkey, "read"), (r2.pubkey, "read")],
        escalation={"fallback_to_all_solvers": True},
    )
    dispute = seed.dispute()
    seed.handoff(dispute)
    assert run_once(cfg).exit_code == 0
    assert len(handoff_dms(r1, serbero_pub)) == len(handoff_dms(r2, serbero_pub)) == 1
    (row,) = seed.dispatches()
    assert row["fallback_broadcast"] == 1 and row["route"] == "fallback"
    (audit,) = seed.audit("escalation_dispatched")
    assert audit["payload"]["fallback_broadcast"] is True
    assert seed.audit("escalation_dispatch_unroutable") == []


def test_zero_solvers_with_fallback_is_unroutable_with_count_zero(esc_config, seed, run_once):
    cfg = esc_config(solver_list=[], escalation={"fallback_to_all_solvers": True})
    seed.handoff(seed.dispute())
    assert run_once(cfg).exit_code == 4
    (row,) = seed.audit("escalation_dispatch_unroutable")
    assert row["payload"]["configured_solver_count"] == 0
    assert row["payload"]["fallback_to_all_solvers"] is False


def test_adding_a_writer_dispatches_and_keeps_one_unroutable_row(
    esc_config, seed, solvers, serbero_pub, run_once
):
    reader, writer = solvers
    seed.handoff(seed.dispute())
    assert (
        run_once(esc_config(solver_list=[(reader.pubkey, "read")], name="before.toml")).exit_code
        == 4
    )
    result = run_once(esc_config(name="after.toml"))
    assert result.exit_code == 0 and result.handoffs[0].recipients == [writer.pubkey]
    assert len(handoff_dms(writer, serbero_pub)) == 1 and handoff_dms(reader, serbero_pub) == []
    assert len(seed.audit("escalation_dispatch_unroutable")) == 1
    assert run_once(esc_config(name="after.toml")).handoffs == []
