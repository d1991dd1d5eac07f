"""Words that only Mostro's humans may act on: what Serbero never says, and how text is checked.

Serbero never asks anyone to settle, cancel or move funds. Every text it sends (questions to the
parties, summaries and next steps for solvers, fixed footers) is checked against these phrases
before it goes out, and `audit authority` checks what was sent (docs/mediation.md#authority-phrases).
"""

from __future__ import annotations

import re

from serbero_cli.safetext import body_text

# Matched as substrings of the normalised text (case-folded, whitespace collapsed).
AUTHORITY_PHRASES: tuple[str, ...] = (
    "admin-settle",
    "admin_settle",
    "admin-cancel",
    "admin_cancel",
    "release funds",
    "release the funds",
    "settle the trade",
    "settle funds",
    "cancel trade",
    "cancel the trade",
    "force close",
    "force-close",
    "move funds",
    "transfer funds",
    "disburse funds",
    "close the dispute",
    "settle in favour of",
    "settle in favor of",
    "in favour of the buyer",
    "in favor of the buyer",
    "in favour of the seller",
    "in favor of the seller",
)
# Phrases that only count as whole words at their end ("release to the buyer", not "release tomorrow").
AUTHORITY_WORD_PHRASES: tuple[str, ...] = ("release to",)


def normalise_for_phrases(text: str) -> str:
    """Case-folded, controls replaced, every run of whitespace one space: what phrase checks read."""
    return body_text(" ".join(text.casefold().split()))


def contains_authority_phrase(text: str | None) -> bool:
    """True when `text` names an action only Mostro's humans may take (after normalisation)."""
    if not text:
        return False
    flat = normalise_for_phrases(text)
    if any(phrase in flat for phrase in AUTHORITY_PHRASES):
        return True
    return any(re.search(re.escape(phrase) + r"\b", flat) for phrase in AUTHORITY_WORD_PHRASES)
