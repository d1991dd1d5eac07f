"""Reading the facts the attention rules judge: run records, untaken disputes, failed deliveries,
unroutable handoffs and whether each phase is running now. Read-only; the rules live in attention.py.

`serbero status` is the one-line form: the same facts and rules, no tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serbero_cli.audit.attention import (
    MINUTE_CADENCE_SECONDS,
    Attention,
    HealthFacts,
    PhaseFacts,
    attention,
    status_line,
    untaken_cutoff,
)
from serbero_cli.audit.text import parse_object
from serbero_cli.errors import ExitCode
from serbero_cli.store import audit_handoffs as hq
from serbero_cli.store import audit_queries as q
from serbero_cli.store.audit_queries import AuditSettings, Source, open_source


@dataclass(frozen=True)
class Phase:
    """A phase's names: as typed (`mediate-once`), in `sync_state` keys, and in its lock file."""

    name: str
    key: str
    lock: str


PHASES = (
    Phase("listen", "listen", "listen"),
    Phase("mediate-once", "mediate_once", "mediate"),
    Phase("dispatch-once", "dispatch_once", "dispatch"),
)


def phase_runs(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """Each phase's last run from its `sync_state` rows (None when it never ran).

    The run record (every run that opened the database) gives the exit code, times and error; the
    last-run summary (runs that finished their work) rides along as `summary`. A database written
    before run records existed has the summary only, which then stands for the record.
    """
    by_key = {row["key"]: row for row in rows}
    runs: dict[str, dict[str, Any] | None] = {}
    for phase in PHASES:
        summary_row = by_key.get(f"{phase.key}_last_run")
        record_row = by_key.get(f"{phase.key}_run_record")
        summary = parse_object(summary_row["value"]) if summary_row else None
        record = parse_object(record_row["value"]) if record_row else None
        if record is not None and record_row is not None:
            run = {
                "exit_code": _int(record.get("exit_code")),
                "started_at": _int(record.get("started_at")),
                "finished_at": _int(record.get("finished_at")) or record_row["updated_at"],
                "error": _text(record.get("error")),
            }
        elif summary_row is not None:
            older = summary or {}
            run = {
                "exit_code": _int(older.get("exit_code")),
                "started_at": _int(older.get("run_started_at")),
                "finished_at": summary_row["updated_at"],
                "error": _text(older.get("error")),
            }
        else:
            runs[phase.name] = None
            continue
        run["summary"] = summary
        run["summary_at"] = summary_row["updated_at"] if summary_row else None
        runs[phase.name] = run
    return runs


def read_health(
    src: Source,
    now: int,
    *,
    handoffs: dict[str, int] | None = None,
    runs: dict[str, dict[str, Any] | None] | None = None,
) -> HealthFacts:
    """The facts at `now`. `handoffs` (counts by state) and `runs` may be passed when already read."""
    from serbero_cli.runlock import is_held

    settings = src.settings
    untaken = q.untaken_disputes(src, untaken_cutoff(now, settings.renotification_seconds))
    if runs is None:
        runs = phase_runs(q.last_runs(src))
    if handoffs is None:
        handoffs = {r["state"]: r["n"] for r in hq.count_handoffs_by_state(src, now)}
    enabled = {
        "listen": True,
        "mediate-once": settings.mediation_enabled,
        "dispatch-once": settings.escalation_enabled,
    }
    cadence = {
        "listen": MINUTE_CADENCE_SECONDS,
        "mediate-once": MINUTE_CADENCE_SECONDS,
        "dispatch-once": settings.dispatch_interval_seconds,
    }
    phases = []
    for phase in PHASES:
        run = runs.get(phase.name) or {}
        phases.append(
            PhaseFacts(
                phase.name,
                enabled[phase.name],
                cadence[phase.name],
                run.get("exit_code"),
                run.get("finished_at"),
                run.get("error"),
                is_held(settings.db_path, phase.lock),
            )
        )
    return HealthFacts(
        now,
        untaken["total"],
        untaken["overdue"],
        untaken["oldest_at"] if untaken["overdue"] else None,
        q.open_failed_deliveries(src),
        handoffs.get("unroutable", 0),
        settings.escalation_enabled,
        tuple(phases),
    )


@dataclass
class StatusResult:
    """`serbero status`: one line, exit 0 (ok) or 4 (attention)."""

    now: int
    line: str
    facts: HealthFacts
    findings: list[Attention] = field(default_factory=list)
    runs: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return int(ExitCode.PARTIAL) if self.findings else int(ExitCode.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "status/v1",
            "exit_code": self.exit_code,
            "error": None,
            "status": "attention" if self.findings else "ok",
            "line": self.line,
            "generated_at": self.now,
            "untaken": self.facts.untaken_total,
            "last_runs": {
                name: None if run is None else {k: run[k] for k in RUN_KEYS}
                for name, run in self.runs.items()
            },
            "attention": [f.to_dict() for f in self.findings],
        }


RUN_KEYS = ("exit_code", "started_at", "finished_at", "error")


def run_status(settings: AuditSettings, *, now: int) -> StatusResult:
    """Open the database read-only, read the facts, judge them."""
    with open_source(settings) as src:
        runs = phase_runs(q.last_runs(src))
        facts = read_health(src, now, runs=runs)
    findings = attention(facts)
    return StatusResult(now, status_line(facts, findings), facts, findings, runs)


def status_error_report(exit_code: int, error: str) -> dict[str, Any]:
    """The `--json` document of a status run that could not read the database."""
    return {
        "report": "status/v1",
        "exit_code": exit_code,
        "error": error,
        "status": "unknown",
        "line": None,
        "generated_at": None,
        "untaken": None,
        "last_runs": {},
        "attention": [],
    }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
