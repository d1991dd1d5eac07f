"""Texts mediation sends (mediation.md §12.3): party questions and solver DMs.

Version headers and `Key: value` lines are exact; the sentences marked ours are short, pass the
§10.2 phrase check (a test asserts it) and say that a human solver decides. No body ends with a newline.
"""

from __future__ import annotations

from serbero_cli.mediation.policy import FOOTER

NO_SESSION = "<none \u2014 dispute-scoped handoff>"

ESCALATION_NOTE = ("This dispute needs human judgment: Serbero's mediation stopped here and a human solver "
                   "should take it over on Mostro.")
ESCALATION_NOTE_DISPUTE_SCOPE = (" No mediation session was opened with the parties, so there is no chat "
                                 "transcript to review.")


def party_question(party: str, text: str, round_number: int | None = None) -> str:
    """`Buyer: …` on the opening, `Round N. Buyer: …` on follow-ups, then the footer."""
    label = "Buyer" if party == "buyer" else "Seller"
    prefix = f"Round {round_number}. " if round_number else ""
    return f"{prefix}{label}: {text.strip()}\n\n{FOOTER}"


def summary_body(dispute_id: str, session_id: str, label: str, confidence: float, next_step: str,
                 summary_text: str) -> str:
    return (f"mediation_summary/v1\nDispute: {dispute_id}\nSession: {session_id}\n"
            f"Classification: {label} (confidence {confidence:.2f})\nSuggested next step: {next_step}\n\n"
            f"{summary_text}")


def escalation_body(dispute_id: str, session_id: str | None, trigger: str) -> str:
    note = ESCALATION_NOTE + ("" if session_id else ESCALATION_NOTE_DISPUTE_SCOPE)
    return (f"mediation_escalation/v1\nDispute: {dispute_id}\nSession: {session_id or NO_SESSION}\n"
            f"Trigger: {trigger}\n\n{note}")
