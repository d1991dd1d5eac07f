"""The policy layer (mediation.md §10): what Serbero does with a classification, as a pure function.

No I/O, no clock: the caller passes the parsed classification and where in the session it is,
and gets back one decision. The rule order is the contract; the first matching rule wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from serbero_cli.domain.authority import contains_authority_phrase
from serbero_cli.reasoning.parsing import Classification, SummaryOutput

LOW_CONFIDENCE = 0.5  # rule 4: below this, escalate (with the clarification bypass)
BYPASS_MAX_FOLLOWUP = 3  # rule 4: ask_clarification is still sent up to this follow-up number
MAX_CONSECUTIVE_FAILURES = 3  # §7.4, §7.5: the 3rd failure in a row escalates reasoning_unavailable

# §11.1: every escalation trigger name, including the reserved one.
TRIGGERS: tuple[str, ...] = (
    "conflicting_claims",
    "fraud_indicator",
    "low_confidence",
    "party_unresponsive",
    "round_limit",
    "reasoning_unavailable",
    "authorization_lost",
    "authority_boundary_attempt",
    "mediation_timeout",
    "policy_bundle_missing",
    "invalid_model_output",
    "notification_failed",
)

# Appended to party questions (§12.3): short, neutral, says who decides; checked against §10.2 in a test.
FOOTER = "Serbero is an automated assistant and cannot decide this dispute. A human solver makes the decision."

RESOLVABLE = "coordination_failure_resolvable"


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of decide(): one action, with the trigger when it escalates."""

    action: str  # "ask_clarification" | "summarize" | "escalate"
    trigger: str | None  # one of TRIGGERS when action == "escalate", else None
    buyer_text: str | None  # the question for the buyer (ask_clarification only), without prefix
    seller_text: str | None  # the question for the seller (ask_clarification only)
    classification: str  # the model's label, kept for the verdict and summary rows
    confidence: float


def decide(c: Classification, *, opening: bool, followup_number: int) -> PolicyDecision:
    """Apply the §10.1 rules in order to a classification and return the first decision that matches.

    `opening` is True for the opening call; `followup_number` counts the classifications already
    recorded for the session (0 when opening).
    """
    flags = set(c.flags)
    if "fraud_risk" in flags:
        return _escalate(c, "fraud_indicator")
    if "conflicting_claims" in flags:
        return _escalate(c, "conflicting_claims")
    if "authority_boundary_attempt" in flags:
        return _escalate(c, "authority_boundary_attempt")
    asking = c.suggested_action == "ask_clarification"
    bypass = asking and (opening or followup_number <= BYPASS_MAX_FOLLOWUP)
    if c.confidence < LOW_CONFIDENCE and not bypass:
        return _escalate(c, "low_confidence")
    if c.suggested_action == "escalate":
        # The model's own reason stays in the audit trail (suggested_action_detail), not the trigger.
        return _escalate(c, "reasoning_unavailable")
    if asking:
        buyer, seller = c.buyer_clarification, c.seller_clarification
        if not (buyer and buyer.strip()) or not (seller and seller.strip()):
            return _escalate(c, "reasoning_unavailable")
        if contains_authority_phrase(buyer) or contains_authority_phrase(seller):
            return _escalate(c, "authority_boundary_attempt")
        return PolicyDecision("ask_clarification", None, buyer, seller, c.classification, c.confidence)
    if c.suggested_action == "summarize" and c.classification != RESOLVABLE:
        return _escalate(c, "invalid_model_output")
    if c.suggested_action == "summarize":
        return PolicyDecision("summarize", None, None, None, c.classification, c.confidence)
    # Unreachable with a parsed Classification; an unknown action must never be acted on.
    return _escalate(c, "invalid_model_output")


def both_parties_heard(fresh_inbound: dict[str, int]) -> bool:
    """A summary is acted on only once each party has said something in the session."""
    return fresh_inbound.get("buyer", 0) > 0 and fresh_inbound.get("seller", 0) > 0


# The opening questions when the model would summarize before anyone spoke: both parties must be
# heard first (classification.md's per-party rules: buyer = sent the fiat? proof; seller = received?).
OPENING_BUYER_QUESTION = ("Please tell me in a few words whether you sent the fiat payment for this trade, when "
                          "you sent it, and what proof of payment you have.")
OPENING_SELLER_QUESTION = ("Please tell me in a few words whether the fiat payment for this trade has reached "
                           "you, and when.")


def check_summary(summary: SummaryOutput) -> str | None:
    """Return "authority_boundary_attempt" when a summary must not be sent, else None (§10.2).

    It must not be sent when the summary or next step is empty or contains a §10.2 phrase.
    """
    if not summary.summary.strip() or not summary.next_step.strip():
        return "authority_boundary_attempt"
    if contains_authority_phrase(summary.summary) or contains_authority_phrase(summary.next_step):
        return "authority_boundary_attempt"
    return None


def _escalate(c: Classification, trigger: str) -> PolicyDecision:
    return PolicyDecision("escalate", trigger, None, None, c.classification, c.confidence)
