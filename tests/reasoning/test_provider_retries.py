"""Retries and error categories (docs/mediation.md#providers) against a real local server."""

from __future__ import annotations

import logging
import time

import pytest

from serbero_cli.reasoning.providers import ProviderError
from serbero_cli.simulate.llm import Reply, unused_port
from tests.reasoning.support import complete, health, reasoning_config


@pytest.mark.parametrize(
    ("provider", "status", "retries", "hits"),
    [
        pytest.param("openai", 401, 3, 1, id="401-retry3-one-hit"),
        pytest.param("openai", 403, 2, 1, id="403-not-retried"),
        pytest.param("openai", 404, 3, 1, id="404-retry3-one-hit"),
        pytest.param("openai", 400, 1, 1, id="400-not-retried"),
        pytest.param("openai", 408, 1, 2, id="408-retried"),
        pytest.param("openai", 429, 2, 3, id="429-retry2-three-hits"),
        pytest.param("openai", 500, 1, 2, id="500-retried"),
        pytest.param("openai", 502, 2, 3, id="502-retried"),
        pytest.param("openai", 503, 0, 1, id="503-retry0-one-hit"),
        pytest.param("anthropic", 529, 1, 2, id="anthropic-529-overloaded-retried"),
        pytest.param("anthropic", 401, 3, 1, id="anthropic-401-one-hit"),
    ],
)
def test_http_status_retry_counts(llm, provider, status, retries, hits):
    pushed = 5
    llm.push(*[Reply(status=status) for _ in range(pushed)])
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.base_url + "/v1", provider=provider, retries=retries))
    assert err.value.category == "unreachable"
    assert f"status={status}" in err.value.detail and f"provider={provider}" in err.value.detail
    assert len(llm.model_requests()) == hits and llm.pending() == pushed - hits


def test_retry_then_success_returns_the_answer(llm):
    llm.push(Reply(status=500), Reply(status=429), Reply(content="third time"))
    assert complete(reasoning_config(llm.openai_base, retries=2)) == "third time"
    assert len(llm.requests) == 3


def test_retry_pause_is_waited_between_attempts(llm):
    llm.push(Reply(status=503), Reply(content="ok"))
    assert complete(reasoning_config(llm.openai_base, retries=1), retry_pause=0.3) == "ok"
    first, second = llm.requests
    assert second.at - first.at >= 0.29


def test_retry_after_is_logged_not_honoured(llm, caplog):
    caplog.set_level(logging.INFO, logger="serbero_cli")
    llm.push(Reply(status=429, headers={"Retry-After": "30"}), Reply(content="ok"))
    started = time.monotonic()
    assert complete(reasoning_config(llm.openai_base, retries=1)) == "ok"
    assert time.monotonic() - started < 5
    assert "retry_after=30" in caplog.text


def test_dropped_connection_is_unreachable_and_retried(llm):
    llm.push(Reply(close_connection=True), Reply(close_connection=True))
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.openai_base, retries=1))
    assert err.value.category == "unreachable"
    assert len(llm.requests) == 2


def test_closed_port_is_unreachable_after_every_attempt(caplog):
    caplog.set_level(logging.WARNING, logger="serbero_cli.reasoning")
    cfg = reasoning_config(f"http://127.0.0.1:{unused_port()}/v1", retries=2)
    with pytest.raises(ProviderError) as err:
        complete(cfg)
    assert err.value.category == "unreachable" and "ConnectError" in err.value.detail
    attempts = [r.getMessage() for r in caplog.records if "reasoning call failed" in r.getMessage()]
    assert len(attempts) == 3 and "attempt=3/3" in attempts[-1]


def test_closed_port_fails_the_health_check():
    with pytest.raises(ProviderError) as err:
        health(
            reasoning_config(f"http://127.0.0.1:{unused_port()}", provider="anthropic", retries=0)
        )
    assert err.value.category == "unreachable"


def test_hang_past_the_timeout_is_retried_as_timeout(llm):
    # The model never answers in time (its answers are due after a minute; stopping the server
    # ends them): two attempts of one second each, then a timeout error, well before a minute.
    llm.push(Reply(delay=60, content="late"), Reply(delay=60, content="late"))
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.openai_base, timeout=1, retries=1))
    elapsed = time.monotonic() - started
    assert err.value.category == "timeout" and len(llm.requests) == 2
    assert 1.9 <= elapsed < 30


def test_request_timeout_zero_acts_as_one_second(llm):
    llm.push(Reply(delay=0.2, content="in time"), Reply(delay=60, content="late"))
    cfg = reasoning_config(llm.openai_base, timeout=0, retries=0)
    assert complete(cfg) == "in time"  # a literal 0 s timeout would fail at once
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        complete(cfg)
    # At least the one second, and far less than the minute the answer would take.
    assert err.value.category == "timeout" and 0.9 <= time.monotonic() - started < 30


def test_health_check_retries_like_any_call(llm):
    llm.health_failures = 1
    health(reasoning_config(llm.openai_base, retries=1))
    assert len(llm.health_requests()) == 2


def test_health_check_failure_is_unreachable(llm):
    llm.health_status = 401
    with pytest.raises(ProviderError) as err:
        health(reasoning_config(llm.openai_base, retries=3))
    assert err.value.category == "unreachable" and "status=401" in err.value.detail
    assert len(llm.health_requests()) == 1


def test_error_detail_holds_at_most_200_utf8_safe_bytes_of_body_on_one_line(llm):
    llm.push(Reply(status=400, body=("é\n" * 300).encode()))
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.openai_base))
    excerpt = err.value.detail.split("body=", 1)[1].strip("'\"")
    assert 190 <= len(excerpt.encode()) <= 200 and "\n" not in err.value.detail
    assert set(excerpt) <= {"é", " "}


def test_non_2xx_redirect_is_not_followed_or_retried(llm):
    llm.push(
        Reply(status=307, headers={"Location": "http://127.0.0.1:1/elsewhere"}), Reply(content="no")
    )
    with pytest.raises(ProviderError) as err:
        complete(reasoning_config(llm.openai_base, retries=2))
    assert err.value.category == "unreachable" and len(llm.requests) == 1
