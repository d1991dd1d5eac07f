"""Mediation's pure parts: eligibility, recommending an escalation once, the transcript, the solver-auth back-off
and the summary texts (docs/mediation.md)."""

from __future__ import annotations

import json
import uuid

import pytest

from serbero_cli.config import MediationConfig
from serbero_cli.delivery.audience import Audience
from serbero_cli.domain import headline
from serbero_cli.domain import notices as core_messages
from serbero_cli.domain.authority import contains_authority_phrase
from serbero_cli.mediation import auth, messages, policy
from serbero_cli.mediation.escalation import Escalation, handoff_package, recommend
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import open_db

BUNDLE = ("serbero-default", "ab" * 32)


def mediation_cfg(**kw) -> MediationConfig:
    values = dict(
        enabled=True,
        max_rounds=2,
        party_response_timeout_seconds=1800,
        session_timeout_seconds=86400,
        max_starts_per_run=5,
        take_reply_wait_seconds=15,
        start_retry_interval_seconds=300,
        solver_auth_retry_initial_seconds=60,
        solver_auth_retry_max_interval_seconds=3600,
        solver_auth_retry_max_total_seconds=86400,
        solver_auth_retry_max_attempts=24,
    )
    values.update(kw)
    return MediationConfig(**values)


@pytest.fixture
def store(tmp_path):
    s = open_db(tmp_path / "m.db")
    yield s
    s.close()


def add_dispute(store, state="notified", initiator="buyer", ts=1000, dispute_id=None) -> str:
    dispute_id = dispute_id or str(uuid.uuid4())
    with store.immediate() as conn:
        disputes_store.insert_dispute(
            conn,
            dispute_id=dispute_id,
            event_id="e" * 64,
            mostro_pubkey="m" * 64,
            initiator_role=initiator,
            dispute_status="initiated",
            event_timestamp=ts,
            now=ts,
            lifecycle_state=state,
            assigned_solver=None,
        )
    return dispute_id


def add_event(store, kind, payload, now=1000, session_id=None):
    with store.immediate() as conn:
        med.insert_event(conn, kind, payload, now=now, session_id=session_id)


def add_session(store, dispute_id, state="awaiting_response", started_at=1000) -> str:
    sid = str(uuid.uuid4())
    with store.immediate() as conn:
        sess.insert_session(
            conn,
            {
                "session_id": sid,
                "dispute_id": dispute_id,
                "state": state,
                "prompt_bundle_id": BUNDLE[0],
                "policy_hash": BUNDLE[1],
                "started_at": started_at,
                "last_transition_at": started_at,
            },
        )
    return sid


def eligible_ids(store, now=10_000, retry=300) -> list[str]:
    from serbero_cli.mediation.opening import is_uuid

    return [
        r["dispute_id"]
        for r in sess.eligible_dispute_candidates(store, now=now, retry_interval=retry)
        if is_uuid(r["dispute_id"]) and r["initiator_role"] in ("buyer", "seller")
    ]


def test_eligibility_rules_and_order(store):
    oldest = add_dispute(store, "new", ts=10)
    newer = add_dispute(store, "notified", ts=20)
    non_uuid = add_dispute(store, dispute_id="dispute-7", ts=5)
    unknown_initiator = add_dispute(store, initiator="unknown", ts=6)
    human_taken = add_dispute(store, "taken", ts=7)
    attempted_taken = add_dispute(store, "waiting", ts=8)
    add_event(
        store,
        "start_attempt_started",
        {"dispute_id": attempted_taken, "trigger": "first_attempt"},
        now=1,
    )
    resolved = add_dispute(store, "resolved", ts=9)
    escalated = add_dispute(store, "escalated", ts=11)
    with_session = add_dispute(store, ts=12)
    add_session(store, with_session, state="closed")
    scoped_escalation = add_dispute(store, ts=13)
    add_event(
        store,
        "escalation_recommended",
        {
            "dispute_id": scoped_escalation,
            "trigger": "fraud_indicator",
            "evidence_refs": [],
            "rationale_refs": [],
        },
    )
    other_solver = add_dispute(store, ts=14)
    add_event(
        store,
        "start_attempt_stopped",
        {"dispute_id": other_solver, "stop_reason": "taken_by_other_solver"},
    )
    recent_attempt = add_dispute(store, ts=15)
    add_event(
        store,
        "start_attempt_started",
        {"dispute_id": recent_attempt, "trigger": "first_attempt"},
        now=9_900,
    )
    old_attempt = add_dispute(store, ts=16)
    add_event(
        store,
        "start_attempt_started",
        {"dispute_id": old_attempt, "trigger": "first_attempt"},
        now=9_000,
    )
    with store.immediate() as conn:  # a malformed payload in the table must not break the query
        med.insert_event(conn, "handoff_prepared", "{not json", now=1)
    ids = eligible_ids(store)
    assert ids == [attempted_taken, oldest, old_attempt, newer]  # oldest event_timestamp first
    for excluded in (
        non_uuid,
        unknown_initiator,
        human_taken,
        resolved,
        escalated,
        with_session,
        scoped_escalation,
        other_solver,
        recent_attempt,
    ):
        assert excluded not in ids


