"""The node's side of the contract: its `serbero` tag, its closing message to the holder, reopened
disputes; and the rules around them (own key, both parties heard, observers).

End to end: `serbero` subprocesses against a loopback relay, a simulated Mostro node that speaks
protocol v2, party simulators and a scripted model.
"""

from __future__ import annotations

import json

import nostr_sdk as ns

from serbero_cli.keytext import npub
from serbero_cli.simulate.watchdog import WatchdogObserver
from tests.ecosystem.conftest import BOTH
from tests.ecosystem.test_first_lines import mostrix
from tests.helpers import invoke, invoke_json, wait_for
from tests.mediate_once.conftest import API_ENV, ask, escalate_flags, summarize, summary


def doctor_check(config, name: str, env: dict | None = None) -> tuple[int, dict]:
    proc = invoke(config, "doctor", "--json", env=env)
    doc = json.loads(proc.stdout)
    (row,) = [c for c in doc["checks"] if c["name"] == name]
    return proc.returncode, row


def test_doctor_says_whether_the_node_announces_this_serbero(harness, serbero_keys):
    h = harness()
    own = serbero_keys.public_key().to_hex()
    h.node.publish_info()
    code, row = doctor_check(h.config_path, "node announces serbero", env=API_ENV)
    assert row["status"] == "warn" and "serbero_pubkey" in row["hint"] and npub(own) in row["hint"]
    h.node.info_overrides["serbero"] = own.upper()  # uppercase hex is fine
    h.node.publish_info()
    code, row = doctor_check(h.config_path, "node announces serbero", env=API_ENV)
    assert row["status"] == "ok" and row["detail"] == own
    other = ns.Keys.generate().public_key().to_hex()
    h.node.info_overrides["serbero"] = other
    h.node.publish_info()
    code, row = doctor_check(h.config_path, "node announces serbero", env=API_ENV)
    assert (
        code == 4
        and row["status"] == "fail"
        and other in row["detail"]
        and npub(other) in row["detail"]
    )
    h.node.info_overrides["serbero"] = npub(
        own
    )  # an npub is malformed: ignored, reported as no tag
    h.node.publish_info()
    code, row = doctor_check(h.config_path, "node announces serbero", env=API_ENV)
    assert row["status"] == "warn" and "malformed" in row["detail"]


def test_mediate_once_starts_nothing_while_the_node_announces_another_serbero(
    harness, serbero_keys
):
    h = harness()
    other = ns.Keys.generate().public_key().to_hex()
    h.node.info_overrides["serbero"] = other
    h.node.publish_info()
    h.open()
    code, doc, err = h.mediate_cli()
    assert (
        code == 4
        and doc["sessions_opened"] == 0
        and doc["starts_attempted"] == 0
        and doc["node_serbero"] == other
    )
    lines = [line for line in err.splitlines() if "announces another Serbero" in line]
    assert len(lines) == 1 and other in lines[0] and serbero_keys.public_key().to_hex() in lines[0]
    assert h.node.takes() == [] and h.llm.model_requests() == []
    h.node.info_overrides["serbero"] = "zz" * 32  # malformed: ignored, as if absent
    h.node.publish_info()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err


def test_own_key_as_a_solver_or_observer_and_unknown_envelopes_are_config_errors(
    make_config, serbero_keys, solvers
):
    own = serbero_keys.public_key().to_hex()
    cfg = make_config(solver_list=[(solvers[0].pubkey, "read"), (own, "write")])
    proc = invoke(cfg, "listen")
    assert (
        proc.returncode == 2
        and ":" in proc.stderr
        and "[[solvers]] pubkey: this is Serbero's own key" in proc.stderr
    )
    cfg = make_config(observers=[(npub(own), None)])
    proc = invoke(cfg, "listen")
    assert proc.returncode == 2 and "[[observers]] pubkey: this is Serbero's own key" in proc.stderr
    cfg = make_config(envelopes=["mostro", "telegram"])
    proc = invoke(cfg, "listen")
    line = [x for x in proc.stderr.splitlines() if "envelopes" in x]
    assert proc.returncode == 2 and line and "unknown envelope 'telegram'" in line[0]
    assert line[0].split(":")[1].isdigit()  # file:line: …


