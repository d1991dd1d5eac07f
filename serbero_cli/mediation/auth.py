"""Solver-authorization back-off as pure functions over AuthState (docs/mediation.md#solver-authorization)."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Literal

from serbero_cli.config import MediationConfig
from serbero_cli.store.clock import clamp
from serbero_cli.store.solver_auth import AuthState, AuthStatus


class AuthGate(StrEnum):
    """What opening sessions may do this run (the dry run reports it as `auth_gate`)."""

    OPEN = "open"  # start freely
    BACKOFF = "backoff"  # wait: the next probe is not due
    PROBE = "probe"  # start one dispute to see whether the node accepts Serbero again
    TERMINATED = "terminated"  # escalate every eligible dispute instead


OPEN, BACKOFF, PROBE, TERMINATED = (
    AuthGate.OPEN,
    AuthGate.BACKOFF,
    AuthGate.PROBE,
    AuthGate.TERMINATED,
)

# How the run summary reports solver authorization (`solver_auth_status`).
Summary = Literal["authorized", "unauthorized", "probing", "terminated"]


def summary_of(state: AuthState | None) -> Summary:
    """What the stored state says, before this run probes: authorized when no row is on file."""
    if state is None:
        return "authorized"
    return "terminated" if state.status == AuthStatus.TERMINATED else "unauthorized"


def backoff_seconds(attempts: int, cfg: MediationConfig) -> int:
    """initial · 2^(attempts−1), capped at the max interval: 60 → 120 → … → 3600."""
    exponent = max(0, attempts - 1)
    return min(
        cfg.solver_auth_retry_initial_seconds * (2 ** min(exponent, 40)),
        cfg.solver_auth_retry_max_interval_seconds,
    )


def gate(state: AuthState | None, now: int, cfg: MediationConfig) -> AuthGate:
    """What opening sessions may do this run: start freely, wait, start one probe, or escalate everything."""
    if state is None:
        return OPEN
    if state.status == AuthStatus.TERMINATED or should_terminate(state, now, cfg):
        return TERMINATED
    if (
        state.next_probe_at is not None
        and now < state.next_probe_at <= now + cfg.solver_auth_retry_max_interval_seconds
    ):
        return BACKOFF
    # a probe time further off than the longest back-off was set by a clock that ran ahead: probe now
    return PROBE


def should_terminate(state: AuthState, now: int, cfg: MediationConfig) -> bool:
    return (
        state.attempts >= cfg.solver_auth_retry_max_attempts
        or now - clamp(state.first_failure_at, now) >= cfg.solver_auth_retry_max_total_seconds
    )


def record_failure(
    state: AuthState | None, now: int, reason: str, cfg: MediationConfig
) -> AuthState:
    """The state after one more refusal counted as an authorization failure."""
    attempts = (state.attempts if state else 0) + 1
    first = state.first_failure_at if state else now
    return AuthState(
        AuthStatus.UNAUTHORIZED, attempts, first, now, now + backoff_seconds(attempts, cfg), reason
    )


def reschedule(state: AuthState, now: int, cfg: MediationConfig) -> AuthState:
    """An inconclusive probe (timeout, taken by another solver): wait the current interval again."""
    return replace(state, next_probe_at=now + backoff_seconds(state.attempts, cfg))


def terminate(state: AuthState) -> AuthState:
    return replace(state, status=AuthStatus.TERMINATED, next_probe_at=None)
