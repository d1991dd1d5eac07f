"""The two audit checks that exit 4 when they find a problem (docs/operations.md#audit).

`run_authority` looks for settle/cancel/fund-moving wording in anything Serbero sent
(audit/authority.py). `run_dispatch_check` is `audit dispatches --check`:
dispatch rows and their audit rows match 1:1, one dispatch row per handoff, no stale `sending`
row, and a 24 h p95 delivery latency of at most 60 s.
"""

from __future__ import annotations

import math

from serbero_cli.audit import authority
from serbero_cli.audit.result import AuditResult
from serbero_cli.audit.views import check_limit
from serbero_cli.store import audit_handoffs as hq
from serbero_cli.store.audit_queries import AuditSettings, open_source

P95_WINDOW_SECONDS = 86400
P95_LIMIT_SECONDS = 60
FINDING_COLUMNS = (
    "source",
    "id",
    "dispute_id",
    "phrases",
    "snippet",
    "session_id",
    "party",
    "notif_type",
    "solver_pubkey",
)
PROBLEM_COLUMNS = ("check", "detail", "ref")


def run_authority(settings: AuditSettings, *, now: int, limit: int = 50) -> AuditResult:
    """Counts of authority phrases in outbound text and notifications; exit 4 when any is found."""
    check_limit(limit)
    with open_source(settings) as src:
        counts, findings = authority.scan(src, limit)
    problems = [
        problem(source, None, f"{n} row(s) contain an authority-boundary phrase")
        for source, n in counts.items()
        if n
    ]
    return AuditResult(
        "authority",
        now,
        rows=findings,
        columns=FINDING_COLUMNS,
        limit=limit,
        truncated=bool(limit) and sum(counts.values()) > len(findings),
        problems=problems,
        is_check=True,
        document={"counts": counts, "phrases": list(authority.AUTHORITY_PHRASES)},
    )


def run_dispatch_check(settings: AuditSettings, *, now: int, limit: int = 50) -> AuditResult:
    """`audit dispatches --check`: every inconsistency is one problem row; exit 4 if any."""
    check_limit(limit)
    with open_source(settings) as src:
        terminal = hq.terminal_dispatch_ids(src)
        audits = hq.dispatched_audit_rows(src)
        duplicates = hq.duplicate_handoff_dispatches(src)
        stale = hq.stale_sending(src, now - settings.sending_stale_seconds)
        latencies = hq.latencies_since(src, now - P95_WINDOW_SECONDS)
    problems = []
    audited = {a["dispatch_id"] for a in audits}
    terminal_ids = {t["dispatch_id"] for t in terminal}
    problems += [
        problem(
            "terminal_without_audit",
            t["dispatch_id"],
            f"dispatch {t['dispatch_id']} is {t['status']} but has no escalation_dispatched row",
        )
        for t in terminal
        if t["dispatch_id"] not in audited
    ]
    problems += [
        problem(
            "audit_without_terminal",
            str(a["id"]),
            f"escalation_dispatched event {a['id']} names dispatch {a['dispatch_id']}, "
            "which is not a finished dispatch row",
        )
        for a in audits
        if a["dispatch_id"] not in terminal_ids
    ]
    problems += [
        problem(
            "duplicate_dispatch",
            str(d["handoff_event_id"]),
            f"handoff {d['handoff_event_id']} has {d['n']} dispatch rows",
        )
        for d in duplicates
    ]
    problems += [
        problem(
            "stale_sending",
            s["dispatch_id"],
            f"dispatch {s['dispatch_id']} has been sending since {s['dispatched_at']} "
            f"(attempt {s['attempts']}, stale after {settings.sending_stale_seconds}s)",
        )
        for s in stale
    ]
    p95 = percentile_95(latencies)
    if p95 is not None and p95 > P95_LIMIT_SECONDS:
        problems.append(
            problem(
                "slow_p95",
                None,
                f"24 h p95 delivery latency is {p95}s over {len(latencies)} "
                f"dispatch(es), above {P95_LIMIT_SECONDS}s",
            )
        )
    shown = problems[:limit] if limit else problems
    return AuditResult(
        "dispatch-check",
        now,
        rows=shown,
        columns=PROBLEM_COLUMNS,
        limit=limit,
        truncated=len(shown) < len(problems),
        problems=problems,
        is_check=True,
        document={
            "p95_latency_s": p95,
            "p95_sample": len(latencies),
            "p95_limit_s": P95_LIMIT_SECONDS,
            "sending_stale_seconds": settings.sending_stale_seconds,
        },
    )


def problem(check: str, ref: str | None, detail: str) -> dict[str, str | None]:
    """One finding of a check, with the keys always in the same order."""
    return {"check": check, "detail": detail, "ref": ref}


def percentile_95(values: list[int]) -> int | None:
    """Nearest-rank 95th percentile (the smallest value with at least 95% of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
