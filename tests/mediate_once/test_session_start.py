"""Opening a session (docs/mediation.md#opening-a-session): eligibility, the take, the opening questions,
retries of a failed opening and the per-run start limit."""

from __future__ import annotations

import coincurve
import pytest

from serbero_cli.simulate.llm import Reply, classification_json
from tests.helpers import marker_of, wait_for
from tests.mediate_once.conftest import ask, summarize, summary

EXPECTED_ORDER = [
    "start_attempt_started",
    "reasoning_verdict",
    "take_dispute_issued",
    "session_opened",
    "classification_produced",
    "outbound_sent",
    "outbound_sent",
]


def legacy_shared(serbero_sk_hex: str, trade_pk_hex: str) -> str:
    """ECDH x computed here from coincurve alone, independent of Serbero's code."""
    x = (
        coincurve.PublicKey(b"\x02" + bytes.fromhex(trade_pk_hex))
        .multiply(bytes.fromhex(serbero_sk_hex))
        .format()[1:]
    )
    return coincurve.PublicKeyXOnly.from_secret(x).format().hex()


def test_eligible_dispute_opens_a_session_that_both_parties_can_read(harness, serbero_keys):
    h = harness()
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, _ = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1 and doc["starts_attempted"] == 1
    session = h.session()
    assert session["state"] == "awaiting_response"
    assert (session["prompt_bundle_id"], session["policy_hash"]) == (
        doc["bundle_id"],
        doc["policy_hash"],
    )
    record = h.node.dispute(dispute_id)
    sk = serbero_keys.secret_key().to_hex()
    for role in ("buyer", "seller"):
        trade = record.trade_keys(role).public_key().to_hex()
        assert session[f"{role}_trade_pubkey"] == trade
        assert session[f"{role}_shared_pubkey"] == legacy_shared(sk, trade)
    assert len(h.events("session_opened")) == 1
    outbound = h.rows(
        "SELECT party, content, published_at FROM mediation_messages WHERE direction='outbound'"
    )
    assert sorted(r["party"] for r in outbound) == ["buyer", "seller"]
    assert all(r["published_at"] for r in outbound)
    for role in ("buyer", "seller"):
        party = h.node.party(dispute_id, role)
        (message,) = party.messages()
        assert message.author == serbero_keys.public_key().to_hex()
        assert message.content.startswith("Buyer: " if role == "buyer" else "Seller: ")
    dispute = h.rows("SELECT lifecycle_state, assigned_solver FROM disputes")[0]
    assert dispute == {
        "lifecycle_state": "waiting",
        "assigned_solver": serbero_keys.public_key().to_hex(),
    }
    triggers = [
        r["trigger"] for r in h.rows("SELECT trigger FROM dispute_state_transitions ORDER BY id")
    ]
    assert triggers[-2:] == ["mediation:take", "mediation:awaiting_parties"]
    for solver in h.solvers:  # the assignment DM names Serbero
        assert any(
            f"assigned_solver: {serbero_keys.public_key().to_hex()}" in dm.content
            for dm in solver.inbox()
        )


def test_failed_health_check_starts_nothing_and_exits_4(harness, llm):
    h = harness()
    h.open()
    llm.health_failures = 5
    llm.health_status = 500
    code, doc, _ = h.mediate_cli()
    assert code == 4 and doc["provider_healthy"] is False and doc["provider_checked"] is True
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_sessions") == [{"n": 0}]
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_events") == [{"n": 0}]
    assert h.node.requests == []
    assert all(len(s.inbox()) == 1 for s in h.solvers)  # listen's DM only


def test_failed_health_check_on_a_fresh_database(harness, llm, db_path):
    h = harness()
    llm.health_failures = 5
    llm.health_status = 503
    h.node.open_dispute()
    result = h.mediate()
    assert result.exit_code == 0  # nothing recorded by listen yet: no model work, so no check
    h.listen()
    result = h.mediate()
    assert result.exit_code == 4 and result.provider_healthy is False
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_events") == [{"n": 0}]


