"""The first line every solver and observer message starts with, and times people read.

`Dispute <id> · <subject>` (a space, U+00B7 MIDDLE DOT, a space): Mostrix files the message under
the dispute and shows the subject as its title, and raises its take-over banner on subjects that
start with `handed off` or `mediation could not start`; mostro-watchdog relays `mediating`,
`mediation could not start` and `handed off: <reason>`. See docs/wire-formats.md#first-line.
"""

from __future__ import annotations

import re
import time

from serbero_cli.safetext import body_text, header_value

SEPARATOR = " \u00b7 "

SUBJECT_NEW = "new"
SUBJECT_TAKEN = "taken"
SUBJECT_MEDIATING = "mediating"
SUBJECT_COULD_NOT_START = "mediation could not start"
SUBJECT_FACTS_GATHERED = "handed off: facts_gathered"


def subject_line(dispute_id: str, subject: str) -> str:
    return f"Dispute {header_value(dispute_id)}{SEPARATOR}{header_value(subject)}"


def reason_token(trigger: str) -> str:
    """A trigger as the one snake_case word a subject carries (`[a-z0-9_]{1,64}`)."""
    token = re.sub(r"[^a-z0-9_]+", "_", (trigger or "").strip().lower()).strip("_")[:64]
    return token or "unknown"


def handed_off(trigger: str) -> str:
    return f"handed off: {reason_token(trigger)}"


def unattended(minutes: int) -> str:
    return f"unattended ({max(0, int(minutes))} min)"


def resolved(status: str) -> str:
    return f"resolved: {header_value(status)}"


HANDOFF_HINT = "needs human judgment; Serbero's mediation stopped here"


def escalation_subject(session_id: str | None, trigger: str) -> str:
    """`handed off: <trigger>` when a session was opened (its transcript follows), else
    `mediation could not start`."""
    return handed_off(trigger) if session_id else SUBJECT_COULD_NOT_START


def escalation_opening(dispute_id: str, session_id: str | None, trigger: str) -> tuple[str, str]:
    """First and second line of any escalation message (mediation alert or handoff)."""
    if session_id:
        return subject_line(dispute_id, handed_off(trigger)), HANDOFF_HINT
    return subject_line(dispute_id, SUBJECT_COULD_NOT_START), f"reason: {reason_token(trigger)}"


def human_time(at: int, now: int) -> str:
    """`N min ago, YYYY-MM-DD HH:MM UTC` (a time in the future reads as 0 min ago)."""
    minutes = max(0, int(now) - int(at)) // 60
    return f"{minutes} min ago, {utc_minute(at)}"


def utc_minute(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(at)))


def message(first: str, second: str | None, header: list[str], free_text: str | None = None) -> str:
    """Join a message: first line, optional plain second line, one-line header lines, then (after
    one empty line) free text. Header values must already be one line (`header_value`); free text
    keeps its newlines but loses every other control character. No trailing newline."""
    lines = [first] + ([header_value(second)] if second else []) + header
    text = "\n".join(lines)
    if free_text is not None:
        text += "\n\n" + body_text(free_text)
    return text
