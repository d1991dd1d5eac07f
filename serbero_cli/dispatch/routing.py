"""Who receives a handoff: the routing table of docs/delivery.md#routing as one pure function.

Write solvers are the only humans who can take a dispute over from Serbero (a read solver),
so they come first; read solvers get a handoff only when the operator opts into the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from serbero_cli.domain.dispatches import Route
from serbero_cli.keytext import KeyFormatError, parse_public_key


class SolverLike(Protocol):
    """A configured solver as routing reads it (config.SolverConfig, or a test's stand-in)."""

    @property
    def pubkey(self) -> str: ...
    @property
    def permission(self) -> str: ...


@dataclass(frozen=True)
class RoutingDecision:
    """Recipients are lowercase hex in send order."""

    route: Route
    recipients: tuple[str, ...]
    fallback_broadcast: bool  # True only for rule 3
    configured_solver_count: int  # every permission, for the unroutable audit row

    @property
    def routable(self) -> bool:
        return self.route != Route.UNROUTABLE


def normalize_pubkey(value: str | None) -> str | None:
    """Lowercase hex for a hex / npub / nostr:npub key on the curve; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return parse_public_key(value)
    except (KeyFormatError, ValueError):
        return None


def resolve_recipients(
    assigned_solver: str | None, solvers: Iterable[SolverLike], fallback: bool
) -> RoutingDecision:
    """Apply the routing rules (first match wins) to the assignee and the configured solvers, in config order.

    An assignee that does not parse counts as unassigned; a configured key that does not parse
    (config loading already rejects those) is skipped.
    """
    configured: list[tuple[str, str]] = []
    for solver in solvers:
        key = normalize_pubkey(solver.pubkey)
        if key is not None and key not in (k for k, _ in configured):
            configured.append((key, solver.permission))
    writers = tuple(key for key, permission in configured if permission == "write")
    assignee = normalize_pubkey(assigned_solver)
    count = len(configured)
    if assignee is not None and assignee in writers:
        return RoutingDecision(Route.TARGETED, (assignee,), False, count)
    if writers:
        return RoutingDecision(Route.BROADCAST, writers, False, count)
    if fallback and configured:
        return RoutingDecision(Route.FALLBACK, tuple(key for key, _ in configured), True, count)
    return RoutingDecision(Route.UNROUTABLE, (), False, count)
