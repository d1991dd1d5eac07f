"""The states of a mediation session (docs/mediation.md#sessions).

mediate-once moves sessions, listen's resolution hook closes them and audit counts them, so the
names live here. Each member is the very string stored in `mediation_sessions.state`; rows read
back from the database carry the plain strings, which compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    """`mediation_sessions.state`: every value Serbero writes."""

    AWAITING_RESPONSE = "awaiting_response"  # questions are out (the state a session opens in)
    CLASSIFIED = "classified"  # the model wants a summary and both parties have spoken
    SUMMARY_PENDING = "summary_pending"  # the summary is queued for solvers
    SUMMARY_DELIVERED = "summary_delivered"  # a summary row was sent; passed through to `closed`
    CLOSED = "closed"
    ESCALATION_RECOMMENDED = "escalation_recommended"  # escalated; final
    SUPERSEDED_BY_HUMAN = (
        "superseded_by_human"  # resolved or taken over; passed through to `closed`
    )


# The states in which Serbero still talks to the parties; every move out of them is a
# compare-and-set on one of these.
LIVE_STATES: tuple[SessionState, ...] = (
    SessionState.AWAITING_RESPONSE,
    SessionState.CLASSIFIED,
    SessionState.SUMMARY_PENDING,
)
# Reserved names that are never written; `audit sessions --state` accepts them as filters.
RESERVED_STATES = ("opening", "follow_up_pending")
