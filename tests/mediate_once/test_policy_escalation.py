"""The policy and its escalations (docs/mediation.md#policy, #triggers), through the real mediate-once path."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from serbero_cli.simulate.llm import Reply
from tests.helpers import body_after_marker, marker_of
from tests.mediate_once.conftest import ask
from tests.mediate_once.test_ingest_and_summary import opened

FAILED_KEYS = {"attempt_count", "dispute_id", "error_category", "model", "provider"}


def everything_but(h, *skip: str) -> str:
    """Every cell of every table (except `skip`), as text: where a secret or a rationale must not be."""
    tables = [r["name"] for r in h.rows("SELECT name FROM sqlite_master WHERE type='table'")]
    cells = []
    for table in tables:
        if table in skip:
            continue
        for row in h.rows(f'SELECT * FROM "{table}"'):
            cells.extend(str(v) for v in row.values() if v is not None)
    return "\n".join(cells)


def outbound(h) -> list[dict]:
    return h.rows(
        "SELECT party, content, published_at FROM mediation_messages "
        "WHERE direction='outbound' ORDER BY id"
    )


def followup_number(request) -> int:
    user = request.body["messages"][1]["content"]
    return int(re.search(r"^followup_number: (\d+)$", user, re.M).group(1))


def assert_escalated_once(h, trigger: str, session_id: str | None) -> dict:
    """Exactly one escalation + handoff for `trigger`, the dispute moved to escalated with its transition."""
    (esc,) = h.events("escalation_recommended")
    (handoff,) = h.events("handoff_prepared")
    assert esc["payload"]["trigger"] == trigger and handoff["payload"]["trigger"] == trigger
    assert esc["session_id"] == handoff["session_id"] == session_id
    if session_id is not None:
        assert handoff["payload"]["session_id"] == session_id
    assert h.rows("SELECT lifecycle_state FROM disputes") == [{"lifecycle_state": "escalated"}]
    transitions = h.rows(
        "SELECT trigger, to_state FROM dispute_state_transitions WHERE trigger=?",
        (f"mediation:{trigger}",),
    )
    assert transitions == [{"trigger": f"mediation:{trigger}", "to_state": "escalated"}]
    return esc


# --- authority flags ------------------------------------------------------------------------------


def test_authority_flag_at_opening_escalates_and_sends_nothing(harness):
    h = harness()
    dispute_id = h.open()
    rationale = "Authority at the opening: the buyer wants someone to admin-settle; rationale-7d1f only a human may judge it."
    h.llm.push(
        ask(
            buyer="Confirm the payment so we can admin-settle the trade.",
            seller="Reply so the admin-settle can go ahead.",
            flags=["authority_boundary_attempt"],
            rationale=rationale,
        )
    )
    result = h.mediate()
    assert result.escalations == {"authority_boundary_attempt": 1} and result.sessions_opened == 0
    assert h.node.requests == []  # no take, so the parties were never even introduced
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_messages") == [{"n": 0}]
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_sessions") == [{"n": 0}]
    for role in ("buyer", "seller"):
        assert h.node.party(dispute_id, role).messages() == []
    rid = hashlib.sha256(rationale.encode()).hexdigest()
    assert h.rows("SELECT rationale_id, rationale_text, session_id FROM reasoning_rationales") == [
        {"rationale_id": rid, "rationale_text": rationale, "session_id": None}
    ]
    esc = assert_escalated_once(h, "authority_boundary_attempt", None)
    assert esc["payload"]["rationale_refs"] == [rid]
    assert all("rationale-7d1f" not in e["payload_json"] for e in h.events())
    bodies = [r["body"] for r in h.rows("SELECT body FROM notifications")]
    assert any(marker_of(b) == "mediation_escalation/v2" for b in bodies)
    assert all("rationale-7d1f" not in b and "admin-settle" not in b for b in bodies)
    # Only the rationale table holds the text; no other table holds the model's clarifications either.
    dump = everything_but(h, "reasoning_rationales")
    assert "rationale-7d1f" not in dump and "admin-settle" not in dump


def test_authority_flag_mid_session_escalates_and_sends_nothing_more(harness):
    h = harness()
    dispute_id, buyer, seller = opened(h)
    now = int(time.time())
    buyer.reply("I paid, reference 881.", created_at=now - 30)
    seller.reply("Nothing here yet.", created_at=now - 20)
    rationale = "Authority mid-session: rationale-93ab the seller asks for an admin-settle."
    h.llm.push(
        ask(
            buyer="Wait while we admin-settle.",
            seller="We can admin-settle it for you.",
            flags=["authority_boundary_attempt"],
            rationale=rationale,
        )
    )
    result = h.mediate()
    assert result.escalations == {"authority_boundary_attempt": 1} and result.followups_sent == 0
    session = h.session()
    assert session["state"] == "escalation_recommended"
    assert [r["content"].split(":")[0] for r in outbound(h)] == [
        "Buyer",
        "Seller",
    ]  # the opening pair only
    assert [len(p.messages()) for p in (buyer, seller)] == [1, 1]
    rid = hashlib.sha256(rationale.encode()).hexdigest()
    assert h.rows(
        "SELECT session_id, rationale_text FROM reasoning_rationales WHERE rationale_id=?", (rid,)
    ) == [{"session_id": session["session_id"], "rationale_text": rationale}]
    esc = assert_escalated_once(h, "authority_boundary_attempt", session["session_id"])
    assert esc["payload"]["rationale_refs"] == [rid]
    assert all("rationale-93ab" not in e["payload_json"] for e in h.events())
    assert all("rationale-93ab" not in r["body"] for r in h.rows("SELECT body FROM notifications"))
    dump = everything_but(h, "reasoning_rationales")
    assert "rationale-93ab" not in dump and "admin-settle" not in dump
    assert h.mediate().escalations == {}  # a rerun adds nothing
    assert len(h.events("handoff_prepared")) == 1


# --- policy triggers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bypassed,final,trigger",
    [
        pytest.param(
            0,
            lambda: ask(flags=["conflicting_claims"]),
            "conflicting_claims",
            id="conflicting_claims-flag",
        ),
        pytest.param(0, lambda: ask(flags=["fraud_risk"]), "fraud_indicator", id="fraud_risk-flag"),
        pytest.param(
            3, lambda: ask(confidence=0.2), "low_confidence", id="confidence-0.2-at-followup-4"
        ),
    ],
)
def test_policy_triggers_escalate_with_one_handoff(harness, bypassed, final, trigger):
    h = harness(mediation={"max_rounds": 10})
    _, buyer, seller = opened(h)
    sid = h.session()["session_id"]
    base = int(time.time()) - 300
    for n in range(1, bypassed + 2):
        buyer.reply(f"buyer answer {n}", created_at=base + 20 * n)
        seller.reply(f"seller answer {n}", created_at=base + 20 * n + 5)
        h.llm.push(
            ask(
                confidence=0.2,
                buyer=f"Question {n} for the buyer?",
                seller=f"Question {n} for the seller?",
            )
            if n <= bypassed
            else final()
        )
        result = h.mediate()
        assert followup_number(h.llm.model_requests()[-1]) == n
        if n <= bypassed:  # rule 4 bypass: low confidence still asks up to follow-up 3
            assert result.escalations == {} and result.followups_sent == 2, n
            assert h.session()["state"] == "awaiting_response"
            assert [r["content"].split(" Buyer:")[0] for r in outbound(h)][-2] == f"Round {n}."
    assert result.escalations == {trigger: 1} and result.followups_sent == 0
    assert len(outbound(h)) == 2 + 2 * bypassed  # nothing sent in the escalating round
    assert h.session()["state"] == "escalation_recommended"
    esc = assert_escalated_once(h, trigger, sid)
    assert esc["payload"]["evidence_refs"] == [] and len(esc["payload"]["rationale_refs"]) == 1
    assert h.mediate().escalations == {}
    assert len(h.events("handoff_prepared")) == 1


# --- unresponsive parties -------------------------------------------------------------------------


def test_party_unresponsive_fires_once_and_zero_disables_it(harness, make_config, med_sections):
    h = harness()
    dispute_id, _, _ = opened(h)
    now = int(time.time())
    h.execute(
        "UPDATE mediation_sessions SET started_at=?", (now - 90_000,)
    )  # both clocks are past due
    h.config_path = make_config(
        sections=med_sections(
            mediation={"party_response_timeout_seconds": 0, "session_timeout_seconds": 0}
        ),
        name="off.toml",
    )
    result = h.mediate()
    assert result.escalations == {} and h.session()["state"] == "awaiting_response"

    h.config_path = make_config(
        sections=med_sections(mediation={"party_response_timeout_seconds": 1800}), name="on.toml"
    )
    h.execute(
        "UPDATE mediation_sessions SET started_at=?, buyer_last_seen_inner_ts=?",
        (now - 7200, now - 100),
    )  # a recent reply resets the clock
    assert h.mediate().escalations == {}
    h.execute(
        "UPDATE mediation_sessions SET started_at=?, buyer_last_seen_inner_ts=?",
        (now - 90_000, now - 1900),
    )
    result = h.mediate()
    assert result.escalations == {
        "party_unresponsive": 1
    }  # only party_unresponsive when both are due
    sid = h.session()["session_id"]
    esc = assert_escalated_once(h, "party_unresponsive", sid)
    assert esc["payload"]["dispute_id"] == dispute_id
    events_before = len(h.events())
    assert h.mediate().escalations == {}
    assert len(h.events()) == events_before


# --- the round limit ------------------------------------------------------------------------------


def test_round_limit_escalates_with_the_inner_id_and_sends_no_followup(harness):
    h = harness(mediation={"max_rounds": 2})
    _, buyer, seller = opened(h)
    now = int(time.time())
    buyer.reply("round one, buyer", created_at=now - 100)
    seller.reply("round one, seller", created_at=now - 90)
    h.llm.push(
        ask(buyer="Please share the transfer reference.", seller="Please check your statement.")
    )
    result = h.mediate()
    assert result.followups_sent == 2 and h.session()["round_count"] == 1
    buyer.reply("round two, buyer", created_at=now - 50)
    last = seller.reply("round two, seller", created_at=now - 40)
    requests_before = len(h.llm.model_requests())
    result = h.mediate()
    assert result.escalations == {"round_limit": 1}
    assert result.evaluations == 0 and result.followups_sent == 0
    assert len(h.llm.model_requests()) == requests_before  # the gate runs before any evaluation
    session = h.session()
    assert session["round_count"] == 2 and session["state"] == "escalation_recommended"
    esc = assert_escalated_once(h, "round_limit", session["session_id"])
    assert esc["payload"]["evidence_refs"] == [last.inner_id]
    assert h.events("handoff_prepared")[0]["payload"]["evidence_refs"] == [last.inner_id]
    assert len(outbound(h)) == 4
    for party in (buyer, seller):
        # same-second messages have no defined order at the reader, so compare as a multiset
        assert sorted(m.content.startswith("Round 1. ") for m in party.messages()) == [False, True]


# --- provider errors at the opening ---------------------------------------------------------------


def test_provider_error_at_opening_stores_only_the_category(harness):
    h = harness()
    dispute_id = h.open()
    body = "upstream exploded: org quota-XYZZY-4821 exceeded, contact billing"
    h.llm.push(Reply(status=500, body=body))
    result = h.mediate()
    assert (
        result.exit_code == 4 and result.evaluation_failures == 1 and result.starts_attempted == 1
    )
    (failed,) = h.events("reasoning_call_failed")
    assert failed["session_id"] is None
    assert failed["payload"] == {
        "attempt_count": 1,
        "dispute_id": dispute_id,
        "error_category": "unreachable",
        "model": "test-model",
        "provider": "openai-compatible",
    }
    assert set(failed["payload"]) == FAILED_KEYS
    assert h.node.requests == []
    dump = everything_but(h)
    assert "XYZZY" not in dump and "exploded" not in dump and "500" not in failed["payload_json"]
    assert not any("XYZZY" in e for e in result.errors)


# --- rounds ---------------------------------------------------------------------------------------


def test_two_fresh_replies_in_round_zero_ask_round_one_once(harness):
    h = harness()
    _, buyer, seller = opened(h)
    assert h.session()["round_count_last_evaluated"] == 0
    now = int(time.time())
    buyer.reply("I sent it on Monday.", created_at=now - 30)
    seller.reply("I see nothing yet.", created_at=now - 20)
    h.llm.push(ask(buyer="Which bank did you send from?", seller="Which account did you check?"))
    result = h.mediate()
    assert result.replies_fresh == 2 and result.evaluations == 1 and result.followups_sent == 2
    rounds = [r for r in outbound(h) if r["content"].startswith("Round 1.")]
    assert [r["party"] for r in rounds] == ["buyer", "seller"] and all(
        r["published_at"] for r in rounds
    )
    assert rounds[0]["content"].startswith("Round 1. Buyer: Which bank did you send from?")
    assert rounds[1]["content"].startswith("Round 1. Seller: Which account did you check?")
    assert h.session()["round_count_last_evaluated"] == 2
    assert rounds[0]["content"] in [m.content for m in buyer.messages()]
    requests = len(h.llm.model_requests())
    again = h.mediate()
    assert again.evaluations == 0 and again.followups_sent == 0 and again.replies_duplicate == 2
    assert len(outbound(h)) == 4 and len(h.llm.model_requests()) == requests


# --- failed evaluations ---------------------------------------------------------------------------


def test_three_failed_evaluations_escalate_reasoning_unavailable(harness):
    h = harness()
    dispute_id, buyer, _ = opened(h)
    sid = h.session()["session_id"]
    opening_calls = len(h.llm.model_requests())
    buyer.reply("Still waiting for an answer.", created_at=int(time.time()) - 30)
    failures = [
        Reply(status=500, body="down"),
        Reply(content="Sure! Here is my view: ask again."),
        Reply(status=503, body="busy"),
    ]
    for run, reply in enumerate(failures, start=1):
        h.llm.push(reply)
        result = h.mediate()
        assert result.exit_code == 4 and result.evaluation_failures == 1, run
        failed = h.events("reasoning_call_failed")
        assert [(e["session_id"], e["payload"]["attempt_count"]) for e in failed] == [
            (sid, n) for n in range(1, run + 1)
        ]
        assert set(failed[-1]["payload"]) == FAILED_KEYS
        assert h.session()["consecutive_eval_failures"] == run
        assert h.session()["round_count_last_evaluated"] == 0  # the same input is retried
        if run < 3:
            assert result.escalations == {} and h.session()["state"] == "awaiting_response"
    assert [e["payload"]["error_category"] for e in h.events("reasoning_call_failed")] == [
        "unreachable",
        "malformed_response",
        "unreachable",
    ]
    assert len(h.llm.model_requests()) - opening_calls == 3
    assert result.escalations == {"reasoning_unavailable": 1}
    assert_escalated_once(h, "reasoning_unavailable", sid)
    notes = h.rows(
        "SELECT solver_pubkey, status FROM notifications "
        "WHERE notif_type='mediation_escalation_recommended'"
    )
    assert sorted(n["solver_pubkey"] for n in notes) == sorted(s.pubkey for s in h.solvers)
    assert all(n["status"] == "sent" for n in notes)
    for solver in h.solvers:
        (dm,) = [d for d in solver.inbox() if marker_of(d.content) == "mediation_escalation/v2"]
        assert body_after_marker(dm.content)[1:4] == [
            f"Dispute: {dispute_id}",
            f"Session: {sid}",
            "Trigger: reasoning_unavailable",
        ]
    result = h.mediate()
    assert result.evaluations == 0 and len(h.llm.model_requests()) - opening_calls == 3
