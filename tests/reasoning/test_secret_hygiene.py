"""The API key never reaches logs, errors or tracebacks, whatever the provider answers."""

from __future__ import annotations

import asyncio
import logging
import traceback

import pytest

from serbero_cli.keytext import Secret
from serbero_cli.reasoning.bundle import load_bundle
from serbero_cli.reasoning.providers import ProviderError, make_provider
from serbero_cli.reasoning.reasoner import Reasoner
from serbero_cli.reasoning.request import SessionContext
from serbero_cli.simulate.llm import Reply, classification_json, summary_text, unused_port
from tests.reasoning.support import API_KEY, DEFAULT_PROMPTS, reasoning_config

BUNDLE = load_bundle(DEFAULT_PROMPTS)
CTX = SessionContext(None, "d-1", "buyer", BUNDLE.bundle_id, BUNDLE.policy_hash, 0, 0)


def exercise(cfg, replies, llm) -> list[str]:
    """Run health, classify and summarize; return the text of every exception raised."""
    llm.push(*replies)
    seen: list[str] = []

    async def main():
        provider = make_provider(cfg, Secret(API_KEY), retry_pause=0)
        seen.append(repr(provider.__dict__))
        reasoner = Reasoner(provider, BUNDLE, 40)
        for call in (
            provider.health_check,
            lambda: reasoner.classify(CTX, []),
            lambda: reasoner.summarize(CTX, []),
        ):
            try:
                await call()
            except Exception as exc:  # noqa: BLE001 - we inspect every failure
                seen.append("".join(traceback.format_exception(exc)))
                if isinstance(exc, ProviderError):
                    seen.append(exc.detail)
        await provider.aclose()

    asyncio.run(main())
    return seen


ECHO = {"error": {"message": f"Incorrect API key provided: {API_KEY}", "key": API_KEY}}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "replies",
    [
        pytest.param(
            [
                classification_json("unclear", 0.4, "ask_clarification", "a", "b"),
                summary_text("s", "n", "r"),
            ],
            id="success",
        ),
        pytest.param(
            [Reply(status=401, body=ECHO), Reply(status=401, body=ECHO)], id="401-body-echoes-key"
        ),
        pytest.param([Reply(status=500, body=ECHO)] * 4, id="500-body-echoes-key"),
        pytest.param(
            [Reply(status=429, headers={"Retry-After": API_KEY}, body=ECHO)] * 4,
            id="429-header-echoes-key",
        ),
        pytest.param(
            [Reply(body=ECHO), Reply(body=f"not json {API_KEY}")],
            id="malformed-envelope-echoes-key",
        ),
        pytest.param(
            [
                Reply(content=f"prose with {API_KEY}"),
                Reply(content=f"RATIONALE: {API_KEY} SUGGESTED_NEXT_STEP:"),
            ],
            id="model-output-echoes-key",
        ),
        pytest.param([Reply(close_connection=True)] * 4, id="dropped-connection"),
    ],
)
def test_api_key_never_in_logs_or_errors(llm, caplog, provider, replies):
    caplog.set_level(logging.DEBUG)
    llm.health_status = 401 if "401" in str(replies) else 200
    cfg = reasoning_config(llm.base_url + "/v1", provider=provider, retries=1)
    seen = exercise(cfg, replies, llm)
    assert llm.requests, "the provider was exercised"
    records = caplog.records
    if "Retry-After" in str(replies):
        # httpcore's own DEBUG trace prints response headers verbatim; logsetup keeps httpcore at
        # WARNING, so only our loggers (and httpx's INFO line) can ever be emitted.
        records = [r for r in records if not r.name.startswith("httpcore")]
    assert records and all(
        API_KEY not in r.getMessage() and API_KEY not in str(r.args) for r in records
    )
    assert all(API_KEY not in text for text in seen)


def test_api_key_never_in_logs_for_a_closed_port(caplog):
    caplog.set_level(logging.DEBUG)

    class NoServer:  # exercise() only needs push(); nothing listens on the port
        requests = [None]

        def push(self, *replies):
            pass

    seen = exercise(
        reasoning_config(f"http://127.0.0.1:{unused_port()}", retries=1), [], NoServer()
    )
    assert len(seen) == 1 + 3 * 2  # the provider repr, then a traceback and detail per failed call
    assert API_KEY not in caplog.text and all(API_KEY not in text for text in seen)


def test_error_excerpt_scrubs_the_key(llm):
    llm.push(Reply(status=403, body=ECHO))
    seen = exercise(reasoning_config(llm.openai_base, retries=0), [], llm)
    assert any("Incorrect API key provided: ***" in text for text in seen)
