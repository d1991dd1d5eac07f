"""`run_mediate_once()`: one mediate-once run, in the order docs/mediation.md#run-order gives.

Setup (config, bundle) happens before the lock so a config error wins over a held lock; the relay
check happens before any mediation state changes, so "no relay" leaves the mediation state as it
was (only the run record is written).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from serbero_cli.config import Config, load_reasoning_api_key
from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.domain.sessions import SessionState
from serbero_cli.errors import NoRelayReachable
from serbero_cli.mediation import ingest, node_messages, opening, summary, timeouts
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.evaluate import evaluate_sessions
from serbero_cli.mediation.result import MediationResult
from serbero_cli.runlock import RunLock
from serbero_cli.runrecord import recorded_run
from serbero_cli.safetext import short
from serbero_cli.stopping import StopRequested, stop_on_signals
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as med
from serbero_cli.store import sessions as sess
from serbero_cli.store import solver_auth, sync
from serbero_cli.store.clock import repair_future_timestamps
from serbero_cli.store.db import Store, open_db

if TYPE_CHECKING:
    from serbero_cli.keytext import Secret
    from serbero_cli.nostr.dm import DmSender
    from serbero_cli.nostr.events import NostrEvent
    from serbero_cli.nostr.mostro_messages import NodeInfo
    from serbero_cli.reasoning.bundle import PromptBundle

logger = logging.getLogger(__name__)

TRANSPORT_CACHE_KEY = "mostro_transport"


def run_mediate_once(
    config: Config,
    *,
    max_starts: int | None = None,
    reset_solver_auth: bool = False,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
    env: Mapping[str, str] | None = None,
    retry_pause: float = 0.5,
    stop: StopRequested | None = None,
) -> MediationResult:
    """One mediation run. Return the result; raise SerberoError subclasses for codes 2, 75, 1 and 3."""
    result = MediationResult(run_started_at=int(clock()), dry_run=dry_run)
    if not config.mediation_active:
        result.disabled = True
        logger.debug(
            "mediation disabled ([mediation].enabled and [reasoning].enabled must both be true)"
        )
        return result
    from serbero_cli.reasoning.bundle import load_bundle

    api_key = load_reasoning_api_key(config, os.environ if env is None else env)
    bundle = load_bundle(config.prompts)
    result.bundle_id, result.policy_hash = bundle.bundle_id, bundle.policy_hash
    if dry_run:
        from serbero_cli.mediation.dryrun import plan_due_work

        plan_due_work(config, result, int(clock()))
        result.run_finished_at = int(clock())
        return result
    stop = stop or StopRequested()
    with RunLock(config.db_path, "mediate", "mediate-once"):
        store = open_db(config.db_path, busy_timeout_seconds=config.busy_timeout_seconds)
        try:
            with recorded_run(store, "mediate_once", clock) as run, stop_on_signals(stop):
                with (
                    store.immediate() as conn
                ):  # stored times from a clock that ran ahead are read as now
                    repair_future_timestamps(conn, int(clock()))
                asyncio.run(
                    _run(
                        config,
                        store,
                        bundle,
                        api_key,
                        result,
                        clock,
                        retry_pause,
                        max_starts or config.mediation.max_starts_per_run,
                        reset_solver_auth,
                        stop,
                    )
                )
                result.run_finished_at = int(clock())
                if stop.is_set():
                    result.stopped_by = stop.name
                    logger.warning(
                        "stopped by %s: the remaining steps are left for the next run", stop.name
                    )
                sync.save_last_run(store, "mediate_once", result.to_dict(), int(clock()))
                run.finish(result)
        finally:
            store.close()
    return result


async def _run(
    config: Config,
    store: Store,
    bundle: PromptBundle,
    api_key: Secret,
    result: MediationResult,
    clock: Callable[[], float],
    retry_pause: float,
    max_starts: int,
    reset_auth: bool,
    stop: StopRequested,
) -> None:
    from serbero_cli.nostr.dm import DmSender
    from serbero_cli.nostr.relays import RelayPool
    from serbero_cli.reasoning.providers import make_provider
    from serbero_cli.reasoning.reasoner import Reasoner

    pool = RelayPool(config.relays)
    provider = make_provider(config.reasoning, api_key, retry_pause=retry_pause)
    try:
        connected = await pool.connect(config.chat.fetch_timeout_seconds)
        if not connected.connected:
            raise NoRelayReachable("; ".join(f"{u}: {w}" for u, w in connected.failed.items()))
        ctx = RunContext(
            config,
            store,
            pool,
            bundle,
            Reasoner(provider, bundle, config.chat.transcript_max_messages),
            provider,
            clock,
            result,
            stop=stop,
        )
        if reset_auth:
            _reset_solver_auth(ctx)
        await _resolve_transport(ctx)
        await _steps(
            ctx,
            DmSender(pool, config.private_key, config.delivery.send_timeout_seconds),
            max_starts,
        )
    finally:
        await provider.aclose()
        await pool.close()


async def _steps(ctx: RunContext, sender: DmSender, max_starts: int) -> None:
    """Steps 4 to 9 of docs/mediation.md#run-order. A stop request (SIGTERM) lets the step in hand
    finish and skips the rest; the next run picks them up, as every step resumes from the database."""
    live = ingest.load_channels(ctx, sess.live_sessions(ctx.store))  # step 4: live sessions
    if await node_messages.apply_node_closings(ctx):
        still_live = {s.session_id for s in sess.live_sessions(ctx.store)}
        live = [s for s in live if s.session_id in still_live]
    live = await ingest.check_takeovers(ctx, live)
    await ingest.ingest_replies(ctx, live)
    steps = [
        lambda: ingest.apply_round_limits(ctx),  # step 5: round limit
        lambda: evaluate_sessions(ctx, live),  # step 6: evaluate
        lambda: timeouts.apply_timeouts(ctx),  # step 7: timeouts
        lambda: _publish(ctx),  # step 8: deliver (party messages, summaries, outbox)
        lambda: summary.generate_summaries(ctx),
        lambda: summary.deliver_and_settle(ctx, sender),
        lambda: (
            None if ctx.result.node_serbero else opening.start_sessions(ctx, max_starts)
        ),  # step 9: start
        lambda: _publish(ctx),  # the opening questions
        lambda: summary.deliver_and_settle(
            ctx, sender
        ),  # the assignment and observer messages of new sessions
        # Our own take's revision, before a takeover can replace it on the relays.
        lambda: ingest.record_take_revisions(ctx) if ctx.result.sessions_opened else None,
    ]
    for step in steps:
        if ctx.stop.is_set():
            break
        outcome = step()
        if asyncio.iscoroutine(outcome):
            await outcome
    ctx.result.live_sessions = len(sess.live_sessions(ctx.store))


async def _publish(ctx: RunContext) -> None:
    stats = await ctx.publish_chat()
    ctx.result.publish_failures += stats.failed
    for session_id in stats.published_sessions:
        with ctx.store.immediate() as conn:
            session = sess.get_session(conn, session_id)
            if session and session.state == SessionState.AWAITING_RESPONSE:
                disputes_store.move_dispute(
                    conn,
                    session.dispute_id,
                    LifecycleState.TAKEN,
                    LifecycleState.WAITING,
                    ctx.now(),
                    "mediation:awaiting_parties",
                )


def _reset_solver_auth(ctx: RunContext) -> None:
    with ctx.store.immediate() as conn:
        solver_auth.clear_auth(conn)
        med.insert_event(conn, "auth_retry_recovered", {"attempt": 0}, now=ctx.now())
    logger.info("solver authorization state reset by --reset-solver-auth")


async def _resolve_transport(ctx: RunContext) -> None:
    """Read the node's kind-38385 info event once per run, falling back to the cache
    (docs/mediation.md#transport)."""
    from serbero_cli.mediation.transport import resolve_transport
    from serbero_cli.nostr import mostro_messages as mm

    events = await ctx.pool.fetch(
        [mm.info_filter(ctx.config.mostro_pubkey)], ctx.config.chat.fetch_timeout_seconds
    )
    newest = mm.newest_info_event(events, ctx.config.mostro_pubkey, now=ctx.now())
    info = mm.parse_info_event(newest) if newest is not None else None
    cached = sync.get_value(ctx.store, TRANSPORT_CACHE_KEY)
    try:
        cache = json.loads(cached) if cached else None
    except ValueError:
        cache = None
    choice = resolve_transport(ctx.config.mostro_transport, info, cache, ctx.now())
    for warning in choice.warnings:
        logger.warning("%s", warning)
    if choice.error:
        logger.error("%s", choice.error)
        ctx.result.errors.append(choice.error)
    if choice.cache_value is not None:
        with ctx.store.immediate() as conn:
            sync.set_value(
                conn,
                TRANSPORT_CACHE_KEY,
                json.dumps(choice.cache_value, separators=(",", ":")),
                ctx.now(),
            )
    _check_node_serbero(ctx, newest, info)
    ctx.take_transport, ctx.take_pow_bits = choice.transport, choice.pow_bits
    ctx.result.transport, ctx.result.transport_source = choice.transport, choice.source
    ctx.result.take_pow_bits = choice.pow_bits
    logger.info(
        "take transport=%s source=%s pow=%d node=%s",
        choice.transport,
        choice.source,
        choice.pow_bits,
        short(ctx.config.mostro_pubkey),
    )


def _check_node_serbero(ctx: RunContext, event: NostrEvent | None, info: NodeInfo | None) -> None:
    """A node that announces another Serbero gets no new session from this one (exit 4)."""
    from serbero_cli.keytext import npub

    if info is None or event is None:  # no info event from the node
        return
    if info.serbero_malformed:
        logger.warning(
            "node info event=%s has a malformed serbero tag; ignored", short(event.id, 16)
        )
        return
    own = ctx.config.public_key
    if info.serbero is not None and info.serbero != own:
        ctx.result.node_serbero = info.serbero
        logger.error(
            "the node announces another Serbero (%s, %s); this one is %s (%s): no new session is "
            "started",
            npub(info.serbero),
            info.serbero,
            npub(own),
            own,
        )
