"""Rich renderings of the audit views that are not plain lists: the dashboard, one dispute's
timeline, a transcript, one dispatch, the two checks and the rationale (under its warning).

The dashboard opens with what needs a person (the attention block) or "all quiet", so the first
lines of `serbero audit` answer "is anything wrong?". Sections of features switched off in the
config (mediation, escalation) are not shown; without a config they show when they hold rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serbero_cli.audit.render import (
    DISPATCH_COLUMNS,
    Col,
    Out,
    dispatch_cells,
    fit_table,
    footer,
    heading,
    show,
    state,
    text,
    when,
    when_column,
)
from serbero_cli.audit.result import AuditResult
from serbero_cli.audit.text import age, span
from serbero_cli.domain.sessions import LIVE_STATES
from serbero_cli.safetext import short

if TYPE_CHECKING:
    from rich.console import RenderableType

COUNT_SECTIONS = (
    ("disputes", "disputes", None),
    ("notifications", "notifications", None),
    ("sessions", "sessions", "mediation"),
    ("handoffs", "handoffs", "escalation"),
)
PHASE_FEATURE = {"listen": None, "mediate-once": "mediation", "dispatch-once": "escalation"}


def render_dashboard(result: AuditResult, out: Out) -> None:
    from rich.columns import Columns

    d, now = result.document, result.now
    _attention(d["attention"], out)
    out.console.print(
        text(f"schema {d['schema_version']}/{d['schema_expected']}  database {_fit_path(d, out)}")
    )
    tables: list[RenderableType] = []
    for title, key, feature in COUNT_SECTIONS:
        counts = d[key]
        if _shown(d, feature, any(counts.values())):
            rows = [
                [name, text(n, "" if not n else _count_style(name))] for name, n in counts.items()
            ]
            tables.append(fit_table(out, [Col(title), Col("count")], rows))
    out.console.print(Columns(tables, padding=(1, 3)))
    rows = []
    for phase, run in d["last_runs"].items():
        if not _shown(d, PHASE_FEATURE[phase], run is not None):
            continue
        if run is None:
            rows.append([phase, "never", "-", "-"])
            continue
        code = run["exit_code"]
        finished = "-" if run["finished_at"] is None else age(now, run["finished_at"]) + " ago"
        rows.append(
            [
                phase,
                finished,
                text("-" if code is None else code, "green" if code == 0 else "bold red"),
                run["error"] or "-",
            ]
        )
    show(
        out,
        "last run of each phase",
        [Col("phase"), Col("finished"), Col("exit"), Col("error", wrap=True)],
        rows,
    )
    for line in notes(d, now):
        out.console.print(text("note: " + line, "yellow"))


def notes(d: dict[str, Any], now: int) -> list[str]:
    """Findings worth a look that the attention rules leave out, each with the command that shows it."""
    lines = []
    escalation = _shown(d, "escalation", any(d["handoffs"].values()))
    if escalation and d["handoffs_overdue"]:
        lines.append(
            f"{d['handoffs_overdue']} handoff(s) pending for more than twice the dispatch interval "
            f"(oldest {age(now, d['handoffs_oldest_pending_at'])}): serbero audit handoffs --stuck"
        )
    for name in ("parse_failed", "send_failed"):
        if escalation and d["handoffs"].get(name):
            lines.append(
                f"{d['handoffs'][name]} handoff(s) {name}: serbero audit handoffs --state {name}"
            )
    auth = d["solver_auth"]
    if auth and _shown(d, "mediation", True):
        lines.append(
            f"Mostro refuses Serbero as a solver ({auth['status']}, {auth['attempts']} refusal(s)): "
            "serbero mediate-once --reset-solver-auth retries now"
        )
    if not d["thresholds"]["from_config"]:
        lines.append(
            f"no config loaded: thresholds are the defaults (max_attempts {d['thresholds']['max_attempts']}, "
            f"renotification_seconds {d['thresholds']['renotification_seconds']})"
        )
    return lines


def render_dispute(result: AuditResult, out: Out) -> None:
    d, now = result.document["dispute"], result.now
    show(
        out,
        f"dispute {d['dispute_id']}",
        [
            Col("lifecycle"),
            Col("mostro status", 3),
            Col("initiator", 2),
            Col("solver", 1),
            Col("opened"),
            Col("detected", 4),
            Col("last notified", 5),
        ],
        [
            [
                state(d["lifecycle_state"]),
                d["dispute_status"],
                d["initiator_role"] or "-",
                short(d["assigned_solver"]),
                when(out, now, d["event_timestamp"]),
                when(out, now, d["detected_at"]),
                when(out, now, d["last_notified_at"]),
            ]
        ],
    )
    show(
        out,
        "timeline (oldest first)",
        [when_column(out), Col("source", 1), Col("kind"), Col("ref", 2), Col("what", wrap=True)],
        [
            [when(out, now, e["at"]), e["source"], state(e["kind"]), short(e["ref"]), e["text"]]
            for e in result.rows
        ],
    )
    footer(result, out, "timeline entries")


def render_transcript(result: AuditResult, out: Out) -> None:
    s, now = result.document["session"] or {}, result.now
    heading(
        out, f"session {s.get('session_id')}  dispute {s.get('dispute_id')}  state {s.get('state')}"
    )
    rows = []
    for m in result.rows:
        notes_ = [
            n
            for n, on in (
                ("stale", m["stale"]),
                ("unpublished", m["direction"] == "outbound" and m["published_at"] is None),
            )
            if on
        ]
        body = text(
            ("[" + ", ".join(notes_) + "] " if notes_ else "") + (m["content"] or ""),
            "dim" if m["stale"] else "",
        )
        rows.append([when(out, now, m["inner_event_created_at"]), m["direction"], m["party"], body])
    show(
        out,
        "transcript (oldest first)",
        [when_column(out), Col("direction", 1), Col("party"), Col("text", wrap=True)],
        rows,
    )
    footer(result, out, "messages")


def render_dispatch(result: AuditResult, out: Out) -> None:
    r, now = result.document["dispatch"], result.now
    show(out, f"dispatch {r['dispatch_id']}", DISPATCH_COLUMNS, [dispatch_cells(r, now)])
    rows = []
    for n in result.rows:
        relays = n["relays_accepted"] if isinstance(n["relays_accepted"], list) else []
        rows.append(
            [
                n["id"],
                age(now, n["created_at"]),
                short(n["solver_pubkey"]),
                state(n["status"]),
                n["attempts"],
                len(relays) or "-",
                n["error_message"] or "-",
            ]
        )
    show(
        out,
        "its notification records",
        [
            Col("id"),
            Col("age"),
            Col("solver", 2),
            Col("status"),
            Col("attempt", 3),
            Col("relays", 1),
            Col("error", wrap=True),
        ],
        rows,
    )
    footer(result, out, "notification records")


def render_dispatch_check(result: AuditResult, out: Out) -> None:
    d = result.document
    p95 = (
        "no dispatch finished in the last 24 h"
        if d["p95_latency_s"] is None
        else f"24 h p95 latency {span(d['p95_latency_s'])} over {d['p95_sample']} dispatch(es) (limit {d['p95_limit_s']}s)"
    )
    out.console.print(text(p95))
    _problems(result, out, "dispatch check")


def render_authority(result: AuditResult, out: Out) -> None:
    counts = result.document["counts"]
    show(
        out,
        "authority-boundary phrases found (each must be 0)",
        [Col("where"), Col("count")],
        [[name, text(n, "bold red" if n else "green")] for name, n in counts.items()],
    )
    if result.rows:
        show(
            out,
            "findings",
            [
                Col("source"),
                Col("id"),
                Col("dispute", 1),
                Col("phrases", wrap=True),
                Col("text", wrap=True),
            ],
            [
                [
                    f["source"],
                    f["id"],
                    short(f["dispute_id"]),
                    ", ".join(f["phrases"]),
                    f["snippet"],
                ]
                for f in result.rows
            ],
        )
        footer(result, out, "findings")
    _verdict(result, out, "authority check")


def render_rationale(result: AuditResult, out: Out) -> None:
    r, now = result.rows[0], result.now
    out.console.print(text("WARNING: " + result.document["warning"], "bold red"))
    show(
        out,
        f"rationale {r['rationale_id']}",
        [
            Col("session"),
            Col("dispute", 4),
            Col("provider", 2),
            Col("model", 3),
            Col("bundle", 1),
            Col("policy", 5),
            Col("generated"),
        ],
        [
            [
                short(r["session_id"]),
                short(r["dispute_id"]),
                r["provider"],
                r["model"],
                r["prompt_bundle_id"],
                short(r["policy_hash"], 12),
                age(now, r["generated_at"]),
            ]
        ],
    )
    out.console.print(text(r["rationale_text"]))


def _attention(findings: list[dict[str, Any]], out: Out) -> None:
    if not findings:
        out.console.print(text("all quiet: nothing needs attention", "green"))
        return
    out.console.print(text(f"attention: {len(findings)} finding(s)", "bold red"))
    for f in findings:
        line = text("  ! ", "bold red")
        line.append_text(text(f"{f['message']}: {f['hint']}"))
        out.console.print(line)


def _fit_path(d: dict[str, Any], out: Out) -> str:
    """The database path, its start cut to `…` when the line would not fit (the file name stays)."""
    path = str(d["db_path"])
    room = out.console.width - len(
        f"schema {d['schema_version']}/{d['schema_expected']}  database "
    )
    return path if len(path) <= room else "…" + path[-max(room - 1, 1) :]


def _shown(d: dict[str, Any], feature: str | None, has_data: bool) -> bool:
    """Sections of a feature switched off are hidden; with no config, shown when they hold anything."""
    if feature is None:
        return True
    on = d["features"][feature]
    return bool(on) if on is not None else has_data


def _problems(result: AuditResult, out: Out, name: str) -> None:
    if result.rows:
        show(
            out,
            "problems",
            [Col("check"), Col("ref", 1), Col("detail", wrap=True)],
            [[text(p["check"], "bold red"), p["ref"] or "-", p["detail"]] for p in result.rows],
        )
    _verdict(result, out, name)


def _verdict(result: AuditResult, out: Out, name: str) -> None:
    if result.problems:
        out.console.print(
            text(f"{name}: FAILED ({len(result.problems)} problem(s)); exit 4", "bold red")
        )
    else:
        out.console.print(text(f"{name}: OK", "green"))


def _count_style(name: str) -> str:
    if name in (
        "failed_final",
        "unroutable",
        "parse_failed",
        "send_failed",
        "escalated",
        "escalation_recommended",
    ):
        return "bold red"
    return (
        "bold" if name in LIVE_STATES or name in ("pending", "sending", "failed_retrying") else ""
    )


RENDERERS = {
    "dashboard": render_dashboard,
    "dispute": render_dispute,
    "transcript": render_transcript,
    "dispatch": render_dispatch,
    "dispatch-check": render_dispatch_check,
    "authority": render_authority,
    "rationale": render_rationale,
}
