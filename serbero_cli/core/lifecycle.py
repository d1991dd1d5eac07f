"""The dispute lifecycle (core.md §4) as pure functions: what an event means for a dispute."""

from __future__ import annotations

from dataclasses import dataclass

from serbero_cli.core.events import DisputeEvent
from serbero_cli.store.disputes import DisputeView

STATES = ("new", "notified", "taken", "waiting", "escalated", "resolved")

# core.md §4 table: from -> the states it may move to.
ALLOWED: dict[str, frozenset[str]] = {
    "new": frozenset({"notified", "taken", "escalated", "resolved"}),
    "notified": frozenset({"taken", "escalated", "resolved"}),
    "taken": frozenset({"waiting", "escalated", "resolved"}),
    "waiting": frozenset({"taken", "escalated", "resolved"}),
    "escalated": frozenset({"resolved"}),
    "resolved": frozenset(),
}

# Mostro's status order, so a replayed older revision never rewinds `dispute_status`.
_STATUS_RANK = {"initiated": 0, "in-progress": 1}


def can_move(from_state: str, to_state: str) -> bool:
    return to_state in ALLOWED.get(from_state, frozenset())


@dataclass(frozen=True)
class Decision:
    """What to do with one event.

    action: `insert` (new dispute in `to_state`), `move` (lifecycle change), `status` (only
    `dispute_status` changes) or `ignore`. `notify` is the notif_type to queue for every solver.
    """

    action: str
    to_state: str | None = None
    trigger: str | None = None
    notify: str | None = None
    assigned_solver: str | None = None
    new_status: str | None = None
    reason: str = ""


def status_rank(status: str) -> int:
    return _STATUS_RANK.get(status, 2)


def decide(dispute: DisputeView | None, event: DisputeEvent) -> Decision:
    """Return the Decision for `event` given the dispute's current view (None if unknown)."""
    if dispute is None:
        if event.status == "initiated":
            return Decision("insert", to_state="new", trigger="detected", notify="initial", new_status=event.status)
        if event.status == "in-progress":
            return Decision("insert", to_state="taken", trigger="detected", assigned_solver=event.solver,
                            new_status=event.status)
        return Decision("insert", to_state="resolved", trigger="detected", new_status=event.status)

    newer_status = event.status if status_rank(event.status) > status_rank(dispute.dispute_status) else None
    state = dispute.lifecycle_state
    if event.status == "in-progress" and state in ("new", "notified"):
        return Decision("move", to_state="taken", trigger=event.event_id, notify="assignment",
                        assigned_solver=event.solver, new_status=newer_status)
    if event.resolved and state != "resolved":
        return Decision("move", to_state="resolved", trigger="dispute_resolved_externally",
                        new_status=newer_status or event.status)
    if newer_status:
        return Decision("status", new_status=newer_status, reason=f"status only in state {state}")
    return Decision("ignore", reason=f"{event.status} is no forward move from {state}")
