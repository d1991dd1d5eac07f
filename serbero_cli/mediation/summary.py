"""Summaries for human solvers and closing delivered sessions (docs/mediation.md#summaries)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from serbero_cli.delivery import inbox
from serbero_cli.delivery.observers import queue_headline
from serbero_cli.delivery.outbox import flush_outbox
from serbero_cli.domain import headline
from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.notifications import NotificationStatus, NotificationType
from serbero_cli.domain.sessions import SessionState
from serbero_cli.mediation import escalation, messages, policy
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.evaluate import initiator_of, record_failure, session_context, transcript
from serbero_cli.mediation.policy import EscalationTrigger
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import notifications as outbox
from serbero_cli.store import rationales
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import Connection
from serbero_cli.store.sessions import SessionRow

if TYPE_CHECKING:
    from serbero_cli.reasoning.parsing import SummaryOutput

logger = logging.getLogger(__name__)

# Every type mediate-once queues, so one run delivers what it decided.
MEDIATION_DM_TYPES = (
    NotificationType.MEDIATION_SUMMARY,
    NotificationType.ESCALATION_RECOMMENDED,
    NotificationType.ASSIGNMENT,
    NotificationType.TRANSCRIPT,
    NotificationType.OBSERVER,
    NotificationType.RESOLUTION_REPORT,
)


async def generate_summaries(ctx: RunContext) -> None:
    """Summarize every `classified` session (model work, skipped while the provider is unhealthy)."""
    from serbero_cli.reasoning.parsing import MalformedResponse
    from serbero_cli.reasoning.providers import ProviderError

    for session in sess.sessions_in_state(ctx.store, SessionState.CLASSIFIED):
        if not await ctx.model_ready():
            return
        followups = sess.count_events(ctx.store.conn, session.session_id, "classification_produced")
        context = session_context(
            ctx,
            session,
            initiator_of(ctx, session.dispute_id),
            followups,
            session.current_classification,
            session.current_confidence,
        )
        try:
            out = await ctx.reasoner.summarize(context, transcript(ctx, session.session_id))
        except ProviderError as exc:
            record_failure(ctx, session, exc.category)
            continue
        except MalformedResponse:
            record_failure(ctx, session, "malformed_response")
            continue
        _record_summary(ctx, session, out)


def _record_summary(ctx: RunContext, session: SessionRow, out: SummaryOutput) -> None:
    now = ctx.now()
    label = session.current_classification or "unclear"
    confidence = session.current_confidence if session.current_confidence is not None else 0.0
    blocked = policy.check_summary(out)
    if blocked:
        with ctx.store.immediate() as conn:
            rid = _rationale(ctx, conn, session.session_id, out.rationale)
        ctx.escalate(session.dispute_id, session.session_id, blocked, rationale_refs=[rid])
        return
    dispute = disputes_store.get_dispute(ctx.store, session.dispute_id)
    recipients = escalation.routed_recipients(
        dispute.assigned_solver if dispute else None, ctx.solvers
    )
    body = messages.summary_body(
        session.dispute_id,
        session.session_id,
        label,
        confidence,
        out.next_step.strip(),
        out.summary,
    )
    with ctx.store.immediate() as conn:
        if not med.move_session(
            conn, session.session_id, (SessionState.CLASSIFIED,), SessionState.SUMMARY_PENDING, now
        ):
            return
        rid = _rationale(ctx, conn, session.session_id, out.rationale)
        sess.insert_summary(
            conn,
            {
                "session_id": session.session_id,
                "dispute_id": session.dispute_id,
                "classification": label,
                "confidence": confidence,
                "suggested_next_step": out.next_step.strip(),
                "summary_text": out.summary,
                "prompt_bundle_id": ctx.loaded[0],
                "policy_hash": ctx.loaded[1],
                "rationale_id": rid,
                "generated_at": now,
            },
        )
        med.insert_event(
            conn,
            "summary_generated",
            {"classification": label, "confidence": confidence, "rationale_id": rid},
            now=now,
            session_id=session.session_id,
            rationale_id=rid,
            bundle=ctx.loaded,
        )
        sess.update_session(conn, session.session_id, consecutive_eval_failures=0)
        if recipients:
            escalation.queue_handoff(
                conn,
                ctx.audience,
                dispute_id=session.dispute_id,
                session_id=session.session_id,
                notif_type=NotificationType.MEDIATION_SUMMARY,
                recipients=recipients,
                body=body,
                now=now,
            )
            queue_headline(
                conn, ctx.audience, session.dispute_id, headline.SUBJECT_FACTS_GATHERED, now
            )
    ctx.result.summaries_generated += 1
    logger.info(
        "session=%s summary queued for %d solvers", short(session.session_id), len(recipients)
    )
    if not recipients:
        ctx.escalate(session.dispute_id, session.session_id, EscalationTrigger.NOTIFICATION_FAILED)


def _rationale(ctx: RunContext, conn: Connection, session_id: str, text: str) -> str | None:
    return rationales.store_rationale(
        conn,
        text,
        session_id=session_id,
        provider=ctx.config.reasoning.provider,
        model=ctx.config.reasoning.model,
        bundle_id=ctx.loaded[0],
        policy_hash=ctx.loaded[1],
        now=ctx.now(),
    )


async def deliver_and_settle(ctx: RunContext, sender: Any) -> None:
    """6c: send mediation's outbox rows, then close delivered summaries or escalate undeliverable ones."""
    max_attempts = ctx.config.delivery.max_attempts
    relays: dict[str, list[str]] = {}
    if outbox.count_due(
        ctx.store, now=ctx.now(), max_attempts=max_attempts, types=MEDIATION_DM_TYPES
    ):
        relays = await inbox.for_audience(
            ctx.store, ctx.pool, ctx.audience, ctx.now(), ctx.config.chat.fetch_timeout_seconds
        )
    flushed = await flush_outbox(
        ctx.store,
        sender,
        clock=ctx.clock,
        max_attempts=max_attempts,
        types=MEDIATION_DM_TYPES,
        stop=ctx.stop,
        inbox_relays=lambda pubkey: relays.get(pubkey, []),
    )
    ctx.result.dms_delivered += flushed.sent
    ctx.result.dms_failed += flushed.failed
    settle_summaries(ctx)


