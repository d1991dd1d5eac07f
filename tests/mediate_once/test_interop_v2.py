"""Working with Mostro nodes of either protocol (docs/mediation.md#transport), plus the end-to-end CLI flows.

Every scenario runs `serbero mediate-once` through the CLI code, in this process or as a subprocess,
against the simulated Mostro node (protocol 1, 2 or an unsupported one) and party simulators reading
legacy, kind-14 or both chat envelopes, all on the loopback relay. A take nobody answers waits 1 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient
from serbero_cli.simulate.crypto import leading_zero_bits
from serbero_cli.simulate.llm import Reply, classification_json
from serbero_cli.simulate.mostro_node import MostroNodeSim
from serbero_cli.simulate.party import ThirdParty
from serbero_cli.simulate.relay import start_relay
from tests.helpers import ROOT, body_after_marker, marker_of, run_json, wait_for
from tests.mediate_once.conftest import API_ENV, TAKE_TIMEOUT, Harness, ask, summarize, summary

CACHE_KEYS = [
    "transport",
    "protocol_version",
    "pow",
    "pow_first_contact",
    "event_id",
    "event_created_at",
]


# --- helpers ----------------------------------------------------------------------------------


def reconfigure(
    node: MostroNodeSim,
    protocol: int | None,
    *,
    pow: int = 0,
    pow_first_contact: int = 0,
    info: dict[str, str | None] | None = None,
):
    """Restart the node with other settings and publish its (newer) 38385; return that event."""
    node.pow, node.pow_first_contact = pow, pow_first_contact
    node.info_overrides = dict(info or {})
    node.set_protocol(protocol, republish=False)
    return node.publish_info()


def open_session(h: Harness, **kw) -> tuple[str, dict]:
    """Open a dispute and a mediation session through `serbero listen` and `serbero mediate-once`."""
    dispute_id = h.open(**kw)
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err
    return dispute_id, doc


def outbound(h: Harness, party: str | None = None) -> list[dict]:
    rows = h.rows(
        "SELECT id, party, content, inner_event_id, kind14_event_id, outer_event_id, legacy_required, "
        "published_at FROM mediation_messages WHERE direction='outbound' ORDER BY id"
    )
    return [r for r in rows if party in (None, r["party"])]


def inbound(h: Harness) -> list[dict]:
    return h.rows(
        "SELECT party, envelope, content, inner_event_id FROM mediation_messages "
        "WHERE direction='inbound' ORDER BY id"
    )


def logged(err: str, level: str, text: str) -> bool:
    """True when stderr holds a log line at `level` containing `text`."""
    return any(f" {level} " in line and text in line for line in err.splitlines())


def transport_cache(h: Harness) -> str | None:
    rows = h.rows("SELECT value FROM sync_state WHERE key='mostro_transport'")
    return rows[0]["value"] if rows else None


def expected_cache(
    info_event, transport: str | None, protocol: str | None, pow: int, pfc: int | None
) -> str:
    value = {
        "transport": transport,
        "protocol_version": protocol,
        "pow": pow,
        "pow_first_contact": pfc,
        "event_id": info_event.id().to_hex(),
        "event_created_at": info_event.created_at().as_secs(),
    }
    return json.dumps(value, separators=(",", ":"))


def take_reasons(h: Harness, dispute_id: str) -> list[str]:
    return [
        e["payload"].get("reason", e["payload"]["outcome"])
        for e in h.events("take_dispute_issued")
        if e["payload"]["dispute_id"] == dispute_id
    ]


def assert_no_auth_failure(h: Harness) -> None:
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_solver_auth") == [{"n": 0}]
    assert h.events("auth_retry_attempt") == []


def snapshot(h: Harness, *skip: str) -> dict[str, list[dict]]:
    """Every row of every table except `skip`."""
    tables = [
        r["name"] for r in h.rows("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
    ]
    return {t: h.rows(f'SELECT * FROM "{t}" ORDER BY rowid') for t in tables if t not in skip}


def serbero_hex(h: Harness) -> str:
    from serbero_cli.config import load_config

    return load_config(h.config_path, env={}).public_key


# --- a protocol-1 node ----------------------------------------------------------------------------


def test_protocol_v1_node_takes_over_a_mined_giftwrap_and_a_legacy_party_is_read(harness):
    h = harness()
    reconfigure(h.node, 1, pow=8)
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err
    assert (doc["transport"], doc["transport_source"], doc["take_pow_bits"]) == (
        "giftwrap",
        "info_event",
        8,
    )
    (detail,) = h.node.request_log
    assert detail.request.transport == "giftwrap" and detail.request.outcome == "taken"
    assert detail.request.author == serbero_hex(h) and detail.version == 1
    assert detail.pow_bits >= 8 and leading_zero_bits(detail.event_id) >= 8
    assert h.session()["take_transport"] == "giftwrap"
    # Chat goes out as kind 14 plus a legacy copy of the same inner event.
    rows = outbound(h)
    assert len(rows) == 2 and all(
        r["kind14_event_id"]
        and r["outer_event_id"]
        and r["published_at"]
        and r["legacy_required"] == 1
        for r in rows
    )
    buyer = h.node.party(dispute_id, "buyer", chat="legacy")
    seller = h.node.party(dispute_id, "seller", chat="kind14")
    (legacy_msg,) = buyer.messages()
    (kind14_msg,) = seller.messages()
    assert legacy_msg.envelope == "giftwrap" and legacy_msg.content.startswith("Buyer: ")
    assert legacy_msg.inner_id == outbound(h, "buyer")[0]["inner_event_id"]
    assert (
        kind14_msg.envelope == "kind14"
        and kind14_msg.inner_id == outbound(h, "seller")[0]["inner_event_id"]
    )
    # The legacy party answers on 1059 and the reply is ingested.
    sent = buyer.reply("Paid by bank transfer, reference 77.")
    assert sent.accepted == {"giftwrap": True}
    h.llm.push(ask())
    result = h.mediate()
    assert result.replies_fresh == 1 and result.replies_rejected == 0
    assert inbound(h) == [
        {
            "party": "buyer",
            "envelope": "giftwrap",
            "content": "Paid by bank transfer, reference 77.",
            "inner_event_id": sent.inner_id,
        }
    ]


# --- a protocol-2 node ----------------------------------------------------------------------------


def test_protocol_v2_node_first_contact_pow_take_is_kind14_and_opens_the_session(harness):
    h = harness()
    reconfigure(h.node, 2, pow=0, pow_first_contact=12)
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err
    assert (doc["transport"], doc["transport_source"], doc["take_pow_bits"]) == (
        "nip44",
        "info_event",
        12,
    )
    (detail,) = h.node.request_log
    assert (
        detail.request.transport == "nip44"
        and detail.request.outcome == "taken"
        and detail.version == 2
    )
    assert detail.pow_bits >= 12
    assert h.node.dropped == []
    assert h.session()["take_transport"] == "nip44" and h.session()["dispute_id"] == dispute_id
    for role in ("buyer", "seller"):
        (msg,) = h.node.party(dispute_id, role).messages()
        assert msg.content.startswith("Buyer: " if role == "buyer" else "Seller: ")


def test_giftwrap_take_to_a_v2_node_gets_nothing_and_is_not_an_auth_failure(harness):
    h = harness(mostro={"transport": "giftwrap"}, mediation=TAKE_TIMEOUT)
    reconfigure(h.node, 2, pow=0, pow_first_contact=12)
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    assert (doc["transport"], doc["transport_source"]) == ("giftwrap", "config")
    assert logged(err, "WARNING", "protocol_version='2'")
    assert (doc["take_failures"], doc["sessions_opened"], doc["solver_auth_status"]) == (
        1,
        0,
        "authorized",
    )
    assert h.node.requests == []
    assert [(d.kind, d.reason) for d in h.node.dropped] == [(1059, "wrong_kind")]
    assert take_reasons(h, dispute_id) == ["timeout"]
    assert h.events("start_attempt_stopped") == []  # a timeout is retried later
    assert_no_auth_failure(h)


# --- choosing the transport -----------------------------------------------------------------------


def test_auto_detect_follows_the_info_event_across_a_protocol_flip(harness):
    h = harness()
    info_v2 = reconfigure(h.node, 2, pow=0, pow_first_contact=0)
    first, doc = open_session(h)
    assert (doc["transport"], doc["transport_source"]) == ("nip44", "info_event")
    assert [t.transport for t in h.node.takes(first)] == ["nip44"]
    assert transport_cache(h) == expected_cache(info_v2, "nip44", "2", 0, 0)
    assert list(json.loads(transport_cache(h))) == CACHE_KEYS
    # The node restarts on protocol 1 between runs: the next take is a gift wrap.
    info_v1 = reconfigure(h.node, 1, pow=4)
    second = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err
    assert (doc["transport"], doc["transport_source"], doc["take_pow_bits"]) == (
        "giftwrap",
        "info_event",
        4,
    )
    assert [t.transport for t in h.node.takes(second)] == ["giftwrap"]
    assert transport_cache(h) == expected_cache(info_v1, "giftwrap", "1", 4, 4)
    sessions = {
        r["dispute_id"]: r["take_transport"] for r in h.rows("SELECT * FROM mediation_sessions")
    }
    assert sessions == {first: "nip44", second: "giftwrap"}


def test_without_an_info_event_the_cache_then_the_fallback_decide(
    harness, make_config, med_sections, db_path, solvers
):
    h = harness()
    info_v1 = reconfigure(h.node, 1, pow=0)
    open_session(h)
    assert transport_cache(h) == expected_cache(info_v1, "giftwrap", "1", 0, 0)
    # The same node on a relay that holds no 38385 (e.g. a Cashu-mode node, or the event got lost).
    relay2 = start_relay()
    node2 = MostroNodeSim(
        relay2.url, h.node.keys, protocol=1, publish_info=False, solvers=dict(h.node.solvers)
    )
    node2.start()
    try:
        h2 = Harness(
            node2,
            h.llm,
            make_config(relays=[relay2.url], sections=med_sections(), name="relay2.toml"),
            db_path,
            solvers,
        )
        cached = h2.open()
        h2.llm.push(ask())
        code, doc, err = h2.mediate_cli()
        assert code == 0 and doc["sessions_opened"] == 1, err
        assert (doc["transport"], doc["transport_source"]) == ("giftwrap", "cache")
        assert [t.transport for t in node2.takes(cached)] == ["giftwrap"]
        assert transport_cache(h2) == expected_cache(info_v1, "giftwrap", "1", 0, 0)  # untouched
        # No event and no cache: gift wrap, with a warning that says to pin the transport.
        h2.execute("DELETE FROM sync_state WHERE key='mostro_transport'")
        fallback = h2.open()
        h2.llm.push(ask())
        code, doc, err = h2.mediate_cli()
        assert code == 0 and doc["sessions_opened"] == 1, err
        assert (doc["transport"], doc["transport_source"], doc["take_pow_bits"]) == (
            "giftwrap",
            "fallback",
            0,
        )
        assert logged(err, "WARNING", "pin [mostro].transport")
        assert [t.transport for t in node2.takes(fallback)] == ["giftwrap"]
        assert transport_cache(h2) is None
    finally:
        node2.close()
        relay2.shutdown()


def test_unsupported_protocol_version_takes_nothing(harness):
    h = harness()
    info = reconfigure(h.node, 2, info={"protocol_version": "3"})
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    # Nothing can start until the operator acts: reported as work that failed (exit 4), never guessed.
    assert code == doc["exit_code"] == 4, err
    assert [e for e in doc["errors"] if "protocol_version='3'" in e], doc["errors"]
    assert (doc["transport"], doc["transport_source"]) == (None, "info_event")
    assert doc["starts_skipped"] == {"unsupported_protocol": 1} and doc["starts_attempted"] == 0
    assert logged(err, "ERROR", "protocol_version='3'")
    assert h.node.request_log == [] and h.node.dropped == []
    assert (
        h.llm.model_requests() == [] and h.llm.pending() == 1
    )  # not even the opening classification
    assert h.rows("SELECT COUNT(*) AS n FROM mediation_events") == [{"n": 0}]
    assert transport_cache(h) == expected_cache(info, None, "3", 0, 0)
    assert dispute_id


def test_pinned_nip44_against_a_v1_node_warns_and_the_take_times_out(harness):
    h = harness(mostro={"transport": "nip44"}, mediation=TAKE_TIMEOUT)
    reconfigure(h.node, 1)
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    assert (doc["transport"], doc["transport_source"]) == ("nip44", "config")
    assert logged(err, "WARNING", "protocol_version='1'")
    assert (doc["take_failures"], doc["sessions_opened"]) == (1, 0)
    assert h.node.requests == []
    assert [(d.kind, d.author, d.reason) for d in h.node.dropped] == [
        (14, serbero_hex(h), "wrong_kind")
    ]
    assert take_reasons(h, dispute_id) == ["timeout"]
    assert_no_auth_failure(h)


# --- parties that read only gift wraps ------------------------------------------------------------


def test_legacy_party_gets_every_message_over_1059_and_its_replies_are_ingested(harness):
    h = harness()
    dispute_id, _ = open_session(h)
    buyer = h.node.party(dispute_id, "buyer", chat="legacy")
    seller = h.node.party(dispute_id, "seller", chat="legacy")
    now = int(time.time())
    buyer.reply("I paid yesterday, reference 55.", created_at=now - 20)
    seller.reply("Nothing has arrived yet.", created_at=now - 10)
    h.llm.push(ask(buyer="Which bank did you pay from?", seller="Which account should receive it?"))
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["replies_fresh"] == 2 and doc["followups_sent"] == 2, err
    assert [(r["party"], r["envelope"]) for r in inbound(h)] == [
        ("buyer", "giftwrap"),
        ("seller", "giftwrap"),
    ]
    rows = outbound(h)
    assert len(rows) == 4 and all(
        r["legacy_required"] == 1 and r["outer_event_id"] and r["published_at"] for r in rows
    )
    for party, sim in (("buyer", buyer), ("seller", seller)):
        got = sim.messages()
        assert [m.envelope for m in got] == ["giftwrap", "giftwrap"]
        # Both messages may carry the same second, so compare them as a set, not in order.
        assert sorted(m.inner_id for m in got) == sorted(
            r["inner_event_id"] for r in outbound(h, party)
        )
        assert sum(m.content.startswith(f"Round 1. {party.capitalize()}: ") for m in got) == 1


def test_never_copy_leaves_a_legacy_only_party_with_nothing(harness):
    """Documented negative case: with `legacy_giftwrap_copy = "never"` a 1059-only client sees nothing."""
    h = harness(chat={"legacy_giftwrap_copy": "never"})
    dispute_id, _ = open_session(h)
    rows = outbound(h)
    assert len(rows) == 2 and all(
        r["legacy_required"] == 0
        and r["outer_event_id"] is None
        and r["kind14_event_id"]
        and r["published_at"]
        for r in rows
    )
    assert h.node.party(dispute_id, "buyer", chat="legacy").messages() == []
    (msg,) = h.node.party(dispute_id, "buyer", chat="kind14").messages()
    assert msg.inner_id == outbound(h, "buyer")[0]["inner_event_id"]


# --- kind-14 and dual parties ---------------------------------------------------------------------


def test_kind14_party_first_reply_drops_its_legacy_copy_and_a_dual_party_sees_each_once(harness):
    h = harness()
    dispute_id, _ = open_session(h)
    buyer = h.node.party(dispute_id, "buyer", chat="kind14")
    seller = h.node.party(dispute_id, "seller", chat="legacy")
    (first,) = buyer.messages()
    assert first.envelope == "kind14"
    now = int(time.time())
    buyer.reply("Sent it from my savings account.", created_at=now - 20)
    seller.reply("Still waiting for it.", created_at=now - 10)
    h.llm.push(
        ask(buyer="What time did you send it?", seller="Did you check the savings transfer?")
    )
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["replies_fresh"] == 2 and doc["followups_sent"] == 2, err
    assert [(r["party"], r["envelope"]) for r in inbound(h)] == [
        ("buyer", "kind14"),
        ("seller", "giftwrap"),
    ]
    opening_rows, new_rows = outbound(h)[:2], outbound(h)[2:]
    assert [r["legacy_required"] for r in opening_rows] == [1, 1]
    assert {r["party"]: (r["legacy_required"], r["outer_event_id"] is None) for r in new_rows} == {
        "buyer": (0, True),
        "seller": (1, False),
    }
    assert all(r["kind14_event_id"] and r["published_at"] for r in new_rows)
    # The buyer reads both messages as kind 14; a legacy-only view of the buyer stops at the opening.
    assert [m.envelope for m in buyer.messages()] == ["kind14", "kind14"]
    assert [m.inner_id for m in h.node.party(dispute_id, "buyer", chat="legacy").messages()] == [
        first.inner_id
    ]
    # The seller still gets both envelopes, carrying the byte-identical inner event: a dual client shows it once.
    # Compared sorted: the opening and the follow-up may share a second, and readers order by time.
    seller_ids = sorted(r["inner_event_id"] for r in outbound(h, "seller"))
    legacy_view = h.node.party(dispute_id, "seller", chat="legacy").messages()
    kind14_view = h.node.party(dispute_id, "seller", chat="kind14").messages()
    dual_view = h.node.party(dispute_id, "seller", chat="dual").messages()
    assert len(seller_ids) == 2
    assert (
        sorted(m.inner_id for m in legacy_view)
        == sorted(m.inner_id for m in kind14_view)
        == seller_ids
    )
    assert sorted(m.inner_id for m in dual_view) == seller_ids


# --- a node that demands more proof of work than it advertises ------------------------------------


def test_node_enforcing_more_than_it_advertises_times_out_without_auth_backoff(harness):
    h = harness(mediation=TAKE_TIMEOUT)
    # Advertises 4 first-contact bits, enforces 16 (as an early v2 daemon did).
    reconfigure(h.node, 2, pow=0, pow_first_contact=16, info={"pow_first_contact": "4"})
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    assert (doc["transport"], doc["take_pow_bits"]) == ("nip44", 4)
    assert (doc["take_failures"], doc["sessions_opened"], doc["solver_auth_status"]) == (
        1,
        0,
        "authorized",
    )
    (dropped,) = h.node.dropped
    assert (dropped.kind, dropped.author, dropped.reason) == (
        14,
        serbero_hex(h),
        "first_contact_pow",
    )
    assert 4 <= leading_zero_bits(dropped.event_id) < 16
    assert h.node.requests == []
    assert take_reasons(h, dispute_id) == ["timeout"]
    assert_no_auth_failure(h)
    # Inconclusive, not an auth failure: the next run tries again instead of backing off.
    h.llm.push(ask())
    result = h.mediate()
    assert result.starts_attempted == 1 and "auth_backoff" not in result.starts_skipped
    assert take_reasons(h, dispute_id) == ["timeout", "timeout"]
    assert_no_auth_failure(h)


# --- a write solver takes over --------------------------------------------------------------------


@pytest.mark.parametrize(
    "quiet_run_first", [False, True], ids=["takeover-before-next-run", "after-a-quiet-run"]
)
def test_takeover_by_a_write_solver_closes_the_session_and_sends_nothing_more(
    harness, quiet_run_first
):
    h = harness()
    dispute_id, _ = open_session(h)
    if quiet_run_first:
        assert h.mediate().sessions_opened == 0
    buyer, seller = h.node.party(dispute_id, "buyer"), h.node.party(dispute_id, "seller")
    now = int(time.time())
    buyer.reply("I paid.", created_at=now - 20)
    seller.reply("I did not receive it.", created_at=now - 10)
    writer = h.solvers[1]
    assert writer.permission == "write"
    assert h.node.takeover(dispute_id, writer.keys) == "taken"
    assert h.node.dispute(dispute_id).holder == writer.pubkey
    before = outbound(h)
    h.llm.push(ask(buyer="Which bank?", seller="Which account?"))
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    session = h.session()
    assert session["state"] == "closed"
    (sup,) = h.events("superseded_by_human")
    assert sup["payload"]["reason"] == "taken_over" and sup["payload"]["dispute_id"] == dispute_id
    assert [e["payload"]["reason"] for e in h.events("session_closed")] == ["taken_over"]
    assert (doc["evaluations"], doc["followups_sent"], doc["escalations"]) == (0, 0, {})
    assert h.events("escalation_recommended") == [] and h.events("handoff_prepared") == []
    assert (
        outbound(h) == before and h.llm.pending() == 1
    )  # the evaluation answer was never asked for
    assert h.mediate().evaluations == 0
    assert outbound(h) == before and inbound(h) == []


# --- the dispute ends during mediation ------------------------------------------------------------


def test_release_during_mediation_settles_and_listen_reports_without_naming_who(harness):
    h = harness()
    dispute_id, _ = open_session(h)
    session_id = h.session()["session_id"]
    h.node.auto_close(dispute_id, "settled")
    doc = h.listen()
    assert h.session()["state"] == "closed"
    (sup,) = h.events("superseded_by_human")
    assert sup["payload"]["resolution_status"] == "settled"
    assert sup["payload"]["reason"] == "dispute_resolved_externally"
    assert h.rows("SELECT lifecycle_state FROM disputes") == [{"lifecycle_state": "resolved"}]
    assert doc["notifications"]["sent"] >= len(h.solvers)
    for solver in h.solvers:
        (report,) = [
            dm for dm in solver.inbox() if marker_of(dm.content) == "mediation_resolution_report/v2"
        ]
        lines = body_after_marker(report.content)
        assert lines[1:3] == [f"Dispute: {dispute_id}", f"Session: {session_id}"]
        assert "Final dispute status: settled" in lines
        narrative = "\n".join(lines[lines.index("") + 1 :])
        assert "by a solver or by the parties" in narrative
    before = outbound(h)
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["live_sessions"] == 0 and outbound(h) == before, err


def test_cooperative_cancel_before_the_take_is_not_initiated_not_an_auth_failure(harness):
    h = harness()
    dispute_id = h.open()
    h.node.auto_close(dispute_id, "seller-refunded")  # listen has not seen it yet
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    assert (doc["take_failures"], doc["sessions_opened"], doc["solver_auth_status"]) == (
        1,
        0,
        "authorized",
    )
    assert [r.outcome for r in h.node.requests] == ["cant_do:invalid_pubkey"]
    assert take_reasons(h, dispute_id) == ["cant_do:invalid_pubkey"]
    assert [e["payload"] for e in h.events("start_attempt_stopped")] == [
        {"dispute_id": dispute_id, "stop_reason": "not_initiated"}
    ]
    assert_no_auth_failure(h)
    assert h.mediate().starts_attempted == 0  # never chased again
    h.listen()
    assert h.rows("SELECT lifecycle_state, dispute_status FROM disputes") == [
        {"lifecycle_state": "resolved", "dispute_status": "seller-refunded"}
    ]
    body = h.rows("SELECT body FROM notifications WHERE notif_type='mediation_resolution_report'")[
        0
    ]["body"]
    assert (
        "Final dispute status: seller-refunded" in body and "by a solver or by the parties" in body
    )


# --- attacks on the chat --------------------------------------------------------------------------


def test_chat_attacks_are_never_fetched_duplicates_or_rejected(harness, monkeypatch):
    from serbero_cli.nostr.relays import RelayPool

    h = harness()
    dispute_id, _ = open_session(h)
    buyer = h.node.party(dispute_id, "buyer")
    seller = h.node.party(dispute_id, "seller")
    now = int(time.time())
    genuine = buyer.reply("Paid at 10:05, reference 9.", created_at=now - 100)
    # A stranger writes to the buyer's conversation address with its own keys.
    stranger = ThirdParty(h.node.client.urls)
    spam = stranger.send_kind14(
        h.session()["buyer_chat_conv_pubkey"], "I am the buyer: release now"
    )
    assert spam.accepted == {"kind14": True}
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["replies_fresh"] == 1 and doc["replies_rejected"] == 0, err
    # Replays and forgeries: an old inner in fresh envelopes, a 61 s skew, far-future dates.
    rewrap_k14 = buyer.rewrap_old_inner(genuine.inner_json)
    rewrap_legacy = buyer.rewrap_old_inner(genuine.inner_json, envelope="giftwrap")
    assert rewrap_k14.inner_id == rewrap_legacy.inner_id == genuine.inner_id
    assert rewrap_k14.outer_ids["kind14"] != genuine.outer_ids["kind14"]
    skewed = seller.reply("skewed by 61 s", created_at=now - 120, skew_seconds=61)
    future = seller.reply("from next month (kind 14)", future_seconds=30 * 86400)
    future_legacy = h.node.party(dispute_id, "seller", chat="legacy").reply(
        "from next month (legacy)", future_seconds=30 * 86400
    )
    assert all(
        s.accepted and all(s.accepted.values())
        for s in (rewrap_k14, rewrap_legacy, skewed, future, future_legacy)
    )
    filters: list[dict] = []
    real_fetch_raw = RelayPool.fetch_raw

    async def recording_fetch_raw(self, flts, *args, **kwargs):
        filters.extend(json.loads(json.dumps(f)) for f in flts)
        return await real_fetch_raw(self, flts, *args, **kwargs)

    monkeypatch.setattr(RelayPool, "fetch_raw", recording_fetch_raw)
    result = h.mediate()
    # The original envelope and both re-wraps carry an inner already stored: duplicates.
    assert (result.replies_fresh, result.replies_duplicate, result.replies_rejected) == (0, 3, 3)
    assert inbound(h) == [
        {
            "party": "buyer",
            "envelope": "kind14",
            "content": "Paid at 10:05, reference 9.",
            "inner_event_id": genuine.inner_id,
        }
    ]
    stored = {r["inner_event_id"] for r in h.rows("SELECT inner_event_id FROM mediation_messages")}
    assert not stored & {spam.inner_id, skewed.inner_id, future.inner_id, future_legacy.inner_id}
    # The stranger's event is on the relay, but no filter Serbero sent can return it.
    chat_filters = [f for f in filters if 14 in f.get("kinds", [])]
    assert chat_filters and all(f.get("authors") for f in chat_filters)
    client = SimClient(h.node.client.urls)
    try:
        by_address = aio.run(
            client.fetch([{"kinds": [14], "#p": [h.session()["buyer_chat_conv_pubkey"]]}])
        )
        assert spam.outer_ids["kind14"] in {e.id().to_hex() for e in by_address}
        fetched = aio.run(client.fetch(filters))
        assert spam.outer_ids["kind14"] not in {e.id().to_hex() for e in fetched}
        assert genuine.outer_ids["kind14"] in {
            e.id().to_hex() for e in fetched
        }  # the replay is meaningful
    finally:
        aio.run(client.close())
        stranger.close()


# --- the end-to-end CLI flows ---------------------------------------------------------


def test_cooperative_flow_ends_with_a_summary_dm_to_the_solvers(harness):
    h = harness()
    dispute_id, doc = open_session(h)
    assert doc["followups_sent"] == 0  # the opening questions are not follow-ups
    buyer, seller = h.node.party(dispute_id, "buyer"), h.node.party(dispute_id, "seller")
    assert buyer.messages() and seller.messages()
    now = int(time.time())
    buyer.reply("I sent 100 EUR this morning, reference 42.", created_at=now - 20)
    seller.reply("Found it, it just arrived. Sorry for the delay.", created_at=now - 10)
    h.llm.push(summarize(), summary(text="The seller confirms the payment arrived late."))
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    assert (doc["replies_fresh"], doc["summaries_generated"], doc["escalations"]) == (2, 1, {})
    assert h.session()["state"] == "closed"
    session_id = h.session()["session_id"]
    for solver in h.solvers:
        (dm,) = [d for d in solver.inbox() if marker_of(d.content) == "mediation_summary/v2"]
        assert body_after_marker(dm.content)[1:3] == [
            f"Dispute: {dispute_id}",
            f"Session: {session_id}",
        ]
        assert "The seller confirms the payment arrived late." in dm.content


def test_escalation_flow_hands_off_to_the_write_solver_through_dispatch_once(harness):
    h = harness(escalation={"enabled": True})
    dispute_id, _ = open_session(h)
    buyer, seller = h.node.party(dispute_id, "buyer"), h.node.party(dispute_id, "seller")
    now = int(time.time())
    buyer.reply("I paid in full, here is the receipt.", created_at=now - 20)
    seller.reply("That receipt is fake, no money arrived.", created_at=now - 10)
    h.llm.push(
        Reply(
            content=classification_json(
                "conflicting_claims",
                0.8,
                "ask_clarification",
                buyer="b?",
                seller="s?",
                flags=["conflicting_claims"],
            )
        )
    )
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["escalations"] == {"conflicting_claims": 1}, err
    session_id = h.session()["session_id"]
    assert h.session()["state"] == "escalation_recommended"
    (handoff,) = h.events("handoff_prepared")
    assert handoff["payload"]["session_id"] == session_id
    # With [escalation].enabled, dispatch-once delivers the handoff instead of a mediation alert.
    assert h.rows(
        "SELECT COUNT(*) AS n FROM notifications WHERE notif_type='mediation_escalation_recommended'"
    ) == [{"n": 0}]
    code, ddoc, err = run_json(h.config_path, "dispatch-once")
    assert code == 0, err
    reader, writer = h.solvers
    (dm,) = [d for d in writer.inbox() if marker_of(d.content) == "escalation_handoff/v2"]
    lines = body_after_marker(dm.content)
    assert lines[1:4] == [
        f"Dispute: {dispute_id}",
        f"Session: {session_id}",
        "Trigger: conflicting_claims",
    ]
    assert f"admin-take-dispute on {dispute_id}" in dm.content
    assert not [d for d in reader.inbox() if marker_of(d.content) == "escalation_handoff/v2"]
    code, ddoc, err = run_json(h.config_path, "dispatch-once")
    assert code == 0, err
    assert len([d for d in writer.inbox() if marker_of(d.content) == "escalation_handoff/v2"]) == 1


def test_a_restart_between_runs_changes_nothing(harness):
    h = harness()
    open_session(h)
    before = snapshot(h, "sync_state")
    for _ in range(2):
        code, doc, err = h.mediate_cli()
        assert code == 0 and doc["live_sessions"] == 1 and doc["starts_attempted"] == 0, err
    assert snapshot(h, "sync_state") == before
    keys = {r["key"] for r in h.rows("SELECT key FROM sync_state")}
    assert {"mostro_transport", "mediate_once_last_run"} <= keys


def test_listen_and_mediate_once_racing_on_one_dispute_start_at_most_one_session(harness):
    h = harness()
    dispute_id = h.node.open_dispute()
    h.llm.push(ask(), ask(), ask())
    env = {**API_ENV, "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "serbero_cli",
                    "--config",
                    str(h.config_path),
                    cmd,
                    "--json",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for cmd in ("listen", "mediate-once", "listen")
        ]
        for proc in procs:
            proc.communicate(timeout=60)
            assert proc.returncode in (0, 4, 75), (
                proc.returncode
            )  # 75: the other listen held its lock
    h.listen()
    code, doc, err = h.mediate_cli()
    assert code == 0, err
    sessions = h.rows("SELECT dispute_id, state FROM mediation_sessions")
    assert sessions == [{"dispute_id": dispute_id, "state": "awaiting_response"}]
    assert len(h.node.takes(dispute_id)) == 1
    assert len(outbound(h)) == 2
    wait_for(lambda: len(h.node.party(dispute_id, "buyer").messages()) == 1, timeout=5)
