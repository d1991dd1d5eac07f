"""The policy layer (docs/mediation.md#policy): rule order as a table, the phrase list, summary checks."""

from __future__ import annotations

import pytest

from serbero_cli.domain.authority import AUTHORITY_PHRASES, contains_authority_phrase
from serbero_cli.mediation.policy import (
    BYPASS_MAX_FOLLOWUP,
    FOOTER,
    LOW_CONFIDENCE,
    MAX_CONSECUTIVE_FAILURES,
    TRIGGERS,
    PolicyDecision,
    check_summary,
    decide,
)
from serbero_cli.reasoning.parsing import Classification, SummaryOutput

RESOLVABLE = "coordination_failure_resolvable"
BUYER_Q = "Did you send the fiat payment?"
SELLER_Q = "Has the payment arrived?"


def cls(
    label=RESOLVABLE,
    confidence=0.9,
    action="ask_clarification",
    buyer=BUYER_Q,
    seller=SELLER_Q,
    flags=(),
):
    return Classification(label, confidence, action, buyer, seller, None, "r", tuple(flags))


OPEN = {"opening": True, "followup_number": 0}


def mid(n):
    return {"opening": False, "followup_number": n}


RULES = [
    # rule 1
    pytest.param(
        cls(flags=["fraud_risk"]), OPEN, "escalate", "fraud_indicator", id="r1-fraud-flag"
    ),
    pytest.param(
        cls(action="summarize", flags=["fraud_risk"]),
        mid(1),
        "escalate",
        "fraud_indicator",
        id="r1-fraud-flag-beats-good-summary",
    ),
    pytest.param(
        cls(flags=["conflicting_claims", "fraud_risk"]),
        mid(1),
        "escalate",
        "fraud_indicator",
        id="r1-beats-r2",
    ),
    # rule 2
    pytest.param(
        cls(flags=["conflicting_claims"]),
        mid(2),
        "escalate",
        "conflicting_claims",
        id="r2-conflict-flag",
    ),
    pytest.param(
        cls(flags=["authority_boundary_attempt", "conflicting_claims"]),
        mid(2),
        "escalate",
        "conflicting_claims",
        id="r2-beats-r3",
    ),
    # rule 3
    pytest.param(
        cls(flags=["authority_boundary_attempt"]),
        OPEN,
        "escalate",
        "authority_boundary_attempt",
        id="r3-authority-flag",
    ),
    pytest.param(
        cls(confidence=0.1, action="summarize", flags=["authority_boundary_attempt"]),
        mid(5),
        "escalate",
        "authority_boundary_attempt",
        id="r3-beats-low-confidence",
    ),
    # rule 4 and its bypass
    pytest.param(
        cls(confidence=0.49, action="summarize"),
        OPEN,
        "escalate",
        "low_confidence",
        id="r4-low-summarize-at-opening",
    ),
    pytest.param(
        cls(confidence=0.2, action="summarize"),
        mid(1),
        "escalate",
        "low_confidence",
        id="r4-low-summarize-at-followup-1",
    ),
    pytest.param(
        cls(confidence=0.3, action="escalate"),
        mid(1),
        "escalate",
        "low_confidence",
        id="r4-beats-r5",
    ),
    pytest.param(
        cls(confidence=0.2, buyer=" "), mid(4), "escalate", "low_confidence", id="r4-beats-r6"
    ),
    pytest.param(cls(confidence=0.2), OPEN, "ask_clarification", None, id="r4-bypass-opening"),
    pytest.param(
        cls(confidence=0.2),
        {"opening": True, "followup_number": 7},
        "ask_clarification",
        None,
        id="r4-bypass-opening-flag-alone",
    ),
    pytest.param(cls(confidence=0.2), mid(1), "ask_clarification", None, id="r4-bypass-followup-1"),
    pytest.param(cls(confidence=0.2), mid(3), "ask_clarification", None, id="r4-bypass-followup-3"),
    pytest.param(
        cls(confidence=0.2), mid(4), "escalate", "low_confidence", id="r4-no-bypass-followup-4"
    ),
    pytest.param(
        cls(confidence=0.5), mid(4), "ask_clarification", None, id="r4-threshold-is-strict"
    ),
    # rule 5
    pytest.param(
        cls(action="escalate"), OPEN, "escalate", "reasoning_unavailable", id="r5-model-escalates"
    ),
    # rule 6
    pytest.param(cls(buyer="  "), mid(1), "escalate", "reasoning_unavailable", id="r6-blank-buyer"),
    pytest.param(
        cls(seller=None), mid(1), "escalate", "reasoning_unavailable", id="r6-missing-seller"
    ),
    pytest.param(
        cls(buyer="", seller="Please release the funds"),
        mid(1),
        "escalate",
        "reasoning_unavailable",
        id="r6-beats-r6b",
    ),
    # rule 6b
    pytest.param(
        cls(buyer="Wait, we will admin-settle this."),
        OPEN,
        "escalate",
        "authority_boundary_attempt",
        id="r6b-phrase-in-buyer",
    ),
    pytest.param(
        cls(seller="Please RELEASE THE FUNDS now."),
        mid(2),
        "escalate",
        "authority_boundary_attempt",
        id="r6b-phrase-in-seller-any-case",
    ),
    pytest.param(
        cls(confidence=0.2, seller="we can close the dispute"),
        OPEN,
        "escalate",
        "authority_boundary_attempt",
        id="r6b-after-bypass",
    ),
    pytest.param(
        cls(
            buyer="Confirm so we can admin-settle.",
            seller="Ok to admin-settle?",
            flags=["authority_boundary_attempt"],
        ),
        mid(1),
        "escalate",
        "authority_boundary_attempt",
        id="admin-settle-with-authority-flag",
    ),
    pytest.param(
        cls(buyer="Did you pay?", seller="Can you release the funds now?"),
        mid(1),
        "escalate",
        "authority_boundary_attempt",
        id="release-the-funds-in-clarification",
    ),
    pytest.param(
        cls(buyer="Use AdminSettleDispute?", seller="Arrived?"),
        mid(1),
        "ask_clarification",
        None,
        id="r6b-adminsettledispute-literal-passes",
    ),
    # rule 7
    pytest.param(
        cls(label="conflicting_claims", action="summarize"),
        mid(1),
        "escalate",
        "invalid_model_output",
        id="r7-summarize-conflicting-label",
    ),
    pytest.param(
        cls(label="unclear", action="summarize"),
        OPEN,
        "escalate",
        "invalid_model_output",
        id="r7-summarize-unclear-label",
    ),
    # rule 8
    pytest.param(cls(), mid(1), "ask_clarification", None, id="r8-ask"),
    pytest.param(
        cls(action="summarize", confidence=0.8), mid(2), "summarize", None, id="r8-summarize"
    ),
    pytest.param(
        cls(action="summarize", confidence=0.5),
        OPEN,
        "summarize",
        None,
        id="r8-summarize-at-threshold",
    ),
    pytest.param(
        cls(label="suspected_fraud"),
        mid(1),
        "ask_clarification",
        None,
        id="r8-label-alone-never-escalates",
    ),
    pytest.param(
        cls(flags=["low_info", "unresponsive_party"]),
        mid(2),
        "ask_clarification",
        None,
        id="r8-informational-flags",
    ),
]


