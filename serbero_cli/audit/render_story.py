"""Rich renderings of the audit views that are not plain lists: the dashboard, one dispute's
timeline, a transcript, one dispatch, the two checks and the rationale (under its warning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serbero_cli.audit.render import add, dispatch_cells, footer, state, table, text
from serbero_cli.audit.result import AuditResult
from serbero_cli.audit.text import age, short, span

if TYPE_CHECKING:
    from rich.console import Console

LIVE = ("awaiting_response", "classified", "summary_pending")


def render_dashboard(result: AuditResult, console: Console, borders: bool) -> None:
    d, now = result.document, result.now
    console.print(text(f"serbero audit: {d['db_path']}  schema {d['schema_version']}/{d['schema_expected']}",
                       "bold"))
    for title, counts in (("disputes by lifecycle state", d["disputes"]),
                          ("notifications by status", d["notifications"]),
                          ("mediation sessions by state", d["sessions"]),
                          ("escalation handoffs by state", d["handoffs"])):
        grid = table(title, tuple(counts), borders)
        add(grid, *[text(n, "" if not n else _count_style(name)) for name, n in counts.items()])
        console.print(grid)
    runs = table("last run of each phase", ("phase", "when", "exit code"), borders)
    for phase, run in d["last_runs"].items():
        if run is None:
            add(runs, phase, "never", "-")
        else:
            code = run["exit_code"]
            add(runs, phase, age(now, run["at"]) + " ago", text("-" if code is None else code,
                                                                "green" if code == 0 else "bold red"))
    console.print(runs)
    for line in alerts(d, now):
        console.print(text("! " + line, "bold red"))


def alerts(d: dict[str, Any], now: int) -> list[str]:
    """What needs a person now, each with the command that shows it."""
    lines = []
    if d["notifications"].get("failed_final"):
        lines.append(f"{d['notifications']['failed_final']} notification(s) failed for good: "
                     "serbero audit notifications --status failed_final")
    if d["handoffs_overdue"]:
        lines.append(f"{d['handoffs_overdue']} handoff(s) pending for more than twice the dispatch interval "
                     f"(oldest {age(now, d['handoffs_oldest_pending_at'])}): serbero audit handoffs --stuck")
    for name in ("unroutable", "parse_failed", "send_failed"):
        if d["handoffs"].get(name):
            lines.append(f"{d['handoffs'][name]} handoff(s) {name}: serbero audit handoffs --state {name}")
    auth = d["solver_auth"]
    if auth:
        lines.append(f"Mostro refuses Serbero as a solver ({auth['status']}, {auth['attempts']} refusal(s))")
    for phase, run in d["last_runs"].items():
        if run and run["exit_code"] not in (0, None):
            lines.append(f"the last {phase} run exited {run['exit_code']}")
    if not d["thresholds"]["from_config"]:
        lines.append(f"no config loaded: retry and latency limits are the defaults "
                     f"(max_attempts {d['thresholds']['max_attempts']})")
    return lines


def render_dispute(result: AuditResult, console: Console, borders: bool) -> None:
    d, now = result.document["dispute"], result.now
    head = table(f"dispute {d['dispute_id']}", ("lifecycle", "mostro status", "initiator", "solver", "opened",
                                                "detected", "last notified"), borders)
    add(head, state(d["lifecycle_state"]), d["dispute_status"], d["initiator_role"] or "-",
        short(d["assigned_solver"]), age(now, d["event_timestamp"]), age(now, d["detected_at"]),
        age(now, d["last_notified_at"]))
    console.print(head)
    grid = table("timeline (oldest first)", ("age", "source", "kind", "ref", "what"), borders)
    for e in result.rows:
        add(grid, age(now, e["at"]), e["source"], state(e["kind"]), short(e["ref"]), e["text"])
    console.print(grid)
    footer(result, console, "timeline entries")


def render_transcript(result: AuditResult, console: Console, borders: bool) -> None:
    s, now = result.document["session"] or {}, result.now
    console.print(text(f"session {s.get('session_id')}  dispute {s.get('dispute_id')}  state {s.get('state')}",
                       "bold"))
    grid = table("transcript (oldest first)", ("age", "direction", "party", "text"), borders)
    for m in result.rows:
        notes = [n for n, on in (("stale", m["stale"]),
                                 ("unpublished", m["direction"] == "outbound" and m["published_at"] is None)) if on]
        body = text(("[" + ", ".join(notes) + "] " if notes else "") + (m["content"] or ""),
                    "dim" if m["stale"] else "")
        add(grid, age(now, m["inner_event_created_at"]), m["direction"], m["party"], body)
    console.print(grid)
    footer(result, console, "messages")


def render_dispatch(result: AuditResult, console: Console, borders: bool) -> None:
    r, now = result.document["dispatch"], result.now
    head = table(f"dispatch {r['dispatch_id']}", ("dispatch", "age", "dispute", "handoff", "status", "route",
                                                  "attempts", "recipients", "took", "latency"), borders)
    add(head, *dispatch_cells(r, now))
    console.print(head)
    grid = table("its notification records", ("id", "age", "solver", "status", "attempt", "relays", "error"),
                 borders)
    for n in result.rows:
        relays = n["relays_accepted"] if isinstance(n["relays_accepted"], list) else []
        add(grid, n["id"], age(now, n["created_at"]), short(n["solver_pubkey"]), state(n["status"]), n["attempts"],
            len(relays) or "-", n["error_message"] or "-")
    console.print(grid)
    footer(result, console, "notification records")


def render_dispatch_check(result: AuditResult, console: Console, borders: bool) -> None:
    d = result.document
    p95 = "no dispatch finished in the last 24 h" if d["p95_latency_s"] is None else \
        f"24 h p95 latency {span(d['p95_latency_s'])} over {d['p95_sample']} dispatch(es) (limit {d['p95_limit_s']}s)"
    console.print(text(p95))
    _problems(result, console, borders, "dispatch check")


def render_authority(result: AuditResult, console: Console, borders: bool) -> None:
    counts = result.document["counts"]
    grid = table("authority-boundary phrases found (each must be 0)", tuple(counts), borders)
    add(grid, *[text(n, "bold red" if n else "green") for n in counts.values()])
    console.print(grid)
    if result.rows:
        found = table("where", ("source", "id", "dispute", "phrases", "text"), borders)
        for f in result.rows:
            add(found, f["source"], f["id"], short(f["dispute_id"]), ", ".join(f["phrases"]), f["snippet"])
        console.print(found)
        footer(result, console, "findings")
    _verdict(result, console, "authority check")


def render_rationale(result: AuditResult, console: Console, borders: bool) -> None:
    r, now = result.rows[0], result.now
    console.print(text("WARNING: " + result.document["warning"], "bold red"))
    head = table(f"rationale {r['rationale_id']}", ("session", "dispute", "provider", "model", "bundle", "policy",
                                                    "generated"), borders)
    add(head, short(r["session_id"]), short(r["dispute_id"]), r["provider"], r["model"], r["prompt_bundle_id"],
        short(r["policy_hash"], 12), age(now, r["generated_at"]))
    console.print(head)
    console.print(text(r["rationale_text"]))


def _problems(result: AuditResult, console: Console, borders: bool, name: str) -> None:
    if result.rows:
        grid = table("problems", ("check", "ref", "detail"), borders)
        for p in result.rows:
            add(grid, text(p["check"], "bold red"), p["ref"] or "-", p["detail"])
        console.print(grid)
    _verdict(result, console, name)


def _verdict(result: AuditResult, console: Console, name: str) -> None:
    if result.problems:
        console.print(text(f"{name}: FAILED ({len(result.problems)} problem(s)); exit 4", "bold red"))
    else:
        console.print(text(f"{name}: OK", "green"))


def _count_style(name: str) -> str:
    if name in ("failed_final", "unroutable", "parse_failed", "send_failed", "escalated",
                "escalation_recommended"):
        return "bold red"
    return "bold" if name in LIVE or name in ("pending", "sending", "failed_retrying") else ""


RENDERERS = {"dashboard": render_dashboard, "dispute": render_dispute, "transcript": render_transcript,
             "dispatch": render_dispatch, "dispatch-check": render_dispatch_check, "authority": render_authority,
             "rationale": render_rationale}
