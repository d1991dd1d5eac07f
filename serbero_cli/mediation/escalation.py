"""The one escalation path: `recommend()` writes the escalation and its handoff once
(docs/mediation.md#escalation).

Everything happens in one BEGIN IMMEDIATE: the session's conditional move to
`escalation_recommended` makes a session-scoped escalation exactly-once, and a dispute-scoped one
is skipped when the dispute already has one. The handoff package keeps its field order
(docs/wire-formats.md#handoff-package), so `dispatch-once` can parse it strictly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from serbero_cli.delivery.audience import Audience
from serbero_cli.delivery.observers import queue_headline
from serbero_cli.domain import headline
from serbero_cli.domain.handoff import HandoffPackage
from serbero_cli.domain.lifecycle import LifecycleState, can_move
from serbero_cli.domain.notifications import NotificationType
from serbero_cli.domain.sessions import LIVE_STATES, SessionState
from serbero_cli.domain.transcript import transcript_messages
from serbero_cli.mediation import messages
from serbero_cli.mediation.policy import EscalationTrigger
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import Connection, Store

logger = logging.getLogger(__name__)

# What recommend() did: wrote the escalation, or found the session already out of the live
# states, or found a dispute-scoped escalation already on file this round.
Outcome = Literal["escalated", "already_terminal", "already_escalated"]


@dataclass(frozen=True)
class Escalation:
    dispute_id: str
    session_id: str | None
    trigger: EscalationTrigger
    evidence_refs: tuple[str, ...] = ()
    rationale_refs: tuple[str, ...] = ()
    reason: str | None = None


def handoff_package(e: Escalation, bundle: tuple[str, str], now: int) -> str:
    """The handoff package as stored (docs/wire-formats.md#handoff-package): the one definition
    dispatch-once parses, in its fixed field order."""
    return HandoffPackage(
        e.dispute_id,
        e.session_id,
        e.trigger,
        tuple(e.evidence_refs),
        bundle[0],
        bundle[1],
        tuple(e.rationale_refs),
        now,
    ).to_json()


def routed_recipients(assigned_solver: str | None, solvers: list[str]) -> list[str]:
    """The assigned solver if it is configured, else every solver (broadcast)."""
    assigned = (assigned_solver or "").lower()
    return [assigned] if assigned and assigned in solvers else list(solvers)


def queue_handoff(
    conn: Connection,
    audience: Audience,
    *,
    dispute_id: str,
    session_id: str | None,
    notif_type: NotificationType,
    recipients: list[str],
    body: str,
    now: int,
) -> int:
    """Queue a handoff-like message to `recipients`, followed (when a session was opened) by the
    chat transcript to the same recipients. Return the rows queued."""
    queued = outbox.queue(conn, dispute_id, notif_type, audience.deliveries(recipients, body), now)
    if session_id:
        for text in transcript_messages(dispute_id, sess.full_transcript(conn, session_id)):
            queued += outbox.queue(
                conn,
                dispute_id,
                NotificationType.TRANSCRIPT,
                audience.deliveries(recipients, text),
                now,
            )
    return queued


def recommend(
    store: Store,
    e: Escalation,
    *,
    bundle: tuple[str, str],
    now: int,
    audience: Audience,
    alert_solvers: bool,
) -> Outcome:
    """Escalate once. Return "escalated", "already_terminal" (session) or "already_escalated" (dispute)."""
    try:
        return _recommend(
            store, e, bundle=bundle, now=now, audience=audience, alert_solvers=alert_solvers
        )
    except _AlreadyTerminal:
        return "already_terminal"


class _AlreadyTerminal(Exception):
    """Raised inside the transaction so it rolls back with nothing written."""


def _recommend(
    store: Store,
    e: Escalation,
    *,
    bundle: tuple[str, str],
    now: int,
    audience: Audience,
    alert_solvers: bool,
) -> Outcome:
    solvers = list(audience.solvers)
    with store.immediate() as conn:
        if e.session_id is not None:
            if sess.dispute_of(conn, e.session_id) != e.dispute_id:
                raise ValueError("session does not belong to the dispute")
            if not med.move_session(
                conn, e.session_id, LIVE_STATES, SessionState.ESCALATION_RECOMMENDED, now
            ):
                raise _AlreadyTerminal
        elif med.has_dispute_scoped(conn, e.dispute_id, "escalation_recommended"):
            return "already_escalated"
        payload: dict[str, object] = {
            "dispute_id": e.dispute_id,
            "evidence_refs": list(e.evidence_refs),
            "rationale_refs": list(e.rationale_refs),
            "trigger": e.trigger,
        }
        if e.reason:
            payload["reason"] = e.reason
        rationale_id = e.rationale_refs[0] if e.rationale_refs else None
        med.insert_event(
            conn,
            "escalation_recommended",
            payload,
            now=now,
            session_id=e.session_id,
            rationale_id=rationale_id,
            bundle=bundle,
        )
        med.insert_event(
            conn,
            "handoff_prepared",
            handoff_package(e, bundle, now),
            now=now,
            session_id=e.session_id,
            bundle=bundle,
        )
        dispute = disputes_store.get_dispute(conn, e.dispute_id)
        if dispute and can_move(dispute.lifecycle_state, LifecycleState.ESCALATED):
            disputes_store.move_dispute(
                conn,
                e.dispute_id,
                dispute.lifecycle_state,
                LifecycleState.ESCALATED,
                now,
                f"mediation:{e.trigger}",
            )
        if alert_solvers and solvers:
            assigned = dispute.assigned_solver if dispute else None
            recipients = routed_recipients(assigned, solvers) if e.session_id else solvers
            queue_handoff(
                conn,
                audience,
                dispute_id=e.dispute_id,
                session_id=e.session_id,
                notif_type=NotificationType.ESCALATION_RECOMMENDED,
                recipients=recipients,
                body=messages.escalation_body(e.dispute_id, e.session_id, e.trigger),
                now=now,
            )
        queue_headline(
            conn, audience, e.dispute_id, headline.escalation_subject(e.session_id, e.trigger), now
        )
    logger.info(
        "dispute=%s session=%s escalated trigger=%s",
        short(e.dispute_id),
        short(e.session_id),
        e.trigger,
    )
    return "escalated"