def test_a_second_escalation_recommendation_writes_nothing(store):
    dispute_id = add_dispute(store)
    sid = add_session(store, dispute_id)
    e = Escalation(dispute_id, sid, "round_limit", ("inner-1",), ())
    one_solver = Audience(("aa" * 32,))
    assert (
        recommend(store, e, bundle=BUNDLE, now=2000, audience=one_solver, alert_solvers=True)
        == "escalated"
    )
    counts = (
        store.scalar("SELECT COUNT(*) FROM mediation_events"),
        store.scalar("SELECT COUNT(*) FROM notifications"),
    )
    assert (
        recommend(store, e, bundle=BUNDLE, now=2001, audience=one_solver, alert_solvers=True)
        == "already_terminal"
    )
    assert (
        store.scalar("SELECT COUNT(*) FROM mediation_events"),
        store.scalar("SELECT COUNT(*) FROM notifications"),
    ) == counts
    other = add_dispute(store)
    scoped = Escalation(other, None, "authorization_lost")
    assert (
        recommend(store, scoped, bundle=BUNDLE, now=2002, audience=Audience(), alert_solvers=True)
        == "escalated"
    )
    assert (
        recommend(store, scoped, bundle=BUNDLE, now=2003, audience=Audience(), alert_solvers=True)
        == "already_escalated"
    )
    assert (
        store.scalar("SELECT lifecycle_state FROM disputes WHERE dispute_id=?", (other,))
        == "escalated"
    )
    assert (
        store.scalar(
            "SELECT trigger FROM dispute_state_transitions WHERE dispute_id=? ORDER BY id DESC LIMIT 1",
            (other,),
        )
        == "mediation:authorization_lost"
    )


def test_handoff_package_keeps_field_order_and_omits_session_for_dispute_scope():
    scoped = handoff_package(Escalation("d-1", None, "fraud_indicator", (), ("r1",)), BUNDLE, 42)
    assert scoped == (
        '{"dispute_id":"d-1","trigger":"fraud_indicator","evidence_refs":[],'
        f'"prompt_bundle_id":"serbero-default","policy_hash":"{BUNDLE[1]}","rationale_refs":["r1"],'
        '"assembled_at":42}'
    )
    with_session = json.loads(
        handoff_package(Escalation("d-1", "s-1", "round_limit", ("i",)), BUNDLE, 1)
    )
    assert list(with_session) == [
        "dispute_id",
        "session_id",
        "trigger",
        "evidence_refs",
        "prompt_bundle_id",
        "policy_hash",
        "rationale_refs",
        "assembled_at",
    ]


