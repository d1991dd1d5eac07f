"""Starting sessions, the last step of mediate-once (docs/mediation.md#eligibility, #opening-a-session,
#take-outcomes and #solver-authorization).

For up to `max_starts` eligible disputes: the opening classification, then a take request per
dispute that the policy lets through, ONE shared wait for the node's replies, and the session
opened in one BEGIN IMMEDIATE per successful take.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serbero_cli.delivery.observers import queue_headline
from serbero_cli.domain import headline
from serbero_cli.domain import notices as core_messages
from serbero_cli.domain.dispute_events import RESOLVED_STATUSES
from serbero_cli.domain.lifecycle import UNTAKEN, LifecycleState
from serbero_cli.domain.notifications import NotificationType
from serbero_cli.domain.sessions import SessionState
from serbero_cli.mediation import auth, chat_io, messages, policy
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.evaluate import store_classification
from serbero_cli.mediation.policy import EscalationTrigger, PolicyAction, PolicyDecision
from serbero_cli.mediation.take_match import PendingTake, TakeOutcome, TakeOutcomeKind
from serbero_cli.mediation.transport import TakeTransport
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import notifications as outbox
from serbero_cli.store import rationales, solver_auth
from serbero_cli.store import sessions as sess
from serbero_cli.store.solver_auth import AuthState, AuthStatus

if TYPE_CHECKING:
    from serbero_cli.reasoning.parsing import Classification

logger = logging.getLogger(__name__)

AUTH_REASONS = ("not_authorized", "invalid_pubkey")
POLL_SECONDS = 0.25


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


@dataclass
class Start:
    """One dispute this run tries to open a session for, filled in step by step."""

    dispute_id: str
    initiator: str
    state_at_send: LifecycleState  # the dispute's state when the take request went out
    trigger: str  # why this attempt: first_attempt, retry or auth_probe
    classification: Classification | None = None  # the opening classification
    decision: PolicyDecision | None = None  # the policy's decision on it
    rationale_id: str | None = None
    pending: PendingTake | None = None  # once the request is out
    outcome: TakeOutcome | None = None  # once settled

    @property
    def verdict(self) -> tuple[Classification, PolicyDecision]:
        """The opening classification and the policy's decision, which every take request follows."""
        if self.classification is None or self.decision is None:
            raise ValueError(f"dispute {self.dispute_id} has no opening verdict")
        return self.classification, self.decision


def eligible(ctx: RunContext) -> list[dict[str, Any]]:
    """Eligible disputes, oldest `event_timestamp` first (the id and initiator rule is checked
    here, the others in SQL)."""
    rows = sess.eligible_dispute_candidates(
        ctx.store, now=ctx.now(), retry_interval=ctx.config.mediation.start_retry_interval_seconds
    )
    return [
        r for r in rows if is_uuid(r["dispute_id"]) and r["initiator_role"] in ("buyer", "seller")
    ]


async def start_sessions(ctx: RunContext, max_starts: int) -> None:
    candidates = eligible(ctx)
    if not candidates:
        return
    cfg = ctx.config.mediation
    now = ctx.now()
    state = solver_auth.get_auth(ctx.store)
    gate = auth.gate(state, now, cfg)
    if gate == auth.TERMINATED and state is not None:
        _terminate(ctx, state, candidates)
        return
    if gate == auth.BACKOFF:
        ctx.result.solver_auth_status = "unauthorized"
        ctx.result.skipped("auth_backoff", len(candidates))
        return
    transport = ctx.take_transport
    if transport is None:
        ctx.result.skipped("unsupported_protocol", len(candidates))
        return
    if gate == auth.PROBE:
        ctx.result.solver_auth_status = "probing"
        fresh = [c for c in candidates if c["lifecycle_state"] in UNTAKEN]
        chosen, trigger = fresh[:1], "auth_probe"
    else:
        chosen, trigger = candidates[:max_starts], None
    ctx.result.skipped("max_starts", len(candidates) - len(chosen))
    if not chosen or not await ctx.model_ready():
        return
    starts = [
        Start(
            c["dispute_id"],
            c["initiator_role"],
            c["lifecycle_state"],
            trigger or ("retry" if c["last_start"] is not None else "first_attempt"),
        )
        for c in chosen
    ]
    for start in starts:
        with ctx.store.immediate() as conn:
            med.insert_event(
                conn,
                "start_attempt_started",
                {"dispute_id": start.dispute_id, "trigger": start.trigger},
                now=ctx.now(),
            )
    ctx.result.starts_attempted += len(starts)
    await asyncio.gather(*(_classify_opening(ctx, s) for s in starts))
    to_take = [
        s for s in starts if s.decision is not None and s.decision.action != PolicyAction.ESCALATE
    ]
    if to_take:
        await _take_all(ctx, to_take, transport)
        await _settle_takes(ctx, to_take, probing=gate == auth.PROBE)


