"""Solver-authorization back-off (mediation.md §13) as pure functions over AuthState."""

from __future__ import annotations

from dataclasses import replace

from serbero_cli.config import MediationConfig
from serbero_cli.store.clock import clamp
from serbero_cli.store.solver_auth import AuthState

OPEN, BACKOFF, PROBE, TERMINATED = "open", "backoff", "probe", "terminated"


def backoff_seconds(attempts: int, cfg: MediationConfig) -> int:
    """initial · 2^(attempts−1), capped at the max interval: 60 → 120 → … → 3600."""
    exponent = max(0, attempts - 1)
    return min(cfg.solver_auth_retry_initial_seconds * (2 ** min(exponent, 40)),
               cfg.solver_auth_retry_max_interval_seconds)


def gate(state: AuthState | None, now: int, cfg: MediationConfig) -> str:
    """What step 7 may do: start freely, wait, start one probe, or escalate everything."""
    if state is None:
        return OPEN
    if state.status == "terminated" or should_terminate(state, now, cfg):
        return TERMINATED
    if state.next_probe_at is not None and now < state.next_probe_at <= now + cfg.solver_auth_retry_max_interval_seconds:
        return BACKOFF
    # a probe time further off than the longest back-off was set by a clock that ran ahead: probe now
    return PROBE


def should_terminate(state: AuthState, now: int, cfg: MediationConfig) -> bool:
    return (state.attempts >= cfg.solver_auth_retry_max_attempts
            or now - clamp(state.first_failure_at, now) >= cfg.solver_auth_retry_max_total_seconds)


def record_failure(state: AuthState | None, now: int, reason: str, cfg: MediationConfig) -> AuthState:
    """The state after one more refusal counted as an authorization failure."""
    attempts = (state.attempts if state else 0) + 1
    first = state.first_failure_at if state else now
    return AuthState("unauthorized", attempts, first, now, now + backoff_seconds(attempts, cfg), reason)


def reschedule(state: AuthState, now: int, cfg: MediationConfig) -> AuthState:
    """An inconclusive probe (timeout, taken by another solver): wait the current interval again."""
    return replace(state, next_probe_at=now + backoff_seconds(state.attempts, cfg))


def terminate(state: AuthState) -> AuthState:
    return replace(state, status="terminated", next_probe_at=None)
