"""mediate-once's evaluation: evaluate sessions with new replies, at most once per session
(docs/mediation.md#evaluation)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.sessions import SessionState
from serbero_cli.mediation import chat_io, messages, policy
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.policy import EscalationTrigger, PolicyAction, PolicyDecision
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import rationales
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import Connection
from serbero_cli.store.sessions import SessionRow

if TYPE_CHECKING:
    from serbero_cli.reasoning.parsing import Classification
    from serbero_cli.reasoning.request import SessionContext, TranscriptEntry

logger = logging.getLogger(__name__)


def transcript(ctx: RunContext, session_id: str) -> list[TranscriptEntry]:
    """The model's view of the chat: the last N non-stale rows, published outbound and inbound
    (docs/mediation.md#model-requests)."""
    from serbero_cli.reasoning.request import TranscriptEntry

    rows = sess.transcript_rows(ctx.store.conn, session_id, ctx.config.chat.transcript_max_messages)
    return [
        TranscriptEntry(
            r["inner_event_created_at"],
            "serbero" if r["direction"] == "outbound" else r["party"],
            r["content"],
        )
        for r in rows
    ]


def session_context(
    ctx: RunContext,
    session: SessionRow,
    initiator: str,
    followup_number: int,
    classification: str | None = None,
    confidence: float | None = None,
) -> SessionContext:
    from serbero_cli.reasoning.request import SessionContext

    return SessionContext(
        session.session_id,
        session.dispute_id,
        initiator,
        ctx.loaded[0],
        ctx.loaded[1],
        session.round_count,
        followup_number,
        classification,
        confidence,
    )


def initiator_of(ctx: RunContext, dispute_id: str) -> str:
    dispute = disputes_store.get_dispute(ctx.store, dispute_id)
    return (dispute.initiator_role if dispute else None) or "unknown"


def note_bundle_change(ctx: RunContext, session: SessionRow) -> None:
    """A prompt edit between runs is recorded once per session, never escalated."""
    if session.policy_hash == ctx.loaded[1]:
        return
    with ctx.store.immediate() as conn:
        if sess.count_events(conn, session.session_id, "policy_bundle_changed"):
            return
        med.insert_event(
            conn,
            "policy_bundle_changed",
            {"loaded_hash": ctx.loaded[1], "pinned_hash": session.policy_hash},
            now=ctx.now(),
            session_id=session.session_id,
            bundle=ctx.loaded,
        )
    logger.warning(
        "NOTICE session=%s prompt bundle changed since it opened: pinned=%s loaded=%s",
        short(session.session_id),
        short(session.policy_hash, 16),
        short(ctx.loaded[1], 16),
    )


def record_failure(ctx: RunContext, session: SessionRow, category: str) -> None:
    """Count a failed evaluation or summary; the third in a row escalates (docs/mediation.md#evaluation)."""
    with ctx.store.immediate() as conn:
        current = sess.get_session(conn, session.session_id)
        if current is None:
            return  # the session row is gone (pruned): nothing left to count against
        failures = current.consecutive_eval_failures + 1
        sess.update_session(conn, session.session_id, consecutive_eval_failures=failures)
        med.insert_event(
            conn,
            "reasoning_call_failed",
            {
                "attempt_count": failures,
                "dispute_id": session.dispute_id,
                "error_category": category,
                "model": ctx.config.reasoning.model,
                "provider": ctx.config.reasoning.provider,
            },
            now=ctx.now(),
            session_id=session.session_id,
            bundle=ctx.loaded,
        )
    ctx.result.evaluation_failures += 1
    logger.warning(
        "session=%s reasoning failed category=%s consecutive=%d",
        short(session.session_id),
        category,
        failures,
    )
    if failures >= policy.MAX_CONSECUTIVE_FAILURES:
        ctx.escalate(
            session.dispute_id, session.session_id, EscalationTrigger.REASONING_UNAVAILABLE
        )


def store_classification(
    ctx: RunContext, conn: Connection, session_id: str | None, c: Classification
) -> str | None:
    """Rationale (if any) and `classification_produced` for a session, in the caller's transaction."""
    rid = rationales.store_rationale(
        conn,
        c.rationale,
        session_id=session_id,
        provider=ctx.config.reasoning.provider,
        model=ctx.config.reasoning.model,
        bundle_id=ctx.loaded[0],
        policy_hash=ctx.loaded[1],
        now=ctx.now(),
    )
    if session_id is not None:
        med.insert_event(
            conn,
            "classification_produced",
            {"classification": c.classification, "confidence": c.confidence, "rationale_id": rid},
            now=ctx.now(),
            session_id=session_id,
            rationale_id=rid,
            bundle=ctx.loaded,
        )
        sess.update_session(
            conn,
            session_id,
            current_classification=c.classification,
            current_confidence=c.confidence,
        )
    return rid


async def evaluate_sessions(ctx: RunContext, sessions: list[SessionRow]) -> None:
    for session in sessions:
        if session.session_id in ctx.round_limit_hits or session.session_id not in ctx.channels:
            continue
        conn = ctx.store.conn  # plain reads: the decisions below re-check under BEGIN IMMEDIATE
        current = sess.get_session(conn, session.session_id)
        counts = sess.fresh_inbound_counts(conn, session.session_id)
        followup_number = sess.count_events(conn, session.session_id, "classification_produced")
        total_fresh = counts["buyer"] + counts["seller"]
        if (
            current is None
            or current.state != SessionState.AWAITING_RESPONSE
            or total_fresh <= current.round_count_last_evaluated
        ):
            continue
        if not await ctx.model_ready():
            return
        await _evaluate(ctx, current, total_fresh, followup_number)


async def _evaluate(
    ctx: RunContext, session: SessionRow, total_fresh: int, followup_number: int
) -> None:
    from serbero_cli.reasoning.parsing import MalformedResponse
    from serbero_cli.reasoning.providers import ProviderError

    note_bundle_change(ctx, session)
    ctx.result.evaluations += 1
    context = session_context(ctx, session, initiator_of(ctx, session.dispute_id), followup_number)
    try:
        c, _ = await ctx.reasoner.classify(context, transcript(ctx, session.session_id))
    except ProviderError as exc:
        record_failure(ctx, session, exc.category)
        return
    except MalformedResponse:
        record_failure(ctx, session, "malformed_response")
        return
    decision = policy.decide(c, opening=False, followup_number=followup_number)
    with ctx.store.immediate() as conn:
        rid = store_classification(ctx, conn, session.session_id, c)
    if decision.trigger is not None:  # the policy escalates
        ctx.escalate(session.dispute_id, session.session_id, decision.trigger, rationale_refs=[rid])
        return
    marker = {
        "round_count_last_evaluated": total_fresh,
        "consecutive_eval_failures": 0,
        "last_transition_at": ctx.now(),
    }
    if decision.action == PolicyAction.SUMMARIZE:
        counts = sess.fresh_inbound_counts(ctx.store.conn, session.session_id)
        if not policy.both_parties_heard(counts):
            await _wait_for_other_party(ctx, session, counts, marker)
            return
        with ctx.store.immediate() as conn:
            if med.move_session(
                conn,
                session.session_id,
                (SessionState.AWAITING_RESPONSE,),
                SessionState.CLASSIFIED,
                ctx.now(),
            ):
                sess.update_session(conn, session.session_id, **marker)
        return
    await _ask_followup(ctx, session, decision, followup_number, marker)


async def _wait_for_other_party(
    ctx: RunContext, session: SessionRow, counts: dict[str, int], marker: dict[str, int]
) -> None:
    """A summary waits until both parties have said something: a "facts gathered" handoff after
    one side only misleads the solver. The party who answered is thanked once; the silent party's
    timeout still escalates `party_unresponsive`."""
    channels = ctx.channels[session.session_id]
    note = messages.waiting_note()
    with ctx.store.immediate() as conn:
        current = sess.get_session(conn, session.session_id)
        if (
            current is None
            or current.state != SessionState.AWAITING_RESPONSE
            or disputes_store.lifecycle_state(conn, session.dispute_id) == LifecycleState.RESOLVED
        ):
            return
        sess.update_session(conn, session.session_id, **marker)
        for party in ("buyer", "seller"):
            if counts[party] and not sess.has_outbound_text(conn, session.session_id, party, note):
                chat_io.new_outbound_row(
                    conn,
                    secret=ctx.config.private_key,
                    session_id=session.session_id,
                    channel=channels[party],
                    text=note,
                    now=ctx.now(),
                    bundle=ctx.loaded,
                    copy_setting=ctx.config.chat.legacy_giftwrap_copy,
                )
    logger.info(
        "session=%s summary waits: buyer answers=%d seller answers=%d",
        short(session.session_id),
        counts["buyer"],
        counts["seller"],
    )
    stats = await ctx.publish_chat({session.session_id})
    ctx.result.publish_failures += stats.failed


async def _ask_followup(
    ctx: RunContext,
    session: SessionRow,
    decision: PolicyDecision,
    round_number: int,
    marker: dict[str, int],
) -> None:
    channels = ctx.channels[session.session_id]
    with ctx.store.immediate() as conn:
        current = sess.get_session(conn, session.session_id)
        resolved = (
            disputes_store.lifecycle_state(conn, session.dispute_id) == LifecycleState.RESOLVED
        )
        if current is None or current.state != SessionState.AWAITING_RESPONSE or resolved:
            return  # listen resolved it or another actor moved it meanwhile: send nothing
        for party, text in zip(("buyer", "seller"), decision.questions, strict=True):
            chat_io.new_outbound_row(
                conn,
                secret=ctx.config.private_key,
                session_id=session.session_id,
                channel=channels[party],
                text=messages.party_question(party, text, round_number),
                now=ctx.now(),
                bundle=ctx.loaded,
                copy_setting=ctx.config.chat.legacy_giftwrap_copy,
            )
        sess.update_session(conn, session.session_id, **marker)
    stats = await ctx.publish_chat({session.session_id})
    ctx.result.followups_sent += stats.published
    ctx.result.publish_failures += stats.failed
