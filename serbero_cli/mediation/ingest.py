"""Live sessions in mediate-once: takeover check, then ingest party replies (docs/mediation.md#takeover,
docs/mediation.md#ingest)."""

from __future__ import annotations

import logging

from serbero_cli.domain.dispute_events import DISPUTE_KIND, EventRejected, parse_dispute_event
from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.sessions import LIVE_STATES, SessionState
from serbero_cli.mediation import chat_io
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.policy import EscalationTrigger
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import sessions as sess
from serbero_cli.store.sessions import SessionRow

logger = logging.getLogger(__name__)


def load_channels(ctx: RunContext, sessions: list[SessionRow]) -> list[SessionRow]:
    """Derive every live session's chat keys; a session whose keys do not match is skipped
    (docs/wire-formats.md#party-chat)."""
    usable = []
    for session in sessions:
        try:
            ctx.channels[session.session_id] = chat_io.derive_channels(
                ctx.config.private_key, session
            )
            usable.append(session)
        except chat_io.ChannelMismatch as exc:
            logger.error(
                "session=%s chat keys unusable, chat steps skipped: %s",
                short(session.session_id),
                exc,
            )
            ctx.result.errors.append(
                f"session {short(session.session_id)}: chat keys do not match ({exc})"
            )
    return usable


async def newest_revisions(
    ctx: RunContext, dispute_ids: list[str]
) -> dict[str, tuple[int, str, str]]:
    """The newest 38386 revision of each dispute as (created_at, event id, status), in one REQ."""
    if not dispute_ids:
        return {}
    events = await ctx.pool.fetch(
        [
            {
                "kinds": [DISPUTE_KIND],
                "authors": [ctx.config.mostro_pubkey],
                "#d": sorted(set(dispute_ids)),
            }
        ],
        ctx.config.chat.fetch_timeout_seconds,
    )
    newest: dict[str, tuple[int, str, str]] = {}
    now = ctx.now()
    for ev in events:
        try:  # the same checks listen applies: a hostile revision is skipped, never trusted
            parsed = parse_dispute_event(ev, ctx.config.mostro_pubkey, now=now)
        except EventRejected as exc:
            logger.warning("event=%s rejected: %s", short(ev.id, 16), exc)
            continue
        d = parsed.dispute_id
        if d not in newest or (parsed.created_at, parsed.event_id) > newest[d][:2]:
            newest[d] = (parsed.created_at, parsed.event_id, parsed.status)
    return newest


async def check_takeovers(ctx: RunContext, sessions: list[SessionRow]) -> list[SessionRow]:
    """Close sessions whose dispute a human solver took over; return the sessions still live."""
    newest = await newest_revisions(ctx, [s.dispute_id for s in sessions])
    still_live = []
    for session in sessions:
        revision = newest.get(session.dispute_id)
        if revision is None or revision[2] != "in-progress":
            still_live.append(session)
            continue
        created_at, event_id, _ = revision
        if session.take_revision_created_at is None:
            with ctx.store.immediate() as conn:
                sess.update_session(conn, session.session_id, take_revision_created_at=created_at)
            still_live.append(session)
        elif created_at > session.take_revision_created_at:
            _close_taken_over(ctx, session, event_id)
        else:
            still_live.append(session)
    return still_live


async def record_take_revisions(ctx: RunContext) -> None:
    """Remember our own take's `in-progress` revision in the run that opened the session.

    Relays keep only the newest 38386 revision, so if a human took the dispute over before the
    next run, that run would store the takeover's revision as ours and never notice it
    (docs/mediation.md#takeover). Sessions whose revision has not reached the relay yet stay NULL and are
    settled by the next run's takeover check, as before.
    """
    fresh = [s for s in sess.live_sessions(ctx.store) if s.take_revision_created_at is None]
    if fresh:
        await check_takeovers(ctx, fresh)


