"""Headlines for observers: one line, once per (dispute, observer, subject) in each round.

Observers (a mostro-watchdog bot relaying to Telegram, or a person) get only the first line of
three kinds of news: `mediating`, `mediation could not start` and `handed off: <reason>`.
Never new/unattended/taken/resolved messages, transcripts or bodies. Their rows retry with
back-off and give up a day later (serbero_cli/delivery/outbox.py).
"""

from __future__ import annotations

import logging

from serbero_cli.delivery.audience import Audience
from serbero_cli.domain import headline
from serbero_cli.domain.notifications import NotificationType
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import Connection

logger = logging.getLogger(__name__)


def is_headline(subject: str) -> bool:
    return subject in (
        headline.SUBJECT_MEDIATING,
        headline.SUBJECT_COULD_NOT_START,
    ) or subject.startswith("handed off")


def queue_headline(
    conn: Connection, audience: Audience, dispute_id: str, subject: str, now: int
) -> int:
    """Queue `Dispute <id> · <subject>` for every observer who has not had it this round."""
    if not audience.observers or not is_headline(subject):
        return 0
    line = headline.subject_line(dispute_id, subject)
    round_start = disputes_store.round_start(conn, dispute_id)
    queued = 0
    for observer in audience.observers:
        if outbox.already_queued(
            conn, dispute_id, observer, NotificationType.OBSERVER, line, round_start
        ):
            continue
        queued += outbox.queue(
            conn, dispute_id, NotificationType.OBSERVER, audience.deliveries([observer], line), now
        )
    if queued:
        logger.info("dispute=%s observers told: %s", short(dispute_id), subject)
    return queued
