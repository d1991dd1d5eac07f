"""OpenAI and OpenAI-compatible providers against a real local server (docs/mediation.md#providers)."""

from __future__ import annotations

import pytest

from serbero_cli.errors import ConfigError
from serbero_cli.keytext import Secret
from serbero_cli.reasoning.providers import ProviderError, make_provider
from serbero_cli.simulate.llm import Reply
from tests.reasoning.support import API_KEY, complete, health, reasoning_config


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_openai_health_check_a1_hits_chat_completions_once(llm, provider):
    health(reasoning_config(llm.openai_base, provider=provider))
    assert [r.path for r in llm.requests] == ["/v1/chat/completions"]
    body = llm.requests[0].body
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "ping"}],
        "temperature": 0.0,
    }
    assert list(body) == ["model", "messages", "temperature"]


def test_openai_classify_request_shape_and_headers(llm):
    llm.push("{}")
    assert complete(reasoning_config(llm.openai_base), "classify", "the system", "the user") == "{}"
    request = llm.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert "x-api-key" not in request.headers
    assert request.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "the system"},
            {"role": "user", "content": "the user"},
        ],
        "response_format": {"type": "json_object"},
        "temperature": 0.0,
    }
    assert list(request.body) == ["model", "messages", "response_format", "temperature"]
    assert [list(m) for m in request.body["messages"]] == [["role", "content"], ["role", "content"]]


def test_openai_summarize_has_no_json_mode_and_temperature_0_2(llm):
    llm.push("Summary.\nSUGGESTED_NEXT_STEP: x\nRATIONALE: y")
    complete(reasoning_config(llm.openai_base), "summarize", "S", "U")
    body = llm.requests[0].body
    assert list(body) == ["model", "messages", "temperature"] and body["temperature"] == 0.2


def test_openai_request_body_is_utf8_json(llm):
    llm.push("ok")
    complete(reasoning_config(llm.openai_base), "classify", "S", "Pagué €50 — ¿llegó?")
    assert "Pagué €50 — ¿llegó?".encode() in llm.requests[0].raw


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "GPT-5.1", "openai/gpt-5-nano"])
def test_openai_gpt5_models_omit_temperature_on_every_call(llm, model):
    cfg = reasoning_config(llm.openai_base, model=model)
    llm.push("{}", "text")
    health(cfg)
    complete(cfg, "classify")
    complete(cfg, "summarize")
    assert len(llm.requests) == 3
    for request in llm.requests:
        assert "temperature" not in request.body and request.body["model"] == model
    assert list(llm.requests[1].body) == ["model", "messages", "response_format"]


def test_openai_non_gpt5_model_keeps_temperature(llm):
    llm.push("{}")
    complete(reasoning_config(llm.openai_base, model="gpt-4.1-gpt-5-like"), "classify")
    assert llm.requests[0].body["temperature"] == 0.0


def test_openai_trailing_slash_on_base_is_trimmed(llm):
    llm.push("{}")
    complete(reasoning_config(llm.openai_base + "/"), "classify")
    assert llm.requests[0].path == "/v1/chat/completions"


def test_openai_compatible_root_base_posts_to_root_path_with_json_mode(llm):
    cfg = reasoning_config(llm.base_url, provider="openai-compatible", model="claude-sonnet-4")
    llm.push("{}")
    health(cfg)
    complete(cfg, "classify")
    assert [r.path for r in llm.requests] == ["/chat/completions", "/chat/completions"]
    assert llm.requests[1].body["response_format"] == {"type": "json_object"}


def test_openai_answer_is_message_content(llm):
    llm.push(Reply(content="  the answer, verbatim\n"))
    assert complete(reasoning_config(llm.openai_base)) == "  the answer, verbatim\n"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"choices": [{"message": {"role": "assistant", "content": None}}]}, id="content-null"
        ),
        pytest.param(
            {"choices": [{"message": {"role": "assistant", "content": [{"type": "text"}]}}]},
            id="content-not-string",
        ),
        pytest.param({"choices": []}, id="no-choices"),
        pytest.param({"choices": [{"text": "legacy"}]}, id="no-message"),
        pytest.param({"error": "nope"}, id="no-choices-key"),
        pytest.param(["choices"], id="array-envelope"),
        pytest.param("not json at all", id="non-json"),
        pytest.param(b"\xff\xfe\x00garbage", id="unreadable-bytes"),
        pytest.param(b"", id="empty-body"),
    ],
)
def test_openai_bad_envelope_is_malformed_and_not_retried(llm, body):
    llm.push(Reply(body=body), Reply(content="never reached"))
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.openai_base, retries=3))
    assert err.value.category == "malformed_response"
    assert "provider=openai" in err.value.detail and "status=200" in err.value.detail
    assert len(llm.requests) == 1 and llm.pending() == 1


def test_openai_health_check_fails_on_a_bad_envelope(llm):
    llm.auto_health = False
    llm.push(Reply(body={"choices": []}))
    with pytest.raises(ProviderError) as err:
        health(reasoning_config(llm.openai_base))
    assert err.value.category == "malformed_response"


def test_make_provider_rejects_an_unknown_provider():
    cfg = reasoning_config("http://127.0.0.1:9/v1", provider="ppqai")
    with pytest.raises(ConfigError) as err:
        make_provider(cfg, Secret(API_KEY))
    assert "ppqai" in str(err.value) and "[reasoning] provider" in str(err.value)


def test_complete_rejects_an_unknown_kind(llm):
    with pytest.raises(ValueError):
        complete(reasoning_config(llm.openai_base), "health")
    assert llm.requests == []
