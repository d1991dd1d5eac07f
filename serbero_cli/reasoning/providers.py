"""HTTP clients for the reasoning providers: OpenAI-shaped and Anthropic (docs/mediation.md#providers).

The only module that imports httpx. Each provider builds its request bodies in the exact key
order that docs/mediation.md#providers gives, retries only timeouts, connection errors and HTTP
408, 429 and 5xx, and turns every failure into a ProviderError with a category for audit rows and a short detail for logs. The API key is revealed only when a
request's headers are built and is scrubbed from any error body before it is logged.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any, Literal

import httpx

from serbero_cli.config import ReasoningConfig
from serbero_cli.errors import ConfigError
from serbero_cli.keytext import Secret

logger = logging.getLogger(__name__)

CATEGORIES = ("unreachable", "timeout", "malformed_response")
OPENAI_PROVIDERS = ("openai", "openai-compatible")
ANTHROPIC_VERSION = "2023-06-01"
MAX_DETAIL_BODY_BYTES = 200
RETRY_STATUSES = (408, 429)  # plus every 5xx
Kind = Literal["classify", "summarize"]

# Per call kind: temperature, and Anthropic's max_tokens.
_TEMPERATURE = {"classify": 0.0, "summarize": 0.2, "health": 0.0}
_ANTHROPIC_MAX_TOKENS = {"classify": 2048, "summarize": 4096, "health": 8}


class ProviderError(Exception):
    """A provider call failed. `category` goes to audit rows; `detail` goes to logs only."""

    def __init__(self, category: str, detail: str):
        if category not in CATEGORIES:
            raise ValueError(f"unknown provider error category {category!r}")
        self.category = category
        self.detail = detail
        super().__init__(f"{category}: {detail}")


class Provider:
    """An async reasoning provider. Build it with make_provider(); close it with aclose()."""

    def __init__(self, cfg: ReasoningConfig, api_key: Secret, *, retry_pause: float = 0.5):
        self.name = cfg.provider
        self.model = cfg.model
        self.api_base = cfg.api_base.rstrip("/")
        self.attempts = cfg.followup_retry_count + 1
        # request_timeout_seconds 0 acts as 1, so a misconfiguration never means "no wait at all".
        self.timeout_seconds = max(1, cfg.request_timeout_seconds)
        self.retry_pause = retry_pause
        self._api_key = api_key
        self._client: httpx.AsyncClient | None = None

    async def health_check(self) -> None:
        """Send the tiny `ping` request (same retries as any call); raise ProviderError unless a 2xx
        answer parses into the provider's envelope."""
        await self._post("health", self._health_body(), attempts=self.attempts)

    async def complete(self, kind: Kind, system: str, user: str) -> str:
        """Send one classify or summarize request (with its retries); return the model's text."""
        if kind not in ("classify", "summarize"):
            raise ValueError(f"unknown call kind {kind!r}")
        return await self._post(kind, self._body(kind, system, user), attempts=self.attempts)

    async def aclose(self) -> None:
        """Close the connection pool; the provider can still be used afterwards (a new pool opens)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # --- provider-specific parts -------------------------------------------------------------
    url: str

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _body(self, kind: Kind, system: str, user: str) -> dict[str, Any]:
        raise NotImplementedError

    def _health_body(self) -> dict[str, Any]:
        raise NotImplementedError

    def _extract(self, envelope: Any) -> str:
        raise NotImplementedError

    # --- shared request loop -----------------------------------------------------------------
    async def _post(self, kind: str, body: dict[str, Any], *, attempts: int) -> str:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.retry_pause)
            logger.debug(
                "reasoning request provider=%s kind=%s attempt=%d/%d bytes=%d",
                self.name,
                kind,
                attempt,
                attempts,
                len(payload),
            )
            try:
                response = await self._http().post(
                    self.url, content=payload, headers=self._headers()
                )
            except httpx.TimeoutException as exc:
                error = self._error(
                    "timeout",
                    f"transport timeout after {self.timeout_seconds}s ({exc.__class__.__name__})",
                )
                retryable = True
            except httpx.TransportError as exc:  # refused, reset, dropped, DNS, TLS
                error = self._error("unreachable", f"transport error {exc.__class__.__name__}")
                retryable = True
            except httpx.DecodingError as exc:  # a body that cannot be decoded (content-encoding)
                error = self._error(
                    "malformed_response", f"unreadable body ({exc.__class__.__name__})"
                )
                retryable = False
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = self._error("unreachable", f"request failed ({exc.__class__.__name__})")
                retryable = False
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return self._answer(kind, status, response.content)
                    except ProviderError as exc:
                        error, retryable = exc, False  # a malformed body is never retried
                else:
                    error = self._error(
                        "unreachable", f"status={status} body={self._excerpt(response.content)!r}"
                    )
                    retryable = status in RETRY_STATUSES or 500 <= status <= 599
                    retry_after = response.headers.get("retry-after")
                    if retry_after is not None:
                        # Retry-After is logged, not honoured: a cron run must not sleep on a provider's say-so.
                        logger.info(
                            "reasoning provider sent Retry-After provider=%s status=%d retry_after=%s",
                            self.name,
                            status,
                            self._scrub(retry_after)[:40],
                        )
            logger.warning(
                "reasoning call failed provider=%s kind=%s category=%s attempt=%d/%d %s",
                self.name,
                kind,
                error.category,
                attempt,
                attempts,
                error.detail,
            )
            if not retryable or attempt == attempts:
                raise error
        raise AssertionError("unreachable: attempts >= 1")

    def _answer(self, kind: str, status: int, content: bytes) -> str:
        try:
            envelope = json.loads(content)
        except (ValueError, RecursionError):
            raise self._error(
                "malformed_response", f"status={status} non-JSON body ({len(content)} bytes)"
            ) from None
        try:
            text = self._extract(envelope)
        except _ShapeError as exc:
            # A 2xx body can carry model output, which never reaches logs: no excerpt here.
            raise self._error("malformed_response", f"status={status} {exc}") from None
        logger.debug(
            "reasoning answer provider=%s kind=%s status=%d chars=%d",
            self.name,
            kind,
            status,
            len(text),
        )
        return text

    def _http(self) -> httpx.AsyncClient:
        # Created on first use so it binds to the event loop that runs the call.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(float(self.timeout_seconds)),
                follow_redirects=False,
                verify=_tls_context(),
            )
        return self._client

    def _error(self, category: str, what: str) -> ProviderError:
        return ProviderError(category, f"provider={self.name} {what}")

    def _excerpt(self, content: bytes) -> str:
        """At most 200 UTF-8-safe bytes of an error body, on one line, with the key scrubbed."""
        text = " ".join(self._scrub(content.decode("utf-8", errors="replace")).split())
        return text.encode("utf-8")[:MAX_DETAIL_BODY_BYTES].decode("utf-8", errors="ignore")

    def _scrub(self, text: str) -> str:
        # A misbehaving endpoint may echo the key back; it must not reach a log line through us.
        key = self._api_key.reveal()
        return text.replace(key, "***") if key else text


class OpenAIProvider(Provider):
    """`openai` and `openai-compatible`: POST {api_base}/chat/completions."""

    def __init__(self, cfg: ReasoningConfig, api_key: Secret, *, retry_pause: float = 0.5):
        super().__init__(cfg, api_key, retry_pause=retry_pause)
        self.url = f"{self.api_base}/chat/completions"
        # gpt-5 models reject any temperature; routers may prefix the vendor ("openai/gpt-5-mini").
        self.sends_temperature = not self.model.rsplit("/", 1)[-1].lower().startswith("gpt-5")

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key.reveal()}",
            "Content-Type": "application/json",
        }

    def _body(self, kind: Kind, system: str, user: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
        if kind == "classify":
            body["response_format"] = {"type": "json_object"}
        if self.sends_temperature:
            body["temperature"] = _TEMPERATURE[kind]
        return body

    def _health_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "ping"}],
        }
        if self.sends_temperature:
            body["temperature"] = _TEMPERATURE["health"]
        return body

    def _extract(self, envelope: Any) -> str:
        try:
            content = envelope["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _ShapeError("envelope has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise _ShapeError("choices[0].message.content is not a string")
        return content


class AnthropicProvider(Provider):
    """`anthropic`: POST {base}/v1/messages, where base drops a trailing `/v1`."""

    def __init__(self, cfg: ReasoningConfig, api_key: Secret, *, retry_pause: float = 0.5):
        super().__init__(cfg, api_key, retry_pause=retry_pause)
        base = self.api_base.removesuffix("/v1")
        self.url = f"{base}/v1/messages"

    def _headers(self) -> dict[str, str]:
        return {
            "x-api-key": self._api_key.reveal(),
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
        }

    def _body(self, kind: Kind, system: str, user: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": _ANTHROPIC_MAX_TOKENS[kind],
            "system": system,
            "messages": [{"role": "user", "content": user}],
            "temperature": _TEMPERATURE[kind],
        }

    def _health_body(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": _ANTHROPIC_MAX_TOKENS["health"],
            "messages": [{"role": "user", "content": "ping"}],
            "temperature": _TEMPERATURE["health"],
        }

    def _extract(self, envelope: Any) -> str:
        blocks = envelope.get("content") if isinstance(envelope, dict) else None
        if not isinstance(blocks, list):
            raise _ShapeError("envelope has no content array")
        texts: list[str] = []
        for block in blocks:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _ShapeError("content block without a type")
            if block["type"] != "text":
                continue  # thinking, tool_use, …: not part of the answer
            text = block.get("text")
            if not isinstance(text, str):
                raise _ShapeError("text block without text")
            texts.append(text)
        if not texts:
            raise _ShapeError("no text block in content")
        return "".join(texts)


def make_provider(cfg: ReasoningConfig, api_key: Secret, *, retry_pause: float = 0.5) -> Provider:
    """Build the provider named by `[reasoning].provider`; ConfigError for an unknown name."""
    if cfg.provider in OPENAI_PROVIDERS:
        return OpenAIProvider(cfg, api_key, retry_pause=retry_pause)
    if cfg.provider == "anthropic":
        return AnthropicProvider(cfg, api_key, retry_pause=retry_pause)
    # The config loader already rejects other names; this guards callers that build configs by hand.
    raise ConfigError(
        [
            f"[reasoning] provider: unknown provider {cfg.provider!r} "
            f"(expected openai, openai-compatible or anthropic)"
        ]
    )


class _ShapeError(Exception):
    """The JSON envelope is not shaped as the provider documents."""


@functools.cache
def _tls_context() -> Any:
    """httpx's default verifying TLS context, built once per process: loading the CA bundle costs
    about 40 ms of CPU, and every provider (or a new one per run in a long-lived caller) would
    otherwise load it again."""
    return httpx.create_ssl_context()