def _terminate(ctx: RunContext, state: AuthState, candidates: list[dict[str, Any]]) -> None:
    now = ctx.now()
    if state.status != AuthStatus.TERMINATED:
        with ctx.store.immediate() as conn:
            solver_auth.save_auth(conn, auth.terminate(state), now)
            med.insert_event(
                conn,
                "auth_retry_terminated",
                {"attempt": state.attempts, "cumulative_secs": now - state.first_failure_at},
                now=now,
            )
        logger.error(
            "solver authorization retries exhausted after %d refusals; escalating waiting disputes",
            state.attempts,
        )
    ctx.result.solver_auth_status = "terminated"
    for c in candidates:
        ctx.escalate(c["dispute_id"], None, EscalationTrigger.AUTHORIZATION_LOST)


async def _classify_opening(ctx: RunContext, start: Start) -> None:
    from serbero_cli.reasoning.parsing import MalformedResponse
    from serbero_cli.reasoning.providers import ProviderError
    from serbero_cli.reasoning.request import SessionContext

    context = SessionContext(
        None, start.dispute_id, start.initiator, ctx.loaded[0], ctx.loaded[1], 0, 0
    )
    try:
        c, _ = await ctx.reasoner.classify(context, [])
    except (ProviderError, MalformedResponse) as exc:
        _opening_failed(ctx, start, getattr(exc, "category", "malformed_response"))
        return
    decision = policy.decide(c, opening=True, followup_number=0)
    start.classification, start.decision = c, decision
    verdict = {
        "dispute_id": start.dispute_id,
        "decision": decision.action,
        "classification": c.classification,
        "confidence": c.confidence,
    }
    if decision.trigger:
        verdict["trigger"] = decision.trigger
    with ctx.store.immediate() as conn:
        start.rationale_id = store_classification(ctx, conn, None, c)
        med.insert_event(
            conn,
            "reasoning_verdict",
            verdict,
            now=ctx.now(),
            rationale_id=start.rationale_id,
            bundle=ctx.loaded,
        )
    if decision.trigger is not None:  # the policy escalates
        ctx.escalate(start.dispute_id, None, decision.trigger, rationale_refs=[start.rationale_id])
        with ctx.store.immediate() as conn:
            med.insert_event(
                conn,
                "start_attempt_stopped",
                {
                    "dispute_id": start.dispute_id,
                    "stop_reason": "policy_escalate",
                    "trigger": decision.trigger,
                },
                now=ctx.now(),
            )


def _opening_failed(ctx: RunContext, start: Start, category: str) -> None:
    """A failed opening is retried by later runs; the third failure escalates."""
    ctx.result.evaluation_failures += 1
    with ctx.store.immediate() as conn:
        n = sess.count_dispute_events(conn, start.dispute_id, "reasoning_call_failed") + 1
        med.insert_event(
            conn,
            "reasoning_call_failed",
            {
                "attempt_count": n,
                "dispute_id": start.dispute_id,
                "error_category": category,
                "model": ctx.config.reasoning.model,
                "provider": ctx.config.reasoning.provider,
            },
            now=ctx.now(),
            bundle=ctx.loaded,
        )
        if n < policy.MAX_CONSECUTIVE_FAILURES:
            med.insert_event(
                conn,
                "start_attempt_stopped",
                {"dispute_id": start.dispute_id, "stop_reason": "reasoning_failed"},
                now=ctx.now(),
            )
    logger.warning(
        "dispute=%s opening classification failed category=%s attempt=%d",
        short(start.dispute_id),
        category,
        n,
    )
    if n >= policy.MAX_CONSECUTIVE_FAILURES:
        ctx.escalate(start.dispute_id, None, EscalationTrigger.REASONING_UNAVAILABLE)


