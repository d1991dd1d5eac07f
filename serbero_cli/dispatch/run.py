"""`run_dispatch_once()`: deliver escalation handoffs to solvers (docs/delivery.md#dispatch).

A real run is: lock → open (migrate) → walk the candidates in handoff-id order → record DB-only
outcomes at once → for a routable handoff connect (lazily, once), claim, send, finalize → result.
A dry run walks the same decisions on a read-only connection and describes the writes and
sends instead of making them. No transaction is open while a DM is on the network.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from serbero_cli.config import Config
from serbero_cli.delivery import inbox
from serbero_cli.delivery.audience import Audience
from serbero_cli.dispatch import sends
from serbero_cli.dispatch.handoff_dm import render_handoff_body
from serbero_cli.dispatch.result import (
    DispatchAction,
    DispatchDecision,
    DispatchResult,
    HandoffOutcome,
)
from serbero_cli.dispatch.routing import resolve_recipients
from serbero_cli.domain.dispatches import DispatchStatus, Route
from serbero_cli.domain.handoff import HandoffPackage, HandoffParseError, parse_handoff
from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.notifications import Envelope, NotificationType
from serbero_cli.domain.transcript import transcript_messages
from serbero_cli.errors import DatabaseError, DatabaseMissing
from serbero_cli.runlock import RunLock
from serbero_cli.runrecord import recorded_run
from serbero_cli.safetext import for_log, short
from serbero_cli.stopping import StopRequested, stop_on_signals
from serbero_cli.store import dispatches, sync
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import Store, open_db
from serbero_cli.store.dispatches import DbError, DispatchRow, HandoffRow

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = dispatches.MAX_ATTEMPTS


def run_dispatch_once(
    config: Config,
    *,
    dry_run: bool,
    limit: int | None = None,
    clock: Callable[[], float] = time.time,
    checkpoint: Callable[[str, object], None] | None = None,
) -> DispatchResult:
    """One dispatch-once run. Return the result; raise LockHeld (75) or DatabaseError (1) early.

    `checkpoint(name, handoff_id)` is called right after a claim and after the sends (tests stop a
    run there to prove recovery)."""
    escalation = config.escalation
    if not dry_run and not escalation.enabled:
        logger.debug("escalation is disabled ([escalation] enabled = false): nothing to do")
        return DispatchResult(enabled=False)
    max_claims = limit if limit is not None else escalation.max_dispatches_per_run
    if dry_run:
        store = _open_for_dry_run(config.db_path)
        try:
            result = DispatchResult(dry_run=True, enabled=escalation.enabled)
            asyncio.run(_Walk(store, config, result, max_claims, clock, dry_run=True).run())
            logger.info("dry run: nothing was written or sent")
            return result
        finally:
            store.close()
    with RunLock(config.db_path, "dispatch", "dispatch-once"):
        store = open_db(config.db_path, busy_timeout_seconds=config.busy_timeout_seconds)
        try:
            stop = StopRequested()
            with recorded_run(store, "dispatch_once", clock) as run, stop_on_signals(stop):
                result = DispatchResult()
                asyncio.run(
                    _Walk(
                        store,
                        config,
                        result,
                        max_claims,
                        clock,
                        dry_run=False,
                        stop=stop,
                        checkpoint=checkpoint,
                    ).run()
                )
                if stop.is_set():
                    result.warnings.append(
                        f"stopped by {stop.name}: unclaimed handoffs are left for the next run"
                    )
                    logger.warning(
                        "stopped by %s: unclaimed handoffs are left for the next run", stop.name
                    )
                if result.exit_code in (0, 4):
                    sync.save_last_run(store, "dispatch_once", result.to_dict(), int(clock()))
                run.finish(result)
            return result
        finally:
            store.close()


def _open_for_dry_run(path: Path) -> Store:
    """Read-only, never migrating; a missing or unmigrated database is exit 1."""
    hint = "a dry run never creates or migrates it; run `serbero dispatch-once` (or `listen`) once first"
    try:
        store = open_db(path, readonly=True)
    except DatabaseMissing as exc:
        raise DatabaseError(f"dry run: {exc} ({hint})") from None
    try:
        pending = dispatches.schema_pending(store)
    except DbError as exc:
        store.close()
        raise DatabaseError(f"dry run: cannot read database {path}: {exc}") from None
    if pending:
        store.close()
        raise DatabaseError(
            f"dry run: database {path} is not migrated ({len(pending)} pending; {hint})"
        )
    return store


def _id16(value: str | None) -> str:
    return short(value, 16)


class _Walk:
    """One pass over the candidates; holds the counters, the lazy relay pool and the result."""

    def __init__(
        self,
        store: Store,
        config: Config,
        result: DispatchResult,
        max_claims: int,
        clock: Callable[[], float],
        *,
        dry_run: bool,
        stop: StopRequested | None = None,
        checkpoint: Callable[[str, object], None] | None = None,
    ):
        self.store, self.config, self.result, self.clock, self.dry_run = (
            store,
            config,
            result,
            clock,
            dry_run,
        )
        self.escalation = config.escalation
        self.max_claims = max_claims
        self.claims = 0
        self.started = clock()
        self.pool: Any = None
        self.sender: Any = None
        self.relays_down = False
        self.label = " (dry run: not recorded)" if dry_run else ""
        self.audience = Audience.from_config(config)
        self.stop = stop or StopRequested()
        self.checkpoint = checkpoint or (lambda name, detail: None)
        self.inbox: dict[
            str, list[str]
        ] = {}  # recipients' DM inbox relays, read once relays are up

    async def run(self) -> None:
        now = int(self.clock())
        stale_before = now - self.escalation.sending_stale_seconds
        try:
            pending = deque(dispatches.sending_dispatches(self.store))
            for page in dispatches.iter_fresh_pages(self.store):
                on_file = dispatches.audit_kinds_for(self.store, [h.id for h in page])
                for handoff in page:
                    while pending and pending[0][0].handoff_event_id < handoff.id:
                        await self._guarded(self._sending(*pending.popleft(), stale_before))
                    await self._guarded(self._fresh(handoff, on_file.get(handoff.id, set())))
            while pending:
                await self._guarded(self._sending(*pending.popleft(), stale_before))
        finally:
            if self.pool is not None:
                await self.pool.close()
        self._log_summary()

    async def _guarded(self, step: Awaitable[None]) -> None:
        """A database failure on one handoff is logged and reported (exit 1); the others still run."""
        try:
            await step
        except DbError as exc:
            logger.error(
                "database error: %s; the handoff stays as it was and is retried next run", exc
            )
            self.result.errors.append(f"database error: {exc}")

    # -- fresh handoffs (docs/delivery.md#dispatch-run-order) ------------------------------

    async def _fresh(self, handoff: HandoffRow, on_file: set[str]) -> None:
        try:
            package = parse_handoff(dispatches.handoff_payload(self.store, handoff.id))
        except HandoffParseError as exc:
            self._parse_failed(handoff, exc.dispute_hint, "deserialize_failed", exc.detail, None)
            return
        try:
            dispute = disputes_store.get_dispute(self.store, package.dispute_id)
        except DbError as exc:  # a failed lookup writes nothing: the handoff is retried next run
            logger.error(
                "handoff=%d dispute=%s lookup failed: %s",
                handoff.id,
                _id16(package.dispute_id),
                exc,
            )
            self.result.errors.append(f"handoff {handoff.id}: dispute lookup failed: {exc}")
            return
        if dispute is None:
            self._parse_failed(
                handoff,
                package.dispute_id,
                "orphan_dispute_reference",
                "dispute_id not found",
                package.trigger,
            )
            return

        def outcome_for(decision: DispatchDecision) -> HandoffOutcome:
            # the action is set by whichever step below settles the handoff
            return HandoffOutcome(
                handoff.id,
                package.dispute_id,
                handoff.session_id,
                decision,
                DispatchAction.NONE,
                trigger=package.trigger,
            )

        if dispute.lifecycle_state == LifecycleState.RESOLVED:
            self._audit_once(
                outcome_for(DispatchDecision.SUPERSEDED),
                dispatches.SUPERSEDED in on_file,
                lambda: dispatches.record_superseded(
                    self.store, handoff, dispute_id=package.dispute_id, now=int(self.clock())
                ),
            )
            return
        decision = resolve_recipients(
            dispute.assigned_solver, self.config.solvers, self.escalation.fallback_to_all_solvers
        )
        if not decision.routable:
            self._audit_once(
                outcome_for(DispatchDecision.UNROUTABLE),
                dispatches.UNROUTABLE in on_file,
                lambda: dispatches.record_unroutable(
                    self.store,
                    handoff,
                    dispute_id=package.dispute_id,
                    configured_solver_count=decision.configured_solver_count,
                    now=int(self.clock()),
                ),
            )
            return
        outcome = outcome_for(DispatchDecision.of(decision.route))
        outcome.recipients = list(decision.recipients)
        if not await self._may_claim(outcome):
            return
        body = render_handoff_body(package)
        if self.dry_run:
            self._plan_send(outcome, DispatchAction.SEND, 1, body)
            return
        now = int(self.clock())
        planned = self._plan(package, list(decision.recipients), body, handoff.session_id, now)
        dispatch_id, why = dispatches.claim_handoff(
            self.store,
            handoff,
            dispute_id=package.dispute_id,
            route=decision.route,
            recipients=list(decision.recipients),
            fallback_broadcast=decision.fallback_broadcast,
            now=now,
            events_json=sends.dump(planned),
        )
        if dispatch_id is None:
            self._not_claimed(outcome, why)
            return
        self.claims += 1
        logger.info(
            "handoff=%d dispute=%s claimed route=%s recipients=%d",
            handoff.id,
            _id16(package.dispute_id),
            decision.route,
            len(decision.recipients),
        )
        await self._deliver(outcome, handoff, planned)

    def _plan(
        self,
        package: HandoffPackage,
        recipients: list[str],
        body: str,
        session_id: str | None,
        now: int,
    ) -> list[sends.PlannedSend]:
        """Build and sign every message of the delivery (before the claim commits)."""
        from serbero_cli.nostr.dm import build_dm

        transcript = self._transcript(package.dispute_id, session_id)
        return sends.plan_sends(
            self.audience,
            recipients,
            package.dispute_id,
            body,
            transcript,
            lambda envelope, recipient, dispute_id, text: build_dm(
                self.config.private_key, envelope, recipient, dispute_id, text, now
            ),
        )

    def _transcript(self, dispute_id: str, session_id: str | None) -> list[str]:
        if session_id is None:
            return []
        return transcript_messages(dispute_id, sess.full_transcript(self.store.conn, session_id))

    def _parse_failed(
        self, handoff: HandoffRow, dispute_id: str, reason: str, detail: str, trigger: str | None
    ) -> None:
        logger.error(
            "handoff=%d dispute=%s parse failed (%s): %s%s",
            handoff.id,
            _id16(dispute_id),
            reason,
            ascii(detail),
            self.label,
        )
        outcome = HandoffOutcome(
            handoff.id,
            dispute_id,
            handoff.session_id,
            DispatchDecision.PARSE_FAILED,
            DispatchAction.RECORD_AUDIT,
            detail=detail,
            trigger=trigger,
        )
        if not self.dry_run and not dispatches.record_parse_failed(
            self.store,
            handoff,
            dispute_id=dispute_id,
            reason=reason,
            detail=detail,
            now=int(self.clock()),
        ):
            outcome.action = DispatchAction.NONE
        self.result.add(outcome, "parse_failed")

    def _audit_once(
        self, outcome: HandoffOutcome, on_file: bool, write: Callable[[], bool]
    ) -> None:
        """Superseded / unroutable: one audit row per handoff id; the handoff stays a candidate
        (docs/delivery.md#dispatch-run-order)."""
        decision = outcome.decision
        if on_file:
            outcome.action, outcome.detail = DispatchAction.NONE, "audit on file"
        elif self.dry_run:
            outcome.action = DispatchAction.RECORD_AUDIT
        else:
            outcome.action = DispatchAction.RECORD_AUDIT if write() else DispatchAction.NONE
        level = logging.INFO if decision == DispatchDecision.SUPERSEDED else logging.WARNING
        logger.log(
            level,
            "handoff=%d dispute=%s %s (%s)%s",
            outcome.handoff_event_id,
            _id16(outcome.dispute_id),
            decision,
            outcome.action,
            self.label,
        )
        self.result.add(outcome, decision)

    # -- stale and in-flight claims (docs/delivery.md#re-sends) ----------------------------

    async def _sending(self, dispatch: DispatchRow, handoff: HandoffRow, stale_before: int) -> None:
        # the action is set by whichever step below settles the delivery
        outcome = HandoffOutcome(
            handoff.id,
            dispatch.dispute_id,
            handoff.session_id,
            DispatchDecision(dispatch.route or Route.BROADCAST),
            DispatchAction.NONE,
            recipients=dispatch.recipients,
            dispatch_id=dispatch.dispatch_id,
            status=DispatchStatus.SENDING,
            attempt=dispatch.attempts,
        )
        stored = sends.load(dispatch.events_json)
        # A row with its events stored is republished at once: the same events cannot show anyone a
        # second copy. A row claimed without them waits until it is stale, as before.
        if stored is None and dispatch.dispatched_at > stale_before:
            outcome.action = DispatchAction.SKIP_IN_FLIGHT
            outcome.detail = f"in flight: attempt {dispatch.attempts}/{MAX_ATTEMPTS}"
            self.result.add(outcome, "in_flight")
            return
        if dispatch.attempts >= MAX_ATTEMPTS:
            self._give_up(outcome, dispatch, handoff, f"gave up after {MAX_ATTEMPTS} attempts")
            return
        try:
            # Same recipients and route, the same body re-rendered from the unchanged payload.
            package = parse_handoff(dispatches.handoff_payload(self.store, handoff.id))
        except HandoffParseError as exc:
            self._give_up(outcome, dispatch, handoff, f"payload no longer parses: {exc.detail}")
            return
        outcome.trigger = package.trigger
        if not await self._may_claim(outcome):
            return
        body = render_handoff_body(package)
        if self.dry_run:
            self._plan_send(outcome, DispatchAction.RESEND, dispatch.attempts + 1, body)
            self.result.counts["resends"] += 1
            return
        now = int(self.clock())
        planned = (
            stored
            if stored is not None
            else self._plan(package, dispatch.recipients, body, handoff.session_id, now)
        )
        if not dispatches.reclaim_dispatch(
            self.store,
            dispatch.dispatch_id,
            seen_attempts=dispatch.attempts,
            now=now,
            events_json=None if stored else sends.dump(planned),
        ):
            self._not_claimed(outcome, "claimed by another run")
            return
        self.claims += 1
        self.result.counts["resends"] += 1
        logger.warning(
            "handoff=%d dispute=%s unfinished claim: republishing (attempt %d/%d)",
            handoff.id,
            _id16(dispatch.dispute_id),
            dispatch.attempts + 1,
            MAX_ATTEMPTS,
        )
        await self._deliver(outcome, handoff, planned)

    def _give_up(
        self, outcome: HandoffOutcome, dispatch: DispatchRow, handoff: HandoffRow, why: str
    ) -> None:
        outcome.action, outcome.detail = DispatchAction.GIVE_UP, why
        outcome.status = DispatchStatus.SEND_FAILED
        if not self.dry_run:
            if dispatches.finalize_dispatch(
                self.store,
                dispatch,
                handoff,
                status=DispatchStatus.SEND_FAILED,
                now=int(self.clock()),
            ):
                logger.error(
                    "handoff=%d dispute=%s %s: marked send_failed, nothing sent",
                    handoff.id,
                    _id16(dispatch.dispute_id),
                    why,
                )
            else:
                outcome.action, outcome.status, outcome.detail = (
                    DispatchAction.NONE,
                    None,
                    "row moved on meanwhile",
                )
                self.result.add(outcome)
                return
        self.result.add(outcome, "gave_up")

    # -- claim gate, send, finalize (docs/delivery.md#claim-send-finalize) ----------------

    async def _may_claim(self, outcome: HandoffOutcome) -> bool:
        """Limit, budget and (real runs) a reachable relay; otherwise defer with no write."""
        why = None
        if self.stop.is_set():
            why = "deferred: stopping"
        elif self.claims >= self.max_claims:
            why = "deferred: limit"
        elif self.clock() - self.started >= self.escalation.run_budget_seconds:
            why = "deferred: budget"
        elif not self.dry_run and not await self._relays_ready():
            why = "deferred: no relay reachable"
        if why is None:
            return True
        outcome.action, outcome.detail = DispatchAction.DEFER, why
        self.result.add(outcome, "deferred")
        return False

    async def _relays_ready(self) -> bool:
        """Connect just before the first claim; before later ones, check one is still up."""
        if self.relays_down:
            return False
        if self.pool is None:
            from serbero_cli.nostr.dm import DmSender
            from serbero_cli.nostr.relays import RelayPool

            self.pool = RelayPool(self.config.relays)
            connected = await self.pool.connect(self.escalation.connect_timeout_seconds)
            for url, why in connected.failed.items():
                logger.warning("relay=%s unreachable: %s", url, why)
                self.result.relay_errors[url] = why
            self.sender = DmSender(
                self.pool, self.config.private_key, self.config.delivery.send_timeout_seconds
            )
            up = bool(connected.connected)
            if up:
                self.inbox = await inbox.for_audience(
                    self.store,
                    self.pool,
                    self.audience,
                    int(self.clock()),
                    self.escalation.connect_timeout_seconds,
                )
        else:
            up = await self.pool.connected_count() > 0
        if not up:
            self.relays_down = self.result.no_relay = True
            logger.error(
                "no relay reachable: no more claims this run; pending handoffs wait for the next run"
            )
        return up

    def _plan_send(
        self, outcome: HandoffOutcome, action: DispatchAction, attempt: int, body: str
    ) -> None:
        outcome.action, outcome.attempt, outcome.body = action, attempt, body
        if attempt > 1:
            outcome.detail = f"attempt {attempt}/{MAX_ATTEMPTS}"
        self.claims += 1
        self.result.add(outcome)

    def _not_claimed(self, outcome: HandoffOutcome, why: str) -> None:
        if why == "claimed by another run":
            outcome.action, outcome.detail = DispatchAction.SKIP_IN_FLIGHT, why
            self.result.add(outcome, "in_flight")
        else:
            outcome.action, outcome.detail = DispatchAction.NONE, why
            self.result.add(outcome)
        logger.info("handoff=%d not claimed: %s", outcome.handoff_event_id, why)

    async def _deliver(
        self, outcome: HandoffOutcome, handoff: HandoffRow, planned: list[sends.PlannedSend]
    ) -> None:
        """Publish each stored event in order, record each send, then finalize in one transaction."""
        dispatch = dispatches.dispatch_for_handoff(self.store, handoff.id)
        if dispatch is None:  # this run just claimed it, so only a vanished row gets here
            raise DbError(f"dispatch row of handoff {handoff.id} vanished after its claim")
        outcome.dispatch_id, outcome.attempt = dispatch.dispatch_id, dispatch.attempts
        outcome.status = DispatchStatus.SENDING
        outcome.action = DispatchAction.SEND if dispatch.attempts == 1 else DispatchAction.RESEND
        if dispatch.attempts > 1:
            outcome.detail = f"attempt {dispatch.attempts}/{MAX_ATTEMPTS}"
        self.result.add(outcome)
        self.checkpoint("after_claim", handoff.id)
        per_recipient: dict[str, dict[str, Any]] = {}
        for send in planned:
            delivery = per_recipient.setdefault(send.recipient, _new_delivery(send.recipient))
            result = await self._send_one(dispatch, send)
            _merge(delivery, send, result)
        outcome.deliveries = [per_recipient[r] for r in dispatch.recipients if r in per_recipient]
        self.checkpoint("after_send", handoff.id)
        status = (
            DispatchStatus.DISPATCHED
            if any(d["ok"] for d in outcome.deliveries)
            else DispatchStatus.SEND_FAILED
        )
        if dispatches.finalize_dispatch(
            self.store, dispatch, handoff, status=status, now=int(self.clock())
        ):
            outcome.status = status
            self.result.counts[status] += 1
            log = (
                logger.info
                if status == DispatchStatus.DISPATCHED and not outcome.failed_sends
                else logger.warning
            )
            log(
                "handoff=%d dispute=%s %s: %d of %d recipients accepted",
                handoff.id,
                _id16(dispatch.dispute_id),
                status,
                sum(1 for d in outcome.deliveries if d["ok"]),
                len(outcome.deliveries),
            )
        else:
            outcome.detail = "finalize found the row moved on"
            logger.error(
                "handoff=%d dispatch=%s finalize found the row moved on",
                handoff.id,
                dispatch.dispatch_id,
            )

    async def _send_one(self, dispatch: DispatchRow, send: sends.PlannedSend) -> dict[str, Any]:
        """Publish one stored event; record it; return what happened."""
        timeout = self.config.delivery.send_timeout_seconds
        try:
            if send.error:
                raise _Unbuildable(send.error)
            extra = self.inbox.get(send.recipient, []) if send.envelope == Envelope.NIP17 else []
            sent = await asyncio.wait_for(
                self.sender.publish(send.event_json, extra_relays=extra), timeout=timeout + 10
            )
            accepted, rejected, error = list(sent.accepted), dict(sent.rejected), sent.error
            message = None if sent.ok else sent.error_message()
        except _Unbuildable as exc:
            accepted, rejected, error, message = [], {}, str(exc), str(exc)
        except TimeoutError:  # backstop: the pool's own timeout should fire first
            accepted, rejected, error = [], {u: "timeout" for u in self.config.relays}, None
            message = "no relay accepted: " + "; ".join(f"{u}: timeout" for u in self.config.relays)
        ok = bool(accepted)
        try:
            dispatches.record_send(
                self.store,
                dispute_id=dispatch.dispute_id,
                solver_pubkey=send.recipient,
                sent=ok,
                attempts=dispatch.attempts,
                body=send.body,
                created_at=dispatch.dispatched_at,
                relays_accepted=accepted,
                error_message=message,
                notif_type=send.notif_type,
                envelope=send.envelope,
                event_id=send.event_id,
            )
        except DbError as exc:  # the record is best effort
            logger.warning(
                "dispatch=%s solver=%s send record not written: %s",
                dispatch.dispatch_id,
                send.recipient[:8],
                exc,
            )
        if not ok:
            logger.warning(
                "dispatch=%s solver=%s %s %s send failed: %s",
                dispatch.dispatch_id,
                send.recipient[:8],
                send.notif_type,
                send.envelope,
                for_log(message),
            )
        return {"ok": ok, "accepted": accepted, "rejected": rejected, "error": error}

    def _log_summary(self) -> None:
        counts = self.result.counts
        if counts["unroutable"]:
            logger.error(
                "%d handoff(s) unroutable: configure a write solver, or enable fallback_to_all_solvers "
                "with at least one solver",
                counts["unroutable"],
            )
        if self.pool is None and not self.dry_run:
            logger.info("relays not contacted: nothing to send")
        logger.info(
            "dispatch-once%s: %s",
            " (dry run)" if self.dry_run else "",
            " ".join(f"{k}={v}" for k, v in counts.items()),
        )


class _Unbuildable(Exception):
    """The planned event could not be built; the send is recorded as failed."""


def _new_delivery(pubkey: str) -> dict[str, Any]:
    return {"pubkey": pubkey, "ok": False, "accepted_by": [], "rejected": {}, "envelopes": {}}


def _merge(delivery: dict[str, Any], send: sends.PlannedSend, result: dict[str, Any]) -> None:
    """Fold one send into the recipient's report line: `ok` once any envelope delivered the handoff
    itself; transcript parts that fail are failed sends too (exit 4) but do not undo `ok`."""
    per = delivery["envelopes"].setdefault(
        send.envelope, {"ok": True, "accepted_by": [], "rejected": {}}
    )
    per["ok"] = per["ok"] and result["ok"]
    per["accepted_by"] = sorted(set(per["accepted_by"]) | set(result["accepted"]))
    per["rejected"].update(result["rejected"])
    if send.notif_type == NotificationType.ESCALATION_HANDOFF and result["ok"]:
        delivery["ok"] = True
    if not result["ok"] and send.notif_type != NotificationType.ESCALATION_HANDOFF:
        delivery.setdefault("failed_parts", 0)
        delivery["failed_parts"] += 1
    delivery["accepted_by"] = sorted(set(delivery["accepted_by"]) | set(result["accepted"]))
    delivery["rejected"] = dict(sorted({**delivery["rejected"], **result["rejected"]}.items()))
    if result["error"]:
        delivery["error"] = result["error"]
