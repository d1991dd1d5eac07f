"""`serbero audit metrics`: the database's counts in the Prometheus text exposition format.

Meant for node_exporter's textfile collector: run it from cron with `--output
/var/lib/node_exporter/textfile/serbero.prom`. Every family is always present with every known
label value (0 when there is nothing, also when mediation or escalation is off), so alerts and
graphs never see a series vanish. The file is replaced atomically (a temporary file in the same
folder, then a rename), so the collector never reads half a file; it is written mode 0644
because the collector usually runs as another user and the file holds counts only, no ids, keys
or text.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from serbero_cli import __version__
from serbero_cli.audit.health import PHASES, phase_runs
from serbero_cli.domain.notifications import ENVELOPES
from serbero_cli.errors import UsageError
from serbero_cli.safetext import valid_unicode
from serbero_cli.store import audit_handoffs as hq
from serbero_cli.store import audit_queries as q
from serbero_cli.store.audit_queries import AuditSettings, open_source

FILE_MODE = 0o644
Sample = tuple[dict[str, str], int]


def run_metrics(settings: AuditSettings, *, now: int) -> str:
    """Read the database (read-only) and return the whole exposition text."""
    with open_source(settings) as src:
        disputes = _filled(q.LIFECYCLE_STATES, q.count_disputes_by_state(src))
        notifications = _notification_samples(q.notifications_by_outcome_and_envelope(src))
        sessions = _filled(q.WRITTEN_SESSION_STATES, q.count_sessions_by_state(src))
        handoffs = _filled(
            hq.HANDOFF_STATES, {r["state"]: r["n"] for r in hq.count_handoffs_by_state(src, now)}
        )
        untaken = q.untaken_disputes(src, now)
        runs = phase_runs(q.last_runs(src))
    oldest = untaken["oldest_at"]
    untaken_age = max(0, now - oldest) if untaken["total"] and oldest is not None else 0
    run_at = [({"phase": p.name}, (runs[p.name] or {}).get("finished_at") or 0) for p in PHASES]
    run_code = [({"phase": p.name}, (runs[p.name] or {}).get("exit_code") or 0) for p in PHASES]
    families: list[tuple[str, str, list[Sample]]] = [
        ("serbero_disputes", "Disputes by lifecycle state.", _by("state", disputes)),
        (
            "serbero_notifications",
            "Solver notifications by delivery status (failed split into failed_retrying "
            "and failed_final) and envelope.",
            notifications,
        ),
        ("serbero_sessions", "Mediation sessions by state.", _by("state", sessions)),
        ("serbero_handoffs", "Escalation handoffs by delivery state.", _by("state", handoffs)),
        (
            "serbero_oldest_untaken_dispute_age_seconds",
            "Seconds since the oldest dispute nobody has taken was "
            "opened (0 when none is untaken).",
            [({}, untaken_age)],
        ),
        (
            "serbero_last_run_timestamp_seconds",
            "Unix time the phase's last recorded run finished (0: never ran).",
            run_at,
        ),
        (
            "serbero_last_run_exit_code",
            "Exit code of the phase's last recorded run (0 also when it never ran).",
            run_code,
        ),
        (
            "serbero_build_info",
            "The running Serbero version (always 1).",
            [({"version": __version__}, 1)],
        ),
    ]
    return "".join(_family(name, text, samples) for name, text, samples in families)


def write_atomically(path: Path, content: str) -> None:
    """Replace `path` with `content` in one rename; raise UsageError when the folder is unusable."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--output: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"--output: cannot write in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _filled(known: tuple[str, ...], counts: dict[str, int]) -> dict[str, int]:
    filled = {name: counts.get(name, 0) for name in known}
    filled.update({str(name): n for name, n in counts.items() if name not in filled})
    return filled


def _by(label: str, counts: dict[str, int]) -> list[Sample]:
    return [({label: name}, n) for name, n in counts.items()]


def _notification_samples(rows: list[dict[str, Any]]) -> list[Sample]:
    counts: dict[tuple[str, str], int] = {
        (outcome, envelope): 0 for outcome in q.NOTIFICATION_OUTCOMES for envelope in ENVELOPES
    }
    for row in rows:
        key = (str(row["outcome"]), str(row["envelope"] or "none"))
        counts[key] = counts.get(key, 0) + int(row["n"])
    return [
        ({"status": status, "envelope": envelope}, n) for (status, envelope), n in counts.items()
    ]


def _family(name: str, help_text: str, samples: list[Sample]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        inner = ",".join(f'{key}="{_label_value(text)}"' for key, text in labels.items())
        lines.append(f"{name}{{{inner}}} {int(value)}" if inner else f"{name} {int(value)}")
    return "\n".join(lines) + "\n"


def _label_value(text: str) -> str:
    """A label value escaped as the format requires: backslash, double quote and newline."""
    return valid_unicode(str(text)).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
