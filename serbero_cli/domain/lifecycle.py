"""The dispute lifecycle as pure functions: what an event means for a dispute (docs/lifecycle.md).

The states and actions are `StrEnum`s: each member is the very string stored in SQLite and shown
in JSON, so members and plain strings compare equal. Rows read back from the database carry the
plain strings; compare them with `==` or `in`, never with `is`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from serbero_cli.domain.notifications import NotificationType

if TYPE_CHECKING:
    from serbero_cli.domain.dispute_events import DisputeEvent


class LifecycleState(StrEnum):
    """`disputes.lifecycle_state` (docs/lifecycle.md#states)."""

    NEW = "new"
    NOTIFIED = "notified"
    TAKEN = "taken"
    WAITING = "waiting"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


STATES: tuple[LifecycleState, ...] = tuple(LifecycleState)
# Not taken by anyone yet: Serbero may still take these itself.
UNTAKEN: tuple[LifecycleState, ...] = (LifecycleState.NEW, LifecycleState.NOTIFIED)

_S = LifecycleState
# from -> the states it may move to (docs/lifecycle.md#transitions).
ALLOWED: dict[LifecycleState, frozenset[LifecycleState]] = {
    _S.NEW: frozenset({_S.NOTIFIED, _S.TAKEN, _S.ESCALATED, _S.RESOLVED}),
    _S.NOTIFIED: frozenset({_S.TAKEN, _S.ESCALATED, _S.RESOLVED}),
    _S.TAKEN: frozenset({_S.WAITING, _S.ESCALATED, _S.RESOLVED}),
    _S.WAITING: frozenset({_S.TAKEN, _S.ESCALATED, _S.RESOLVED}),
    _S.ESCALATED: frozenset({_S.RESOLVED}),
    _S.RESOLVED: frozenset({_S.NEW}),  # only when Mostro reopens it (`reopen` below)
}


class DecisionAction(StrEnum):
    """What `decide` does with one event."""

    INSERT = "insert"  # a new dispute, in `to_state`
    MOVE = "move"  # a lifecycle change
    REOPEN = "reopen"  # a resolved dispute starts a fresh round
    STATUS = "status"  # only `dispute_status` changes
    IGNORE = "ignore"


# Mostro's status order, so a replayed older revision never rewinds `dispute_status`.
_STATUS_RANK = {"initiated": 0, "in-progress": 1}


@dataclass(frozen=True)
class DisputeView:
    """The `disputes` columns lifecycle decisions need (store/disputes.py reads them)."""

    dispute_id: str
    lifecycle_state: LifecycleState
    dispute_status: str
    assigned_solver: str | None
    initiator_role: str | None = None
    event_timestamp: int = 0
    last_notified_at: int | None = None
    revision_created_at: int | None = None  # created_at of the newest applied revision
    last_state_change: int | None = None
    reminders_sent: int = 0
    round_started_at: int | None = None


def can_move(from_state: LifecycleState, to_state: LifecycleState) -> bool:
    return to_state in ALLOWED.get(from_state, frozenset())


@dataclass(frozen=True)
class Decision:
    """What to do with one event. `notify` is the message to queue for every solver;
    `trigger` is what the transition row records (an event id, or a word like `detected`)."""

    action: DecisionAction
    to_state: LifecycleState | None = None
    trigger: str = ""
    notify: NotificationType | None = None
    assigned_solver: str | None = None
    new_status: str | None = None
    reason: str = ""

    @property
    def target(self) -> LifecycleState:
        """`to_state` of an insert, move or reopen, which always have one."""
        if self.to_state is None:
            raise ValueError(f"a decision to {self.action} moves to no state")
        return self.to_state


def is_older_revision(dispute: DisputeView, event: DisputeEvent) -> bool:
    """A replayed revision older than the newest one applied changes nothing."""
    return (
        dispute.revision_created_at is not None and event.created_at < dispute.revision_created_at
    )


def is_newer_revision(dispute: DisputeView, event: DisputeEvent) -> bool:
    """Newer than what made the dispute what it is (rows from before revisions were kept: newer
    than its last state change)."""
    reference = (
        dispute.revision_created_at
        if dispute.revision_created_at is not None
        else dispute.last_state_change
    )
    return event.created_at > (reference or 0)


def status_rank(status: str) -> int:
    return _STATUS_RANK.get(status, 2)


def decide(dispute: DisputeView | None, event: DisputeEvent) -> Decision:
    """Return the Decision for `event` given the dispute's current view (None if unknown)."""
    A, S, N = DecisionAction, LifecycleState, NotificationType
    if dispute is None:
        if event.status == "initiated":
            return Decision(
                A.INSERT,
                to_state=S.NEW,
                trigger="detected",
                notify=N.INITIAL,
                new_status=event.status,
            )
        if event.status == "in-progress":
            return Decision(
                A.INSERT,
                to_state=S.TAKEN,
                trigger="detected",
                assigned_solver=event.solver,
                new_status=event.status,
            )
        return Decision(A.INSERT, to_state=S.RESOLVED, trigger="detected", new_status=event.status)

    state = dispute.lifecycle_state
    if is_older_revision(dispute, event):
        return Decision(A.IGNORE, reason="older than the newest revision applied")
    if event.status == "initiated" and state == S.RESOLVED and is_newer_revision(dispute, event):
        # Mostro reopened it (its escrow-deadline guard): a fresh round, as for a new dispute.
        return Decision(
            A.REOPEN, to_state=S.NEW, trigger="reopened", notify=N.INITIAL, new_status="initiated"
        )
    newer_status = (
        event.status if status_rank(event.status) > status_rank(dispute.dispute_status) else None
    )
    if event.status == "in-progress" and state in UNTAKEN:
        return Decision(
            A.MOVE,
            to_state=S.TAKEN,
            trigger=event.event_id,
            notify=N.ASSIGNMENT,
            assigned_solver=event.solver,
            new_status=newer_status,
        )
    if event.resolved and state != S.RESOLVED:
        return Decision(
            A.MOVE,
            to_state=S.RESOLVED,
            trigger="dispute_resolved_externally",
            new_status=newer_status or event.status,
        )
    if newer_status:
        return Decision(A.STATUS, new_status=newer_status, reason=f"status only in state {state}")
    return Decision(A.IGNORE, reason=f"{event.status} is no forward move from {state}")
