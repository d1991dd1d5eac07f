"""The attention rules of the dashboard and `serbero status`, one table row per rule and edge."""

from __future__ import annotations

import pytest

from serbero_cli.audit.attention import (
    HealthFacts,
    PhaseFacts,
    attention,
    status_line,
    untaken_cutoff,
)
from serbero_cli.runrecord import describe_failure

NOW = 1_800_000_000


def phase(name: str = "listen", **kw) -> PhaseFacts:
    base = {
        "enabled": True,
        "cadence_seconds": 60,
        "last_exit_code": 0,
        "last_finished_at": NOW - 30,
        "last_error": None,
        "holds_lock": False,
    }
    base.update(kw)
    return PhaseFacts(name, **base)


def facts(*phases: PhaseFacts, **kw) -> HealthFacts:
    base = {
        "now": NOW,
        "untaken_total": 0,
        "untaken_overdue": 0,
        "untaken_oldest_at": None,
        "failed_deliveries": 0,
        "unroutable_handoffs": 0,
        "escalation_enabled": True,
        "phases": phases or (phase(),),
    }
    base.update(kw)
    return HealthFacts(**base)


@pytest.mark.parametrize(
    "given,expected",
    [
        pytest.param(facts(), [], id="all quiet"),
        pytest.param(
            facts(untaken_total=3, untaken_overdue=0),
            [],
            id="untaken but younger than twice the interval",
        ),
        pytest.param(
            facts(untaken_total=3, untaken_overdue=2, untaken_oldest_at=NOW - 4320),
            [("untaken_disputes", "2 disputes untaken for 1h12m")],
            id="untaken too long: count and oldest age",
        ),
        pytest.param(
            facts(untaken_total=1, untaken_overdue=1, untaken_oldest_at=NOW - 700),
            [("untaken_disputes", "1 dispute untaken for 11m")],
            id="one untaken dispute",
        ),
        pytest.param(
            facts(failed_deliveries=1),
            [("failed_deliveries", "1 delivery failed for good")],
            id="a delivery failed for good",
        ),
        pytest.param(
            facts(failed_deliveries=4),
            [("failed_deliveries", "4 deliveries failed for good")],
            id="several deliveries failed for good",
        ),
        pytest.param(
            facts(phase(last_exit_code=3, last_error="no relay reachable")),
            [("phase_failed", "last listen run failed (exit 3: no relay reachable)")],
            id="last run exit 3",
        ),
        pytest.param(
            facts(phase(last_exit_code=4, last_error=None)),
            [("phase_failed", "last listen run failed (exit 4)")],
            id="last run exit 4 without an error text",
        ),
        pytest.param(
            facts(phase(last_exit_code=None, last_finished_at=None)),
            [],
            id="never ran: nothing to judge",
        ),
        pytest.param(
            facts(phase(last_finished_at=NOW - 180)),
            [],
            id="exactly three cadences ago is not late",
        ),
        pytest.param(
            facts(phase(last_finished_at=NOW - 181)),
            [("phase_overdue", "listen last finished 3m ago (meant to run every 1m)")],
            id="overdue",
        ),
        pytest.param(
            facts(phase(last_finished_at=NOW - 9999, holds_lock=True)),
            [],
            id="overdue record but running now (listen --follow holds its lock)",
        ),
        pytest.param(
            facts(phase("dispatch-once", cadence_seconds=30, last_finished_at=NOW - 91)),
            [("phase_overdue", "dispatch-once last finished 1m ago (meant to run every 30s)")],
            id="dispatch-once judged by its own interval",
        ),
        pytest.param(
            facts(
                phase("mediate-once", enabled=False, last_exit_code=3, last_finished_at=NOW - 9999)
            ),
            [],
            id="a phase switched off raises nothing",
        ),
        pytest.param(
            facts(
                phase(
                    "mediate-once",
                    enabled=None,
                    last_exit_code=1,
                    last_error="internal error: X",
                    last_finished_at=NOW - 10,
                )
            ),
            [("phase_failed", "last mediate-once run failed (exit 1: internal error: X)")],
            id="feature not known counts as on",
        ),
        pytest.param(
            facts(phase(last_exit_code=3, last_error="no relay", last_finished_at=NOW - 600)),
            [
                ("phase_failed", "last listen run failed (exit 3: no relay)"),
                ("phase_overdue", "listen last finished 10m ago (meant to run every 1m)"),
            ],
            id="failed and overdue are both said",
        ),
        pytest.param(
            facts(unroutable_handoffs=2),
            [("unroutable_handoffs", "2 handoffs unroutable")],
            id="unroutable",
        ),
        pytest.param(
            facts(unroutable_handoffs=2, escalation_enabled=False),
            [],
            id="unroutable with escalation off",
        ),
    ],
)
def test_attention_rules(given, expected):
    assert [(f.kind, f.message) for f in attention(given)] == expected


