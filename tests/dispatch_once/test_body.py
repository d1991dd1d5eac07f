"""The handoff DM body as a solver receives it from a real relay: the `Dispute <id> · <subject>` line,
the plain second line, then the nine `escalation_handoff/v2` lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dispatch_once.conftest import handoff_dms, package_json

GOLDEN = Path(__file__).parent / "data" / "handoff_v2.golden"


def nine(content: str) -> list[str]:
    """The body after the subject line and the plain line, checking both on the way."""
    lines = content.split("\n")
    assert lines[0].startswith("Dispute ") and " \u00b7 " in lines[0]
    assert lines[2] == "escalation_handoff/v2"
    return lines[2:]


def by_dispute(dms) -> dict[str, str]:
    return {nine(dm.content)[1].removeprefix("Dispute: "): dm.content for dm in dms}


def test_handoff_body_has_the_version_line_headers_and_one_line_summary(
    esc_config, seed, solvers, serbero_pub, run_once
):
    writer = solvers[1]
    dispute = seed.dispute()
    seed.handoff(dispute, trigger="fraud_indicator")
    assert run_once(esc_config()).exit_code == 0
    (dm,) = handoff_dms(writer, serbero_pub)
    assert dm.content.split("\n")[:2] == [
        f"Dispute {dispute} \u00b7 mediation could not start",
        "reason: fraud_indicator",
    ]
    lines = nine(dm.content)
    assert lines[1] == f"Dispute: {dispute}" and lines[3] == "Trigger: fraud_indicator"
    assert len(lines) == 9 and lines[4] == lines[6] == ""
    summary = lines[5]
    assert dispute in summary and "fraud_indicator" in summary and "human judgment" in summary
    assert "Serbero's mediation assistance" in summary and "own Mostro instance" in summary
    assert f"take over with admin-take-dispute on {dispute}" in summary


def test_handoff_body_session_line_is_a_marker_without_a_session_and_the_id_otherwise(
    esc_config, seed, solvers, serbero_pub, run_once
):
    writer = solvers[1]
    absent, null, scoped = seed.dispute(), seed.dispute(), seed.dispute()
    seed.handoff(absent)
    seed.handoff(payload=package_json(null)[:-1] + ',"session_id":null}')
    session = seed.session(scoped)
    seed.handoff(scoped, session_id=session)
    assert run_once(esc_config()).counts["dispatched"] == 3
    bodies = by_dispute(handoff_dms(writer, serbero_pub))
    for dispute in (absent, null):
        lines = nine(bodies[dispute])
        assert lines[2] == "Session: <none \u2014 dispute-scoped handoff>"
        assert "session_id" not in json.loads(lines[8])
    assert bodies[scoped].startswith(f"Dispute {scoped} \u00b7 handed off: ")
    lines = nine(bodies[scoped])
    assert lines[2] == f"Session: {session}" and "<none" not in bodies[scoped]
    assert json.loads(lines[8])["session_id"] == session


def test_json_line_is_canonical_raw_utf8_without_unknown_keys(
    esc_config, seed, solvers, serbero_pub, run_once
):
    writer = solvers[1]
    dispute = seed.dispute("disputa-ñ-💥")
    scrambled = {
        "assembled_at": 1_760_000_000,
        "unknown": {"x": 1},
        "rationale_refs": ["r\u00e9"],
        "policy_hash": "h",
        "prompt_bundle_id": "b",
        "evidence_refs": ["ev-✓", "a\u2028b"],
        "trigger": "party_unresponsive",
        "dispute_id": dispute,
    }
    seed.handoff(payload=json.dumps(scrambled, ensure_ascii=False))
    assert run_once(esc_config()).exit_code == 0
    (dm,) = handoff_dms(writer, serbero_pub)
    assert not dm.content.endswith("\n")
    json_line = nine(dm.content)[8]
    parsed = json.loads(json_line)
    assert list(parsed) == [
        "dispute_id",
        "trigger",
        "evidence_refs",
        "prompt_bundle_id",
        "policy_hash",
        "rationale_refs",
        "assembled_at",
    ]
    assert parsed == {k: v for k, v in scrambled.items() if k != "unknown"}
    assert (
        "ñ" in json_line
        and "✓" in json_line
        and "\\u" not in json_line
        and "unknown" not in json_line
    )


def test_handoff_body_lists_rationale_refs_only_and_matches_the_golden_file(
    esc_config, seed, solvers, serbero_pub, run_once
):
    writer = solvers[1]
    dispute = seed.dispute("5e0c9a1e-2b7d-4c1f-9d3a-0a6f2e8b7c41")
    payload = (
        '{"dispute_id":"5e0c9a1e-2b7d-4c1f-9d3a-0a6f2e8b7c41","trigger":"party_unresponsive",'
        '"evidence_refs":[],"prompt_bundle_id":"bundle-a","policy_hash":"ab12","rationale_refs":["c0ffee"],'
        '"assembled_at":1760000000,"rationale_text":"the seller is lying, says the model"}'
    )
    seed.handoff(payload=payload)
    assert run_once(esc_config()).exit_code == 0
    (dm,) = handoff_dms(writer, serbero_pub)
    assert "c0ffee" in dm.content
    assert "rationale_text" not in dm.content and "lying" not in dm.content
    got, want = dm.content.encode().split(b"\n"), GOLDEN.read_bytes().split(b"\n")
    assert len(got) == len(want) == 11
    for index, (line, expected) in enumerate(zip(got, want, strict=True)):
        if index != 7:
            assert line == expected, f"line {index + 1}"
    assert dispute.encode() in got[7]


BD5_CASES = {
    **{
        f"missing-{k}": {k: ...}
        for k in (
            "dispute_id",
            "trigger",
            "evidence_refs",
            "prompt_bundle_id",
            "policy_hash",
            "rationale_refs",
            "assembled_at",
        )
    },
    "assembled_at-float": {"assembled_at": 1.0},
    "assembled_at-bool": {"assembled_at": True},
    "assembled_at-string": {"assembled_at": "1"},
    "assembled_at-2^63": {"assembled_at": 2**63},
    "evidence_refs-null": {"evidence_refs": None},
    "rationale_refs-null": {"rationale_refs": None},
    "evidence_refs-non-string": {"evidence_refs": ["a", 2]},
    "rationale_refs-non-string": {"rationale_refs": [{"x": 1}]},
}


def test_each_bad_field_is_one_deserialize_failed_row(
    esc_config, seed, solvers, serbero_pub, run_once
):
    writer = solvers[1]
    dispute = seed.dispute()
    ids = {}
    for name, change in BD5_CASES.items():
        doc = json.loads(package_json(dispute))
        for key, value in change.items():
            doc.pop(key) if value is ... else doc.__setitem__(key, value)
        ids[seed.handoff(payload=json.dumps(doc))] = name
    good = seed.handoff(dispute)
    result = run_once(esc_config())
    assert result.exit_code == 0 and result.counts["parse_failed"] == len(BD5_CASES)
    rows = {
        r["payload"]["handoff_event_id"]: r["payload"]
        for r in seed.audit("escalation_dispatch_parse_failed")
    }
    assert set(rows) == set(ids)
    for handoff_id, payload in rows.items():
        assert payload["reason"] == "deserialize_failed" and payload["detail"], ids[handoff_id]
        expected = "unknown" if ids[handoff_id] == "missing-dispute_id" else dispute
        assert payload["dispute_id"] == expected
    assert [d["handoff_event_id"] for d in seed.dispatches()] == [good]
    assert len(handoff_dms(writer, serbero_pub)) == 1


@pytest.mark.parametrize("trigger", ["a\nb", "a\u2028b", "a\x7fb"])
def test_bd_header_control_characters_never_reach_a_dm(
    esc_config, seed, solvers, serbero_pub, run_once, trigger
):
    dispute = seed.dispute()
    seed.handoff(dispute, trigger=trigger)
    result = run_once(esc_config())
    assert result.counts["parse_failed"] == 1 and handoff_dms(solvers[1], serbero_pub) == []
