"""The policy layer: what Serbero does with a classification, as a pure function (docs/mediation.md#policy).

No I/O, no clock: the caller passes the parsed classification and where in the session it is,
and gets back one decision. The rule order is the contract; the first matching rule wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from serbero_cli.domain.authority import contains_authority_phrase
from serbero_cli.reasoning.parsing import Classification, SummaryOutput

LOW_CONFIDENCE = 0.5  # rule 4: below this, escalate (with the clarification bypass)
BYPASS_MAX_FOLLOWUP = 3  # rule 4: ask_clarification is still sent up to this follow-up number
MAX_CONSECUTIVE_FAILURES = (
    3  # the third failed opening, evaluation or summary in a row escalates reasoning_unavailable
)


class PolicyAction(StrEnum):
    """What the policy does with a classification (the model suggests the same three words)."""

    ASK_CLARIFICATION = "ask_clarification"
    SUMMARIZE = "summarize"
    ESCALATE = "escalate"


class EscalationTrigger(StrEnum):
    """Why a dispute is handed to a human (docs/mediation.md#triggers); the `<reason>` of the
    `handed off: <reason>` subject and the `trigger` of the handoff package."""

    CONFLICTING_CLAIMS = "conflicting_claims"
    FRAUD_INDICATOR = "fraud_indicator"
    LOW_CONFIDENCE = "low_confidence"
    PARTY_UNRESPONSIVE = "party_unresponsive"
    ROUND_LIMIT = "round_limit"
    REASONING_UNAVAILABLE = "reasoning_unavailable"
    AUTHORIZATION_LOST = "authorization_lost"
    AUTHORITY_BOUNDARY_ATTEMPT = "authority_boundary_attempt"
    MEDIATION_TIMEOUT = "mediation_timeout"
    POLICY_BUNDLE_MISSING = "policy_bundle_missing"  # reserved: never fired
    INVALID_MODEL_OUTPUT = "invalid_model_output"
    NOTIFICATION_FAILED = "notification_failed"


TRIGGERS: tuple[EscalationTrigger, ...] = tuple(EscalationTrigger)

# Appended to party questions: short, neutral, says who decides; a test checks it holds no authority phrase.
FOOTER = "Serbero is an automated assistant and cannot decide this dispute. A human solver makes the decision."

RESOLVABLE = "coordination_failure_resolvable"


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of decide(): one action, with the trigger when it escalates."""

    action: PolicyAction
    trigger: EscalationTrigger | None  # set when action is ESCALATE, else None
    buyer_text: str | None  # the question for the buyer (ask_clarification only), without prefix
    seller_text: str | None  # the question for the seller (ask_clarification only)
    classification: str  # the model's label, kept for the verdict and summary rows
    confidence: float

    @property
    def questions(self) -> tuple[str, str]:
        """(buyer, seller) questions of an ASK_CLARIFICATION decision, the only kind that has them."""
        if self.buyer_text is None or self.seller_text is None:
            raise ValueError(f"a decision to {self.action} asks no questions")
        return self.buyer_text, self.seller_text


def decide(c: Classification, *, opening: bool, followup_number: int) -> PolicyDecision:
    """Apply the policy rules in order to a classification and return the first decision that matches
    (docs/mediation.md#policy).

    `opening` is True for the opening call; `followup_number` counts the classifications already
    recorded for the session (0 when opening).
    """
    T = EscalationTrigger
    flags = set(c.flags)
    if "fraud_risk" in flags:
        return _escalate(c, T.FRAUD_INDICATOR)
    if "conflicting_claims" in flags:
        return _escalate(c, T.CONFLICTING_CLAIMS)
    if "authority_boundary_attempt" in flags:
        return _escalate(c, T.AUTHORITY_BOUNDARY_ATTEMPT)
    asking = c.suggested_action == PolicyAction.ASK_CLARIFICATION
    bypass = asking and (opening or followup_number <= BYPASS_MAX_FOLLOWUP)
    if c.confidence < LOW_CONFIDENCE and not bypass:
        return _escalate(c, T.LOW_CONFIDENCE)
    if c.suggested_action == PolicyAction.ESCALATE:
        # The model's own reason stays in the audit trail (suggested_action_detail), not the trigger.
        return _escalate(c, T.REASONING_UNAVAILABLE)
    if asking:
        buyer, seller = c.buyer_clarification, c.seller_clarification
        if not (buyer and buyer.strip()) or not (seller and seller.strip()):
            return _escalate(c, T.REASONING_UNAVAILABLE)
        if contains_authority_phrase(buyer) or contains_authority_phrase(seller):
            return _escalate(c, T.AUTHORITY_BOUNDARY_ATTEMPT)
        return PolicyDecision(
            PolicyAction.ASK_CLARIFICATION, None, buyer, seller, c.classification, c.confidence
        )
    if c.suggested_action == PolicyAction.SUMMARIZE and c.classification != RESOLVABLE:
        return _escalate(c, T.INVALID_MODEL_OUTPUT)
    if c.suggested_action == PolicyAction.SUMMARIZE:
        return PolicyDecision(
            PolicyAction.SUMMARIZE, None, None, None, c.classification, c.confidence
        )
    # Unreachable with a parsed Classification; an unknown action must never be acted on.
    return _escalate(c, T.INVALID_MODEL_OUTPUT)


def both_parties_heard(fresh_inbound: dict[str, int]) -> bool:
    """A summary is acted on only once each party has said something in the session."""
    return fresh_inbound.get("buyer", 0) > 0 and fresh_inbound.get("seller", 0) > 0


# The opening questions when the model would summarize before anyone spoke: both parties must be
# heard first (the per-party rules of the packaged classification prompt: buyer = sent the fiat?
# proof; seller = received?).
OPENING_BUYER_QUESTION = (
    "Please tell me in a few words whether you sent the fiat payment for this trade, when "
    "you sent it, and what proof of payment you have."
)
OPENING_SELLER_QUESTION = (
    "Please tell me in a few words whether the fiat payment for this trade has reached "
    "you, and when."
)


def check_summary(summary: SummaryOutput) -> EscalationTrigger | None:
    """Return AUTHORITY_BOUNDARY_ATTEMPT when a summary must not be sent, else None.

    It must not be sent when the summary or next step is empty or contains an authority phrase
    (docs/mediation.md#authority-phrases).
    """
    if not summary.summary.strip() or not summary.next_step.strip():
        return EscalationTrigger.AUTHORITY_BOUNDARY_ATTEMPT
    if contains_authority_phrase(summary.summary) or contains_authority_phrase(summary.next_step):
        return EscalationTrigger.AUTHORITY_BOUNDARY_ATTEMPT
    return None


def _escalate(c: Classification, trigger: EscalationTrigger) -> PolicyDecision:
    return PolicyDecision(
        PolicyAction.ESCALATE, trigger, None, None, c.classification, c.confidence
    )
