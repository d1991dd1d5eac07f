"""Strict parsers for model output: the classification JSON and the summary text
(docs/mediation.md#model-output).

Model output is untrusted. Anything outside the contract raises MalformedResponse, which the
caller counts as a reasoning failure; nothing here may crash a run. Error messages describe the
problem without echoing the output, because they reach logs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

LABELS = (
    "coordination_failure_resolvable",
    "conflicting_claims",
    "suspected_fraud",
    "unclear",
    "not_suitable_for_mediation",
)
ACTIONS = ("ask_clarification", "summarize", "escalate")
FLAGS = (
    "fraud_risk",
    "conflicting_claims",
    "low_info",
    "unresponsive_party",
    "authority_boundary_attempt",
)
NEXT_STEP_MARKER = "SUGGESTED_NEXT_STEP:"
RATIONALE_MARKER = "RATIONALE:"

# One surrounding fence, with an optional `json` info string, around the whole answer.
_FENCE = re.compile(r"\A```(?:json)?[ \t]*(?:\r?\n)?(.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)


class MalformedResponse(ValueError):
    """The model's answer does not follow the output contract."""


@dataclass(frozen=True)
class Classification:
    """A parsed classification; clarifications are trimmed and carry no role label."""

    classification: str  # one of LABELS
    confidence: float  # clamped to [0, 1]
    suggested_action: str  # one of ACTIONS
    # Model-written text stays out of repr(), so a stray log of the object leaks none of it.
    buyer_clarification: str | None = field(
        default=None, repr=False
    )  # non-blank with ask_clarification
    seller_clarification: str | None = field(default=None, repr=False)
    suggested_action_detail: str | None = field(default=None, repr=False)  # audit only
    rationale: str = field(
        default="", repr=False
    )  # stored only in reasoning_rationales; "" means none
    flags: tuple[str, ...] = ()  # items of FLAGS, duplicates removed, in answer order


@dataclass(frozen=True)
class SummaryOutput:
    """A parsed summary; `next_step` and `rationale` are "" when their marker is missing."""

    summary: str = field(repr=False)
    next_step: str = field(repr=False)
    rationale: str = field(repr=False)


def parse_classification(text: str) -> Classification:
    """Parse a classification answer: one JSON object, optionally inside one ```json fence.

    Raise MalformedResponse for anything else: prose, a bad type, an unknown label, action or
    flag, a null `flags`/`rationale`, or a missing question with `ask_clarification`.
    """
    if not isinstance(text, str):
        raise MalformedResponse("answer is not text")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        obj = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise MalformedResponse("answer is not a single JSON object") from None
    if not isinstance(obj, dict):
        raise MalformedResponse("answer is JSON but not an object")

    label = obj.get("classification")
    if label not in LABELS:
        raise MalformedResponse("classification is missing or not a known label")
    confidence = _confidence(obj)
    action = obj.get("suggested_action")
    if action not in ACTIONS:
        raise MalformedResponse("suggested_action is missing or not a known action")

    buyer = _clarification(obj, "buyer_clarification", "buyer:")
    seller = _clarification(obj, "seller_clarification", "seller:")
    if action == "ask_clarification" and (not buyer or not seller):
        raise MalformedResponse("ask_clarification needs a non-blank question for each party")

    detail = obj.get("suggested_action_detail")
    if detail is not None and not isinstance(detail, str):
        raise MalformedResponse("suggested_action_detail is not a string")
    rationale = obj.get("rationale", "")
    if not isinstance(rationale, str):
        raise MalformedResponse("rationale is null or not a string")
    return Classification(
        classification=label,
        confidence=confidence,
        suggested_action=action,
        buyer_clarification=buyer,
        seller_clarification=seller,
        suggested_action_detail=detail,
        rationale=rationale,
        flags=_flags(obj),
    )


def parse_summary(text: str) -> SummaryOutput:
    """Parse a summary answer: summary, then `SUGGESTED_NEXT_STEP:`, then `RATIONALE:`.

    Markers are case-sensitive and only their first occurrence counts. Raise MalformedResponse
    when `RATIONALE:` comes before `SUGGESTED_NEXT_STEP:` or the summary is empty.
    """
    if not isinstance(text, str):
        raise MalformedResponse("answer is not text")
    step_at = text.find(NEXT_STEP_MARKER)
    why_at = text.find(RATIONALE_MARKER)
    if step_at >= 0 and why_at >= 0:
        if why_at < step_at:
            raise MalformedResponse("RATIONALE: comes before SUGGESTED_NEXT_STEP:")
        summary = text[:step_at]
        next_step = text[step_at + len(NEXT_STEP_MARKER) : why_at]
        rationale = text[why_at + len(RATIONALE_MARKER) :]
    elif step_at >= 0:
        summary, next_step, rationale = text[:step_at], text[step_at + len(NEXT_STEP_MARKER) :], ""
    elif why_at >= 0:
        summary, next_step, rationale = text[:why_at], "", text[why_at + len(RATIONALE_MARKER) :]
    else:
        summary, next_step, rationale = text, "", ""
    summary = summary.strip()
    if not summary:
        raise MalformedResponse("summary is empty")
    return SummaryOutput(summary=summary, next_step=next_step.strip(), rationale=rationale.strip())


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"non-standard JSON constant {name}")


def _confidence(obj: dict[str, Any]) -> float:
    value = obj.get("confidence")
    # bool is an int subclass in Python, but `true` is not a number in the contract.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse("confidence is missing or not a number")
    if value != value:  # NaN cannot come from json.loads here, but a float subclass could
        raise MalformedResponse("confidence is not a number")
    # Compare before converting: a huge JSON integer would overflow float().
    if value <= 0:
        return 0.0
    if value >= 1:
        return 1.0
    return float(value)


def _clarification(obj: dict[str, Any], key: str, label: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{key} is not a string")
    value = value.strip()
    # Code adds its own "Buyer: " / "Seller: " prefix; a copied label would appear twice.
    if value[: len(label)].lower() == label:
        value = value[len(label) :].strip()
    return value or None


def _flags(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("flags", [])
    if not isinstance(value, list):
        raise MalformedResponse("flags is null or not an array")
    flags: list[str] = []
    for item in value:
        if item not in FLAGS:
            raise MalformedResponse("flags holds an unknown flag")
        if item not in flags:
            flags.append(item)
    return tuple(flags)