def test_stale_refusal_for_another_dispute_does_not_abort_a_new_take(harness):
    h = harness()
    other = h.node.open_dispute()
    h.node.preseed_old_replies(other, "invalid_pubkey", age_seconds=5)
    dispute_id = h.open()
    h.llm.push(ask(), ask())
    result = h.mediate()
    assert result.sessions_opened >= 1
    assert h.rows("SELECT dispute_id FROM mediation_sessions WHERE dispute_id=?", (dispute_id,))


def test_a_dispute_listen_recorded_starts_in_the_next_run_with_events_in_order(harness):
    h = harness()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    events = h.events()
    assert [e["kind"] for e in events] == EXPECTED_ORDER
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e["payload"].get("dispute_id") in (dispute_id, None) for e in events)


def test_fraud_risk_at_opening_escalates_without_a_take(harness):
    h = harness()
    dispute_id = h.open()
    h.llm.push(
        Reply(content=classification_json("suspected_fraud", 0.9, "escalate", flags=["fraud_risk"]))
    )
    result = h.mediate()
    assert result.escalations == {"fraud_indicator": 1} and result.sessions_opened == 0
    assert h.node.requests == []
    kinds = [e["kind"] for e in h.events()]
    for kind in (
        "reasoning_verdict",
        "start_attempt_stopped",
        "escalation_recommended",
        "handoff_prepared",
    ):
        assert kinds.count(kind) == 1, kind
    assert h.events("start_attempt_stopped")[0]["payload"] == {
        "dispute_id": dispute_id,
        "stop_reason": "policy_escalate",
        "trigger": "fraud_indicator",
    }
    handoff = h.events("handoff_prepared")[0]
    assert handoff["payload"]["dispute_id"] == dispute_id and "session_id" not in handoff["payload"]
    assert handoff["payload_json"].startswith('{"dispute_id":')
    assert h.rows("SELECT lifecycle_state FROM disputes") == [{"lifecycle_state": "escalated"}]


def test_model_suggesting_escalate_at_opening_is_reasoning_unavailable(harness):
    h = harness()
    h.open()
    h.llm.push(Reply(content=classification_json("unclear", 0.9, "escalate", detail="looks odd")))
    result = h.mediate()
    assert result.escalations == {"reasoning_unavailable": 1}
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_sessions") == [{"n": 0}]
    assert h.node.requests == []


def test_opening_failures_retry_then_escalate_on_the_third(harness):
    h = harness()
    dispute_id = h.open()
    for run in range(1, 4):
        h.llm.push(Reply(status=500, body="boom"))
        result = h.mediate()
        assert result.exit_code == 4
        failed = h.events("reasoning_call_failed")
        assert [e["payload"]["attempt_count"] for e in failed] == list(range(1, run + 1))
        assert all(
            set(e["payload"])
            == {"attempt_count", "dispute_id", "error_category", "model", "provider"}
            for e in failed
        )
        if run < 3:
            assert result.escalations == {}
            assert (
                h.events("start_attempt_stopped")[-1]["payload"]["stop_reason"]
                == "reasoning_failed"
            )
    assert result.escalations == {"reasoning_unavailable": 1}
    assert h.events("handoff_prepared")[0]["payload"]["dispute_id"] == dispute_id


def test_a_successful_second_opening_opens_the_session(harness):
    h = harness()
    h.open()
    h.llm.push(Reply(status=503, body="busy"))
    assert h.mediate().sessions_opened == 0
    h.llm.push(ask())
    result = h.mediate()
    assert result.sessions_opened == 1 and result.escalations == {}


def both_answered(h) -> str:
    """A session whose parties both answered the opening questions (a summary needs both)."""
    dispute_id = h.open()
    h.llm.push(ask())
    assert h.mediate().sessions_opened == 1
    h.node.party(dispute_id, "buyer").reply("I paid, reference 123.")
    h.node.party(dispute_id, "seller").reply("It arrived.")
    return dispute_id


