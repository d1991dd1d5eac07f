"""Solver message texts (core.md §5.3): a first line in plain words, then exact `key: value` lines.

The key lines are parsed by tools: keep their names and order. Messages never carry a party's
pubkey, only the trade role. No body ends with a newline.
"""

from __future__ import annotations

INITIAL_HEADLINE = "New Mostro dispute: a solver is needed."
RENOTIFY_HEADLINE = "Reminder: this Mostro dispute still has no solver."
ASSIGNMENT_HEADLINE = "A solver has taken this Mostro dispute."


def initial_body(dispute_id: str, initiator: str, event_timestamp: int) -> str:
    return "\n".join((
        INITIAL_HEADLINE,
        f"dispute_id: {dispute_id}",
        f"initiator: {initiator}",
        f"event_timestamp: {event_timestamp}",
        "status: initiated",
    ))


def renotification_body(dispute_id: str, elapsed_seconds: int) -> str:
    return "\n".join((
        RENOTIFY_HEADLINE,
        f"dispute_id: {dispute_id}",
        "lifecycle_state: notified",
        f"time_elapsed_seconds: {elapsed_seconds}",
    ))


def assignment_body(dispute_id: str, assigned_solver: str | None) -> str:
    return "\n".join((
        ASSIGNMENT_HEADLINE,
        f"dispute_id: {dispute_id}",
        f"assigned_solver: {assigned_solver or 'unknown'}",
        "lifecycle_state: taken",
    ))
