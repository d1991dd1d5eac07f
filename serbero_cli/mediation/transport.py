"""Which wire format a take uses this run, and with how much proof of work (docs/mediation.md#transport).

Pure: the caller fetches the newest kind-38385 info event and reads the `mostro_transport` cache
row; this module turns them into a decision, the warnings to log, and the new cache value. A
message in the wrong format gets no reply and no error from the node, so an unknown protocol
version means no take at all: never guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from serbero_cli.nostr.mostro_messages import NodeInfo


class TakeTransport(StrEnum):
    """How a take request travels (stored as `mediation_sessions.take_transport`)."""

    GIFTWRAP = "giftwrap"  # protocol v1: a NIP-59 gift wrap
    NIP44 = "nip44"  # protocol v2: a kind-14 message encrypted with NIP-44


TRANSPORTS: tuple[TakeTransport, ...] = tuple(TakeTransport)
CONFIG_VALUES = ("auto", *TRANSPORTS)
ALIASES = {"gift-wrap": "giftwrap"}
CACHE_STALE_SECONDS = 24 * 3600
# Where this run's choice came from (the summary's `transport_source`).
Source = Literal["config", "info_event", "cache", "fallback"]


@dataclass(frozen=True)
class TransportChoice:
    """The decision for this run.

    transport: "giftwrap" | "nip44", or None when the node's protocol is unsupported (no take).
    source: "config" | "info_event" | "cache" | "fallback" (the summary's `transport_source`).
    pow_bits: NIP-13 difficulty for takes (0 = no mining). warnings: messages to log at WARNING;
    an unsupported protocol's message is an ERROR (see `error`). cache_value: the dict to upsert
    into `sync_state(key='mostro_transport')`, or None when no info event was found.
    """

    transport: TakeTransport | None
    source: Source
    pow_bits: int
    warnings: list[str] = field(default_factory=list)
    cache_value: dict[str, Any] | None = None
    error: str | None = None


def normalize_configured(value: str) -> str:
    """`[mostro].transport` with the `gift-wrap` alias folded in; raise ValueError for anything else."""
    value = ALIASES.get(value, value)
    if value not in CONFIG_VALUES:
        raise ValueError(f"transport must be one of auto, giftwrap, nip44 (got {value!r})")
    return value


def transport_for_protocol(protocol_version: str | None) -> TakeTransport | None:
    """nip44 for "2"; giftwrap for "1" or an absent tag (a pre-0.18 daemon); None for anything else."""
    if protocol_version == "2":
        return TakeTransport.NIP44
    if protocol_version in ("1", None):
        return TakeTransport.GIFTWRAP
    return None


def pow_bits_for(
    transport: TakeTransport | None,
    pow_bits: int | None,
    pow_first_contact: int | None,
    warnings: list[str],
) -> int:
    """v2: pow_first_contact, else pow (with a warning); v1: pow; unknown values count as 0."""
    if transport == TakeTransport.NIP44:
        if pow_first_contact is not None:
            return pow_first_contact
        warnings.append(
            "the node advertises no pow_first_contact; using pow, but an early v2 node "
            "may enforce more than it advertises"
        )
        return pow_bits or 0
    if transport == TakeTransport.GIFTWRAP:
        return pow_bits or 0
    return 0


def cache_value_for(info: NodeInfo) -> dict[str, Any]:
    """The compact cache row written whenever an info event is found (fixed key order)."""
    return {
        "transport": transport_for_protocol(info.protocol_version),
        "protocol_version": info.protocol_version,
        "pow": info.pow,
        "pow_first_contact": info.pow_first_contact,
        "event_id": info.event_id,
        "event_created_at": info.created_at,
    }


def resolve_transport(
    configured: str, info: NodeInfo | None, cache: dict[str, Any] | None, now: int
) -> TransportChoice:
    """Apply the table of docs/mediation.md#transport. `cache` is the parsed cache row, or None.

    Raise ValueError for an unknown configured value (config validation normally catches it).
    """
    configured = normalize_configured(configured)
    warnings: list[str] = []
    cache_value = cache_value_for(info) if info is not None else None
    if configured != "auto":
        pinned = TakeTransport(configured)
        if info is not None and transport_for_protocol(info.protocol_version) != pinned:
            warnings.append(
                f"[mostro].transport is {configured!r} but the node's info event says "
                f"protocol_version={info.protocol_version!r}; takes may time out"
            )
        source = _pow_source(info, cache)
        bits = pow_bits_for(pinned, *source, warnings) if source else 0
        return TransportChoice(pinned, "config", bits, warnings, cache_value)
    if info is not None:
        transport = transport_for_protocol(info.protocol_version)
        if transport is None:
            error = f"the node speaks unsupported protocol_version={info.protocol_version!r}; no take this run"
            return TransportChoice(None, "info_event", 0, warnings, cache_value, error)
        bits = pow_bits_for(transport, info.pow, info.pow_first_contact, warnings)
        return TransportChoice(transport, "info_event", bits, warnings, cache_value)
    cached = _usable_cache(cache)
    if cached is not None:
        age = now - cached["event_created_at"]
        if age > CACHE_STALE_SECONDS:
            warnings.append(
                f"no info event from the node this run; using a cached transport "
                f"{age // 3600} h old"
            )
        transport = TakeTransport(cached["transport"]) if cached["transport"] is not None else None
        if transport is None:
            error = (
                f"the cached node protocol_version={cached['protocol_version']!r} is unsupported; "
                "no take this run"
            )
            return TransportChoice(None, "cache", 0, warnings, None, error)
        bits = pow_bits_for(transport, cached["pow"], cached["pow_first_contact"], warnings)
        return TransportChoice(transport, "cache", bits, warnings, None)
    warnings.append(
        "no info event from the node and no cached transport; using giftwrap. "
        "A Cashu-mode node publishes no info event: pin [mostro].transport for it"
    )
    return TransportChoice(TakeTransport.GIFTWRAP, "fallback", 0, warnings, None)


def _pow_source(
    info: NodeInfo | None, cache: dict[str, Any] | None
) -> tuple[int | None, int | None] | None:
    """(pow, pow_first_contact) from the info event, else from the cache, else None."""
    if info is not None:
        return info.pow, info.pow_first_contact
    cached = _usable_cache(cache)
    return (cached["pow"], cached["pow_first_contact"]) if cached is not None else None


def _usable_cache(cache: Any) -> dict[str, Any] | None:
    """The cache row with its values checked, or None when it is missing or malformed."""
    if not isinstance(cache, dict):
        return None
    transport = cache.get("transport")
    created_at = cache.get("event_created_at")
    if transport not in (*TRANSPORTS, None) or not _is_int(created_at):
        return None
    if transport is None and cache.get("protocol_version") in ("1", "2", None):
        return None  # a null transport is only meaningful for an unsupported version
    return {
        "transport": transport,
        "protocol_version": cache.get("protocol_version"),
        "pow": cache.get("pow") if _is_int(cache.get("pow")) else None,
        "pow_first_contact": cache.get("pow_first_contact")
        if _is_int(cache.get("pow_first_contact"))
        else None,
        "event_created_at": created_at,
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
