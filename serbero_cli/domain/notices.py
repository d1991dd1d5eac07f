"""What listen tells solvers: new disputes, reminders, who took a dispute (docs/wire-formats.md).

Each message is the `Dispute <id> · <subject>` line, a plain second line for people, then
`key: value` lines that tools parse, exact and in order. Messages never carry a party's pubkey,
only the trade role. No body ends with a newline.
"""

from __future__ import annotations

from serbero_cli.domain import headline
from serbero_cli.safetext import header_value

RENOTIFY_HINT = "still no solver has taken it; take it from your Mostro client (admin-take-dispute)"
MEDIATING_HINT = (
    "Serbero is mediating with both parties; a write solver can take it over at any time"
)
TAKEN_BY_SOLVER = "taken by: a solver"


def initial_body(
    dispute_id: str, initiator: str, event_timestamp: int, now: int, *, reopened: bool = False
) -> str:
    role = header_value(initiator)
    when = headline.human_time(event_timestamp, now)
    second = (
        f"reopened by Mostro {when}, after it had been resolved (initiator: {role})"
        if reopened
        else f"opened by the {role} {when}"
    )
    return headline.message(
        headline.subject_line(dispute_id, headline.SUBJECT_NEW),
        second,
        [
            f"dispute_id: {dispute_id}",
            f"initiator: {role}",
            f"event_timestamp: {event_timestamp}",
            "status: initiated",
        ],
    )


def renotification_body(dispute_id: str, elapsed_seconds: int) -> str:
    elapsed = max(0, int(elapsed_seconds))
    return headline.message(
        headline.subject_line(dispute_id, headline.unattended(elapsed // 60)),
        RENOTIFY_HINT,
        [
            f"dispute_id: {dispute_id}",
            "lifecycle_state: notified",
            f"time_elapsed_seconds: {elapsed}",
        ],
    )


def assignment_body(
    dispute_id: str, assigned_solver: str | None, *, by_serbero: bool = False
) -> str:
    if by_serbero:
        subject, second = headline.SUBJECT_MEDIATING, MEDIATING_HINT
    else:
        subject, second = headline.SUBJECT_TAKEN, TAKEN_BY_SOLVER
    return headline.message(
        headline.subject_line(dispute_id, subject),
        second,
        [
            f"dispute_id: {dispute_id}",
            f"assigned_solver: {assigned_solver or 'unknown'}",
            "lifecycle_state: taken",
        ],
    )


def digest_body(entries: list[tuple[str, str | None, int]], now: int) -> str:
    """One reminder for many untaken disputes (the nip17 envelope only: phones buzz on every DM).

    `entries` are (dispute id, initiator role, opened at)."""
    lines = [f"Serbero{headline.SEPARATOR}unattended: {len(entries)} disputes"]
    for dispute_id, role, opened in entries:
        lines.append(
            f"{dispute_id}, opened by the {header_value(role or 'unknown')}, "
            f"{headline.human_time(opened, now)}"
        )
    return "\n".join(lines)
