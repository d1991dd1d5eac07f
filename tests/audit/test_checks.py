"""The two checks that exit 4 (`audit authority`, `audit dispatches --check`) and the rationale rule."""

from __future__ import annotations

import json

import pytest

from serbero_cli.audit.checks import percentile_95
from tests.audit.conftest import RATIONALE_TEXT, SESSION, SUMMARY_RATIONALE_TEXT, A, B, plant
from tests.audit.test_views import VIEW_COMMANDS, args_for
from tests.helpers import db_rows, run_serbero

OUTBOUND = (
    "INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, "
    "inner_event_created_at, content, persisted_at) VALUES (?, ?, 'buyer', 'b1', ?, 1, ?, 1)"
)
NOTIFICATION = (
    "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, created_at, body) "
    "VALUES (?, 'ab', ?, 'sent', 1, 1, ?)"
)


def test_authority_passes_on_real_data_including_the_handoff_dm(audit_db):
    config, db = audit_db
    bodies = [
        r["body"]
        for r in db_rows(db, "SELECT body FROM notifications WHERE notif_type='escalation_handoff'")
    ]
    assert bodies and all(
        "admin-take-dispute" in b for b in bodies
    )  # not an authority phrase: it must pass
    proc = run_serbero(config, "audit", "authority")
    assert proc.returncode == 0, proc.stderr
    assert "authority check: OK" in proc.stdout


@pytest.mark.parametrize(
    "sql,params,source,phrase",
    [
        pytest.param(
            OUTBOUND,
            (SESSION, "outbound", "p1", "We will RELEASE FUNDS to you today."),
            "outbound_message",
            "release funds",
            id="outbound-message-any-case",
        ),
        pytest.param(
            NOTIFICATION,
            (A, "mediation_summary", "Next step: use admin_settle on the trade."),
            "notification_body",
            "admin_settle",
            id="notification-body",
        ),
        pytest.param(
            NOTIFICATION,
            (B, "admin-cancel-request", "a harmless body"),
            "notification_type",
            "admin-cancel",
            id="notification-type",
        ),
        pytest.param(
            NOTIFICATION,
            (B, "initial", "Please\nclose the dispute now"),
            "notification_body",
            "close the dispute",
            id="phrase-after-a-line-break",
        ),
    ],
)
def test_authority_finds_a_planted_phrase_and_exits_4(audit, audit_db, sql, params, source, phrase):
    plant(audit_db[1], sql, params)
    result = audit("authority", "--json")
    assert result.exit_code == 4
    doc = json.loads(result.stdout)
    assert doc["counts"][source] == 1 and sum(doc["counts"].values()) == 1 and doc["ok"] is False
    (finding,) = doc["rows"]
    assert finding["source"] == source and finding["phrases"] == [phrase]
    table = audit("authority")
    assert table.exit_code == 4 and "authority check: FAILED" in table.stdout


@pytest.mark.parametrize(
    "sql,params",
    [
        pytest.param(
            OUTBOUND,
            (SESSION, "outbound", "p2", "The solver may use admin settle if needed"),
            id="underscore-is-not-a-wildcard",
        ),
        pytest.param(
            OUTBOUND,
            (SESSION, "outbound", "p3", "Solver should invoke AdminSettleDispute on Mostro."),
            id="literal-match-only",
        ),
        pytest.param(
            OUTBOUND,
            (SESSION, "inbound", "p4", "just release the funds!!"),
            id="party-text-is-not-ours",
        ),
    ],
)
def test_authority_does_not_flag_what_is_not_a_phrase_or_not_ours(audit, audit_db, sql, params):
    plant(audit_db[1], sql, params)
    assert audit("authority").exit_code == 0


def test_authority_exit_code_4_through_the_real_entry_point(audit_db):
    config, db = audit_db
    plant(db, OUTBOUND, (SESSION, "outbound", "p5", "Serbero will force-close this."))
    proc = run_serbero(config, "audit", "authority")
    assert proc.returncode == 4 and "force-close" in proc.stdout


DISPATCH = (
    "INSERT INTO escalation_dispatches (dispatch_id, dispute_id, handoff_event_id, target_solver, dispatched_at, "
    "created_at, status, route, attempts, finished_at) VALUES (?, ?, {handoff}, 'ab', ?, ?, ?, 'targeted', 1, ?)"
)
PENDING = "(SELECT MAX(id) FROM mediation_events WHERE kind = 'handoff_prepared')"
DISPATCHED = "(SELECT handoff_event_id FROM escalation_dispatches LIMIT 1)"


@pytest.mark.parametrize(
    "statements,check",
    [
        pytest.param(
            [(DISPATCH.format(handoff=PENDING), ("x-1", A, 1, 1, "dispatched", 2))],
            "terminal_without_audit",
            id="terminal-row-without-audit",
        ),
        pytest.param(
            [
                (
                    "INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('escalation_dispatched', "
                    '\'{"dispatch_id":"ghost"}\', 1)',
                    (),
                )
            ],
            "audit_without_terminal",
            id="audit-without-row",
        ),
        pytest.param(
            [(DISPATCH.format(handoff=PENDING), ("x-2", A, 1, 1, "sending", None))],
            "stale_sending",
            id="stale-sending",
        ),
        pytest.param(
            [
                ("DROP INDEX idx_escalation_dispatches_handoff", ()),
                (DISPATCH.format(handoff=DISPATCHED), ("x-3", A, 2**40, 2**40, "sending", None)),
            ],
            "duplicate_dispatch",
            id="two-rows-one-handoff",
        ),
        pytest.param(
            [("UPDATE escalation_dispatches SET finished_at = finished_at + 600", ())],
            "slow_p95",
            id="slow-p95",
        ),
    ],
)
def test_dispatch_check_finds_each_planted_problem_and_exits_4(audit, audit_db, statements, check):
    assert audit("dispatches", "--check").exit_code == 0
    for sql, params in statements:
        plant(audit_db[1], sql, params)
    result = audit("dispatches", "--check", "--json")
    assert result.exit_code == 4, result.stdout
    assert [p["check"] for p in json.loads(result.stdout)["problems"]] == [check]


@pytest.mark.parametrize(
    "values,p95", [([], None), ([7], 7), (list(range(1, 101)), 95), (list(range(20, 0, -1)), 19)]
)
def test_percentile_95_is_nearest_rank(values, p95):
    assert percentile_95(values) == p95


def test_rationale_text_appears_only_in_the_rationale_view(audit, story):
    for view, args in VIEW_COMMANDS:
        if view == "rationale":
            continue
        args = args_for(audit, story, args)
        for output in ([], ["--json"], ["--csv"]):
            result = audit(*args, *output)
            assert "RATIONALE-ONLY" not in result.stdout + result.stderr, (view, output)
    shown = audit("rationale", story.rationale_id[:12])
    assert shown.exit_code == 0
    first, *_ = shown.stdout.splitlines()
    assert first.startswith("WARNING: Model rationale: operator-only")
    assert RATIONALE_TEXT in shown.stdout
    doc = json.loads(audit("rationale", story.summary_rationale_id, "--json").stdout)
    assert doc["warning"].startswith("Model rationale: operator-only")
    assert (
        doc["rows"][0]["rationale_text"] == SUMMARY_RATIONALE_TEXT
        and doc["rows"][0]["dispute_id"] == A
    )
