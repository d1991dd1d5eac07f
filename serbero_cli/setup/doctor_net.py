"""Doctor's network checks: each relay, what Mostro publishes there, and the clock against relay events.

Every relay gets its own pool, so each one's connect time is its own (one shared pool would only
say "all connected by now"). Nothing is published: the checks only read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serbero_cli.config import Config
from serbero_cli.nostr.events import NostrEvent
from serbero_cli.safetext import short
from serbero_cli.setup.checks import FAIL, OK, WARN, Check, ago
from serbero_cli.setup.doctor_dm import inbox_filter, inbox_row

DISPUTE_KIND = 38386
INFO_TAGS = ("protocol_version", "pow", "pow_first_contact", "mostro_version")
CLOCK_SKEW_WARN_SECONDS = 60
# The node republishes its info event every 300 s by default: an hour without one is stale.
INFO_STALE_SECONDS = 3600


@dataclass
class RelayProbe:
    """What one relay answered. `error` is set when it did not connect."""

    url: str
    connect_ms: int | None = None
    error: str | None = None
    mostro_events: list[NostrEvent] = field(default_factory=list)
    inbox_events: list[NostrEvent] = field(
        default_factory=list
    )  # solvers' kind-10050 DM relay lists
    recent_events: list[NostrEvent] = field(
        default_factory=list
    )  # newest events of anyone, for the clock
    fetch_error: str | None = None

    @property
    def connected(self) -> bool:
        return self.error is None


async def check_network(config: Config, facts: Any, clock: Callable[[], float]) -> list[Check]:
    """Rows for every relay, Mostro's dispute and info events, the transport, and the clock."""
    from serbero_cli.nostr.relays import RelayPool

    timeout = config.listen.fetch_timeout_seconds
    pools = [RelayPool([url]) for url in config.relays]
    try:
        inbox = inbox_filter(config)
        probes = await asyncio.gather(
            *(
                _probe(pool, url, timeout, config.mostro_pubkey, inbox)
                for pool, url in zip(pools, config.relays, strict=True)
            )
        )
    finally:
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)
    now = int(clock())
    rows = [_relay_row(p) for p in probes]
    connected = [p for p in probes if p.connected]
    if not connected:
        rows.append(
            Check("mostro", WARN, "not checked: no relay reachable", "fix the relays first")
        )
        rows.append(Check("clock", WARN, "not checked: no relay reachable", "fix the relays first"))
        return rows
    from serbero_cli.nostr.mostro_messages import newest_info_event, parse_info_event

    events = [ev for p in connected for ev in p.mostro_events]
    rows.append(_dispute_row(events, connected, config.mostro_pubkey, now))
    info_event = newest_info_event(events, config.mostro_pubkey, now=now)
    info = parse_info_event(info_event) if info_event is not None else None
    rows.append(_info_row(info, now))
    rows.append(node_serbero_row(info, config.public_key))
    rows.append(transport_row(config, info, facts, now))
    rows.append(_clock_row(connected, now))
    rows.append(inbox_row(config, [ev for p in connected for ev in p.inbox_events]))
    return rows


