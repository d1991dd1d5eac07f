"""Each audit view against the story database: what it shows, its filters, its JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest
from typer.testing import CliRunner

from serbero_cli.store.migrations import MIGRATIONS
from tests.audit import golden
from tests.audit.conftest import SESSION, A, B, C, D, plant

# (view name for the golden, CLI arguments); the story's ids are filled in by `args_for`.
VIEW_COMMANDS = [
    ("dashboard", []),
    ("disputes", ["disputes"]),
    ("dispute", ["dispute", A]),
    ("notifications", ["notifications"]),
    ("sessions", ["sessions"]),
    ("transcript", ["transcript", SESSION]),
    ("events", ["events"]),
    ("handoffs", ["handoffs"]),
    ("dispatches", ["dispatches"]),
    ("dispatch", ["dispatches", "--id", "{dispatch}"]),
    ("dispatch-check", ["dispatches", "--check"]),
    ("authority", ["authority"]),
    ("rationale", ["rationale", "{rationale}"]),
]


def as_json(audit, *args: str, code: int = 0) -> dict:
    result = audit(*args, "--json")
    assert result.exit_code == code, result.stdout + result.stderr
    return json.loads(result.stdout)


def args_for(audit, story, args: list[str]) -> list[str]:
    values = {"rationale": story.rationale_id}
    if any("{dispatch}" in a for a in args):
        values["dispatch"] = as_json(audit, "dispatches")["rows"][0]["dispatch_id"]
    return [a.format(**values) for a in args]


# The check views list problems only; plant one so their rows are checked too.
PROBLEM_ROWS = {
    "dispatch-check": (
        "INSERT INTO escalation_dispatches (dispatch_id, dispute_id, handoff_event_id, target_solver, dispatched_at, "
        "created_at, status, route, attempts) VALUES ('stale-1', ?, (SELECT MAX(id) FROM mediation_events WHERE "
        "kind = 'handoff_prepared'), 'ab', 1, 1, 'sending', 'targeted', 1)",
        (D,),
    ),
    "authority": (
        "INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, "
        "inner_event_created_at, content, persisted_at) VALUES (?, 'outbound', 'buyer', 'b1', 'planted', 1, "
        "'Please release the funds now', 1)",
        (SESSION,),
    ),
}


@pytest.mark.parametrize("view,args", VIEW_COMMANDS, ids=[v for v, _ in VIEW_COMMANDS])
def test_json_document_of_each_view_keeps_its_keys_and_types(audit, audit_db, story, view, args):
    clean = as_json(audit, *args_for(audit, story, args))
    assert golden.check(view, clean) == []
    if view in PROBLEM_ROWS:
        assert clean["rows"] == [] and clean["ok"] is True
        plant(audit_db[1], *PROBLEM_ROWS[view])
        doc = as_json(audit, *args, code=4)
        assert golden.check(view, doc) == [] and doc["ok"] is False and doc["exit_code"] == 4
    else:
        doc = clean
    assert doc["rows"], "every view has at least one row to check"


@pytest.mark.parametrize("view,args", VIEW_COMMANDS, ids=[v for v, _ in VIEW_COMMANDS])
def test_csv_of_each_view_parses_with_one_line_per_json_row(audit, audit_db, story, view, args):
    args = args_for(audit, story, args)
    code = 0
    if view in PROBLEM_ROWS:
        plant(audit_db[1], *PROBLEM_ROWS[view])
        code = 4
    doc = as_json(audit, *args, code=code)
    result = audit(*args, "--csv")
    assert result.exit_code == code, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    header, body = table[0], table[1:]
    assert len(body) == len(doc["rows"])
    assert set(header) <= set(doc["rows"][0]) | {"section", "name", "value"}
    assert all(len(line) == len(header) for line in body)


def test_dashboard_counts_what_the_phases_wrote(audit):
    doc = as_json(audit)
    assert doc["disputes"] == {
        "new": 0,
        "notified": 1,
        "taken": 1,
        "waiting": 0,
        "escalated": 1,
        "resolved": 1,
    }
    assert doc["disputes_total"] == 4
    # 8 initial + 2 assignment (listen) + the handoff and its session's transcript (dispatch-once);
    # two re-notifications failed.
    assert doc["notifications"] == {
        "pending": 0,
        "sending": 0,
        "sent": 12,
        "failed_retrying": 1,
        "failed_final": 1,
    }
    assert doc["sessions"]["escalation_recommended"] == 1 and doc["sessions_live"] == 0
    assert doc["handoffs"] == {
        "pending": 1,
        "sending": 0,
        "dispatched": 1,
        "send_failed": 0,
        "superseded": 1,
        "unroutable": 0,
        "parse_failed": 1,
    }
    assert doc["handoffs_overdue"] == 1
    assert {phase: run["exit_code"] for phase, run in doc["last_runs"].items()} == {
        "listen": 0,
        "mediate-once": 0,
        "dispatch-once": 0,
    }
    # listen and dispatch-once left run records; the planted mediate-once summary stands in for one.
    assert doc["last_runs"]["listen"]["started_at"] <= doc["last_runs"]["listen"]["finished_at"]
    assert doc["last_runs"]["mediate-once"]["started_at"] is None
    assert doc["untaken"]["total"] == doc["untaken"]["overdue"] == 1
    assert doc["last_runs"]["listen"]["summary"]["report"] == "listen/v1"
    assert doc["schema_version"] == doc["schema_expected"] == len(MIGRATIONS)
    assert doc["thresholds"]["from_config"] is True and doc["solver_auth"] is None


def test_dashboard_counts_a_failed_dispatch_record_as_failed_for_good(audit, audit_db):
    _, db = audit_db
    # A record of one recipient send (docs/delivery.md#claim-send-finalize): attempts 1, never claimed, never retried.
    plant(
        db,
        "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, claimed_at, "
        "created_at, body) VALUES (?, ?, 'escalation_handoff', 'failed', 1, NULL, 1, 'x')",
        (D, "ab" * 32),
    )
    assert as_json(audit)["notifications"]["failed_final"] == 2
    rows = as_json(audit, "notifications", "--status", "failed_final")["rows"]
    assert sorted(r["notif_type"] for r in rows) == ["escalation_handoff", "re-notification"]


def test_dashboard_opens_with_what_needs_a_person(audit, audit_db):
    # The story's runs age while the session goes on: make listen and dispatch-once look just run.
    now = int(time.time())
    plant(
        audit_db[1],
        "UPDATE sync_state SET value = json_set(value, '$.finished_at', ?) "
        "WHERE key IN ('listen_run_record', 'dispatch_once_run_record')",
        (now,),
    )
    out = audit().stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == "attention: 3 finding(s)"
    # D was opened 3500 s before the story was built (ages grow while the session runs).
    assert re.fullmatch(
        r"! 1 dispute untaken for (\d+m|\d+h\d\dm): serbero audit disputes", lines[1].strip()
    )
    assert "! 1 delivery failed for good: serbero audit notifications --status failed_final" in out
    # The story's mediate-once summary is from 1150 s before it was built: overdue for a 60 s cadence.
    assert re.search(
        r"! mediate-once last finished (\d+m|\d+h\d\dm) ago \(meant to run every 1m\)", out
    )
    assert "last run of each phase" in out and "serbero audit handoffs --stuck" in out
    assert "\x1b[" not in out and "╭" not in out  # not a terminal: no colour, no borders
    doc = as_json(audit)
    assert [(a["kind"], a["count"], a["phase"]) for a in doc["attention"]] == [
        ("untaken_disputes", 1, None),
        ("failed_deliveries", 1, None),
        ("phase_overdue", None, "mediate-once"),
    ]


def test_disputes_are_newest_first_and_filter_by_state_and_since(audit, story):
    ids = [r["dispute_id"] for r in as_json(audit, "disputes")["rows"]]
    assert ids == [D, C, B, A]
    assert [
        r["dispute_id"] for r in as_json(audit, "disputes", "--state", "escalated")["rows"]
    ] == [A]
    # The story opened the disputes 5000, 4500, 4000 and 3500 s before it was built, which may have
    # been minutes ago on a busy run: the cutoff falls between B and C counted from the story's clock.
    since = int(time.time()) - (story.built_at - 4250)
    assert [
        r["dispute_id"] for r in as_json(audit, "disputes", "--since", f"{since}s")["rows"]
    ] == [D, C]
    two = as_json(audit, "disputes", "--limit", "2")
    assert len(two["rows"]) == 2 and two["truncated"] is True
    assert as_json(audit, "disputes", "--limit", "0")["truncated"] is False
    b = next(r for r in as_json(audit, "disputes")["rows"] if r["dispute_id"] == B)
    assert (
        b["lifecycle_state"] == "taken"
        and b["dispute_status"] == "in-progress"
        and len(b["assigned_solver"]) == 64
    )


def test_disputes_table_shows_short_ids_and_relative_ages(audit):
    out = audit("disputes").stdout
    assert "d00d0000 " in out and D not in out
    assert "1h" in out and "notified" in out
    assert "no disputes match" in audit("disputes", "--state", "waiting").stdout


def test_dispute_timeline_merges_every_source_in_time_order(audit, story):
    doc = as_json(audit, "dispute", A)
    assert doc["dispute"]["dispute_id"] == A and doc["dispute"]["lifecycle_state"] == "escalated"
    rows = doc["rows"]
    assert {r["source"] for r in rows} == {
        "transition",
        "notification",
        "session",
        "message",
        "event",
        "summary",
        "dispatch",
    }
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    kinds = [r["kind"] for r in rows]
    for kind in (
        "classification_produced",
        "escalation_recommended",
        "handoff_prepared",
        "escalation_dispatched",
        "initial",
        "escalation_handoff",
        "outbound",
        "inbound",
        "summary",
    ):
        assert kind in kinds
    triggers = [r["data"]["trigger"] for r in rows if r["source"] == "transition"]
    # The story backdates the mediation rows before listen's real detection time.
    assert triggers == [
        "mediation:take",
        "mediation:awaiting_parties",
        "detected",
        "initial_notification",
        "mediation:conflicting_claims",
    ]
    newest = as_json(audit, "dispute", A, "--limit", "3")
    assert newest["truncated"] is True and newest["rows"] == rows[-3:]
    table = audit("dispute", A).stdout
    assert "timeline (oldest first)" in table and "escalation_dispatched" in table


def test_notifications_filter_by_outcome_type_and_dispute(audit):
    final = as_json(audit, "notifications", "--status", "failed_final")["rows"]
    assert [(r["dispute_id"], r["attempts"], r["outcome"]) for r in final] == [
        (D, 5, "failed_final")
    ]
    retrying = as_json(audit, "notifications", "--status", "failed_retrying")["rows"]
    assert [(r["dispute_id"], r["attempts"]) for r in retrying] == [(B, 1)]
    assert len(as_json(audit, "notifications", "--status", "failed")["rows"]) == 2
    assert len(as_json(audit, "notifications", "--type", "initial")["rows"]) == 8
    for_b = as_json(audit, "notifications", "--dispute", B)["rows"]
    assert sorted(r["notif_type"] for r in for_b) == [
        "assignment",
        "assignment",
        "initial",
        "initial",
        "re-notification",
    ]
    sent = as_json(audit, "notifications", "--type", "assignment")["rows"]
    assert all(isinstance(r["relays_accepted"], list) and r["relays_accepted"] for r in sent)
    table = audit("notifications", "--status", "failed").stdout
    assert "no relay accepted" in table and "5/5" in table and "failed_final" in table


def test_sessions_view_and_live_filter(audit):
    (row,) = as_json(audit, "sessions")["rows"]
    assert row["session_id"] == SESSION and row["current_confidence"] == 0.42
    assert as_json(audit, "sessions", "--state", "live")["rows"] == []
    table = audit("sessions").stdout
    assert "escalation_recommended" in table and "ab12cd34ef56 " in table and "0.42" in table


def test_transcript_is_in_order_marks_stale_and_shows_text_inert(audit):
    doc = as_json(audit, "transcript", "5e5510")
    assert doc["session"]["session_id"] == SESSION
    assert [(m["direction"], m["party"]) for m in doc["rows"]] == [
        ("outbound", "buyer"),
        ("outbound", "seller"),
        ("inbound", "buyer"),
        ("inbound", "seller"),
        ("inbound", "buyer"),
    ]
    out = audit("transcript", "5e5510").stdout
    assert "[stale] an older copy" in out
    assert "[bold]x[/bold]" in out  # rich markup in a message is shown, not applied
    assert (
        "\x1b" not in out and "\ufffd[31mred" in out
    )  # an escape sequence cannot reach the terminal


def test_events_filter_by_kind_session_and_dispute(audit):
    handoffs = as_json(audit, "events", "--kind", "handoff_prepared")["rows"]
    assert len(handoffs) == 4 and all(r["kind"] == "handoff_prepared" for r in handoffs)
    for_session = as_json(audit, "events", "--session", SESSION[:8])["rows"]
    assert {r["kind"] for r in for_session} == {
        "session_opened",
        "classification_produced",
        "escalation_recommended",
        "handoff_prepared",
        "escalation_dispatched",
    }
    for_c = as_json(audit, "events", "--dispute", "c0ffee")["rows"]
    assert [r["kind"] for r in for_c] == ["escalation_superseded", "handoff_prepared"]
    assert all(r["dispute_id"] == C for r in for_c)
    assert "trigger=conflicting_clai" in audit("events", "--kind", "handoff_prepared").stdout


def test_handoffs_show_every_state_and_the_stuck_ones(audit):
    rows = as_json(audit, "handoffs")["rows"]
    states = {r["dispute_id"] + ":" + r["state"] for r in rows}
    assert states == {f"{A}:dispatched", f"{C}:superseded", f"{D}:parse_failed", f"{D}:pending"}
    dispatched = next(r for r in rows if r["state"] == "dispatched")
    assert (
        dispatched["attempts"] == 1
        and dispatched["latency_s"] is not None
        and dispatched["session_id"] == SESSION
    )
    stuck = as_json(audit, "handoffs", "--stuck")["rows"]
    assert sorted(r["state"] for r in stuck) == ["pending", "superseded"] and all(
        r["stuck"] for r in stuck
    )
    assert [r["state"] for r in as_json(audit, "handoffs", "--state", "parse_failed")["rows"]] == [
        "parse_failed"
    ]


def test_dispatches_list_and_one_dispatch_with_its_notification_records(audit, story):
    (row,) = as_json(audit, "dispatches")["rows"]
    assert row["dispute_id"] == A and row["status"] == "dispatched" and row["duration_s"] >= 0
    assert as_json(audit, "dispatches", "--status", "sending")["rows"] == []
    assert len(as_json(audit, "dispatches", "--dispute", A)["rows"]) == 1
    one = as_json(audit, "dispatches", "--id", row["dispatch_id"][:8])
    assert one["dispatch"]["dispatch_id"] == row["dispatch_id"]
    (record,) = one["rows"]
    assert (
        record["notif_type"] == "escalation_handoff"
        and record["solver_pubkey"] in row["target_solver"]
    )
    assert (
        record["body"].split("\n")[2] == "escalation_handoff/v2"
        and "admin-take-dispute" in record["body"]
    )
    assert "its notification records" in audit("dispatches", "--id", row["dispatch_id"][:8]).stdout


def test_timeline_merge_orders_by_time_then_cause_then_row_id():
    from serbero_cli.audit.timeline import merge

    story = {
        "notification": [
            {
                "id": 3,
                "created_at": 10,
                "notif_type": "initial",
                "solver_pubkey": "ab",
                "outcome": "sent",
                "attempts": 1,
                "relays_accepted": None,
                "error_message": None,
            }
        ],
        "transition": [
            {
                "id": 13,
                "transitioned_at": 10,
                "from_state": "new",
                "to_state": "notified",
                "trigger": "t",
            },
            {
                "id": 5,
                "transitioned_at": 10,
                "from_state": None,
                "to_state": "new",
                "trigger": "detected",
            },
        ],
        "dispatch": [
            {
                "dispatch_id": "d-1",
                "created_at": 9,
                "status": "sending",
                "route": None,
                "target_solver": "",
                "attempts": 1,
            }
        ],
    }
    assert [(e["source"], e["ref"]) for e in merge(story)] == [
        ("dispatch", "d-1"),
        ("transition", 5),
        ("transition", 13),
        ("notification", 3),
    ]


def test_dashboard_hides_sections_of_features_switched_off(audit_db, story, tmp_path):
    from tests.helpers import write_config

    _, db = audit_db
    off = write_config(
        tmp_path / "off.toml",
        private_key=story.private_key,
        mostro_pubkey=story.mostro_pubkey,
        relays=[story.relay_url],
        solvers=[(story.reader, "read")],
        db_path=str(db),
    )
    runner = CliRunner()
    from serbero_cli.cli.app import app

    hidden = runner.invoke(app, ["--config", str(off), "audit"], catch_exceptions=False).stdout
    assert re.search(r"^disputes\s+count", hidden, re.M) and not re.search(
        r"^\s*sessions\s+count", hidden, re.M
    )
    assert (
        "handoffs" not in hidden and "mediate-once" not in hidden and "dispatch-once" not in hidden
    )
    # Without a config nobody knows what is switched on: sections that hold rows are shown.
    shown = runner.invoke(app, ["audit", "--db", str(db)], catch_exceptions=False).stdout
    assert re.search(r"sessions\s+count", shown) and re.search(r"handoffs\s+count", shown)
    assert "mediate-once" in shown and "no config loaded" in shown
    doc = json.loads(
        runner.invoke(app, ["--config", str(off), "audit", "--json"], catch_exceptions=False).stdout
    )
    assert doc["features"] == {"mediation": False, "escalation": False}
    assert doc["handoffs"]["dispatched"] == 1  # the JSON document keeps every section


def test_dashboard_csv_lists_the_attention_findings(audit):
    rows = list(csv.DictReader(io.StringIO(audit("--csv").stdout)))
    found = {r["name"]: r["value"] for r in rows if r["section"] == "attention"}
    assert found["untaken_disputes"] == "1" and found["failed_deliveries"] == "1"
