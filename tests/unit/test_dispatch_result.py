"""The dispatch_once/v1 document (docs/wire-formats.md#json-reports) and its exit code."""

from __future__ import annotations

import pytest

from serbero_cli.dispatch.result import COUNT_KEYS, DispatchResult, HandoffOutcome, error_report


def outcome(**kw) -> HandoffOutcome:
    values = dict(
        handoff_event_id=1, dispute_id="d", session_id=None, decision="broadcast", action="send"
    )
    values.update(kw)
    return HandoffOutcome(**values)


def result_with(*, errors=(), no_relay=False, counts=None, deliveries=()) -> DispatchResult:
    result = DispatchResult(errors=list(errors), no_relay=no_relay)
    result.counts.update(counts or {})
    if deliveries:
        result.handoffs.append(outcome(deliveries=[{"pubkey": "p", "ok": ok} for ok in deliveries]))
    return result


@pytest.mark.parametrize(
    ("result", "code"),
    [
        pytest.param(result_with(), 0, id="nothing"),
        pytest.param(
            result_with(counts={"superseded": 3, "parse_failed": 2, "deferred": 1, "in_flight": 1}),
            0,
            id="db-only-outcomes-do-not-count",
        ),
        pytest.param(result_with(deliveries=(True, True)), 0, id="all-sent"),
        pytest.param(result_with(deliveries=(True, False)), 4, id="partial"),
        pytest.param(result_with(counts={"send_failed": 1}), 4, id="send-failed"),
        pytest.param(result_with(counts={"gave_up": 1}), 4, id="give-up"),
        pytest.param(result_with(counts={"unroutable": 1}), 4, id="unroutable"),
        pytest.param(
            result_with(no_relay=True, counts={"unroutable": 1}), 3, id="no-relay-beats-4"
        ),
        pytest.param(result_with(errors=["db"], no_relay=True), 1, id="internal-beats-3"),
    ],
)
def test_dispatch_result_exit_code_follows_the_precedence(result, code):
    assert result.exit_code == code
    assert result.to_dict()["exit_code"] == code


def test_dispatch_result_document_shape_and_body_only_in_dry_runs():
    real = DispatchResult()
    real.add(outcome(body="b", recipients=["x"]), "dispatched")
    doc = real.to_dict()
    assert list(doc) == ["report", "dry_run", "enabled", "exit_code", "error", "counts", "handoffs"]
    assert list(doc["counts"]) == list(COUNT_KEYS) and doc["counts"]["dispatched"] == 1
    assert list(doc["handoffs"][0]) == [
        "handoff_event_id",
        "dispute_id",
        "session_id",
        "decision",
        "action",
        "recipients",
        "dispatch_id",
        "status",
        "attempt",
        "deliveries",
        "detail",
    ]
    dry = DispatchResult(dry_run=True)
    dry.add(outcome(body="b"))
    assert dry.to_dict()["handoffs"][0]["body"] == "b"


def test_error_report_is_a_full_document_with_no_handoffs():
    doc = error_report(75, "dispatch-once: lock held by pid 7", dry_run=False, enabled=True)
    assert doc["exit_code"] == 75 and doc["error"].endswith("pid 7") and doc["handoffs"] == []
    assert doc["report"] == "dispatch_once/v1" and set(doc["counts"].values()) == {0}