def test_transcript_cap_order_and_exclusions(store):
    dispute_id = add_dispute(store)
    sid = add_session(store, dispute_id)
    rows = [  # (direction, party, ts, stale, published)
        ("outbound", "buyer", 100, 0, 1),
        ("inbound", "buyer", 300, 0, 0),
        ("inbound", "seller", 200, 0, 0),
        ("inbound", "seller", 150, 1, 0),
        ("outbound", "seller", 400, 0, 0),
        ("inbound", "buyer", 300, 0, 0),
    ]
    with store.immediate() as conn:
        for i, (direction, party, ts, stale, published) in enumerate(rows):
            sess.insert_message(
                conn,
                {
                    "session_id": sid,
                    "direction": direction,
                    "party": party,
                    "shared_pubkey": "x",
                    "inner_event_id": f"id{i}",
                    "inner_event_created_at": ts,
                    "content": f"m{i}",
                    "persisted_at": ts,
                    "stale": stale,
                    "published_at": ts if (direction == "outbound" and published) else None,
                },
            )
    full = sess.transcript_rows(store.conn, sid, 40)
    assert [r["content"] for r in full] == [
        "m0",
        "m2",
        "m1",
        "m5",
    ]  # stale m3 and unpublished m4 left out
    assert [r["content"] for r in sess.transcript_rows(store.conn, sid, 2)] == ["m1", "m5"]


def test_backoff_doubles_to_the_cap_and_terminates():
    cfg = mediation_cfg(
        solver_auth_retry_max_attempts=10, solver_auth_retry_max_total_seconds=10**9
    )
    assert [auth.backoff_seconds(n, cfg) for n in range(1, 9)] == [
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    state = None
    for attempt in range(1, 11):
        state = auth.record_failure(state, 1000 * attempt, "cant_do:not_authorized", cfg)
        assert state.attempts == attempt and state.first_failure_at == 1000
    assert auth.should_terminate(state, state.last_failure_at, cfg)
    assert auth.gate(state, state.last_failure_at, cfg) == auth.TERMINATED
    by_time = mediation_cfg(
        solver_auth_retry_max_attempts=100, solver_auth_retry_max_total_seconds=5000
    )
    first = auth.record_failure(None, 0, "x", by_time)
    assert auth.gate(first, 30, by_time) == auth.BACKOFF
    assert auth.gate(first, 60, by_time) == auth.PROBE
    assert auth.gate(first, 5000, by_time) == auth.TERMINATED
    assert auth.gate(None, 0, by_time) == auth.OPEN
    assert auth.reschedule(first, 100, by_time).next_probe_at == 160


def test_message_formats_are_exact_and_pass_the_phrase_check():
    body = messages.summary_body(
        "d-1", "s-1", "coordination_failure_resolvable", 0.5, "Check the bank.", "Text."
    )
    assert body == (
        "Dispute d-1 \u00b7 handed off: facts_gathered\n" + messages.SUMMARY_HINT + "\n"
        "mediation_summary/v2\nDispute: d-1\nSession: s-1\n"
        "Classification: coordination_failure_resolvable (confidence 0.50)\n"
        "Suggested next step: Check the bank.\n\nText."
    )
    scoped = messages.escalation_body("d-1", None, "fraud_indicator")
    lines = scoped.split("\n")
    assert lines[:6] == [
        "Dispute d-1 \u00b7 mediation could not start",
        "reason: fraud_indicator",
        "mediation_escalation/v2",
        "Dispute: d-1",
        "Session: <none \u2014 dispute-scoped handoff>",
        "Trigger: fraud_indicator",
    ]
    assert (
        lines[6] == "" and not scoped.endswith("\n") and "no mediation session" in lines[7].lower()
    )
    session = messages.escalation_body("d-1", "s-1", "round_limit").split("\n")
    assert (
        session[0] == "Dispute d-1 \u00b7 handed off: round_limit"
        and session[2] == "mediation_escalation/v2"
    )
    assert messages.party_question("buyer", " Did you pay? ").startswith("Buyer: Did you pay?\n\n")
    assert messages.party_question("seller", "Paid?", 2).startswith("Round 2. Seller: Paid?\n\n")
    for text in (
        messages.ESCALATION_NOTE,
        messages.ESCALATION_NOTE_DISPUTE_SCOPE,
        messages.SUMMARY_HINT,
        messages.waiting_note(),
        headline.HANDOFF_HINT,
        core_messages.RENOTIFY_HINT,
        core_messages.MEDIATING_HINT,
        policy.OPENING_BUYER_QUESTION,
        policy.OPENING_SELLER_QUESTION,
        messages.party_question("buyer", "x"),
    ):
        assert not contains_authority_phrase(text)