async def _take_all(ctx: RunContext, starts: list[Start], transport: TakeTransport) -> None:
    """Publish every take request, then wait once for all replies."""
    from serbero_cli.nostr import mostro as proto

    secret = ctx.config.private_key
    for start in starts:
        request_id = proto.new_request_id()
        now = ctx.now()  # the node drops rumors older than 10 s: build right before publishing
        try:
            if transport == TakeTransport.NIP44:
                event = proto.build_take_kind14(
                    secret,
                    ctx.config.mostro_pubkey,
                    start.dispute_id,
                    request_id,
                    pow_bits=ctx.take_pow_bits,
                    now=now,
                )
            else:
                event = proto.build_take_giftwrap(
                    secret,
                    ctx.config.mostro_pubkey,
                    start.dispute_id,
                    request_id,
                    pow_bits=ctx.take_pow_bits,
                    now=now,
                )
        except proto.TakeBuildError as exc:
            logger.error("dispute=%s take not sent: %s", short(start.dispute_id), exc.reason)
            start.outcome = TakeOutcome(TakeOutcomeKind.INVALID, exc.reason)
            continue
        published = await ctx.pool.publish(event, ctx.config.delivery.send_timeout_seconds)
        if not published.ok:
            ctx.result.publish_failures += 1
            start.outcome = TakeOutcome(TakeOutcomeKind.INVALID, "publish_failed")
            logger.warning(
                "dispute=%s take request not accepted by any relay: %s",
                short(start.dispute_id),
                published.error_message(),
            )
            continue
        start.pending = PendingTake(start.dispute_id, request_id, now, transport)
        logger.info(
            "dispute=%s take request sent transport=%s pow=%d",
            short(start.dispute_id),
            transport,
            ctx.take_pow_bits,
        )
    await _wait_for_replies(
        ctx, [(s, s.pending) for s in starts if s.pending is not None], transport
    )


async def _wait_for_replies(
    ctx: RunContext, sent: list[tuple[Start, PendingTake]], transport: TakeTransport
) -> None:
    from serbero_cli.mediation.take_match import match_reply
    from serbero_cli.nostr import mostro as proto
    from serbero_cli.nostr import mostro_messages as mm

    if not sent:
        return
    first_send = min(take.sent_at for _, take in sent)
    if transport == TakeTransport.NIP44:
        flt = mm.kind14_reply_filter(
            ctx.config.public_key, ctx.config.mostro_pubkey, first_send - 300
        )
        read = proto.read_kind14_reply
    else:
        flt = mm.giftwrap_reply_filter(
            ctx.config.public_key, ctx.now() - ctx.config.chat.lookback_seconds
        )
        read = proto.read_giftwrap_reply
    pending = {start.dispute_id: (start, take) for start, take in sent}
    seen: set[str] = set()
    deadline = time.monotonic() + ctx.config.mediation.take_reply_wait_seconds
    while pending and time.monotonic() < deadline:
        remaining = max(0.5, deadline - time.monotonic())
        for event in await ctx.pool.fetch_raw(
            [flt], min(remaining, ctx.config.chat.fetch_timeout_seconds)
        ):
            event_id = event.id().to_hex()
            if event_id in seen:
                continue
            seen.add(event_id)
            reply = read(event, ctx.config.private_key, ctx.config.mostro_pubkey, now=ctx.now())
            if reply is None:
                continue
            matched = match_reply(
                [take for _, take in pending.values()],
                reply,
                serbero_pubkey=ctx.config.public_key,
                serbero_secret=ctx.config.private_key,
            )
            if matched is not None:
                dispute_id, outcome = matched
                pending.pop(dispute_id)[0].outcome = outcome
        if pending:
            await asyncio.sleep(POLL_SECONDS)
    for start, _ in pending.values():
        start.outcome = TakeOutcome(TakeOutcomeKind.INVALID, "timeout")


