"""Texts mediation sends: party questions, and the structured messages to solvers.

Solver messages start with the `Dispute <id> · <subject>` line (and a plain second line where
there is one), then the version marker on a line of its own (`mediation_summary/v2`, …), the
`Key: value` header lines, one empty line and free text (docs/wire-formats.md). Header values are
one line whatever the model or a party wrote; the sentences here are ours, pass the authority
phrase check (a test asserts it) and say that a human solver decides. No body ends with a newline.
"""

from __future__ import annotations

from serbero_cli.domain import headline
from serbero_cli.mediation.policy import FOOTER
from serbero_cli.safetext import body_text, header_value

NO_SESSION = "<none \u2014 dispute-scoped handoff>"

SUMMARY_HINT = "the facts look clear; a human solver should take it over and decide"
ESCALATION_NOTE = (
    "This dispute needs human judgment: Serbero's mediation stopped here and a human solver "
    "should take it over on Mostro."
)
ESCALATION_NOTE_DISPUTE_SCOPE = (
    " No mediation session was opened with the parties, so there is no chat transcript to review."
)
WAITING_FOR_OTHER_PARTY = (
    "Thank you, that is what I needed from you for now. I am waiting for the other "
    "party's answer before a human solver takes this over."
)


def party_question(party: str, text: str, round_number: int | None = None) -> str:
    """`Buyer: …` on the opening, `Round N. Buyer: …` on follow-ups, then the footer."""
    label = "Buyer" if party == "buyer" else "Seller"
    prefix = f"Round {round_number}. " if round_number else ""
    return f"{prefix}{label}: {body_text(text.strip())}\n\n{FOOTER}"


def waiting_note() -> str:
    """What the party who answered hears while the other has not (sent once per party)."""
    return f"{WAITING_FOR_OTHER_PARTY}\n\n{FOOTER}"


def summary_body(
    dispute_id: str,
    session_id: str,
    label: str,
    confidence: float,
    next_step: str,
    summary_text: str,
) -> str:
    return headline.message(
        headline.subject_line(dispute_id, headline.SUBJECT_FACTS_GATHERED),
        SUMMARY_HINT,
        [
            "mediation_summary/v2",
            f"Dispute: {dispute_id}",
            f"Session: {session_id}",
            f"Classification: {header_value(label)} (confidence {confidence:.2f})",
            f"Suggested next step: {header_value(next_step)}",
        ],
        summary_text,
    )


def escalation_body(dispute_id: str, session_id: str | None, trigger: str) -> str:
    first, second = headline.escalation_opening(dispute_id, session_id, trigger)
    note = ESCALATION_NOTE + ("" if session_id else ESCALATION_NOTE_DISPUTE_SCOPE)
    return headline.message(
        first,
        second,
        [
            "mediation_escalation/v2",
            f"Dispute: {dispute_id}",
            f"Session: {session_id or NO_SESSION}",
            f"Trigger: {header_value(trigger)}",
        ],
        note,
    )