async def _probe(
    pool: Any, url: str, timeout: int, mostro_pubkey: str, inbox: dict[str, Any] | None = None
) -> RelayProbe:
    probe = RelayProbe(url)
    started = time.monotonic()
    try:
        result = await pool.connect(timeout)
    except Exception as exc:  # noqa: BLE001 - one relay's failure is a row, not a crash
        probe.error = f"cannot connect: {_one_line(exc)}"
        return probe
    if not result.connected:
        reason = next(iter(result.failed.values()), "") if result.failed else ""
        probe.error = f"cannot connect: {reason}" if reason else f"no connection within {timeout}s"
        return probe
    probe.connect_ms = int((time.monotonic() - started) * 1000)
    from serbero_cli.nostr.mostro_messages import info_filter

    mostro_filters = [
        {"kinds": [DISPUTE_KIND], "authors": [mostro_pubkey], "limit": 1},
        info_filter(mostro_pubkey),
    ]

    # Separate requests: a relay that refuses the broad clock query must not hide Mostro's events.
    async def fetch(filters: list[dict[str, Any]]) -> list[NostrEvent]:
        return await pool.fetch(filters, timeout) if filters else []

    mostro, recent, inboxes = await asyncio.gather(
        fetch(mostro_filters),
        fetch([{"limit": 5}]),
        fetch([inbox] if inbox else []),
        return_exceptions=True,
    )
    if not isinstance(inboxes, BaseException):
        probe.inbox_events = list(inboxes)
    if isinstance(mostro, BaseException):
        probe.fetch_error = _one_line(mostro)
    else:
        probe.mostro_events = [ev for ev in mostro if ev.pubkey == mostro_pubkey]
    if not isinstance(recent, BaseException):
        probe.recent_events = list(recent)
    return probe


def newest(events: list[NostrEvent]) -> NostrEvent | None:
    """Highest created_at; ties go to the lowest id."""
    return min(events, key=lambda ev: (-ev.created_at, ev.id)) if events else None


def _relay_row(probe: RelayProbe) -> Check:
    name = f"relay {probe.url}"
    if not probe.connected:
        return Check(
            name,
            FAIL,
            probe.error or "not connected",
            "check the URL, DNS and firewall; a run exits 3 when no relay connects",
        )
    if probe.fetch_error:
        return Check(
            name,
            WARN,
            f"connected in {probe.connect_ms} ms, but the query failed: {probe.fetch_error}",
            "the relay may restrict reads; listen needs kind 38386 from the Mostro key",
        )
    return Check(name, OK, f"connected in {probe.connect_ms} ms")


def _dispute_row(
    events: list[NostrEvent], connected: list[RelayProbe], mostro: str, now: int
) -> Check:
    disputes = [
        ev for ev in events if ev.kind == DISPUTE_KIND and _acceptable_dispute(ev, mostro, now)
    ]
    latest = newest(disputes)
    if latest is None:
        return Check(
            "mostro disputes",
            WARN,
            f"no kind-38386 event from {short(mostro)} on {len(connected)} relay(s)",
            "normal for a node that never had a dispute; otherwise check [mostro] pubkey "
            "and that the node publishes to these relays",
        )
    seen_on = sum(1 for p in connected if any(ev.kind == DISPUTE_KIND for ev in p.mostro_events))
    status = latest.first_tag("s") or "?"
    dispute = short(latest.first_tag("d") or "", 12)
    return Check(
        "mostro disputes",
        OK,
        f"newest kind-38386 event {ago(now - latest.created_at)} "
        f"(dispute {dispute}, status {status}), on {seen_on}/{len(connected)} relay(s)",
    )


def _acceptable_dispute(event: NostrEvent, mostro: str, now: int) -> bool:
    """Only a dispute event listen would accept is shown: its tags are then safe to print."""
    from serbero_cli.domain.dispute_events import EventRejected, parse_dispute_event

    try:
        parse_dispute_event(event, mostro, now=now)
    except EventRejected:
        return False
    return True


def _info_row(info: Any, now: int) -> Check:
    """The node's info event as parsed by nostr/mostro_messages.py (the values mediate-once uses)."""
    if info is None:
        return Check(
            "mostro info",
            WARN,
            "no kind-38385 info event from the Mostro key",
            'a Cashu-mode node publishes none; with transport = "auto" takes fall back to the '
            "cached transport or giftwrap, so pin [mostro] transport if you know the node's protocol",
        )
    age = now - info.created_at
    values = {name: getattr(info, name) for name in INFO_TAGS}
    tags = ", ".join(
        f"{name}={'absent' if value is None else value}" for name, value in values.items()
    )
    detail = f"kind-38385 from {ago(age)}: {tags}"
    if age > INFO_STALE_SECONDS:
        return Check(
            "mostro info",
            WARN,
            detail,
            "the node republishes it every few minutes: is it running? "
            "(or this machine's clock is ahead)",
        )
    return Check("mostro info", OK, detail)


