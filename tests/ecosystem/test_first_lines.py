"""Every kind of solver message, read the way Mostrix reads it: the `mostro` envelope, the first
line `Dispute <id> · <subject>`, the take-over banner; and the NIP-17 copy for DM apps.

Each test runs `serbero` as a subprocess (listen, mediate-once, dispatch-once) against a loopback
relay with a simulated Mostro node, simulated parties and a scripted model.
"""

from __future__ import annotations

import re
import time

from tests.ecosystem.conftest import BOTH
from tests.helpers import invoke_json, wait_for
from tests.mediate_once.conftest import ask, escalate_flags, summarize, summary

HUMAN_TIME = r"\d+ min ago, \d{4}-\d\d-\d\d \d\d:\d\d UTC"
MARKER = re.compile(r"^[a-z_]+/v[0-9]+$")


def header_block(text: str) -> list[str]:
    """The lines a tool parses: from the version marker (or the first line when there is none) to
    the first empty line."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if MARKER.match(line)), 0)
    block = []
    for line in lines[start:]:
        if line == "":
            break
        block.append(line)
    return block


def header_keys(text: str) -> list[str]:
    return [line.split(": ", 1)[0] for line in header_block(text)[1:] if ": " in line]


def mostrix(solver, serbero: str, dispute_id: str, subject_prefix: str, timeout: float = 10):
    """Wait until the solver's Mostrix shows a message for the dispute whose subject starts so."""

    def found():
        return [
            m
            for m in solver.mostrix(serbero)
            if m.dispute_id == dispute_id and m.subject.startswith(subject_prefix)
        ]

    return wait_for(found, timeout=timeout)


def test_a_new_dispute_reaches_mostrix_and_dm_apps_with_its_subject_and_key_lines(
    make_config, mostro, solvers, serbero_keys, db_path
):
    reader, writer = solvers
    cfg = make_config(
        envelopes=BOTH, solver_list=[(reader.pubkey, "read"), (writer.pubkey, "write", ["mostro"])]
    )
    opened = int(time.time()) - 180
    dispute_id = mostro.open_dispute(initiator="seller", created_at=opened)
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 0, err
    serbero = serbero_keys.public_key().to_hex()
    assert doc["notifications"]["by_envelope"] == {
        "mostro": {"sent": 2, "failed": 0},
        "nip17": {"sent": 1, "failed": 0},
    }
    (message,) = mostrix(reader, serbero, dispute_id, "new")
    assert message.header_dispute == dispute_id and not message.banner
    lines = message.lines
    assert lines[0] == f"Dispute {dispute_id} \u00b7 new"
    assert re.fullmatch(rf"opened by the seller {HUMAN_TIME}", lines[1]), lines[1]
    assert lines[1].startswith(("opened by the seller 3 min ago", "opened by the seller 2 min ago"))
    assert lines[2:] == [
        f"dispute_id: {dispute_id}",
        "initiator: seller",
        f"event_timestamp: {opened}",
        "status: initiated",
    ]
    (dm,) = reader.inbox(sender=serbero)
    assert dm.content == message.text  # both envelopes carry the same text
    assert [m.subject for m in writer.mostrix(serbero)] == ["new"] and writer.inbox(
        sender=serbero
    ) == []
    rows = {
        (r["solver_pubkey"], r["envelope"])
        for r in _rows(db_path, "SELECT solver_pubkey, envelope FROM notifications")
    }
    assert rows == {(reader.pubkey, "mostro"), (reader.pubkey, "nip17"), (writer.pubkey, "mostro")}


