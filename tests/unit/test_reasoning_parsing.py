"""Model-output parsers (docs/mediation.md#model-output): every contract row, malformed answers, and hypothesis."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serbero_cli.reasoning.parsing import (
    ACTIONS,
    FLAGS,
    LABELS,
    Classification,
    MalformedResponse,
    SummaryOutput,
    parse_classification,
    parse_summary,
)

ASK = {
    "classification": "unclear",
    "confidence": 0.4,
    "suggested_action": "ask_clarification",
    "buyer_clarification": "Did you send the fiat payment?",
    "seller_clarification": "Has the payment arrived?",
    "flags": [],
    "rationale": "opening",
}


def answer(**changes) -> str:
    obj = dict(ASK)
    for key, value in changes.items():
        if value is _DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj)


_DROP = object()


# --- classification: accepted answers -------------------------------------------------------------


def test_parse_classification_reads_every_field():
    text = json.dumps(
        {
            "classification": "coordination_failure_resolvable",
            "confidence": 0.88,
            "suggested_action": "escalate",
            "suggested_action_detail": "needs a human",
            "rationale": "why",
            "flags": ["low_info", "unresponsive_party"],
        }
    )
    c = parse_classification(text)
    assert c == Classification(
        "coordination_failure_resolvable",
        0.88,
        "escalate",
        None,
        None,
        "needs a human",
        "why",
        ("low_info", "unresponsive_party"),
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("```json\n" + answer() + "\n```", id="json-fence"),
        pytest.param("```\n" + answer() + "\n```", id="bare-fence"),
        pytest.param("  \n```json " + answer() + "```\n ", id="fence-one-line-with-outer-space"),
        pytest.param("\n" + answer() + "\n\n", id="surrounding-whitespace"),
    ],
)
def test_parse_classification_strips_one_surrounding_fence(text):
    assert parse_classification(text).classification == "unclear"


def test_parse_classification_ignores_unknown_keys():
    assert (
        parse_classification(answer(mood="calm", extra={"a": 1})).suggested_action
        == "ask_clarification"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1.7, 1.0, id="above-one"),
        pytest.param(-0.2, 0.0, id="below-zero"),
        pytest.param(1, 1.0, id="integer-one"),
        pytest.param(0, 0.0, id="integer-zero"),
        pytest.param(10**400, 1.0, id="huge-integer"),
        pytest.param(0.5, 0.5, id="inside"),
    ],
)
def test_parse_classification_clamps_confidence(value, expected):
    text = answer().replace('"confidence": 0.4', f'"confidence": {value}')
    c = parse_classification(text)
    assert c.confidence == expected and isinstance(c.confidence, float)


def test_parse_classification_clamps_an_overflowing_float_literal():
    assert parse_classification(answer().replace("0.4", "1e400")).confidence == 1.0


@pytest.mark.parametrize(
    ("buyer", "seller", "want_buyer", "want_seller"),
    [
        pytest.param(
            "Buyer: Did you pay?",
            "Seller: Did it arrive?",
            "Did you pay?",
            "Did it arrive?",
            id="labels",
        ),
        pytest.param(
            "  buyer:did you pay?  ",
            "SELLER:  did it arrive?",
            "did you pay?",
            "did it arrive?",
            id="any-case",
        ),
        pytest.param(
            " Did you pay? ", "Did it arrive?", "Did you pay?", "Did it arrive?", id="trimmed"
        ),
    ],
)
def test_parse_classification_strips_a_leading_party_label(buyer, seller, want_buyer, want_seller):
    c = parse_classification(answer(buyer_clarification=buyer, seller_clarification=seller))
    assert (c.buyer_clarification, c.seller_clarification) == (want_buyer, want_seller)


@pytest.mark.parametrize("action", ["summarize", "escalate"])
def test_parse_classification_allows_missing_or_null_questions_without_ask(action):
    assert (
        parse_classification(
            answer(suggested_action=action, buyer_clarification=_DROP, seller_clarification=None)
        ).buyer_clarification
        is None
    )


def test_parse_classification_defaults_rationale_and_flags():
    c = parse_classification(answer(rationale=_DROP, flags=_DROP))
    assert c.rationale == "" and c.flags == ()


def test_parse_classification_removes_duplicate_flags_in_order():
    assert parse_classification(answer(flags=["low_info", "fraud_risk", "low_info"])).flags == (
        "low_info",
        "fraud_risk",
    )


def test_parse_classification_keeps_detail_when_given():
    assert (
        parse_classification(answer(suggested_action_detail=None)).suggested_action_detail is None
    )
    assert parse_classification(answer(suggested_action_detail="x")).suggested_action_detail == "x"


# --- classification: rejected answers ------------------------------------------------------------

MALFORMED_CLASSIFICATIONS = [
    pytest.param("I think the buyer paid.", id="prose"),
    pytest.param(answer()[:-10], id="truncated-json"),
    pytest.param(answer(confidence=True), id="boolean-confidence"),
    pytest.param(answer(classification="probably_fine"), id="unknown-label"),
    pytest.param(answer(flags=["urgent"]), id="unknown-flag"),
    pytest.param(answer(flags=None), id="flags-null"),
    pytest.param(answer(buyer_clarification="   "), id="blank-buyer-clarification"),
    pytest.param(answer(seller_clarification=""), id="blank-seller-clarification"),
    pytest.param(answer(seller_clarification="Seller:  "), id="label-only-clarification"),
    pytest.param(answer(buyer_clarification=_DROP), id="ask-without-buyer"),
    pytest.param(answer(seller_clarification=None), id="ask-with-null-seller"),
    pytest.param(answer(buyer_clarification=7), id="clarification-not-string"),
    pytest.param("Here you go:\n" + answer(), id="prose-before-json"),
    pytest.param(answer() + "\nHope this helps.", id="prose-after-json"),
    pytest.param("```json\n" + answer() + "\n```\nDone.", id="prose-after-fence"),
    pytest.param("```json\n```json\n" + answer() + "\n```\n```", id="two-fences"),
    pytest.param("```python\n" + answer() + "\n```", id="other-fence-language"),
    pytest.param(json.dumps([ASK]), id="array-not-object"),
    pytest.param("null", id="json-null"),
    pytest.param("", id="empty"),
    pytest.param(answer(classification=_DROP), id="classification-missing"),
    pytest.param(answer(classification="UNCLEAR"), id="label-wrong-case"),
    pytest.param(answer(confidence=_DROP), id="confidence-missing"),
    pytest.param(answer(confidence="0.8"), id="confidence-string"),
    pytest.param(answer(confidence=None), id="confidence-null"),
    pytest.param(answer().replace("0.4", "NaN"), id="confidence-nan"),
    pytest.param(answer().replace("0.4", "Infinity"), id="confidence-infinity"),
    pytest.param(answer(suggested_action=_DROP), id="action-missing"),
    pytest.param(answer(suggested_action="settle"), id="action-unknown"),
    pytest.param(answer(rationale=None), id="rationale-null"),
    pytest.param(answer(rationale=["a"]), id="rationale-not-string"),
    pytest.param(answer(flags="fraud_risk"), id="flags-not-array"),
    pytest.param(answer(flags=[1]), id="flag-not-string"),
    pytest.param(answer(suggested_action_detail=3), id="detail-not-string"),
    pytest.param("[" * 100_000, id="deep-nesting"),
]


@pytest.mark.parametrize("text", MALFORMED_CLASSIFICATIONS)
def test_parse_classification_rejects(text):
    with pytest.raises(MalformedResponse):
        parse_classification(text)


def test_malformed_message_never_echoes_the_answer():
    secret_label = "label-that-must-not-be-logged"
    with pytest.raises(MalformedResponse) as err:
        parse_classification(answer(classification=secret_label))
    assert secret_label not in str(err.value)


# --- summaries -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Both agree.\nSUGGESTED_NEXT_STEP: Check the ref.\nRATIONALE: Clear facts.",
            SummaryOutput("Both agree.", "Check the ref.", "Clear facts."),
            id="both-in-order",
        ),
        pytest.param(
            "Both agree.\nSUGGESTED_NEXT_STEP: Check the ref.",
            SummaryOutput("Both agree.", "Check the ref.", ""),
            id="only-next-step",
        ),
        pytest.param(
            "Both agree.\nRATIONALE: Clear facts.",
            SummaryOutput("Both agree.", "", "Clear facts."),
            id="only-rationale",
        ),
        pytest.param(
            "  Both agree.\nLine two.  ",
            SummaryOutput("Both agree.\nLine two.", "", ""),
            id="no-markers",
        ),
        pytest.param(
            "Sum.\nsuggested_next_step: x\nrationale: y",
            SummaryOutput("Sum.\nsuggested_next_step: x\nrationale: y", "", ""),
            id="markers-case-sensitive",
        ),
        pytest.param(
            "Sum.\nSUGGESTED_NEXT_STEP: a SUGGESTED_NEXT_STEP: b\nRATIONALE: r RATIONALE: s",
            SummaryOutput("Sum.", "a SUGGESTED_NEXT_STEP: b", "r RATIONALE: s"),
            id="first-occurrence-counts",
        ),
        pytest.param(
            "Sum.SUGGESTED_NEXT_STEP:RATIONALE:", SummaryOutput("Sum.", "", ""), id="empty-parts"
        ),
    ],
)
def test_parse_summary_rows(text, expected):
    assert parse_summary(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Sum.\nRATIONALE: r\nSUGGESTED_NEXT_STEP: n", id="markers-out-of-order"),
        pytest.param("SUGGESTED_NEXT_STEP: n\nRATIONALE: r", id="empty-summary-before-markers"),
        pytest.param("  \n SUGGESTED_NEXT_STEP: n", id="blank-summary"),
        pytest.param("", id="empty-text"),
        pytest.param(" \n\t", id="whitespace-only"),
        pytest.param("RATIONALE: only", id="only-rationale-no-summary"),
    ],
)
def test_parse_summary_rejects(text):
    with pytest.raises(MalformedResponse):
        parse_summary(text)


# --- properties ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "classification": st.sampled_from(LABELS) | json_values,
        "confidence": st.floats(allow_nan=False) | st.integers() | json_values,
        "suggested_action": st.sampled_from(ACTIONS) | json_values,
        "buyer_clarification": st.text(max_size=30) | json_values,
        "seller_clarification": st.text(max_size=30) | json_values,
        "suggested_action_detail": st.text(max_size=10) | json_values,
        "rationale": st.text(max_size=30) | json_values,
        "flags": st.lists(st.sampled_from(FLAGS), max_size=4) | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_classification_any_text_parses_or_is_malformed(text):
    try:
        result = parse_classification(text)
    except MalformedResponse:
        return
    assert isinstance(result, Classification)


@settings(max_examples=400, deadline=None)
@given(near_valid, st.booleans())
def test_parse_classification_any_object_parses_or_is_malformed(obj, fenced):
    text = json.dumps(obj)
    if fenced:
        text = "```json\n" + text + "\n```"
    try:
        result = parse_classification(text)
    except MalformedResponse:
        return
    assert result.classification in LABELS and result.suggested_action in ACTIONS
    assert 0.0 <= result.confidence <= 1.0 and set(result.flags) <= set(FLAGS)
    if result.suggested_action == "ask_clarification":
        assert result.buyer_clarification and result.seller_clarification


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(LABELS),
    st.floats(0, 1),
    st.lists(st.sampled_from(FLAGS), unique=True),
    st.text(min_size=1).filter(lambda s: s.strip() and not s.strip().lower().startswith("buyer:")),
    st.text(),
)
def test_parse_classification_round_trips_valid_answers(
    label, confidence, flags, question, rationale
):
    text = json.dumps(
        {
            "classification": label,
            "confidence": confidence,
            "suggested_action": "ask_clarification",
            "buyer_clarification": question,
            "seller_clarification": "Arrived?",
            "flags": flags,
            "rationale": rationale,
        },
        ensure_ascii=False,
    )
    c = parse_classification(text)
    assert (c.classification, c.confidence, c.flags, c.rationale) == (
        label,
        confidence,
        tuple(flags),
        rationale,
    )
    assert c.buyer_clarification == question.strip()


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_summary_any_text_parses_or_is_malformed(text):
    try:
        result = parse_summary(text)
    except MalformedResponse:
        return
    assert result.summary and result.summary == result.summary.strip()