def node_serbero_row(info: Any, own: str) -> Check:
    """Whether the node announces this Serbero (`serbero` tag of its info event, mostrod ≥ 0.19.2).

    The Mostro app labels Serbero "Assistant" and mostro-watchdog finds it only through that tag.
    The detail names the announced key as 64 hex (or nothing)."""
    from serbero_cli.keytext import npub

    name = "node announces serbero"
    if info is None or info.serbero_malformed or info.serbero is None:
        why = (
            "the serbero tag is malformed (not 64 hex); ignored"
            if info is not None and info.serbero_malformed
            else "no serbero tag in the node's info event"
        )
        return Check(
            name,
            WARN,
            why,
            f'Mostro >= 0.19.2: set serbero_pubkey = "{npub(own)}" under [mostro] in mostrod\'s '
            "settings.toml and restart it; until then the Mostro app shows Serbero as an ordinary solver",
        )
    if info.serbero == own:
        return Check(name, OK, info.serbero)
    return Check(
        name,
        FAIL,
        f"{info.serbero} ({npub(info.serbero)}) is another key",
        f"this Serbero is {npub(own)}: fix serbero_pubkey on the node, or run the Serbero it names; "
        "mediate-once starts no session meanwhile",
    )


def transport_row(config: Config, info: Any, facts: Any, now: int) -> Check:
    """The transport the next mediate-once would use, by the same resolver (docs/mediation.md#transport).

    Doctor only reads: the cache row `mostro_transport` is shown with its age, never written.
    """
    from serbero_cli.mediation.transport import resolve_transport

    cache = getattr(facts, "transport_cache", None)
    updated_at = getattr(facts, "transport_cache_updated_at", None)
    choice = resolve_transport(config.mostro_transport, info, cache, now)
    resolved = choice.transport or "none (no take possible)"
    parts = [
        f"configured {config.mostro_transport}, resolves to {resolved} (from {choice.source}), "
        f"pow {choice.pow_bits} bit(s) for takes"
    ]
    if cache:
        parts.append(
            f"cached {cache.get('transport')} (protocol_version {cache.get('protocol_version')}, "
            f"pow {cache.get('pow')}, pow_first_contact {cache.get('pow_first_contact')}) "
            f"stored {ago(now - updated_at) if updated_at else 'at an unknown time'}"
        )
    else:
        parts.append("no cached transport yet (mediate-once stores it)")
    detail = "; ".join(parts)
    if choice.error:
        status = FAIL if config.mediation_active else WARN
        return Check(
            "mostro transport",
            status,
            f"{detail}; {choice.error}",
            "this Serbero cannot take disputes from this node; check the node's version",
        )
    if choice.warnings:
        return Check("mostro transport", WARN, detail, "; ".join(choice.warnings))
    return Check("mostro transport", OK, detail)


def _clock_row(connected: list[RelayProbe], now: int) -> Check:
    dated = [
        (ev.created_at - now, p.url) for p in connected for ev in p.recent_events + p.mostro_events
    ]
    if not dated:
        return Check("clock", OK, "not compared: the relays returned no events")
    ahead, url = max(dated)
    if ahead > CLOCK_SKEW_WARN_SECONDS:
        return Check(
            "clock",
            WARN,
            f"an event on {url} is dated {ahead}s after this machine's clock",
            "this clock is probably behind: check NTP (timedatectl status)",
        )
    return Check(
        "clock",
        OK,
        f"no relay event is dated more than {CLOCK_SKEW_WARN_SECONDS}s ahead "
        f"({len(dated)} event(s) compared)",
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:200]
