"""`audit authority`: the fund-safety check (docs/operations.md#audit, docs/mediation.md#authority-phrases).

Serbero never asks anyone to settle, cancel or move funds. This scans everything Serbero has
sent or queued for sending: every outbound party message, every solver notification body
(whatever its type, so summaries, alerts and handoff DMs are all covered) and every
`notif_type`, for the authority phrases as case-insensitive substrings. The phrase list is the policy
layer's own (`mediation/policy.py`), so the check and the gate that stops such text can't drift.
The handoff DM tells a solver to use `admin-take-dispute`, which is not an authority phrase: it passes.
Transcripts are left out: they show what the parties wrote, as data, and a party may well ask for
its money; what Serbero itself says is in every other row.

Matching uses `LIKE` with `%` and `_` escaped: a literal, ASCII-case-insensitive substring test
(the phrases are ASCII), five times faster than `instr(lower(x), …)` because nothing is copied.
An unescaped LIKE would treat the `_` of `admin_settle` as a wildcard. The scan reads whole
tables on purpose: it is a check, not a default list view (0.5 s on 300 000 notifications).
"""

from __future__ import annotations

from typing import Any

from serbero_cli.domain.authority import (
    AUTHORITY_PHRASES,
    AUTHORITY_WORD_PHRASES,
    normalise_for_phrases,
)
from serbero_cli.store import audit_queries as queries
from serbero_cli.store.audit_queries import Source

SNIPPET_CHARS = 40
SOURCES = ("outbound_message", "notification_body", "notification_type")


def scan(src: Source, limit: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Return (count per source, the first `limit` findings, 0 = all) of authority phrases."""
    counts = dict.fromkeys(SOURCES, 0)
    findings: list[dict[str, Any]] = []
    patterns = tuple(
        "%" + p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        for p in (*AUTHORITY_PHRASES, *AUTHORITY_WORD_PHRASES)
    )

    for row in queries.outbound_messages_like(src, patterns):
        counts["outbound_message"] += 1
        findings.append(
            _finding(
                "outbound_message",
                row["id"],
                row["dispute_id"],
                row["content"],
                session_id=row["session_id"],
                party=row["party"],
            )
        )
    for row in queries.notifications_like(src, patterns, skip_types=("transcript",)):
        for source, text in (
            ("notification_body", row["body"]),
            ("notification_type", row["notif_type"]),
        ):
            if phrases_in(text):
                counts[source] += 1
                findings.append(
                    _finding(
                        source,
                        row["id"],
                        row["dispute_id"],
                        text,
                        notif_type=row["notif_type"],
                        solver_pubkey=row["solver_pubkey"],
                    )
                )
    return counts, (findings[:limit] if limit else findings)


def phrases_in(text: str | None) -> list[str]:
    """The authority phrases `text` contains, read the way the policy reads it (case-folded,
    whitespace collapsed; `release to` only as whole words)."""
    import re

    flat = normalise_for_phrases(text or "")
    found = [p for p in AUTHORITY_PHRASES if p in flat]
    return found + [p for p in AUTHORITY_WORD_PHRASES if re.search(re.escape(p) + r"\b", flat)]


def _finding(
    source: str,
    row_id: int,
    dispute_id: str | None,
    text: str,
    *,
    session_id: str | None = None,
    party: str | None = None,
    notif_type: str | None = None,
    solver_pubkey: str | None = None,
) -> dict[str, Any]:
    """One finding with the same keys whatever its source (None where a key does not apply)."""
    found = phrases_in(text)
    at = max(0, (text or "").lower().find(found[0].lower())) if found else 0
    start = max(0, at - SNIPPET_CHARS)
    snippet = text[start : at + len(found[0]) + SNIPPET_CHARS] if found else ""
    return {
        "source": source,
        "id": row_id,
        "dispute_id": dispute_id,
        "phrases": found,
        "snippet": snippet.replace("\n", " "),
        "session_id": session_id,
        "party": party,
        "notif_type": notif_type,
        "solver_pubkey": solver_pubkey,
    }
