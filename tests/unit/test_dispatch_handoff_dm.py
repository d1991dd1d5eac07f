"""The escalation handoff body (docs/wire-formats.md#handoff), rendered without a relay."""

from __future__ import annotations

import json
import logging

from serbero_cli.dispatch.handoff_dm import SUMMARY_TEMPLATE, render_handoff_body, summary_line
from serbero_cli.domain.handoff import HandoffPackage, parse_handoff


def package(**changes) -> HandoffPackage:
    values = dict(
        dispute_id="d-1",
        session_id=None,
        trigger="fraud_indicator",
        evidence_refs=("e1",),
        prompt_bundle_id="b",
        policy_hash="h",
        rationale_refs=("r1",),
        assembled_at=5,
    )
    values.update(changes)
    return HandoffPackage(**values)


def test_render_handoff_body_opens_with_the_subject_then_the_nine_v2_lines():
    body = render_handoff_body(package())
    lines = body.split("\n")
    assert len(lines) == 11 and not body.endswith("\n") and "\r" not in body
    dispute = package().dispute_id
    assert lines[0] == f"Dispute {dispute} \u00b7 mediation could not start"
    assert lines[1] == f"reason: {package().trigger}"
    body_lines = lines[2:]
    assert body_lines[0] == "escalation_handoff/v2" and body_lines[4] == "" and body_lines[6] == ""
    assert body_lines[2] == "Session: <none \u2014 dispute-scoped handoff>"
    assert parse_handoff(body_lines[8]) == package()


def test_session_scoped_handoff_subject_says_handed_off_with_the_trigger():
    lines = render_handoff_body(package(session_id="s-1", trigger="round_limit")).split("\n")
    assert lines[0].endswith(" \u00b7 handed off: round_limit")
    assert lines[2] == "escalation_handoff/v2" and lines[4] == "Session: s-1"


def test_summary_line_meets_every_rule_of_line_6():
    line = summary_line(package(dispute_id="abc-123", trigger="round_limit"))
    assert "\n" not in SUMMARY_TEMPLATE and "\n" not in line
    assert "abc-123" in line and "round_limit" in line
    assert "human judgment" in line
    assert "own Mostro instance" in line
    assert "Serbero's mediation assistance" in line
    assert "take over with admin-take-dispute on abc-123" in line


def test_summary_line_inserts_braces_verbatim():
    assert "{x}" in summary_line(package(dispute_id="{x}"))


def test_render_handoff_body_keeps_u2028_raw_in_the_json_line_only():
    body = render_handoff_body(package(evidence_refs=("a\u2028b",)))
    lines = body.split("\n")
    assert len(lines) == 11 and "\u2028" in lines[10]
    assert json.loads(lines[10])["evidence_refs"] == ["a\u2028b"]
    assert all("\u2028" not in line for line in lines[:10])


def test_render_handoff_body_warns_above_30000_bytes_and_never_truncates(caplog):
    big = package(evidence_refs=tuple("x" * 100 for _ in range(400)))
    with caplog.at_level(logging.WARNING, logger="serbero_cli.dispatch.handoff_dm"):
        body = render_handoff_body(big)
    assert len(body.encode()) > 30_000 and parse_handoff(body.split("\n")[10]) == big
    assert any("over 30000" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serbero_cli.dispatch.handoff_dm"):
        render_handoff_body(package())
    assert caplog.records == []
