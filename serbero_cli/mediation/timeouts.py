"""mediate-once's timeouts: party-unresponsive and overall session timeouts (docs/mediation.md#timeouts)."""

from __future__ import annotations

from serbero_cli.domain.sessions import SessionState
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.policy import EscalationTrigger
from serbero_cli.store import sessions as sess
from serbero_cli.store.clock import clamp
from serbero_cli.store.sessions import SessionRow


def due_timeout(
    session: SessionRow, now: int, party_timeout: int, session_timeout: int
) -> EscalationTrigger | None:
    """The trigger a live session's clock calls for now, or None. party_unresponsive wins when both are due."""
    started_at = clamp(
        session.started_at, now
    )  # a clock that ran ahead must not freeze the timeouts
    if session.state == SessionState.AWAITING_RESPONSE and party_timeout > 0:
        last = max(
            clamp(t, now)
            for t in (
                started_at,
                session.buyer_last_seen_inner_ts,
                session.seller_last_seen_inner_ts,
            )
            if t is not None
        )
        if now > last + party_timeout:
            return EscalationTrigger.PARTY_UNRESPONSIVE
    if session_timeout > 0 and now > started_at + session_timeout:
        return EscalationTrigger.MEDIATION_TIMEOUT
    return None


def apply_timeouts(ctx: RunContext) -> None:
    cfg = ctx.config.mediation
    for session in sess.live_sessions(ctx.store):
        trigger = due_timeout(
            session, ctx.now(), cfg.party_response_timeout_seconds, cfg.session_timeout_seconds
        )
        if trigger:
            ctx.escalate(session.dispute_id, session.session_id, trigger)
