"""How a handoff's delivery is recorded: its route and its status (docs/delivery.md#dispatch).

dispatch-once decides and writes them, audit reads them, and `escalation_dispatches` holds them.
Each member is the very string stored and shown in JSON; rows read back from the database carry
the plain strings, which compare equal to the members.
"""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    """Who receives a handoff (docs/delivery.md#routing); the first rule that matches wins."""

    TARGETED = "targeted"  # the assigned solver, a write solver
    BROADCAST = "broadcast"  # every write solver
    FALLBACK = "fallback"  # every solver, write or read, when the operator allows it
    UNROUTABLE = (
        "unroutable"  # nobody: never stored on a dispatch row (the schema refuses it), only audited
    )


class DispatchStatus(StrEnum):
    """`escalation_dispatches.status`; the schema allows exactly these."""

    SENDING = "sending"  # claimed: the delivery is under way, or a run died during it
    DISPATCHED = "dispatched"  # at least one recipient accepted the handoff
    SEND_FAILED = "send_failed"  # nobody did, or the attempts ran out
