"""What a `notifications` row is: its type, its status and its envelope (docs/delivery.md#outbox).

Each member is the very string stored in SQLite and shown in JSON, so members and plain strings
compare equal. Rows read back from the database carry the plain strings; compare them with `==`
or `in`, never with `is`. A newer Serbero may write types this code does not know, so code that
reads `notif_type` from a row treats it as a plain string.
"""

from __future__ import annotations

from enum import StrEnum


class NotificationType(StrEnum):
    """`notifications.notif_type`: why the message was sent."""

    INITIAL = "initial"  # a new (or reopened) dispute, to every solver
    ASSIGNMENT = "assignment"  # someone took the dispute
    RE_NOTIFICATION = "re-notification"  # a reminder about one unattended dispute
    DIGEST = "re-notification-digest"  # one reminder listing several disputes (`covers`)
    MEDIATION_SUMMARY = "mediation_summary"
    ESCALATION_RECOMMENDED = "mediation_escalation_recommended"
    RESOLUTION_REPORT = "mediation_resolution_report"
    ESCALATION_HANDOFF = (
        "escalation_handoff"  # dispatch-once's record of a handoff send, never flushed
    )
    TRANSCRIPT = "transcript"  # a part of the chat transcript that follows an escalation
    OBSERVER = "observer"  # a one-line headline to an observer


class NotificationStatus(StrEnum):
    """`notifications.status`; the schema allows exactly these."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Envelope(StrEnum):
    """How a message reaches its recipient (docs/delivery.md#envelopes)."""

    MOSTRO = "mostro"  # Mostro's own gift-wrapped DM format, which Mostrix reads
    NIP17 = "nip17"  # a standard NIP-17 private message


# Both envelopes, the default for a recipient whose config names none.
ENVELOPES: tuple[Envelope, ...] = (Envelope.MOSTRO, Envelope.NIP17)
