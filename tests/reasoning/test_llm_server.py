"""The scripted LLM server itself: scripting, the responder, health pings, recording."""

from __future__ import annotations

import json

import pytest

from serbero_cli.reasoning.parsing import parse_classification, parse_summary
from serbero_cli.reasoning.providers import ProviderError
from serbero_cli.simulate.llm import (
    LLMServer,
    Reply,
    classification_json,
    summary_text,
    unused_port,
)
from tests.reasoning.support import complete, health, reasoning_config


def test_server_urls_and_stop():
    server = LLMServer().start()
    assert (
        server.base_url == f"http://127.0.0.1:{server.port}"
        and server.openai_base == server.base_url + "/v1"
    )
    base = server.openai_base
    server.stop()
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(base, retries=0))
    assert err.value.category == "unreachable"


def test_responder_answers_when_the_queue_is_empty(llm):
    seen = []

    def responder(path, body):
        seen.append((path, body["messages"][-1]["content"]))
        return Reply(content="from responder")

    llm.responder = responder
    llm.push("from queue")
    cfg = reasoning_config(llm.openai_base)
    assert complete(cfg, user="one") == "from queue"
    assert complete(cfg, user="two") == "from responder"
    assert seen == [("/v1/chat/completions", "two")]


def test_unscripted_request_gets_a_500(llm):
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.openai_base, retries=1))
    assert "status=500" in err.value.detail and len(llm.requests) == 2


def test_health_pings_do_not_consume_the_script_unless_switched_off(llm):
    llm.push("scripted")
    cfg = reasoning_config(llm.openai_base, retries=0)
    health(cfg)
    assert llm.pending() == 1 and len(llm.health_requests()) == 1 and llm.model_requests() == []
    llm.auto_health = False
    health(cfg)
    assert llm.pending() == 0


def test_health_failures_then_recovery(llm):
    llm.health_failures = 2
    cfg = reasoning_config(llm.openai_base, retries=0)
    for _ in range(2):
        with pytest.raises(ProviderError) as err:
            health(cfg)
        assert "status=503" in err.value.detail
    health(cfg)


def test_unknown_path_is_recorded_and_gets_404(llm):
    llm.push("kept")
    with pytest.raises(ProviderError):
        complete(reasoning_config(llm.base_url + "/v2", retries=0))
    assert [r.path for r in llm.requests] == ["/v2/chat/completions"] and llm.pending() == 1


def test_requests_record_lowercase_headers_and_json_body(llm):
    llm.push("x")
    complete(reasoning_config(llm.openai_base), user="hello")
    request = llm.requests[0]
    assert all(name == name.lower() for name in request.headers)
    assert request.body == json.loads(request.raw) and not request.is_health


def test_answer_builders_match_the_contracts():
    first = classification_json("unclear", 0.4, "ask_clarification", "q1", "q2", flags=["low_info"])
    second = classification_json("unclear", 0.4, "ask_clarification", "q1", "q2")
    assert parse_classification(first).rationale != parse_classification(second).rationale
    assert parse_classification(first).flags == ("low_info",)
    escalate = parse_classification(
        classification_json("suspected_fraud", 0.9, "escalate", detail="edited proof")
    )
    assert escalate.suggested_action_detail == "edited proof"
    summary = parse_summary(summary_text("S.", "N.", "R."))
    assert (summary.summary, summary.next_step, summary.rationale) == ("S.", "N.", "R.")


def test_unused_port_has_no_listener():
    port = unused_port()
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(f"http://127.0.0.1:{port}", retries=0))
    assert err.value.category == "unreachable"
