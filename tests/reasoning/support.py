"""Helpers shared by the reasoning tests: config builders and a one-call async runner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from serbero_cli.config import PromptsConfig, ReasoningConfig
from serbero_cli.keytext import Secret
from serbero_cli.reasoning.providers import Provider, make_provider

# Distinctive, so a leak anywhere (logs, errors, tracebacks) is unmistakable.
API_KEY = "sk-serbero-TEST-5f1d0c9a7e3b42d8a6c1e0f97b3d5a21"
DEFAULT_PROMPTS = PromptsConfig("serbero-default", None, None, None, None, None)


def reasoning_config(
    api_base: str,
    *,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    timeout: int = 5,
    retries: int = 1,
) -> ReasoningConfig:
    return ReasoningConfig(
        enabled=True,
        provider=provider,
        model=model,
        api_base=api_base,
        api_key_env="SERBERO_REASONING_API_KEY",
        request_timeout_seconds=timeout,
        followup_retry_count=retries,
    )


def with_provider(
    cfg: ReasoningConfig,
    use: Callable[[Provider], Awaitable[Any]],
    *,
    retry_pause: float = 0.0,
    key: str = API_KEY,
) -> Any:
    """Build a provider, run `use(provider)` in a fresh event loop, always close it."""

    async def main() -> Any:
        provider = make_provider(cfg, Secret(key), retry_pause=retry_pause)
        try:
            return await use(provider)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def complete(
    cfg: ReasoningConfig,
    kind: str = "classify",
    system: str = "SYS",
    user: str = "USER",
    **kwargs: Any,
) -> str:
    return with_provider(cfg, lambda p: p.complete(kind, system, user), **kwargs)


def health(cfg: ReasoningConfig, **kwargs: Any) -> None:
    return with_provider(cfg, lambda p: p.health_check(), **kwargs)