def test_attention_lists_untaken_disputes_first_and_each_finding_has_a_hint():
    found = attention(
        facts(
            phase(last_exit_code=1),
            failed_deliveries=1,
            unroutable_handoffs=1,
            untaken_total=1,
            untaken_overdue=1,
            untaken_oldest_at=NOW - 3600,
        )
    )
    assert [f.kind for f in found] == [
        "untaken_disputes",
        "failed_deliveries",
        "phase_failed",
        "unroutable_handoffs",
    ]
    assert all(f.hint for f in found)
    assert found[0].to_dict() == {
        "kind": "untaken_disputes",
        "message": "1 dispute untaken for 1h00m",
        "hint": "serbero audit disputes",
        "count": 1,
        "phase": None,
        "since": NOW - 3600,
    }


def test_untaken_cutoff_is_twice_the_reminder_interval():
    assert untaken_cutoff(NOW, 300) == NOW - 600


@pytest.mark.parametrize(
    "given,line",
    [
        pytest.param(
            facts(phase(last_finished_at=NOW - 40)), "ok: 0 untaken, last listen 40s ago", id="ok"
        ),
        pytest.param(
            facts(phase(last_finished_at=NOW - 40), untaken_total=2),
            "ok: 2 untaken, last listen 40s ago",
            id="ok with young untaken disputes",
        ),
        pytest.param(
            facts(phase(last_exit_code=None, last_finished_at=None)),
            "ok: 0 untaken, listen has not run yet",
            id="listen never ran",
        ),
        pytest.param(
            facts(untaken_total=2, untaken_overdue=2, untaken_oldest_at=NOW - 4320),
            "attention: 2 disputes untaken for 1h12m",
            id="attention",
        ),
        pytest.param(
            facts(phase(last_exit_code=3, last_error="no relay reachable"), failed_deliveries=1),
            "attention: 1 delivery failed for good; last listen run failed (exit 3: no relay reachable)",
            id="several findings on one line",
        ),
    ],
)
def test_status_line(given, line):
    assert status_line(given, attention(given)) == line


@pytest.mark.parametrize(
    "document,error",
    [
        pytest.param(
            {"error": "no relay reachable: ws://x: refused"},
            "no relay reachable: ws://x: refused",
            id="the result's own error",
        ),
        pytest.param(
            {"error": None, "errors": ["db locked", "again"]},
            "db locked; again",
            id="a list of errors",
        ),
        pytest.param(
            {"error": None, "notifications": {"failed": 2}}, "2 notification(s) failed", id="listen"
        ),
        pytest.param(
            {"error": None, "counts": {"send_failed": 1, "unroutable": 2, "gave_up": 0}},
            "1 handoff(s) send_failed, 2 handoff(s) unroutable",
            id="dispatch-once",
        ),
        pytest.param(
            {"error": None, "errors": [], "dms_failed": 1}, "1 DM(s) failed", id="mediate-once"
        ),
        pytest.param({"error": None}, "finished with failures", id="nothing to name"),
        pytest.param({"error": "line one\nline two"}, "line one line two", id="one line"),
    ],
)
def test_describe_failure_gives_one_line(document, error):
    assert describe_failure(document) == error
