"""Everything one mediate-once run shares: config, store, relays, the model, the clock, the counters."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from serbero_cli.config import Config
from serbero_cli.delivery.audience import Audience
from serbero_cli.mediation import chat_io, escalation
from serbero_cli.mediation.policy import EscalationTrigger
from serbero_cli.mediation.result import MediationResult
from serbero_cli.mediation.transport import TakeTransport
from serbero_cli.stopping import StopRequested
from serbero_cli.store.db import Store

logger = logging.getLogger(__name__)


@dataclass
class RunContext:
    config: Config
    store: Store
    pool: Any  # nostr.relays.RelayPool
    bundle: Any  # reasoning.bundle.PromptBundle
    reasoner: Any  # reasoning.reasoner.Reasoner
    provider: Any  # reasoning.providers.Provider
    clock: Callable[[], float]
    result: MediationResult
    channels: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # session -> party -> ChannelKeys
    round_limit_hits: dict[str, str] = field(
        default_factory=dict
    )  # session -> inner id that hit the limit
    take_transport: TakeTransport | None = None
    take_pow_bits: int = 0
    stop: StopRequested = field(default_factory=StopRequested)
    _healthy: bool | None = None

    def now(self) -> int:
        return int(self.clock())

    @property
    def loaded(self) -> tuple[str, str]:
        """The bundle this run loaded: every new row records it (docs/mediation.md#prompt-bundle)."""
        return (self.bundle.bundle_id, self.bundle.policy_hash)

    @property
    def solvers(self) -> list[str]:
        return [s.pubkey for s in self.config.solvers]

    @functools.cached_property
    def audience(self) -> Audience:
        return Audience.from_config(self.config)

    async def publish_chat(self, session_ids: set[str] | None = None) -> chat_io.PublishStats:
        """Publish every unpublished party message of this run's sessions (or only `session_ids`)."""
        return await chat_io.publish_pending(
            self.store,
            self.pool,
            secret=self.config.private_key,
            channels=self.channels,
            send_timeout=self.config.delivery.send_timeout_seconds,
            now_fn=self.clock,
            bundle=self.loaded,
            session_ids=session_ids,
        )

    async def model_ready(self) -> bool:
        """At most one health check per run, made lazily before the first model call (docs/mediation.md#run-order)."""
        if self._healthy is None:
            from serbero_cli.reasoning.providers import ProviderError

            self.result.provider_checked = True
            try:
                await self.provider.health_check()
                self._healthy = True
            except ProviderError as exc:
                self._healthy = False
                logger.error(
                    "reasoning provider health check failed: category=%s %s",
                    exc.category,
                    exc.detail,
                )
            self.result.provider_healthy = self._healthy
        return bool(self._healthy)

    def escalate(
        self,
        dispute_id: str,
        session_id: str | None,
        trigger: EscalationTrigger,
        *,
        evidence_refs: Iterable[str] = (),
        rationale_refs: Iterable[str | None] = (),
        reason: str | None = None,
    ) -> escalation.Outcome:
        """The one escalation path, counted in the run summary when it wrote something."""
        outcome = escalation.recommend(
            self.store,
            escalation.Escalation(
                dispute_id,
                session_id,
                trigger,
                tuple(evidence_refs),
                tuple(r for r in rationale_refs if r),
                reason,
            ),
            bundle=self.loaded,
            now=self.now(),
            audience=self.audience,
            alert_solvers=not self.config.escalation.enabled,
        )
        if outcome == "escalated":
            self.result.escalated(trigger)
        return outcome
