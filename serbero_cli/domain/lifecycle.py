"""The dispute lifecycle (core.md §4) as pure functions: what an event means for a dispute."""

from __future__ import annotations

from dataclasses import dataclass

from serbero_cli.domain.dispute_events import DisputeEvent
from serbero_cli.store.disputes import DisputeView

STATES = ("new", "notified", "taken", "waiting", "escalated", "resolved")

# core.md §4 table: from -> the states it may move to.
ALLOWED: dict[str, frozenset[str]] = {
    "new": frozenset({"notified", "taken", "escalated", "resolved"}),
    "notified": frozenset({"taken", "escalated", "resolved"}),
    "taken": frozenset({"waiting", "escalated", "resolved"}),
    "waiting": frozenset({"taken", "escalated", "resolved"}),
    "escalated": frozenset({"resolved"}),
    "resolved": frozenset({"new"}),  # only when Mostro reopens it (`reopen` below)
}

# Mostro's status order, so a replayed older revision never rewinds `dispute_status`.
_STATUS_RANK = {"initiated": 0, "in-progress": 1}


def can_move(from_state: str, to_state: str) -> bool:
    return to_state in ALLOWED.get(from_state, frozenset())


@dataclass(frozen=True)
class Decision:
    """What to do with one event.

    action: `insert` (new dispute in `to_state`), `move` (lifecycle change), `reopen` (a resolved
    dispute starts a fresh round), `status` (only `dispute_status` changes) or `ignore`. `notify`
    is the notif_type to queue for every solver.
    """

    action: str
    to_state: str | None = None
    trigger: str | None = None
    notify: str | None = None
    assigned_solver: str | None = None
    new_status: str | None = None
    reason: str = ""


def is_older_revision(dispute: DisputeView, event: DisputeEvent) -> bool:
    """A replayed revision older than the newest one applied changes nothing."""
    return dispute.revision_created_at is not None and event.created_at < dispute.revision_created_at


def is_newer_revision(dispute: DisputeView, event: DisputeEvent) -> bool:
    """Newer than what made the dispute what it is (rows from before revisions were kept: newer
    than its last state change)."""
    reference = dispute.revision_created_at if dispute.revision_created_at is not None else dispute.last_state_change
    return event.created_at > (reference or 0)


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

    state = dispute.lifecycle_state
    if is_older_revision(dispute, event):
        return Decision("ignore", reason="older than the newest revision applied")
    if event.status == "initiated" and state == "resolved" and is_newer_revision(dispute, event):
        # Mostro reopened it (its escrow-deadline guard): a fresh round, as for a new dispute.
        return Decision("reopen", to_state="new", trigger="reopened", notify="initial", new_status="initiated")
    newer_status = event.status if status_rank(event.status) > status_rank(dispute.dispute_status) else None
    if event.status == "in-progress" and state in ("new", "notified"):
        return Decision("move", to_state="taken", trigger=event.event_id, notify="assignment",
                        assigned_solver=event.solver, new_status=newer_status)
    if event.resolved and state != "resolved":
        return Decision("move", to_state="resolved", trigger="dispute_resolved_externally",
                        new_status=newer_status or event.status)
    if newer_status:
        return Decision("status", new_status=newer_status, reason=f"status only in state {state}")
    return Decision("ignore", reason=f"{event.status} is no forward move from {state}")
