"""The Anthropic provider against a real local server (docs/mediation.md#providers)."""

from __future__ import annotations

import asyncio

import pytest

from serbero_cli.keytext import Secret
from serbero_cli.reasoning.bundle import load_bundle
from serbero_cli.reasoning.parsing import MalformedResponse
from serbero_cli.reasoning.providers import ProviderError, make_provider
from serbero_cli.reasoning.reasoner import Reasoner
from serbero_cli.reasoning.request import SessionContext
from serbero_cli.simulate.llm import Reply, classification_json, summary_text
from tests.reasoning.support import API_KEY, DEFAULT_PROMPTS, complete, health, reasoning_config

MODEL = "claude-sonnet-4-5"


def anthropic(base: str, **kwargs):
    return reasoning_config(base, provider="anthropic", model=MODEL, **kwargs)


@pytest.mark.parametrize(
    ("suffix", "path"),
    [
        pytest.param("", "/v1/messages", id="root"),
        pytest.param("/", "/v1/messages", id="root-slash"),
        pytest.param("/v1", "/v1/messages", id="v1"),
        pytest.param("/v1/", "/v1/messages", id="v1-slash"),
        pytest.param("/proxy/v1", "/proxy/v1/messages", id="prefixed-v1"),
        pytest.param("/v12", "/v12/v1/messages", id="v12-is-not-v1"),
    ],
)
def test_anthropic_base_normalisation(llm, suffix, path):
    llm.push("ok")
    try:
        complete(anthropic(llm.base_url + suffix))
    except ProviderError as exc:  # paths other than /v1/messages get the server's 404
        assert path != "/v1/messages" and "status=404" in exc.detail
    assert [r.path for r in llm.requests] == [path]


def test_anthropic_health_check_a2_path_headers_and_body(llm):
    health(anthropic(llm.base_url + "/v1"))
    request = llm.requests[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.body == {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "ping"}],
        "temperature": 0.0,
    }
    assert list(request.body) == ["model", "max_tokens", "messages", "temperature"]


@pytest.mark.parametrize(
    ("kind", "max_tokens", "temperature"), [("classify", 2048, 0.0), ("summarize", 4096, 0.2)]
)
def test_anthropic_request_body_in_key_order(llm, kind, max_tokens, temperature):
    llm.push("answer")
    assert complete(anthropic(llm.base_url), kind, "the system", "the user") == "answer"
    body = llm.requests[0].body
    assert body == {
        "model": MODEL,
        "max_tokens": max_tokens,
        "system": "the system",
        "messages": [{"role": "user", "content": "the user"}],
        "temperature": temperature,
    }
    assert list(body) == ["model", "max_tokens", "system", "messages", "temperature"]


def test_anthropic_gpt5_rule_does_not_apply(llm):
    llm.push("x")
    complete(reasoning_config(llm.base_url, provider="anthropic", model="gpt-5"), "classify")
    assert llm.requests[0].body["temperature"] == 0.0


def test_anthropic_401_is_unreachable_naming_status_and_provider(llm):
    llm.push(
        Reply(status=401, body={"type": "error", "error": {"type": "authentication_error"}}),
        Reply(status=401),
    )
    with pytest.raises(ProviderError) as err:
        complete(anthropic(llm.base_url, retries=3))
    assert err.value.category == "unreachable"
    assert "401" in str(err.value) and "anthropic" in str(err.value)
    assert len(llm.requests) == 1


def _reasoner_call(llm, method: str):
    bundle = load_bundle(DEFAULT_PROMPTS)
    ctx = SessionContext(
        None,
        "d-1",
        "buyer",
        bundle.bundle_id,
        bundle.policy_hash,
        0,
        0,
        classification="coordination_failure_resolvable",
        confidence=0.88,
    )

    async def main():
        provider = make_provider(anthropic(llm.base_url), Secret(API_KEY), retry_pause=0)
        try:
            return await getattr(Reasoner(provider, bundle, 40), method)(ctx, [])
        finally:
            await provider.aclose()

    return asyncio.run(main())


def test_anthropic_classify_and_summarize_parse(llm):
    llm.push(
        classification_json("coordination_failure_resolvable", 0.88, "summarize", rationale="fits"),
        summary_text("Seller had not checked.", "Solver verifies the reference.", "clear"),
    )
    result, raw_len = _reasoner_call(llm, "classify")
    assert (result.classification, result.confidence, result.suggested_action) == (
        "coordination_failure_resolvable",
        0.88,
        "summarize",
    )
    assert raw_len > 0
    summary = _reasoner_call(llm, "summarize")
    assert (summary.summary, summary.next_step, summary.rationale) == (
        "Seller had not checked.",
        "Solver verifies the reference.",
        "clear",
    )


def test_anthropic_prose_answer_is_malformed(llm):
    llm.push("I believe the buyer paid and the seller should confirm.")
    with pytest.raises(MalformedResponse):
        _reasoner_call(llm, "classify")


def test_anthropic_joins_text_blocks_around_a_thinking_block(llm):
    answer = classification_json(
        "unclear", 0.4, "ask_clarification", "Did you pay?", "Did it arrive?"
    )
    cut = len(answer) // 2
    llm.push(
        Reply(
            blocks=[
                {"type": "text", "text": answer[:cut]},
                {"type": "thinking", "thinking": "private reasoning", "signature": "sig"},
                {"type": "text", "text": answer[cut:]},
            ]
        )
    )
    result, raw_len = _reasoner_call(llm, "classify")
    assert result.buyer_clarification == "Did you pay?" and raw_len == len(answer)


def test_anthropic_summary_markers_in_a_second_block_survive(llm):
    llm.push(
        Reply(
            blocks=[
                {"type": "thinking", "thinking": "RATIONALE: not this one", "signature": "sig"},
                {"type": "text", "text": "Both agree the payment was late."},
                {"type": "tool_use", "id": "t1", "name": "noop", "input": {}},
                {
                    "type": "text",
                    "text": "\nSUGGESTED_NEXT_STEP: Solver checks the bank record.\nRATIONALE: consistent",
                },
            ]
        )
    )
    summary = _reasoner_call(llm, "summarize")
    assert (summary.summary, summary.next_step, summary.rationale) == (
        "Both agree the payment was late.",
        "Solver checks the bank record.",
        "consistent",
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"content": [{"type": "text"}]}, id="text-block-without-text"),
        pytest.param({"content": [{"type": "text", "text": None}]}, id="text-null"),
        pytest.param({"content": [{"type": "thinking", "thinking": "hmm"}]}, id="no-text-block"),
        pytest.param({"content": []}, id="empty-content"),
        pytest.param({"content": "just a string"}, id="content-not-array"),
        pytest.param({"content": ["text"]}, id="block-not-object"),
        pytest.param({"type": "message"}, id="no-content"),
        pytest.param("<html>gateway</html>", id="non-json"),
    ],
)
def test_anthropic_bad_envelope_is_malformed_and_not_retried(llm, body):
    llm.push(Reply(body=body), Reply(content="never reached"))
    with pytest.raises(ProviderError) as err:
        complete(anthropic(llm.base_url, retries=2))
    assert err.value.category == "malformed_response" and "provider=anthropic" in err.value.detail
    assert len(llm.requests) == 1
