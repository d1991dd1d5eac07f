"""Applying validated dispute events: plan in memory (pure), then write in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from serbero_cli.core import messages
from serbero_cli.core.events import DisputeEvent, in_apply_order
from serbero_cli.core.lifecycle import Decision, decide
from serbero_cli.keys import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sync
from serbero_cli.store.db import Connection
from serbero_cli.store.disputes import DisputeView

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
        if decision.action == "insert":
            views[event.dispute_id] = DisputeView(
                event.dispute_id, decision.to_state, event.status, decision.assigned_solver,
                event.initiator, event.event_timestamp, None)
        elif decision.action == "move":
            views[event.dispute_id] = replace(
                before, lifecycle_state=decision.to_state,
                dispute_status=decision.new_status or before.dispute_status,
                assigned_solver=decision.assigned_solver or before.assigned_solver)
        elif decision.action == "status":
            views[event.dispute_id] = replace(before, dispute_status=decision.new_status)
    return effects


def count_effects(effects: list[Effect], solver_count: int) -> ApplyCounts:
    """What the effects would record and queue (the dry run's numbers, and the real run's too)."""
    counts = ApplyCounts()
    for effect in effects:
        d = effect.decision
        if d.action == "ignore":
            continue
        counts.applied += 1
        if d.action == "insert":
            counts.new += 1
        if d.to_state == "taken":
            counts.taken += 1
        if d.to_state == "resolved":
            counts.resolved += 1
        if d.notify:
            counts.queued += solver_count
    return counts


ResolvedHook = Callable[[Connection, DisputeEvent, DisputeView, int], int]


def write(
    conn: Connection,
    effects: list[Effect],
    *,
    mostro_pubkey: str,
    solvers: list[str],
    now: int,
    on_resolved: ResolvedHook | None = None,
) -> ApplyCounts:
    """Write the effects inside the caller's transaction; advance the cursor. Return the counts."""
    counts = count_effects(effects, len(solvers))
    for effect in effects:
        event, d = effect.event, effect.decision
        sync.advance_cursor(conn, mostro_pubkey, event.created_at, now)
        if d.action == "insert":
            disputes_store.insert_dispute(
                conn, dispute_id=event.dispute_id, event_id=event.event_id, mostro_pubkey=mostro_pubkey,
                initiator_role=event.initiator, dispute_status=event.status,
                event_timestamp=event.event_timestamp, now=now, lifecycle_state=d.to_state,
                assigned_solver=d.assigned_solver)
            logger.info("dispute=%s state=%s status=%s detected", short(event.dispute_id), d.to_state, event.status)
        elif d.action == "move":
            columns: dict[str, object] = {}
            if d.new_status:
                columns["dispute_status"] = d.new_status
            if d.assigned_solver:
                columns["assigned_solver"] = d.assigned_solver
            disputes_store.move_dispute(conn, event.dispute_id, effect.before.lifecycle_state, d.to_state,
                                        now, d.trigger, **columns)
            logger.info("dispute=%s state=%s->%s trigger=%s", short(event.dispute_id),
                        effect.before.lifecycle_state, d.to_state, short(d.trigger, 16))
            if d.to_state == "resolved" and on_resolved is not None:
                counts.queued += on_resolved(conn, event, effect.before, now)
        elif d.action == "status":
            disputes_store.update_dispute(conn, event.dispute_id, dispute_status=d.new_status)
        else:
            logger.debug("dispute=%s event=%s ignored: %s", short(event.dispute_id), short(event.event_id), d.reason)
        if d.notify and solvers:
            outbox.queue(conn, event.dispute_id, d.notify, _bodies(d, event, solvers), now)
    return counts


def _bodies(d: Decision, event: DisputeEvent, solvers: list[str]) -> list[tuple[str, str]]:
    if d.notify == "initial":
        body = messages.initial_body(event.dispute_id, event.initiator or "unknown", event.event_timestamp)
    else:
        body = messages.assignment_body(event.dispute_id, d.assigned_solver)
    return [(solver, body) for solver in solvers]