def test_init_prints_both_registration_routes_and_the_permission_warning(tmp_path):
    proc = invoke(None, "init", "--path", str(tmp_path / "config.toml"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'serbero_pubkey = "npub1' in out and "settings.toml" in out and "restart" in out
    assert ":read" in out and "admin-add-solver" in out
    assert "cannot be changed by registering it again" in out


def test_the_nodes_closing_message_resolves_the_dispute_in_the_same_run(
    harness, solvers, serbero_keys
):
    h = harness(envelopes=["mostro"])
    _, writer = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    buyer = h.node.party(dispute_id, "buyer")
    questions = len(buyer.messages())
    h.node.users_closed(dispute_id, "cooperative-cancel-accepted")
    buyer.reply("we sorted it out ourselves")
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["node_closings"] == 1, err
    (dispute,) = h.rows("SELECT lifecycle_state, dispute_status FROM disputes")
    assert (dispute["lifecycle_state"], dispute["dispute_status"]) == (
        "resolved",
        "cooperatively-canceled",
    )
    assert h.session()["state"] == "closed"
    assert len(h.llm.model_requests()) == 1  # only the opening: nothing evaluated after the close
    (report,) = mostrix(writer, serbero, dispute_id, "resolved")
    assert report.subject == "resolved: cooperatively-canceled"
    assert h.rows(
        "SELECT status FROM notifications WHERE notif_type='mediation_resolution_report'"
    ) == [{"status": "sent"}, {"status": "sent"}]
    code, doc, err = h.mediate_cli()  # the same message read again changes nothing
    assert doc["node_closings"] == 0
    assert len(buyer.messages()) == questions  # nothing more reached the parties


def test_a_closing_message_from_anyone_but_the_node_is_ignored(harness, serbero_keys):
    from serbero_cli.simulate.mostro_wire import build_node_reply

    h = harness()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    record = h.node.dispute(dispute_id)
    forger = ns.Keys.generate()
    forged = {
        "order": {
            "version": 2,
            "request_id": None,
            "trade_index": None,
            "id": record.order_id,
            "action": "released",
            "payload": {"dispute": [dispute_id, None]},
        }
    }
    h.node.inject(
        build_node_reply(forger, serbero_keys.public_key().to_hex(), forged, transport="nip44")
    )
    h.node.inject(
        build_node_reply(forger, serbero_keys.public_key().to_hex(), forged, transport="giftwrap")
    )
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["node_closings"] == 0, err
    assert h.rows("SELECT lifecycle_state FROM disputes") == [{"lifecycle_state": "waiting"}]


def test_a_reopened_dispute_starts_a_fresh_round(harness, solvers, serbero_keys):
    h = harness(envelopes=["mostro"])
    reader, _ = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    h.node.set_status(dispute_id, "settled")
    h.listen()
    assert h.rows("SELECT lifecycle_state FROM disputes") == [{"lifecycle_state": "resolved"}]
    # The first round ended a minute ago: times are whole seconds, and a session started in the very
    # second of the reopening would count as the new round's.
    h.execute(
        "UPDATE mediation_sessions SET started_at=started_at-60, last_transition_at=last_transition_at-60"
    )
    h.execute("UPDATE mediation_events SET occurred_at=occurred_at-60")
    h.node.set_status(dispute_id, "initiated")  # the node's escrow-deadline guard reopens it
    doc = h.listen()
    assert doc["disputes"]["new"] == 1
    (row,) = h.rows(
        "SELECT lifecycle_state, dispute_status, assigned_solver, round_started_at FROM disputes"
    )
    assert row["lifecycle_state"] == "notified" and row["dispute_status"] == "initiated"
    assert row["assigned_solver"] is None and row["round_started_at"] is not None
    transitions = [
        r["trigger"] for r in h.rows("SELECT trigger FROM dispute_state_transitions ORDER BY id")
    ]
    assert "reopened" in transitions
    news = [m for m in reader.mostrix(serbero) if m.dispute_id == dispute_id and m.subject == "new"]
    # The two may share a second, and a reader orders messages of one second by event id.
    (reopened,) = [m for m in news if m.lines[1].startswith("reopened by Mostro")]
    (first,) = [m for m in news if m is not reopened]
    assert reopened.created_at >= first.created_at
    h.listen()  # the reopening revision read again is a duplicate
    assert len([m for m in reader.mostrix(serbero) if m.subject == "new"]) == 2
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err
    assert len(h.rows("SELECT session_id FROM mediation_sessions")) == 2


def test_a_summary_waits_until_both_parties_were_heard(harness, solvers, serbero_keys):
    h = harness(envelopes=["mostro"])
    _, writer = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    buyer, seller = h.node.party(dispute_id, "buyer"), h.node.party(dispute_id, "seller")
    buyer.reply("I paid, reference 123.")
    h.llm.push(summarize())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["summaries_generated"] == 0, err
    assert h.session()["state"] == "awaiting_response"
    thanks = wait_for(
        lambda: [m for m in buyer.messages() if "waiting for the other party" in m.content]
    )
    assert len(thanks) == 1 and not [
        m for m in seller.messages() if "waiting for the other" in m.content
    ]
    buyer.reply("Any news?")
    h.llm.push(summarize())
    h.mediate()
    assert (
        len([m for m in buyer.messages() if "waiting for the other party" in m.content]) == 1
    )  # once
    assert [m for m in writer.mostrix(serbero) if m.subject.startswith("handed off")] == []
    seller.reply("Yes, it arrived.")
    h.llm.push(summarize(), summary())
    code, doc, err = h.mediate_cli()
    assert doc["summaries_generated"] == 1, err
    mostrix(writer, serbero, dispute_id, "handed off: facts_gathered")


def test_an_opening_summarize_asks_both_parties_first(harness):
    h = harness()
    dispute_id = h.open()
    h.llm.push(summarize())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1 and doc["summaries_generated"] == 0, err
    assert h.session()["state"] == "awaiting_response"
    for role in ("buyer", "seller"):
        (question,) = wait_for(lambda r=role: h.node.party(dispute_id, r).messages())
        assert question.content.startswith("Buyer: " if role == "buyer" else "Seller: ")


def test_a_watchdog_observer_gets_each_headline_once_and_nothing_else(
    harness, relay, solvers, serbero_keys
):
    serbero = serbero_keys.public_key().to_hex()
    watchdog = WatchdogObserver(relay.url, serbero=serbero)
    try:
        h = harness(envelopes=BOTH, observers=[(watchdog.pubkey, None)])
        mediated = h.open()
        h.llm.push(ask())
        h.mediate()
        h.node.party(mediated, "buyer").reply("paid")
        h.node.party(mediated, "seller").reply("received")
        h.llm.push(summarize(), summary())
        h.mediate()
        refused = h.open()
        h.llm.push(escalate_flags("fraud_risk"))
        h.mediate()
        h.node.set_status(mediated, "settled")
        h.listen()
        h.mediate()
        headlines = wait_for(lambda: len(watchdog.received()) >= 3 and watchdog.poll())
        assert sorted((x.dispute_id, x.kind, x.reason) for x in headlines) == sorted(
            [
                (mediated, "mediating", None),
                (mediated, "handed off", "facts_gathered"),
                (refused, "mediation could not start", None),
            ]
        )
        assert all(x.one_line for x in headlines)
        assert len(watchdog.received()) == 3  # no new/taken/resolved/transcript, and each once
        assert watchdog.poll() == []
        envelopes = {
            r["envelope"]
            for r in h.rows("SELECT envelope FROM notifications WHERE notif_type='observer'")
        }
        assert envelopes == {"mostro"}  # an observer's default envelope
    finally:
        watchdog.close()


def test_listen_json_counts_each_envelope(make_config, mostro, solvers):
    cfg = make_config(envelopes=BOTH)
    mostro.open_dispute(initiator="buyer")
    code, doc, _ = invoke_json(cfg, "listen")
    assert code == 0 and doc["notifications"]["sent"] == 4
    assert doc["notifications"]["by_envelope"] == {
        "mostro": {"sent": 2, "failed": 0},
        "nip17": {"sent": 2, "failed": 0},
    }
