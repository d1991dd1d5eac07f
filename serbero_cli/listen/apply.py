"""Applying validated dispute events: plan in memory (pure), then write in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from serbero_cli.delivery.audience import Audience
from serbero_cli.domain import notices as messages
from serbero_cli.domain.dispute_events import DisputeEvent, in_apply_order
from serbero_cli.domain.lifecycle import (
    Decision,
    DecisionAction,
    DisputeView,
    LifecycleState,
    decide,
)
from serbero_cli.domain.notifications import NotificationType
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sync
from serbero_cli.store.db import Connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effect:
    """One event's decision, with the dispute as it was just before it."""

    event: DisputeEvent
    decision: Decision
    before: DisputeView | None


@dataclass
class ApplyCounts:
    applied: int = 0
    new: int = 0
    taken: int = 0
    resolved: int = 0
    queued: int = 0


def plan(existing: dict[str, DisputeView], events: list[DisputeEvent]) -> list[Effect]:
    """Decide every event in apply order, chaining state in memory. Pure: touches no database."""
    views = dict(existing)
    effects = []
    for event in in_apply_order(events):
        before = views.get(event.dispute_id)
        decision = decide(before, event)
        effects.append(Effect(event, decision, before))
        if decision.action == DecisionAction.INSERT:
            views[event.dispute_id] = DisputeView(
                event.dispute_id,
                decision.target,
                event.status,
                decision.assigned_solver,
                event.initiator,
                event.event_timestamp,
                None,
                event.created_at,
            )
        elif before is None:  # only an insert has no dispute before it
            continue
        elif decision.action == DecisionAction.MOVE:
            views[event.dispute_id] = replace(
                before,
                lifecycle_state=decision.target,
                dispute_status=decision.new_status or before.dispute_status,
                assigned_solver=decision.assigned_solver or before.assigned_solver,
                revision_created_at=_newest(before, event),
            )
        elif decision.action == DecisionAction.REOPEN:
            views[event.dispute_id] = replace(
                before,
                lifecycle_state=LifecycleState.NEW,
                dispute_status="initiated",
                assigned_solver=None,
                initiator_role=event.initiator,
                event_timestamp=event.created_at,
                last_notified_at=None,
                revision_created_at=_newest(before, event),
                reminders_sent=0,
            )
        elif decision.action == DecisionAction.STATUS and decision.new_status is not None:
            views[event.dispute_id] = replace(
                before,
                dispute_status=decision.new_status,
                revision_created_at=_newest(before, event),
            )
    return effects


def _newest(before: DisputeView, event: DisputeEvent) -> int:
    return max(before.revision_created_at or 0, event.created_at)


def count_effects(effects: list[Effect], fanout: int) -> ApplyCounts:
    """What the effects would record and queue (the dry run's numbers, and the real run's too).

    `fanout` is how many outbox rows one message to every solver makes (solvers × envelopes)."""
    counts = ApplyCounts()
    for effect in effects:
        d = effect.decision
        if d.action == DecisionAction.IGNORE:
            continue
        counts.applied += 1
        if d.action in (DecisionAction.INSERT, DecisionAction.REOPEN):
            counts.new += 1
        if d.to_state == LifecycleState.TAKEN:
            counts.taken += 1
        if d.to_state == LifecycleState.RESOLVED:
            counts.resolved += 1
        if d.notify:
            counts.queued += fanout
    return counts


ResolvedHook = Callable[[Connection, DisputeEvent, DisputeView, int], int]


def write(
    conn: Connection,
    effects: list[Effect],
    *,
    mostro_pubkey: str,
    audience: Audience,
    now: int,
    on_resolved: ResolvedHook | None = None,
) -> ApplyCounts:
    """Write the effects inside the caller's transaction; advance the cursor. Return the counts."""
    solvers = list(audience.solvers)
    counts = count_effects(effects, audience.fanout())
    for effect in effects:
        event, d = effect.event, effect.decision
        sync.advance_cursor(conn, mostro_pubkey, event.created_at, now)
        before = effect.before
        if d.action == DecisionAction.INSERT:
            disputes_store.insert_dispute(
                conn,
                dispute_id=event.dispute_id,
                event_id=event.event_id,
                mostro_pubkey=mostro_pubkey,
                initiator_role=event.initiator,
                dispute_status=event.status,
                event_timestamp=event.event_timestamp,
                now=now,
                lifecycle_state=d.target,
                assigned_solver=d.assigned_solver,
                revision_created_at=event.created_at,
            )
            logger.info(
                "dispute=%s state=%s status=%s detected",
                short(event.dispute_id),
                d.to_state,
                event.status,
            )
        elif d.action == DecisionAction.REOPEN:
            disputes_store.move_dispute(
                conn,
                event.dispute_id,
                LifecycleState.RESOLVED,
                LifecycleState.NEW,
                now,
                d.trigger,
                event_id=event.event_id,
                dispute_status="initiated",
                event_timestamp=event.created_at,
                initiator_role=event.initiator,
                assigned_solver=None,
                last_notified_at=None,
                reminders_sent=0,
                round_started_at=now,
                revision_created_at=event.created_at,
            )
            logger.info(
                "dispute=%s reopened by Mostro: a new round starts", short(event.dispute_id)
            )
        elif d.action == DecisionAction.MOVE and before is not None:
            columns: dict[str, object] = {}
            if d.new_status:
                columns["dispute_status"] = d.new_status
            if d.assigned_solver:
                columns["assigned_solver"] = d.assigned_solver
            disputes_store.move_dispute(
                conn, event.dispute_id, before.lifecycle_state, d.target, now, d.trigger, **columns
            )
            logger.info(
                "dispute=%s state=%s->%s trigger=%s",
                short(event.dispute_id),
                before.lifecycle_state,
                d.to_state,
                short(d.trigger, 16),
            )
            if d.to_state == LifecycleState.RESOLVED and on_resolved is not None:
                counts.queued += on_resolved(conn, event, before, now)
        elif d.action == DecisionAction.STATUS:
            disputes_store.update_dispute(conn, event.dispute_id, dispute_status=d.new_status)
        else:
            logger.debug(
                "dispute=%s event=%s ignored: %s",
                short(event.dispute_id),
                short(event.event_id),
                d.reason,
            )
        if d.action in (DecisionAction.MOVE, DecisionAction.STATUS):
            disputes_store.note_revision(conn, event.dispute_id, event.created_at)
        if d.notify and solvers:
            outbox.queue(
                conn,
                event.dispute_id,
                d.notify,
                audience.deliveries(solvers, _body(d, event, now)),
                now,
            )
    return counts


def _body(d: Decision, event: DisputeEvent, now: int) -> str:
    if d.notify == NotificationType.INITIAL:
        reopened = d.action == DecisionAction.REOPEN
        opened = event.created_at if reopened else event.event_timestamp
        return messages.initial_body(
            event.dispute_id, event.initiator or "unknown", opened, now, reopened=reopened
        )
    return messages.assignment_body(event.dispute_id, d.assigned_solver)
