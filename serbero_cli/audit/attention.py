"""What needs a person now: the rules behind the dashboard's attention block and `serbero status`.

Pure functions over plain facts (health.py reads them from the database and the lock files), so
the dashboard and `status` can never disagree and every rule has a table-driven test. A finding:

* disputes nobody has taken for longer than twice the reminder interval (count, oldest age);
* deliveries failed for good (no more retries) while their dispute is still open;
* a phase whose last recorded run exited non-zero (4 included: some work failed);
* a phase that is enabled, has run before, is not running now (its lock is free) and last
  finished more than three times its cadence ago (listen and mediate-once run every minute,
  dispatch-once every `dispatch_interval_seconds`);
* escalation handoffs that no configured solver can receive (unroutable).

A feature that is switched off (mediation, escalation) raises nothing; "not known" (audit run
with `--db` and no config) counts as on, since the other conditions still need a run on record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from serbero_cli.audit.text import span

UNTAKEN_FACTOR = 2
OVERDUE_FACTOR = 3
MINUTE_CADENCE_SECONDS = 60


@dataclass(frozen=True)
class PhaseFacts:
    """One phase as the rules see it. Times are unix seconds; `last_exit_code` None = never ran."""

    phase: str  # listen, mediate-once or dispatch-once
    enabled: bool | None  # None: not known
    cadence_seconds: int  # how often it is meant to run
    last_exit_code: int | None
    last_finished_at: int | None
    last_error: str | None
    holds_lock: bool  # a process holds the phase's lock now (it is running)


@dataclass(frozen=True)
class HealthFacts:
    """Everything the rules need, read at `now`."""

    now: int
    untaken_total: int  # disputes in new or notified
    untaken_overdue: int  # of those, opened before untaken_cutoff()
    untaken_oldest_at: int | None  # opening time of the oldest untaken dispute
    failed_deliveries: int  # notifications failed for good whose dispute is not resolved
    unroutable_handoffs: int
    escalation_enabled: bool | None
    phases: tuple[PhaseFacts, ...]


@dataclass(frozen=True)
class Attention:
    """One finding: `kind` names the rule, `message` says it in words, `hint` says where to look."""

    kind: (
        str  # untaken_disputes, failed_deliveries, phase_failed, phase_overdue, unroutable_handoffs
    )
    message: str
    hint: str
    count: int | None = None
    phase: str | None = None
    since: int | None = None  # unix time the finding dates from (oldest dispute, last finish)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def untaken_cutoff(now: int, renotification_seconds: int) -> int:
    """Disputes opened before this time and still untaken need a person."""
    return now - UNTAKEN_FACTOR * renotification_seconds


def attention(facts: HealthFacts) -> list[Attention]:
    """Every finding, most urgent first (untaken disputes lead)."""
    found: list[Attention] = []
    if facts.untaken_overdue:
        n = facts.untaken_overdue
        oldest = facts.untaken_oldest_at
        age = f" for {span(facts.now - oldest)}" if oldest is not None else ""
        found.append(
            Attention(
                "untaken_disputes",
                f"{n} {_plural(n, 'dispute')} untaken{age}",
                "serbero audit disputes",
                count=n,
                since=oldest,
            )
        )
    if facts.failed_deliveries:
        n = facts.failed_deliveries
        found.append(
            Attention(
                "failed_deliveries",
                f"{n} {_plural(n, 'delivery', 'deliveries')} failed for good",
                "serbero audit notifications --status failed_final",
                count=n,
            )
        )
    for phase in facts.phases:
        found += _phase_findings(phase, facts.now)
    if facts.unroutable_handoffs and facts.escalation_enabled is not False:
        n = facts.unroutable_handoffs
        found.append(
            Attention(
                "unroutable_handoffs",
                f"{n} {_plural(n, 'handoff')} unroutable",
                "serbero audit handoffs --state unroutable",
                count=n,
            )
        )
    return found


def status_line(facts: HealthFacts, findings: list[Attention]) -> str:
    """`ok: 0 untaken, last listen 40s ago` or `attention: <finding>; <finding>`."""
    if findings:
        return "attention: " + "; ".join(f.message for f in findings)
    listen = next((p for p in facts.phases if p.phase == "listen"), None)
    if listen is None or listen.last_finished_at is None:
        last = "listen has not run yet"
    else:
        last = f"last listen {_ago(facts.now, listen.last_finished_at)}"
    return f"ok: {facts.untaken_total} untaken, {last}"


def _phase_findings(phase: PhaseFacts, now: int) -> list[Attention]:
    if phase.enabled is False or phase.last_exit_code is None:
        return []
    found = []
    if phase.last_exit_code != 0:
        why = f": {phase.last_error}" if phase.last_error else ""
        found.append(
            Attention(
                "phase_failed",
                f"last {phase.phase} run failed (exit {phase.last_exit_code}{why})",
                f"run `serbero {phase.phase}` by hand, or read its log",
                phase=phase.phase,
                since=phase.last_finished_at,
            )
        )
    finished = phase.last_finished_at
    if (
        finished is not None
        and not phase.holds_lock
        and now - finished > OVERDUE_FACTOR * phase.cadence_seconds
    ):
        found.append(
            Attention(
                "phase_overdue",
                f"{phase.phase} last finished {_ago(now, finished)} "
                f"(meant to run every {span(phase.cadence_seconds)})",
                "check its cron entry or systemd timer",
                phase=phase.phase,
                since=finished,
            )
        )
    return found


def _ago(now: int, at: int) -> str:
    return f"{span(now - at)} ago" if now >= at else f"in {span(at - now)}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return one if n == 1 else (many or one + "s")
