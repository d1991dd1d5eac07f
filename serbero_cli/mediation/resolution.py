"""The resolution hook `listen` calls when Mostro reports a dispute resolved (docs/mediation.md#resolution-hook).

It runs inside listen's BEGIN IMMEDIATE transaction: it closes a live session as superseded by
a human, and when any mediation context exists it queues a `mediation_resolution_report` for
every solver and records `resolved_externally_reported`. Mostro publishes the same statuses for a
solver's verdict and for a user-side resolution, so the report never says who resolved it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from serbero_cli.config import Config
from serbero_cli.delivery.audience import Audience
from serbero_cli.domain import headline
from serbero_cli.domain.notifications import NotificationType
from serbero_cli.domain.sessions import LIVE_STATES, SessionState
from serbero_cli.mediation.messages import NO_SESSION
from serbero_cli.safetext import header_value, short
from serbero_cli.store import mediation as med
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import Connection

if TYPE_CHECKING:
    from serbero_cli.domain.dispute_events import DisputeEvent
    from serbero_cli.domain.lifecycle import DisputeView

logger = logging.getLogger(__name__)

CONTEXT_KINDS = ("reasoning_verdict", "take_dispute_issued", "escalation_recommended")


def make_resolution_hook(
    config: Config,
) -> Callable[[Connection, DisputeEvent, DisputeView, int], int]:
    """The hook listen calls, inside its transaction, for each dispute it moves to `resolved`."""
    audience = Audience.from_config(config)

    def hook(conn: Connection, event: DisputeEvent, before: DisputeView, now: int) -> int:
        return on_dispute_resolved(
            conn,
            dispute_id=event.dispute_id,
            event_id=event.event_id,
            final_status=event.status,
            audience=audience,
            now=now,
        )

    return hook


def on_dispute_resolved(
    conn: Connection,
    *,
    dispute_id: str,
    event_id: str,
    final_status: str,
    audience: Audience,
    now: int,
) -> int:
    """Close a live session and report to solvers when mediation was involved. Return rows queued."""
    session = med.latest_session(conn, dispute_id)
    state_before = session["state"] if session else None
    if session and session["state"] in LIVE_STATES:
        _supersede(conn, session, dispute_id, event_id, final_status, now)
    verdicts = med.dispute_scoped_events(conn, dispute_id, CONTEXT_KINDS)
    if session is None and not verdicts:
        return 0
    classification, confidence = _classification(conn, session, verdicts)
    outbound = med.published_parties(conn, session["session_id"]) if session else 0
    narrative = _narrative(session, state_before, verdicts)
    body = report_body(
        dispute_id,
        session["session_id"] if session else None,
        classification,
        confidence,
        outbound,
        final_status,
        narrative,
    )
    queued = outbox.queue(
        conn,
        dispute_id,
        NotificationType.RESOLUTION_REPORT,
        audience.deliveries(audience.solvers, body),
        now,
    )
    med.insert_event(
        conn,
        "resolved_externally_reported",
        {
            "classification": classification,
            "confidence": confidence,
            "dispute_id": dispute_id,
            "final_dispute_status": final_status,
            "narrative": narrative,
            "outbound_party_messages_count": outbound,
            "session_id": session["session_id"] if session else None,
        },
        now=now,
    )
    logger.info(
        "dispute=%s resolved with mediation context; report queued for %d solvers",
        short(dispute_id),
        queued,
    )
    return queued


def report_body(
    dispute_id: str,
    session_id: str | None,
    classification: str | None,
    confidence: float | None,
    outbound: int,
    final_status: str,
    narrative: str,
) -> str:
    """The `resolved: <status>` message: subject line, then `mediation_resolution_report/v2` and
    its exact machine lines, then the narrative."""
    if classification is not None and confidence is not None:
        label = f"Classification: {header_value(classification)} (confidence {confidence:.2f})"
    else:
        label = "Classification: <none recorded>"
    return headline.message(
        headline.subject_line(dispute_id, headline.resolved(final_status)),
        None,
        [
            "mediation_resolution_report/v2",
            f"Dispute: {dispute_id}",
            f"Session: {session_id or NO_SESSION}",
            label,
            f"Outbound party messages: {outbound}",
            f"Final dispute status: {header_value(final_status)}",
        ],
        narrative,
    )


def _supersede(
    conn: Connection,
    session: dict[str, Any],
    dispute_id: str,
    event_id: str,
    final_status: str,
    now: int,
) -> None:
    sid = session["session_id"]
    pinned = (session["prompt_bundle_id"], session["policy_hash"])
    if not med.move_session(conn, sid, LIVE_STATES, SessionState.SUPERSEDED_BY_HUMAN, now):
        return
    med.move_session(conn, sid, (SessionState.SUPERSEDED_BY_HUMAN,), SessionState.CLOSED, now)
    med.insert_event(
        conn,
        "superseded_by_human",
        {
            "dispute_id": dispute_id,
            "event_id": event_id,
            "reason": "dispute_resolved_externally",
            "resolution_status": final_status,
        },
        now=now,
        session_id=sid,
        bundle=pinned,
    )
    med.insert_event(
        conn,
        "session_closed",
        {"dispute_id": dispute_id, "reason": "dispute_resolved_externally"},
        now=now,
        session_id=sid,
        bundle=pinned,
    )
    logger.info("session=%s dispute=%s closed: resolved externally", short(sid), short(dispute_id))


def _classification(
    conn: Connection, session: dict[str, Any] | None, verdicts: list[dict[str, Any]]
) -> tuple[str | None, float | None]:
    if session is not None:
        produced = med.session_events(conn, session["session_id"], "classification_produced")
        if produced:
            payload = produced[-1]["payload"] or {}
            return payload.get("classification"), payload.get("confidence")
    for verdict in reversed([v for v in verdicts if v["kind"] == "reasoning_verdict"]):
        payload = verdict["payload"] or {}
        if payload.get("classification") is not None:
            return payload.get("classification"), payload.get("confidence")
    return None, None


def _narrative(
    session: dict[str, Any] | None, state_before: str | None, verdicts: list[dict[str, Any]]
) -> str:
    resolved = "Mostro reports this dispute resolved (by a solver or by the parties)."
    if session is not None:
        if state_before in LIVE_STATES:
            return (
                f"{resolved} Serbero's mediation session was in state {state_before} and is now closed; "
                "no further messages will be sent to the parties."
            )
        return f"{resolved} Serbero's mediation session had already ended in state {state_before}."
    kinds = {v["kind"] for v in verdicts}
    if "escalation_recommended" in kinds:
        why = "the dispute was escalated to a human before Serbero took it"
    elif "take_dispute_issued" in kinds:
        why = "Serbero's take request on Mostro did not succeed"
    else:
        why = "the opening assessment did not lead to a take"
    return f"{resolved} No mediation session was opened: {why}."
