"""`MediationResult`: what one mediate-once run did (docs/wire-formats.md#json-reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serbero_cli.errors import ExitCode
from serbero_cli.mediation import auth
from serbero_cli.mediation.policy import EscalationTrigger


@dataclass
class MediationResult:
    """Counters of one run; `to_dict()` is the `--json` document and the `mediate_once_last_run` row."""

    run_started_at: int = 0
    run_finished_at: int = 0
    dry_run: bool = False
    disabled: bool = False
    provider_checked: bool = False
    provider_healthy: bool | None = None  # None: no model work this run, so no check
    bundle_id: str | None = None
    policy_hash: str | None = None
    live_sessions: int = 0
    replies_fresh: int = 0
    replies_stale: int = 0
    replies_duplicate: int = 0
    replies_rejected: int = 0
    evaluations: int = 0
    evaluation_failures: int = 0
    followups_sent: int = 0
    summaries_generated: int = 0
    dms_delivered: int = 0
    dms_failed: int = 0
    publish_failures: int = 0
    node_closings: int = 0  # disputes the node said the users closed themselves
    escalations: dict[EscalationTrigger, int] = field(default_factory=dict)
    starts_attempted: int = 0
    sessions_opened: int = 0
    take_failures: int = 0
    starts_skipped: dict[str, int] = field(default_factory=dict)
    solver_auth_status: auth.Summary = "authorized"
    transport: str | None = None
    transport_source: str | None = None
    take_pow_bits: int = 0
    node_serbero: str | None = (
        None  # the key the node announces as its Serbero, when it is not ours
    )
    stopped_by: str | None = None  # the signal that ended the run early (it then exits 0)
    errors: list[str] = field(default_factory=list)
    due: dict[str, Any] = field(default_factory=dict)  # dry run: the work the database shows as due

    def escalated(self, trigger: EscalationTrigger) -> None:
        self.escalations[trigger] = self.escalations.get(trigger, 0) + 1

    def skipped(self, reason: str, n: int = 1) -> None:
        if n:
            self.starts_skipped[reason] = self.starts_skipped.get(reason, 0) + n

    @property
    def exit_code(self) -> int:
        failed = (
            self.dms_failed
            or self.publish_failures
            or self.evaluation_failures
            or self.provider_healthy is False
            or self.errors
            or self.node_serbero
        )
        return (
            int(ExitCode.PARTIAL)
            if failed and not (self.disabled or self.stopped_by)
            else int(ExitCode.OK)
        )

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "report": "mediate_once/v1",
            "dry_run": self.dry_run,
            "disabled": self.disabled,
            "run_started_at": self.run_started_at,
            "run_finished_at": self.run_finished_at,
            "exit_code": self.exit_code,
            "error": None,
            "provider_checked": self.provider_checked,
            "provider_healthy": self.provider_healthy,
            "bundle_id": self.bundle_id,
            "policy_hash": self.policy_hash,
            "live_sessions": self.live_sessions,
            "replies_fresh": self.replies_fresh,
            "replies_stale": self.replies_stale,
            "replies_duplicate": self.replies_duplicate,
            "replies_rejected": self.replies_rejected,
            "evaluations": self.evaluations,
            "evaluation_failures": self.evaluation_failures,
            "followups_sent": self.followups_sent,
            "summaries_generated": self.summaries_generated,
            "dms_delivered": self.dms_delivered,
            "dms_failed": self.dms_failed,
            "escalations": dict(sorted(self.escalations.items())),
            "starts_attempted": self.starts_attempted,
            "sessions_opened": self.sessions_opened,
            "take_failures": self.take_failures,
            "starts_skipped": dict(sorted(self.starts_skipped.items())),
            "solver_auth_status": self.solver_auth_status,
            "transport": self.transport,
            "transport_source": self.transport_source,
            "take_pow_bits": self.take_pow_bits,
            "node_closings": self.node_closings,
            "node_serbero": self.node_serbero,
            "stopped_by": self.stopped_by,
            "errors": list(self.errors),
        }
        if self.dry_run:
            doc["due"] = self.due
        return doc


def error_report(exit_code: int, error: str) -> dict[str, Any]:
    doc = MediationResult().to_dict()
    doc.update(exit_code=exit_code, error=error)
    return doc
