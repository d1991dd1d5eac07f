"""`mediate-once --dry-run`: list the work the database shows as due; no lock, no model, no relay."""

from __future__ import annotations

from serbero_cli.config import Config
from serbero_cli.domain.sessions import SessionState
from serbero_cli.errors import DatabaseMissing
from serbero_cli.mediation import auth
from serbero_cli.mediation.opening import is_uuid
from serbero_cli.mediation.result import MediationResult
from serbero_cli.mediation.summary import MEDIATION_DM_TYPES
from serbero_cli.mediation.timeouts import due_timeout
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sessions as sess
from serbero_cli.store import solver_auth
from serbero_cli.store.db import open_db


def plan_due_work(config: Config, result: MediationResult, now: int) -> None:
    """Fill `result.due` from a read-only connection."""
    try:
        store = open_db(config.db_path, readonly=True)
    except DatabaseMissing:
        result.due = {"note": "no database yet: nothing is due"}
        return
    try:
        cfg = config.mediation
        candidates = [
            r
            for r in sess.eligible_dispute_candidates(
                store, now=now, retry_interval=cfg.start_retry_interval_seconds
            )
            if is_uuid(r["dispute_id"]) and r["initiator_role"] in ("buyer", "seller")
        ]
        live = sess.live_sessions(store)
        evaluations = []
        for s in live:
            counts = sess.fresh_inbound_counts(store.conn, s.session_id)
            if (
                s.state == SessionState.AWAITING_RESPONSE
                and counts["buyer"] + counts["seller"] > s.round_count_last_evaluated
            ):
                evaluations.append(s.session_id)
        timeouts = {
            s.session_id: t
            for s in live
            if (
                t := due_timeout(
                    s, now, cfg.party_response_timeout_seconds, cfg.session_timeout_seconds
                )
            )
        }
        state = solver_auth.get_auth(store)
        result.solver_auth_status = auth.summary_of(state)
        gate = auth.gate(state, now, cfg)
        result.live_sessions = len(live)
        result.due = {
            "eligible_disputes": [c["dispute_id"] for c in candidates],
            "would_start": [c["dispute_id"] for c in candidates][
                : cfg.max_starts_per_run if gate == auth.OPEN else (1 if gate == auth.PROBE else 0)
            ],
            "auth_gate": gate,
            "sessions_due_evaluation": evaluations,
            "timeouts_due": timeouts,
            "summaries_due": [s.session_id for s in live if s.state == SessionState.CLASSIFIED],
            "unpublished_messages": len(sess.unpublished_outbound(store)),
            "pending_deliveries": outbox.count_due(
                store, now=now, max_attempts=config.delivery.max_attempts, types=MEDIATION_DM_TYPES
            ),
        }
    finally:
        store.close()