async def _settle_takes(ctx: RunContext, starts: list[Start], *, probing: bool) -> None:
    # every start that went this far has an outcome: a reply, a failure to send, or a timeout
    settled = [(s, s.outcome) for s in starts if s.outcome is not None]
    any_taken = any(outcome.kind == TakeOutcomeKind.TAKEN for _, outcome in settled)
    auth_refusals = [
        s
        for s, outcome in settled
        if outcome.kind == TakeOutcomeKind.REFUSED and outcome.reason in AUTH_REASONS
    ]
    revisions = await _newest_statuses(ctx, [s.dispute_id for s in auth_refusals])
    counted_failure = None
    for start, outcome in settled:
        if outcome.kind == TakeOutcomeKind.TAKEN:
            if _open_session(ctx, start, outcome):
                ctx.result.sessions_opened += 1
            continue
        ctx.result.take_failures += 1
        reason = (
            f"cant_do:{outcome.reason}"
            if outcome.kind == TakeOutcomeKind.REFUSED
            else str(outcome.reason)
        )
        stop = None
        if start in auth_refusals:
            status = revisions.get(start.dispute_id)
            if status in RESOLVED_STATUSES:
                stop = "not_initiated"
            elif status == "in-progress" or any_taken or start.state_at_send not in UNTAKEN:
                stop = "taken_by_other_solver"
            else:
                counted_failure = counted_failure or reason
        with ctx.store.immediate() as conn:
            med.insert_event(
                conn,
                "take_dispute_issued",
                {"dispute_id": start.dispute_id, "outcome": "failure", "reason": reason},
                now=ctx.now(),
            )
            if stop:
                med.insert_event(
                    conn,
                    "start_attempt_stopped",
                    {"dispute_id": start.dispute_id, "stop_reason": stop},
                    now=ctx.now(),
                )
        logger.warning(
            "dispute=%s take failed: %s%s",
            short(start.dispute_id),
            reason,
            f" ({stop})" if stop else "",
        )
    _update_auth(ctx, counted_failure, any_taken, probing)


async def _newest_statuses(ctx: RunContext, dispute_ids: list[str]) -> dict[str, str]:
    """Re-read the newest 38386 of refused disputes before blaming authorization
    (docs/mediation.md#take-outcomes)."""
    from serbero_cli.mediation.ingest import newest_revisions

    return {d: rev[2] for d, rev in (await newest_revisions(ctx, dispute_ids)).items()}


def _update_auth(
    ctx: RunContext, failure_reason: str | None, any_taken: bool, probing: bool
) -> None:
    cfg, now = ctx.config.mediation, ctx.now()
    with ctx.store.immediate() as conn:
        state = solver_auth.get_auth(conn)
        if failure_reason:
            new_state = auth.record_failure(state, now, failure_reason, cfg)
            solver_auth.save_auth(conn, new_state, now)
            med.insert_event(
                conn,
                "auth_retry_attempt",
                {"attempt": new_state.attempts, "error": failure_reason},
                now=now,
            )
            ctx.result.solver_auth_status = "unauthorized"
            logger.error(
                "Mostro refused Serbero as a solver (%s); next probe in %ds",
                failure_reason,
                auth.backoff_seconds(new_state.attempts, cfg),
            )
            if auth.should_terminate(new_state, now, cfg):
                solver_auth.save_auth(conn, auth.terminate(new_state), now)
                med.insert_event(
                    conn,
                    "auth_retry_terminated",
                    {
                        "attempt": new_state.attempts,
                        "cumulative_secs": now - new_state.first_failure_at,
                    },
                    now=now,
                )
                ctx.result.solver_auth_status = "terminated"
        elif state is not None and probing:
            if any_taken:
                solver_auth.clear_auth(conn)
                med.insert_event(conn, "auth_retry_recovered", {"attempt": state.attempts}, now=now)
                ctx.result.solver_auth_status = "authorized"
                logger.info("solver authorization recovered after %d refusals", state.attempts)
            else:
                solver_auth.save_auth(conn, auth.reschedule(state, now, cfg), now)