def test_a_closed_summary_session_is_never_taken_again(harness):
    h = harness()
    dispute_id = both_answered(h)
    h.llm.push(summarize(), summary())
    result = h.mediate()
    assert result.summaries_generated == 1
    assert h.session()["state"] == "closed"
    for _ in range(2):
        h.mediate()
    assert len(h.node.takes(dispute_id)) == 1
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_messages WHERE direction='outbound'") == [
        {"n": 2}
    ]


def test_a_summary_decided_in_a_run_is_delivered_in_that_run(harness):
    h = harness()
    dispute_id = both_answered(h)
    h.llm.push(summarize(), summary())
    result = h.mediate()
    assert result.dms_delivered >= 2
    for solver in h.solvers:
        assert any(marker_of(dm.content) == "mediation_summary/v2" for dm in solver.inbox())
    assert [e["payload"]["reason"] for e in h.events("session_closed")] == ["summary_delivered"]
    assert (
        h.rows("SELECT lifecycle_state FROM disputes WHERE dispute_id=?", (dispute_id,))[0][
            "lifecycle_state"
        ]
        == "taken"
    )


def test_a_run_whose_summary_call_failed_delivers_it_next_run(harness):
    h = harness()
    both_answered(h)
    h.llm.push(summarize(), Reply(status=500, body="down"))  # the summary call fails this run
    result = h.mediate()
    assert h.session()["state"] == "classified" and result.exit_code == 4
    h.llm.push(summary())
    result = h.mediate()
    assert result.summaries_generated == 1 and h.session()["state"] == "closed"


def test_dropped_key_warns_and_max_starts_limits_starts(harness, caplog):
    h = harness(chat={"inbound_fetch_interval_seconds": 30}, mediation={"max_starts_per_run": 2})
    for _ in range(3):
        h.node.open_dispute()
    h.listen()
    from serbero_cli.config import load_config

    assert any(
        "inbound_fetch_interval_seconds" in w for w in load_config(h.config_path, env={}).warnings
    )
    h.llm.push(ask(), ask(), ask())
    result = h.mediate()
    assert result.starts_attempted == 2 and result.starts_skipped == {"max_starts": 1}
    code, doc, err = h.mediate_cli("--max-starts", "1")
    assert "inbound_fetch_interval_seconds" in err
    assert doc["starts_attempted"] == 1


def test_disabled_mediation_says_so_on_a_terminal_and_exits_0_without_the_lock(harness, db_path):
    h = harness(mediation={"enabled": False})
    from tests.helpers import run_serbero_tty

    code, stdout, _ = run_serbero_tty(h.config_path, "mediate-once")
    assert code == 0 and "mediation disabled" in stdout
    assert not (db_path.parent / f"{db_path.name}.mediate.lock").exists()


def test_missing_api_key_is_a_config_error(harness):
    h = harness()
    from tests.helpers import run_serbero

    proc = run_serbero(h.config_path, "mediate-once", env={"SERBERO_REASONING_API_KEY": " "})
    assert proc.returncode == 2 and "SERBERO_REASONING_API_KEY" in proc.stderr


def test_unreadable_prompt_file_exits_2(harness, tmp_path):
    h = harness(prompts={"system_instructions_path": str(tmp_path / "nope.md")})
    code, doc, err = h.mediate_cli()
    assert code == 2 and "system_instructions_path" in err


@pytest.mark.parametrize("protocol", [1, 2])
def test_take_works_on_both_protocols(harness, protocol):
    h = harness()
    h.node.set_protocol(protocol)
    h.open()
    h.llm.push(ask())
    result = h.mediate()
    assert result.sessions_opened == 1
    assert result.transport == {1: "giftwrap", 2: "nip44"}[protocol]
    wait_for(lambda: h.node.takes(), timeout=2)