def test_reminder_and_taken_subjects(make_config, mostro, solvers, serbero_keys, db_path):
    reader, _ = solvers
    cfg = make_config(envelopes=["mostro"], solver_list=[(reader.pubkey, "read")])
    opened = int(time.time()) - 600
    dispute_id = mostro.open_dispute(initiator="buyer", created_at=opened)
    assert invoke_json(cfg, "listen")[0] == 0
    _execute(db_path, "UPDATE disputes SET last_notified_at = last_notified_at - 400")
    assert invoke_json(cfg, "listen")[0] == 0
    serbero = serbero_keys.public_key().to_hex()
    (reminder,) = mostrix(reader, serbero, dispute_id, "unattended")
    assert reminder.subject in ("unattended (10 min)", "unattended (11 min)")
    assert reminder.lines[2:4] == [f"dispute_id: {dispute_id}", "lifecycle_state: notified"]
    assert reminder.lines[4].startswith("time_elapsed_seconds: ")
    mostro.set_status(dispute_id, "in-progress")
    assert invoke_json(cfg, "listen")[0] == 0
    (taken,) = mostrix(reader, serbero, dispute_id, "taken")
    assert taken.lines[:5] == [
        f"Dispute {dispute_id} \u00b7 taken",
        "taken by: a solver",
        f"dispute_id: {dispute_id}",
        "assigned_solver: unknown",
        "lifecycle_state: taken",
    ]


def test_mediation_subjects_from_mediating_to_facts_gathered_transcript_and_resolved(
    harness, solvers, serbero_keys
):
    h = harness(envelopes=BOTH)
    reader, writer = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["sessions_opened"] == 1, err
    (mediating,) = mostrix(reader, serbero, dispute_id, "mediating")
    assert mediating.lines[2:5] == [
        f"dispute_id: {dispute_id}",
        f"assigned_solver: {serbero}",
        "lifecycle_state: taken",
    ]
    buyer, seller = h.node.party(dispute_id, "buyer"), h.node.party(dispute_id, "seller")
    buyer.reply("I paid 100 EUR yesterday, reference 123.\nBank: Example Bank")
    seller.reply("It arrived this morning.")
    h.llm.push(summarize(), summary())
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["summaries_generated"] == 1, err
    (handoff,) = mostrix(writer, serbero, dispute_id, "handed off")
    assert handoff.subject == "handed off: facts_gathered" and handoff.banner
    assert handoff.lines[2] == "mediation_summary/v2"
    assert header_keys(handoff.text) == [
        "Dispute",
        "Session",
        "Classification",
        "Suggested next step",
    ]
    (transcript,) = mostrix(writer, serbero, dispute_id, "transcript")
    assert transcript.subject == "transcript (4 messages, times UTC)" and not transcript.banner
    body = transcript.lines[1:]
    assert re.fullmatch(r"\[\d\d:\d\d\] serbero \u2192 buyer: Buyer: .*", body[0])
    assert any(
        re.fullmatch(r"\[\d\d:\d\d\] buyer: I paid 100 EUR yesterday, reference 123\.", line)
        for line in body
    )
    assert "  Bank: Example Bank" in body  # a message's further lines are indented continuations
    h.node.set_status(dispute_id, "settled")
    h.listen()
    (resolved,) = mostrix(writer, serbero, dispute_id, "resolved")
    assert (
        resolved.subject == "resolved: settled"
        and resolved.lines[1] == "mediation_resolution_report/v2"
    )


def test_session_escalation_alert_says_handed_off_with_its_trigger_and_sends_the_transcript(
    harness, solvers, serbero_keys
):
    h = harness(envelopes=["mostro"])
    _, writer = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    h.node.party(dispute_id, "buyer").reply("I sent it.")
    h.node.party(dispute_id, "seller").reply("I never got anything, this is a scam.")
    h.llm.push(escalate_flags("conflicting_claims"))
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["escalations"] == {"conflicting_claims": 1}, err
    (alert,) = mostrix(writer, serbero, dispute_id, "handed off")
    assert alert.subject == "handed off: conflicting_claims" and alert.banner
    assert alert.lines[1] == "needs human judgment; Serbero's mediation stopped here"
    assert header_keys(alert.text) == ["Dispute", "Session", "Trigger"]
    (transcript,) = mostrix(writer, serbero, dispute_id, "transcript")
    assert transcript.subject == "transcript (4 messages, times UTC)"


