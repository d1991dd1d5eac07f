"""The chat transcript sent with a handoff: how a human who takes over learns what was said.

A solver who takes a dispute over starts a new chat with the parties and cannot read Serbero's,
so every session-scoped handoff or summary is followed by the session's transcript, to the same
recipients: one line per message `[hh:mm] <who>: <text>` (UTC), further lines of a message
indented two spaces, party text shown as data (controls become U+FFFD). A message holds at most
30 000 UTF-8 bytes, so a long transcript is split into parts, between lines
(docs/wire-formats.md#transcript).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from serbero_cli.domain import headline
from serbero_cli.safetext import body_text

MAX_MESSAGE_BYTES = 30_000
CONTINUATION = "  "


def speaker(row: dict[str, Any]) -> str:
    party = "buyer" if row["party"] == "buyer" else "seller"
    return party if row["direction"] == "inbound" else f"serbero \u2192 {party}"


def message_lines(row: dict[str, Any]) -> list[str]:
    """The physical lines of one chat message: the first with time and speaker, then continuations."""
    clock = time.strftime("%H:%M", time.gmtime(int(row["inner_event_created_at"])))
    lines = body_text(row["content"] or "").split("\n")
    return [f"[{clock}] {speaker(row)}: {lines[0]}"] + [CONTINUATION + line for line in lines[1:]]


def subject(count: int, part: int | None = None, parts: int | None = None) -> str:
    if part is None:
        return f"transcript ({count} messages, times UTC)"
    return f"transcript ({count} messages, times UTC, part {part}/{parts})"


def transcript_messages(dispute_id: str, rows: Iterable[dict[str, Any]]) -> list[str]:
    """The transcript as one or more message texts, each within MAX_MESSAGE_BYTES."""
    rows = list(rows)
    if not rows:
        return []
    count = len(rows)
    widest_header = headline.subject_line(dispute_id, subject(count, 999, 999))
    budget = MAX_MESSAGE_BYTES - _size(widest_header) - 1
    lines = [piece for row in rows for line in message_lines(row) for piece in _fit(line, budget)]
    parts: list[list[str]] = [[]]
    used = 0
    for line in lines:
        size = _size(line) + 1
        if parts[-1] and used + size > budget:
            parts.append([])
            used = 0
        parts[-1].append(line)
        used += size
    if len(parts) == 1:
        return ["\n".join([headline.subject_line(dispute_id, subject(count)), *parts[0]])]
    return [
        "\n".join([headline.subject_line(dispute_id, subject(count, i, len(parts))), *body])
        for i, body in enumerate(parts, start=1)
    ]


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit(line: str, budget: int) -> list[str]:
    """A line longer than a whole message is the one thing that gets cut (on a character boundary);
    its pieces after the first read as continuation lines."""
    if _size(line) <= budget:
        return [line]
    pieces, current = [], ""
    for char in line:
        candidate = current + char
        if _size(candidate) > budget:
            pieces.append(current)
            current = CONTINUATION + char
        else:
            current = candidate
    pieces.append(current)
    return pieces
