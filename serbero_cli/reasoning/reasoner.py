"""One object the mediation run calls for model work: build the request, call, parse, log safely.

Logs carry ids, labels, lengths and short hashes only: never model output, chat text, rationale
text or keys (docs/operations.md#logging).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from serbero_cli.reasoning.bundle import PromptBundle
from serbero_cli.reasoning.parsing import (
    Classification,
    MalformedResponse,
    SummaryOutput,
    parse_classification,
    parse_summary,
)
from serbero_cli.reasoning.request import (
    SessionContext,
    TranscriptEntry,
    classify_user_message,
    summarize_user_message,
    system_message,
)
from serbero_cli.safetext import short

if TYPE_CHECKING:  # httpx loads only when a provider is built (docs/architecture.md#start-up)
    from serbero_cli.reasoning.providers import Provider

logger = logging.getLogger(__name__)


def fingerprint(text: str) -> str:
    """`len=N sha=<16 hex>`: how logs refer to text they must not contain."""
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
    return f"len={len(text)} sha={digest}"


class Reasoner:
    """Classify and summarize through one provider with one prompt bundle."""

    def __init__(self, provider: Provider, bundle: PromptBundle, transcript_max_messages: int):
        self.provider = provider
        self.bundle = bundle
        self.transcript_max_messages = transcript_max_messages

    async def classify(
        self, ctx: SessionContext, transcript: Sequence[TranscriptEntry]
    ) -> tuple[Classification, int]:
        """Ask for a classification. Return it with the raw answer's length in characters.

        Raise ProviderError (call failed) or MalformedResponse (answer broke the classification contract).
        """
        user = classify_user_message(
            self.bundle, ctx, transcript, max_messages=self.transcript_max_messages
        )
        raw = await self.provider.complete("classify", system_message(self.bundle), user)
        try:
            result = parse_classification(raw)
        except MalformedResponse as exc:
            logger.warning(
                "classification malformed dispute=%s session=%s reason=%s %s",
                short(ctx.dispute_id),
                short(ctx.session_id),
                exc,
                fingerprint(raw),
            )
            raise
        logger.info(
            "classification dispute=%s session=%s label=%s confidence=%.2f action=%s flags=%s %s",
            short(ctx.dispute_id),
            short(ctx.session_id),
            result.classification,
            result.confidence,
            result.suggested_action,
            ",".join(result.flags) or "-",
            fingerprint(raw),
        )
        return result, len(raw)

    async def summarize(
        self, ctx: SessionContext, transcript: Sequence[TranscriptEntry]
    ) -> SummaryOutput:
        """Ask for a solver summary. Raise ProviderError or MalformedResponse."""
        user = summarize_user_message(
            self.bundle, ctx, transcript, max_messages=self.transcript_max_messages
        )
        raw = await self.provider.complete("summarize", system_message(self.bundle), user)
        try:
            result = parse_summary(raw)
        except MalformedResponse as exc:
            logger.warning(
                "summary malformed dispute=%s session=%s reason=%s %s",
                short(ctx.dispute_id),
                short(ctx.session_id),
                exc,
                fingerprint(raw),
            )
            raise
        logger.info(
            "summary dispute=%s session=%s summary_chars=%d next_step_chars=%d %s",
            short(ctx.dispute_id),
            short(ctx.session_id),
            len(result.summary),
            len(result.next_step),
            fingerprint(raw),
        )
        return result
