"""Doctor checks for the reasoning layer: the API key variable, the prompt bundle, a real health call.

A missing key while `[reasoning].enabled`, and an unreadable prompt file, are config errors for
doctor as for mediate-once (exit 2); a failing health call is an ordinary failed check (exit 4),
as it is for a mediate-once run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from serbero_cli.config import Config, load_reasoning_api_key
from serbero_cli.errors import ConfigError
from serbero_cli.keytext import Secret
from serbero_cli.setup.checks import FAIL, OK, WARN, Check


def check_api_key(config: Config, env: Mapping[str, str]) -> tuple[Secret | None, list[Check]]:
    """Return (the key or None, rows). The key itself never enters a row."""
    reasoning = config.reasoning
    if not reasoning.enabled:
        return None, [
            Check("reasoning", OK, "disabled ([reasoning] enabled = false): no provider is called")
        ]
    try:
        key = load_reasoning_api_key(config, env)
    except ConfigError as exc:
        return None, [
            Check(
                "reasoning key",
                FAIL,
                problem,
                f"export {reasoning.api_key_env}=… in the environment or the service's EnvironmentFile",
            )
            for problem in exc.problems
        ]
    return key, [Check("reasoning key", OK, f"{reasoning.api_key_env} is set")]


def check_bundle(config: Config) -> tuple[list[Check], bool]:
    """Load the prompt bundle. Return (rows, is_config_error); only an enabled reasoning layer fails."""
    from serbero_cli.reasoning.bundle import load_bundle

    try:
        bundle = load_bundle(config.prompts)
    except ConfigError as exc:
        if config.reasoning.enabled:
            return [
                Check(
                    "prompt bundle",
                    FAIL,
                    problem,
                    "fix the [prompts] path or remove it to use the packaged file",
                )
                for problem in exc.problems
            ], True
        return [
            Check(
                "prompt bundle",
                WARN,
                problem,
                "mediate-once will refuse to start once reasoning is enabled",
            )
            for problem in exc.problems
        ], False
    overridden = sum(
        1
        for name in (
            "system_instructions_path",
            "classification_policy_path",
            "escalation_policy_path",
            "mediation_style_path",
            "message_templates_path",
        )
        if getattr(config.prompts, name) is not None
    )
    source = f"{overridden} file(s) from [prompts] paths" if overridden else "packaged files"
    return [
        Check(
            "prompt bundle",
            OK,
            f"{bundle.bundle_id}: policy hash {bundle.policy_hash[:16]}… ({source})",
        )
    ], False


async def check_provider(config: Config, api_key: Secret | None) -> list[Check]:
    """One real health call to the configured provider (docs/mediation.md#providers), when reasoning is on."""
    reasoning = config.reasoning
    if not reasoning.enabled or api_key is None:
        return []
    from serbero_cli.reasoning.providers import ProviderError, make_provider

    provider: Any = make_provider(reasoning, api_key)
    what = f"{reasoning.provider} model {reasoning.model} at {reasoning.api_base}"
    started = time.monotonic()
    try:
        await provider.health_check()
    except ProviderError as exc:
        return [
            Check(
                "reasoning provider",
                FAIL,
                f"{what}: health check failed, {exc.category}: {exc.detail[:240]}",
                "check api_base, model and the key; 401/403 means the key is refused, "
                "unreachable means no answer from that address",
            )
        ]
    finally:
        await provider.aclose()
    elapsed_ms = int((time.monotonic() - started) * 1000)
    return [Check("reasoning provider", OK, f"{what} answered the health check in {elapsed_ms} ms")]