@pytest.mark.parametrize(("c", "where", "action", "trigger"), RULES)
def test_decide_rule_table(c, where, action, trigger):
    decision = decide(c, **where)
    assert (decision.action, decision.trigger) == (action, trigger)
    assert (decision.classification, decision.confidence) == (c.classification, c.confidence)
    if action == "ask_clarification":
        assert (decision.buyer_text, decision.seller_text) == (
            c.buyer_clarification,
            c.seller_clarification,
        )
    else:
        assert decision.buyer_text is None and decision.seller_text is None


def test_decide_every_trigger_it_chooses_is_a_spec_trigger():
    chosen = {p.values[3] for p in RULES if p.values[3] is not None}
    assert chosen == {
        "fraud_indicator",
        "conflicting_claims",
        "authority_boundary_attempt",
        "low_confidence",
        "reasoning_unavailable",
        "invalid_model_output",
    }
    assert chosen <= set(TRIGGERS)


def test_decide_returns_plain_data():
    assert decide(cls(), **OPEN) == PolicyDecision(
        "ask_clarification", None, BUYER_Q, SELLER_Q, RESOLVABLE, 0.9
    )


def test_policy_constants():
    assert (LOW_CONFIDENCE, BYPASS_MAX_FOLLOWUP, MAX_CONSECUTIVE_FAILURES) == (0.5, 3, 3)
    assert len(TRIGGERS) == len(set(TRIGGERS)) == 12


