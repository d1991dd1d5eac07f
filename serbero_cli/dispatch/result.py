"""`DispatchResult`: what one `dispatch-once` run did, as the `dispatch_once/v1` document
(docs/wire-formats.md#json-reports).

The same `to_dict()` feeds `--json`, the rich renderer and `sync_state.dispatch_once_last_run`,
so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from serbero_cli.domain.dispatches import DispatchStatus, Route
from serbero_cli.errors import ExitCode, worst_exit_code

REPORT = "dispatch_once/v1"
COUNT_KEYS = (
    "dispatched",
    "send_failed",
    "gave_up",
    "resends",
    "superseded",
    "unroutable",
    "parse_failed",
    "deferred",
    "in_flight",
)


class DispatchDecision(StrEnum):
    """What this run found a handoff to be: a route, or why it has none."""

    TARGETED = "targeted"
    BROADCAST = "broadcast"
    FALLBACK = "fallback"
    UNROUTABLE = "unroutable"
    SUPERSEDED = "superseded"  # its dispute is already resolved
    PARSE_FAILED = "parse-failed"  # its package does not parse, or names no known dispute

    @classmethod
    def of(cls, route: Route) -> DispatchDecision:
        return cls(route.value)


class DispatchAction(StrEnum):
    """What this run did (or, in a dry run, would do) with a handoff."""

    SEND = "send"  # the first delivery
    RESEND = "resend"  # an unfinished delivery, published again
    GIVE_UP = "give_up"  # an unfinished delivery out of attempts: finalized send_failed
    RECORD_AUDIT = "record_audit"  # wrote its superseded, unroutable or parse-failed audit row
    NONE = "none"  # nothing: already on file, or another run got there first
    DEFER = "defer"  # left for the next run (limit, budget, no relay, stopping)
    SKIP_IN_FLIGHT = "skip_in_flight"  # another run is delivering it


@dataclass
class HandoffOutcome:
    """One handoff's line of the report."""

    handoff_event_id: int
    dispute_id: str  # from the package, or the package's best-effort hint for parse failures
    session_id: str | None  # the handoff row's session_id column
    decision: DispatchDecision
    action: DispatchAction
    recipients: list[str] = field(default_factory=list)  # lowercase hex, send order
    dispatch_id: str | None = None
    status: DispatchStatus | None = None  # the dispatch row's status after this run
    attempt: int | None = None  # the dispatch row's attempts for this run's claim
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # one per recipient send
    detail: str | None = (
        None  # parse-failure text, or a short note (deferred: limit, audit on file, …)
    )
    trigger: str | None = None  # shown in the dry-run table, not in the JSON document
    body: str | None = None  # dry run only: the exact DM a real run would send

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        out = {
            "handoff_event_id": self.handoff_event_id,
            "dispute_id": self.dispute_id,
            "session_id": self.session_id,
            "decision": self.decision,
            "action": self.action,
            "recipients": list(self.recipients),
            "dispatch_id": self.dispatch_id,
            "status": self.status,
            "attempt": self.attempt,
            "deliveries": list(self.deliveries),
            "detail": self.detail,
        }
        if dry_run and self.body is not None:
            out["body"] = self.body
        return out

    @property
    def failed_sends(self) -> int:
        """Recipients the handoff did not reach, plus transcript parts that did not go out."""
        return sum(1 for d in self.deliveries if not d.get("ok")) + sum(
            d.get("failed_parts", 0) for d in self.deliveries
        )


@dataclass
class DispatchResult:
    """Counts and per-handoff outcomes of one run; `exit_code` follows docs/operations.md#exit-codes."""

    dry_run: bool = False
    enabled: bool = True
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    handoffs: list[HandoffOutcome] = field(default_factory=list)
    no_relay: bool = False  # a send was needed and no relay was reachable (exit 3)
    relay_errors: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # unexpected DB failures mid-run (exit 1)
    warnings: list[str] = field(default_factory=list)

    def add(self, outcome: HandoffOutcome, *counters: str) -> HandoffOutcome:
        self.handoffs.append(outcome)
        for name in counters:
            self.counts[name] += 1
        return outcome

    @property
    def failed_sends(self) -> int:
        return sum(h.failed_sends for h in self.handoffs)

    @property
    def exit_code(self) -> int:
        """1 internal, 3 no relay, 4 failed send / send_failed / give-up / unroutable, else 0.

        A dry run sends nothing, so only its certain findings (unroutable, give-up) give 4.
        """
        codes = [int(ExitCode.OK)]
        if self.errors:
            codes.append(int(ExitCode.INTERNAL))
        if self.no_relay:
            codes.append(int(ExitCode.NO_RELAY))
        c = self.counts
        if self.failed_sends or c["send_failed"] or c["gave_up"] or c["unroutable"]:
            codes.append(int(ExitCode.PARTIAL))
        return worst_exit_code(*codes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": REPORT,
            "dry_run": self.dry_run,
            "enabled": self.enabled,
            "exit_code": self.exit_code,
            "error": "; ".join(self.errors) if self.errors else None,
            "counts": {k: self.counts[k] for k in COUNT_KEYS},
            "handoffs": [h.to_dict(self.dry_run) for h in self.handoffs],
        }


def error_report(
    exit_code: int, error: str, *, dry_run: bool, enabled: bool | None
) -> dict[str, Any]:
    """The one JSON document printed when a run ends early (exit 1, 2, 3 or 75): `error` set, no handoffs.

    `enabled` is None when the config could not be read.
    """
    document = DispatchResult(dry_run=dry_run).to_dict()
    document.update(enabled=enabled, exit_code=exit_code, error=error)
    return document
