"""The dispute lifecycle (docs/lifecycle.md#transitions) as a table: one row per case."""

from __future__ import annotations

import pytest

from serbero_cli.domain.dispute_events import DisputeEvent
from serbero_cli.domain.lifecycle import ALLOWED, STATES, can_move, decide
from serbero_cli.store.disputes import DisputeView

SOLVER = "ab" * 32


def ev(status: str, solver: str | None = None) -> DisputeEvent:
    return DisputeEvent("e" * 64, "d-1", status, "buyer", solver, 100, 200)


def view(state: str, status: str = "initiated", revision: int | None = None) -> DisputeView:
    return DisputeView("d-1", state, status, None, revision_created_at=revision)


@pytest.mark.parametrize(
    "before,event,action,to_state,notify",
    [
        pytest.param(
            None,
            ev("initiated"),
            "insert",
            "new",
            "initial",
            id="initiated-unknown-insert-new-notify",
        ),
        pytest.param(
            view("notified"), ev("initiated"), "ignore", None, None, id="initiated-known-duplicate"
        ),
        pytest.param(
            None, ev("in-progress"), "insert", "taken", None, id="in-progress-unknown-insert-taken"
        ),
        pytest.param(
            view("new"),
            ev("in-progress", SOLVER),
            "move",
            "taken",
            "assignment",
            id="in-progress-new-taken",
        ),
        pytest.param(
            view("notified"),
            ev("in-progress"),
            "move",
            "taken",
            "assignment",
            id="in-progress-notified",
        ),
        pytest.param(
            view("taken", "in-progress"),
            ev("in-progress"),
            "ignore",
            None,
            None,
            id="in-progress-taken",
        ),
        pytest.param(
            view("waiting"),
            ev("in-progress"),
            "status",
            None,
            None,
            id="in-progress-waiting-status-only",
        ),
        pytest.param(
            view("escalated"), ev("in-progress"), "status", None, None, id="in-progress-escalated"
        ),
        pytest.param(
            view("resolved", "settled"),
            ev("in-progress"),
            "ignore",
            None,
            None,
            id="in-progress-resolved",
        ),
        pytest.param(
            None, ev("settled"), "insert", "resolved", None, id="settled-unknown-insert-resolved"
        ),
        pytest.param(
            None, ev("seller-refunded"), "insert", "resolved", None, id="refunded-unknown"
        ),
        pytest.param(None, ev("released"), "insert", "resolved", None, id="released-unknown"),
        pytest.param(
            None, ev("cooperatively-canceled"), "insert", "resolved", None, id="coop-cancel-unknown"
        ),
        pytest.param(view("new"), ev("settled"), "move", "resolved", None, id="settled-new"),
        pytest.param(
            view("notified"), ev("released"), "move", "resolved", None, id="released-notified"
        ),
        pytest.param(
            view("taken"), ev("seller-refunded"), "move", "resolved", None, id="refunded-taken"
        ),
        pytest.param(
            view("waiting"), ev("settled"), "move", "resolved", None, id="settled-waiting"
        ),
        pytest.param(
            view("escalated"), ev("settled"), "move", "resolved", None, id="settled-escalated"
        ),
        pytest.param(
            view("resolved", "settled"),
            ev("settled"),
            "ignore",
            None,
            None,
            id="settled-resolved-replay",
        ),
        pytest.param(
            view("resolved", "settled", 300),
            ev("initiated"),
            "ignore",
            None,
            None,
            id="older-initiated-after-resolved-is-a-replay",
        ),
        pytest.param(
            view("resolved", "settled", 150),
            ev("initiated"),
            "reopen",
            "new",
            "initial",
            id="newer-initiated-reopens-a-resolved-dispute",
        ),
        pytest.param(
            view("notified", "initiated", 150),
            ev("initiated"),
            "ignore",
            None,
            None,
            id="newer-initiated-on-an-open-dispute-is-a-duplicate",
        ),
        pytest.param(
            view("new", "initiated", 300),
            ev("settled"),
            "ignore",
            None,
            None,
            id="revision-older-than-the-newest-applied-changes-nothing",
        ),
    ],
)
def test_decide_follows_the_event_table(before, event, action, to_state, notify):
    decision = decide(before, event)
    assert (decision.action, decision.to_state, decision.notify) == (action, to_state, notify)
    if decision.action == "move":
        assert can_move(before.lifecycle_state, decision.to_state)


def test_decide_keeps_the_solver_from_a_valid_p_tag():
    assert decide(view("new"), ev("in-progress", SOLVER)).assigned_solver == SOLVER


def test_decide_move_to_resolved_stores_the_final_status_and_trigger():
    d = decide(view("taken", "in-progress"), ev("settled"))
    assert d.new_status == "settled" and d.trigger == "dispute_resolved_externally"


def test_decide_never_rewinds_dispute_status_on_an_older_revision():
    assert decide(view("taken", "in-progress"), ev("initiated")).action == "ignore"


@pytest.mark.parametrize("src", STATES)
@pytest.mark.parametrize("dst", STATES)
def test_can_move_matches_the_spec_table(src, dst):
    table = {
        ("new", "notified"),
        ("new", "taken"),
        ("new", "escalated"),
        ("new", "resolved"),
        ("notified", "taken"),
        ("notified", "escalated"),
        ("notified", "resolved"),
        ("taken", "waiting"),
        ("taken", "escalated"),
        ("taken", "resolved"),
        ("waiting", "taken"),
        ("waiting", "escalated"),
        ("waiting", "resolved"),
        ("escalated", "resolved"),
        ("resolved", "new"),
    }
    assert can_move(src, dst) == ((src, dst) in table)
    assert set(ALLOWED) == set(STATES)