def test_dispute_scoped_escalation_says_mediation_could_not_start_with_the_reason(
    harness, solvers, serbero_keys
):
    h = harness(envelopes=["mostro"])
    reader, _ = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(escalate_flags("fraud_risk"))
    code, doc, err = h.mediate_cli()
    assert code == 0 and doc["escalations"] == {"fraud_indicator": 1}, err
    (alert,) = mostrix(reader, serbero, dispute_id, "mediation could not start")
    assert alert.banner and alert.lines[1] == "reason: fraud_indicator"
    assert alert.lines[2] == "mediation_escalation/v2"
    assert [m.subject for m in reader.mostrix(serbero) if m.subject.startswith("transcript")] == []


def test_dispatch_handoff_reaches_the_write_solver_in_mostrix_with_the_transcript(
    harness, solvers, serbero_keys
):
    h = harness(envelopes=BOTH, escalation={"enabled": True})
    reader, writer = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    h.node.party(dispute_id, "buyer").reply("Paid.")
    h.node.party(dispute_id, "seller").reply("Not received, and I think the proof is fake.")
    h.llm.push(escalate_flags("conflicting_claims"))
    h.mediate()
    code, doc, err = invoke_json(h.config_path, "dispatch-once")
    assert code == 0 and doc["counts"]["dispatched"] == 1, err
    (delivery,) = doc["handoffs"][0]["deliveries"]
    assert delivery["ok"] and set(delivery["envelopes"]) == {"mostro", "nip17"}
    (handoff,) = mostrix(writer, serbero, dispute_id, "handed off")
    assert handoff.subject == "handed off: conflicting_claims" and handoff.banner
    assert handoff.lines[2] == "escalation_handoff/v2" and header_keys(handoff.text) == [
        "Dispute",
        "Session",
        "Trigger",
    ]
    assert handoff.lines[-2] == "Handoff payload (JSON):"
    (transcript,) = mostrix(writer, serbero, dispute_id, "transcript")
    assert transcript.subject == "transcript (4 messages, times UTC)"
    nip17 = [dm.content.split("\n", 1)[0] for dm in writer.inbox(sender=serbero)]
    assert f"Dispute {dispute_id} \u00b7 handed off: conflicting_claims" in nip17
    assert [
        m for m in reader.mostrix(serbero) if m.subject.startswith("handed off")
    ] == []  # read solver: no


def test_hostile_model_text_cannot_add_or_reorder_header_keys(harness, solvers, serbero_keys):
    h = harness(envelopes=["mostro"])
    _, writer = solvers
    serbero = serbero_keys.public_key().to_hex()
    dispute_id = h.open()
    h.llm.push(ask())
    h.mediate()
    h.node.party(dispute_id, "buyer").reply("paid")
    h.node.party(dispute_id, "seller").reply("received")
    hostile_step = (
        "Check the bank.\nDispute: evil\nClassification: fraud\r\n\x1b[31mTrigger: x\u202e"
    )
    h.llm.push(
        summarize(), summary(text="Summary.\nSession: forged\n\nmore\x00", next_step=hostile_step)
    )
    h.mediate()
    (handoff,) = mostrix(writer, serbero, dispute_id, "handed off")
    assert header_keys(handoff.text) == [
        "Dispute",
        "Session",
        "Classification",
        "Suggested next step",
    ]
    assert (
        "\x1b" not in handoff.text and "\u202e" not in handoff.text and "\x00" not in handoff.text
    )
    assert "\r" not in handoff.text
    assert handoff.lines[6].startswith("Suggested next step: Check the bank. Dispute: evil")


def _rows(db_path, sql):
    import sqlite3

    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def _execute(db_path, sql):
    import sqlite3

    conn = sqlite3.connect(db_path)
    conn.execute(sql)
    conn.commit()
    conn.close()