def _close_taken_over(ctx: RunContext, session: SessionRow, event_id: str) -> None:
    now = ctx.now()
    pinned = (session.prompt_bundle_id, session.policy_hash)
    with ctx.store.immediate() as conn:
        if not med.move_session(
            conn, session.session_id, LIVE_STATES, SessionState.SUPERSEDED_BY_HUMAN, now
        ):
            return
        med.move_session(
            conn, session.session_id, (SessionState.SUPERSEDED_BY_HUMAN,), SessionState.CLOSED, now
        )
        med.insert_event(
            conn,
            "superseded_by_human",
            {"dispute_id": session.dispute_id, "event_id": event_id, "reason": "taken_over"},
            now=now,
            session_id=session.session_id,
            bundle=pinned,
        )
        med.insert_event(
            conn,
            "session_closed",
            {"dispute_id": session.dispute_id, "reason": "taken_over"},
            now=now,
            session_id=session.session_id,
            bundle=pinned,
        )
        disputes_store.move_dispute(
            conn,
            session.dispute_id,
            LifecycleState.WAITING,
            LifecycleState.TAKEN,
            now,
            "mediation:taken_over",
            assigned_solver=None,
        )
    logger.info(
        "session=%s dispute=%s closed: a human solver took the dispute over",
        short(session.session_id),
        short(session.dispute_id),
    )


async def ingest_replies(ctx: RunContext, sessions: list[SessionRow]) -> None:
    """Fetch and store every party reply; flag sessions that reached the round limit."""
    if not sessions:
        return
    opened, rejected = await chat_io.fetch_inbound(
        ctx.pool,
        secret=ctx.config.private_key,
        serbero_pubkey=ctx.config.public_key,
        sessions=sessions,
        channels=ctx.channels,
        now=ctx.now(),
        lookback_seconds=ctx.config.chat.lookback_seconds,
        fetch_timeout=ctx.config.chat.fetch_timeout_seconds,
    )
    ctx.result.replies_rejected += rejected
    for item in opened:
        if item.session.session_id in ctx.round_limit_hits:
            continue
        _ingest_one(ctx, item)


def _ingest_one(ctx: RunContext, item: chat_io.Inbound) -> None:
    message, sid = item.reply, item.session.session_id
    channel = ctx.channels[sid][message.party]
    max_rounds = ctx.config.mediation.max_rounds
    with ctx.store.immediate() as conn:
        session = sess.get_session(conn, sid)
        if session is None or session.state not in LIVE_STATES:
            return
        last_seen = session.last_seen(message.party)
        stale = last_seen is not None and message.inner_created_at < last_seen
        inserted = sess.insert_message(
            conn,
            {
                "session_id": sid,
                "direction": "inbound",
                "party": message.party,
                "shared_pubkey": channel.legacy_pubkey,
                "inner_event_id": message.inner_id,
                "inner_event_created_at": message.inner_created_at,
                "outer_event_id": message.outer_id,
                "content": message.content,
                "prompt_bundle_id": ctx.loaded[0],
                "policy_hash": ctx.loaded[1],
                "persisted_at": ctx.now(),
                "stale": int(stale),
                "envelope": message.envelope,
            },
        )
        if not inserted:
            ctx.result.replies_duplicate += 1
            return
        if stale:
            ctx.result.replies_stale += 1
            return
        counts = sess.fresh_inbound_counts(conn, sid)
        round_count = min(counts["buyer"], counts["seller"])
        sess.update_session(
            conn,
            sid,
            **{
                f"{message.party}_last_seen_inner_ts": message.inner_created_at,
                "round_count": round_count,
            },
        )
    ctx.result.replies_fresh += 1
    logger.info(
        "session=%s party=%s reply stored envelope=%s round_count=%d",
        short(sid),
        message.party,
        message.envelope,
        round_count,
    )
    if round_count >= max_rounds:
        ctx.round_limit_hits[sid] = message.inner_id


def apply_round_limits(ctx: RunContext) -> None:
    """Sessions that reached max_rounds on a fresh reply escalate before any evaluation."""
    for sid, inner_id in ctx.round_limit_hits.items():
        session = sess.get_session(ctx.store.conn, sid)
        if session is not None:
            ctx.escalate(
                session.dispute_id, sid, EscalationTrigger.ROUND_LIMIT, evidence_refs=[inner_id]
            )