def test_authority_phrases_are_exactly_the_spec_list():
    assert AUTHORITY_PHRASES == (
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


@pytest.mark.parametrize(
    "text,found",
    [
        ("Please release to the buyer now", True),
        ("I will release tomorrow morning", False),
        ("SETTLE\n  in   FAVOUR of the seller", True),
        ("in favor\tof the buyer", True),
        ("close\x00 the dispute", False),
        ("close  the\ndispute", True),
    ],
)
def test_authority_check_reads_text_case_folded_with_whitespace_collapsed(text, found):
    assert contains_authority_phrase(text) is found


@pytest.mark.parametrize("phrase", AUTHORITY_PHRASES)
def test_contains_authority_phrase_matches_each_phrase_in_any_case(phrase):
    assert contains_authority_phrase(f"Ok so: {phrase.upper()}, please.")
    assert contains_authority_phrase(phrase.title())


@pytest.mark.parametrize(
    "text",
    [
        "Solver should invoke AdminSettleDispute on Mostro.",
        "The solver should check the payment reference and decide.",
        "The funds were released by the bank late.",
        "",
        None,
    ],
)
def test_contains_authority_phrase_passes_clean_text(text):
    assert not contains_authority_phrase(text)


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        pytest.param(
            SummaryOutput(
                "Seller had not checked.", "Solver should invoke AdminSettleDispute on Mostro.", "r"
            ),
            None,
            id="adminsettledispute-literal-passes",
        ),
        pytest.param(
            SummaryOutput(
                "Both agree the payment arrived.", "The solver verifies and decides.", ""
            ),
            None,
            id="clean",
        ),
        pytest.param(
            SummaryOutput("Clean.", "Clean.", "We should release the funds"),
            None,
            id="rationale-is-not-checked",
        ),
        pytest.param(
            SummaryOutput("Buyer asks to release funds.", "Verify.", "r"),
            "authority_boundary_attempt",
            id="phrase-in-summary",
        ),
        pytest.param(
            SummaryOutput("Clear.", "Force-close it.", "r"),
            "authority_boundary_attempt",
            id="phrase-in-next-step",
        ),
        pytest.param(
            SummaryOutput("", "Verify.", "r"), "authority_boundary_attempt", id="empty-summary"
        ),
        pytest.param(
            SummaryOutput("Clear.", "", "r"), "authority_boundary_attempt", id="empty-next-step"
        ),
        pytest.param(
            SummaryOutput("Clear.", "  \n", "r"), "authority_boundary_attempt", id="blank-next-step"
        ),
    ],
)
def test_check_summary(summary, expected):
    assert check_summary(summary) == expected


def test_footer_passes_the_phrase_check_and_says_a_human_decides():
    assert not contains_authority_phrase(FOOTER)
    assert "human solver" in FOOTER and 0 < len(FOOTER) <= 200 and not FOOTER.endswith("\n")
