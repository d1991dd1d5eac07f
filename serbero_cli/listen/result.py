"""`ListenResult`: what one `listen` run did; renders as a table or the `listen/v1` JSON object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serbero_cli.config_schema import ENVELOPES
from serbero_cli.errors import ExitCode


@dataclass
class ListenResult:
    """Counts for this run. In a dry run, `queued`/`new`/`taken`/`resolved` are what a real run would do."""

    dry_run: bool = False
    events_fetched: int = 0
    events_applied: int = 0  # valid events that changed the database
    events_rejected: int = 0
    disputes_new: int = 0  # disputes first recorded in this run, whatever their state
    disputes_taken: int = 0
    disputes_resolved: int = 0
    notifications_queued: int = 0
    notifications_sent: int = 0
    notifications_failed: int = 0
    notifications_pending: int = 0  # rows still due after the run (pending or retryable)
    relays_connected: int = 0
    relays_failed: int = 0
    relay_errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    planned_sends: list[dict[str, Any]] = field(default_factory=list)  # dry run only
    by_envelope: dict[str, dict[str, int]] = field(default_factory=dict)  # envelope -> sent/failed
    stopped_by: str | None = None  # the signal that ended the run early
    error: str | None = None

    @property
    def exit_code(self) -> int:
        # A run stopped by SIGTERM/SIGINT exits 0: whatever it left is the next run's work.
        if self.stopped_by:
            return int(ExitCode.OK)
        return int(ExitCode.PARTIAL) if self.notifications_failed else int(ExitCode.OK)

    def add_flush(self, flushed: Any) -> None:
        """Add one outbox flush's outcomes, per envelope too."""
        self.notifications_sent += flushed.sent
        self.notifications_failed += flushed.failed
        for envelope, counts in flushed.by_envelope.items():
            per = self.by_envelope.setdefault(envelope, {"sent": 0, "failed": 0})
            for key, value in counts.items():
                per[key] = per.get(key, 0) + value

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "listen/v1",
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "error": self.error,
            "events": {
                "fetched": self.events_fetched,
                "applied": self.events_applied,
                "rejected": self.events_rejected,
            },
            "disputes": {
                "new": self.disputes_new,
                "taken": self.disputes_taken,
                "resolved": self.disputes_resolved,
            },
            "notifications": {
                "queued": self.notifications_queued,
                "sent": self.notifications_sent,
                "failed": self.notifications_failed,
                "pending": self.notifications_pending,
                "by_envelope": {
                    e: dict(self.by_envelope.get(e, {"sent": 0, "failed": 0})) for e in ENVELOPES
                },
            },
            "relays": {"connected": self.relays_connected, "failed": self.relays_failed},
            "stopped_by": self.stopped_by,
        }


def error_report(exit_code: int, error: str, dry_run: bool = False) -> dict[str, Any]:
    document = ListenResult(dry_run=dry_run).to_dict()
    document["exit_code"] = exit_code
    document["error"] = error
    return document