def settle_summaries(ctx: RunContext) -> None:
    max_attempts = ctx.config.delivery.max_attempts
    for session in sess.sessions_in_state(ctx.store, SessionState.SUMMARY_PENDING):
        statuses = outbox.statuses_for(
            ctx.store, session.dispute_id, NotificationType.MEDIATION_SUMMARY
        )
        if any(status == NotificationStatus.SENT for status, _ in statuses):
            _close_delivered(ctx, session)
        elif statuses and all(
            status == NotificationStatus.FAILED and attempts >= max_attempts
            for status, attempts in statuses
        ):
            ctx.escalate(
                session.dispute_id, session.session_id, EscalationTrigger.NOTIFICATION_FAILED
            )


def _close_delivered(ctx: RunContext, session: SessionRow) -> None:
    now = ctx.now()
    with ctx.store.immediate() as conn:
        if not med.move_session(
            conn,
            session.session_id,
            (SessionState.SUMMARY_PENDING,),
            SessionState.SUMMARY_DELIVERED,
            now,
        ):
            return
        med.move_session(
            conn, session.session_id, (SessionState.SUMMARY_DELIVERED,), SessionState.CLOSED, now
        )
        med.insert_event(
            conn,
            "session_closed",
            {"dispute_id": session.dispute_id, "reason": "summary_delivered"},
            now=now,
            session_id=session.session_id,
            bundle=ctx.loaded,
        )
        disputes_store.move_dispute(
            conn,
            session.dispute_id,
            LifecycleState.WAITING,
            LifecycleState.TAKEN,
            now,
            "mediation:summary_delivered",
        )
    logger.info("session=%s summary delivered; session closed", short(session.session_id))
