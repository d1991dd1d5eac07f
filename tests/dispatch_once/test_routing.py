"""Routing (docs/delivery.md#routing), observed in solver inboxes and dispatch rows."""

from __future__ import annotations

from serbero_cli.keytext import generate_secret, npub, public_key_of
from tests.dispatch_once.conftest import handoff_dms


def target_of(seed, dispute: str) -> str:
    (row,) = seed.rows(
        "SELECT target_solver, route, fallback_broadcast FROM escalation_dispatches WHERE dispute_id=?",
        (dispute,),
    )
    return row


def test_assigned_writer_is_targeted_and_unknown_assignee_broadcasts(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    w1, w2 = make_solver("write", "w1"), make_solver("write", "w2")
    cfg = esc_config(solver_list=[(w1.pubkey, "write"), (w2.pubkey, "write")])
    targeted = seed.dispute(assigned=w2.pubkey)
    stranger = seed.dispute(assigned=public_key_of(generate_secret()))
    seed.handoff(targeted)
    seed.handoff(stranger)
    assert run_once(cfg).exit_code == 0
    assert target_of(seed, targeted) == {
        "target_solver": w2.pubkey,
        "route": "targeted",
        "fallback_broadcast": 0,
    }
    assert target_of(seed, stranger) == {
        "target_solver": f"{w1.pubkey},{w2.pubkey}",
        "route": "broadcast",
        "fallback_broadcast": 0,
    }
    assert [dm.content.split("\n")[3] for dm in handoff_dms(w1, serbero_pub)] == [
        f"Dispute: {stranger}"
    ]
    assert sorted(dm.content.split("\n")[3] for dm in handoff_dms(w2, serbero_pub)) == sorted(
        [f"Dispute: {stranger}", f"Dispute: {targeted}"]
    )
    sends = seed.rows(
        "SELECT solver_pubkey FROM notifications WHERE dispute_id=? ORDER BY id", (stranger,)
    )
    assert [r["solver_pubkey"] for r in sends] == [w1.pubkey, w2.pubkey]


def test_read_assignee_falls_through_to_the_writers(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    r1, w1, w2 = make_solver("read", "r1"), make_solver("write", "w1"), make_solver("write", "w2")
    cfg = esc_config(solver_list=[(r1.pubkey, "read"), (w1.pubkey, "write"), (w2.pubkey, "write")])
    dispute = seed.dispute(assigned=r1.pubkey)
    seed.handoff(dispute)
    assert run_once(cfg).exit_code == 0
    assert target_of(seed, dispute)["target_solver"] == f"{w1.pubkey},{w2.pubkey}"
    assert handoff_dms(r1, serbero_pub) == []
    assert len(handoff_dms(w1, serbero_pub)) == len(handoff_dms(w2, serbero_pub)) == 1


def test_no_assignee_sends_to_writers_in_config_order(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    w1, w2, r1 = make_solver("write", "w1"), make_solver("write", "w2"), make_solver("read", "r1")
    cfg = esc_config(solver_list=[(w1.pubkey, "write"), (w2.pubkey, "write"), (r1.pubkey, "read")])
    dispute = seed.dispute()
    seed.handoff(dispute)
    result = run_once(cfg)
    assert result.handoffs[0].recipients == [w1.pubkey, w2.pubkey]
    assert [d["pubkey"] for d in result.handoffs[0].deliveries] == [w1.pubkey, w2.pubkey]
    assert target_of(seed, dispute)["target_solver"] == f"{w1.pubkey},{w2.pubkey}"
    assert handoff_dms(r1, serbero_pub) == []


def test_fallback_only_with_readers_and_the_flag(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    r1, r2 = make_solver("read", "r1"), make_solver("read", "r2")
    readers = [(r1.pubkey, "read"), (r2.pubkey, "read")]
    dispute = seed.dispute()
    seed.handoff(dispute)
    for solver_list, fallback in ((readers, False), ([], True), ([], False)):
        cfg = esc_config(solver_list=solver_list, escalation={"fallback_to_all_solvers": fallback})
        result = run_once(cfg)
        assert result.handoffs[0].decision == "unroutable" and result.exit_code == 4
    assert seed.dispatches() == []
    result = run_once(esc_config(solver_list=readers, escalation={"fallback_to_all_solvers": True}))
    assert result.exit_code == 0 and result.handoffs[0].decision == "fallback"
    assert target_of(seed, dispute) == {
        "target_solver": f"{r1.pubkey},{r2.pubkey}",
        "route": "fallback",
        "fallback_broadcast": 1,
    }
    assert len(handoff_dms(r1, serbero_pub)) == len(handoff_dms(r2, serbero_pub)) == 1


def test_npub_and_uppercase_keys_match_and_output_is_lowercase_hex(
    esc_config, seed, make_solver, serbero_pub, run_once
):
    w1, w2, w3 = make_solver("write", "w1"), make_solver("write", "w2"), make_solver("write", "w3")
    cfg = esc_config(
        solver_list=[
            (npub(w1.pubkey), "write"),
            (w2.pubkey.upper(), "write"),
            ("nostr:" + npub(w3.pubkey), "write"),
        ]
    )
    cases = {
        seed.dispute(assigned=w1.pubkey): w1.pubkey,  # npub in config, lowercase hex assignee
        seed.dispute(assigned=w2.pubkey): w2.pubkey,  # uppercase in config
        seed.dispute(assigned=npub(w3.pubkey)): w3.pubkey,  # the reverse: npub assignee
        seed.dispute(assigned=w3.pubkey.upper()): w3.pubkey,  # uppercase assignee
        seed.dispute(assigned="garbage-not-a-key"): f"{w1.pubkey},{w2.pubkey},{w3.pubkey}",
    }
    for dispute in cases:
        seed.handoff(dispute)
    assert run_once(cfg).exit_code == 0
    for dispute, expected in cases.items():
        row = target_of(seed, dispute)
        assert row["target_solver"] == expected
        assert row["route"] == ("broadcast" if "," in expected else "targeted")
    assert {r["solver_pubkey"] for r in seed.rows("SELECT solver_pubkey FROM notifications")} == {
        w1.pubkey,
        w2.pubkey,
        w3.pubkey,
    }
    assert len(handoff_dms(w3, serbero_pub)) == 3