def _open_session(ctx: RunContext, start: Start, outcome: TakeOutcome) -> bool:
    """Open the session of a successful take, in one BEGIN IMMEDIATE with the eligibility re-check
    (docs/mediation.md#opening-a-session). False if another actor won."""
    from serbero_cli.nostr.chat_keys import derive_channel

    c, decision = start.verdict
    buyer_pubkey, seller_pubkey = outcome.trade_pubkeys
    secret, now = ctx.config.private_key, ctx.now()
    channels = {
        "buyer": derive_channel(secret, "buyer", buyer_pubkey),
        "seller": derive_channel(secret, "seller", seller_pubkey),
    }
    session_id = str(uuid.uuid4())
    # Nobody has spoken yet when a session opens, so even a `summarize` verdict first asks both
    # parties (a summary waits until both were heard): the opening questions are ours then.
    state = SessionState.AWAITING_RESPONSE
    questions = (
        decision.questions
        if decision.action == PolicyAction.ASK_CLARIFICATION
        else (policy.OPENING_BUYER_QUESTION, policy.OPENING_SELLER_QUESTION)
    )
    with ctx.store.immediate() as conn:
        dispute = disputes_store.get_dispute(ctx.store, start.dispute_id)
        allowed = dispute is not None and (
            dispute.lifecycle_state in UNTAKEN
            or (
                dispute.lifecycle_state in (LifecycleState.TAKEN, LifecycleState.WAITING)
                and med.has_dispute_scoped(conn, start.dispute_id, "start_attempt_started")
            )
        )
        if (
            dispute is None
            or not allowed
            or med.has_any_session(conn, start.dispute_id)
            or med.has_dispute_scoped(conn, start.dispute_id, "escalation_recommended")
        ):
            logger.warning(
                "dispute=%s no longer eligible after the take; no session opened",
                short(start.dispute_id),
            )
            return False
        values = {
            "session_id": session_id,
            "dispute_id": start.dispute_id,
            "state": state,
            "round_count": 0,
            "prompt_bundle_id": ctx.loaded[0],
            "policy_hash": ctx.loaded[1],
            "started_at": now,
            "last_transition_at": now,
            "take_transport": ctx.take_transport,
        }
        for party, ch in channels.items():
            values.update(
                {
                    f"{party}_trade_pubkey": ch.trade_pubkey,
                    f"{party}_shared_pubkey": ch.legacy_pubkey,
                    f"{party}_chat_conv_pubkey": ch.conv_pubkey,
                    f"{party}_chat_sign_pubkey": ch.sign_pubkey,
                }
            )
        sess.insert_session(conn, values)
        med.insert_event(
            conn,
            "take_dispute_issued",
            {"dispute_id": start.dispute_id, "outcome": "success"},
            now=now,
        )
        med.insert_event(
            conn, "session_opened", {}, now=now, session_id=session_id, bundle=ctx.loaded
        )
        if start.rationale_id:
            rationales.rebind_rationale(conn, start.rationale_id, session_id)
        med.insert_event(
            conn,
            "classification_produced",
            {
                "classification": c.classification,
                "confidence": c.confidence,
                "rationale_id": start.rationale_id,
            },
            now=now,
            session_id=session_id,
            rationale_id=start.rationale_id,
            bundle=ctx.loaded,
        )
        sess.update_session(
            conn,
            session_id,
            current_classification=c.classification,
            current_confidence=c.confidence,
        )
        for party, text in zip(("buyer", "seller"), questions, strict=True):
            chat_io.new_outbound_row(
                conn,
                secret=secret,
                session_id=session_id,
                channel=channels[party],
                text=messages.party_question(party, text),
                now=now,
                bundle=ctx.loaded,
                copy_setting=ctx.config.chat.legacy_giftwrap_copy,
            )
        if dispute.lifecycle_state in UNTAKEN:
            disputes_store.move_dispute(
                conn,
                start.dispute_id,
                dispute.lifecycle_state,
                LifecycleState.TAKEN,
                now,
                "mediation:take",
                assigned_solver=ctx.config.public_key,
            )
            body = core_messages.assignment_body(
                start.dispute_id, ctx.config.public_key, by_serbero=True
            )
            outbox.queue(
                conn,
                start.dispute_id,
                NotificationType.ASSIGNMENT,
                ctx.audience.deliveries(ctx.solvers, body),
                now,
            )
        queue_headline(conn, ctx.audience, start.dispute_id, headline.SUBJECT_MEDIATING, now)
    ctx.channels[session_id] = channels
    logger.info(
        "dispute=%s session=%s opened state=%s", short(start.dispute_id), short(session_id), state
    )
    return True
