"""Recipients' NIP-17 DM inbox relays (kind 10050), for the `nip17` envelope.

A recipient who announces inbox relays also gets each `nip17` message there, best effort: a
configured relay's OK is what makes the message sent. At most three are used, `wss://` only and
never a loopback or private address, since a published event must never steer Serbero to
plain-text or local services. Answers are cached for a day in `sync_state`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from serbero_cli.nostr.events import NostrEvent
from serbero_cli.safetext import short
from serbero_cli.store import sync
from serbero_cli.store.db import Store

logger = logging.getLogger(__name__)

INBOX_KIND = 10050
MAX_INBOX_RELAYS = 3
CACHE_SECONDS = 86_400
CACHE_PREFIX = "inbox_relays:"


def usable_relay(url: str) -> bool:
    """`wss://` to a public host: no plain text, no loopback, private or link-local address."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme != "wss" or not host:
        return False
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return address.is_global


def inbox_relays_from(events: Iterable[NostrEvent], pubkey: str) -> list[str]:
    """The newest 10050 by `pubkey`: its usable `relay` tags, in order, at most three."""
    mine = [e for e in events if e.kind == INBOX_KIND and e.pubkey == pubkey]
    if not mine:
        return []
    newest = max(mine, key=lambda e: (e.created_at, _neg_id(e.id)))
    relays: list[str] = []
    for url in newest.tag_values("relay"):
        url = url.strip()
        if usable_relay(url) and url not in relays:
            relays.append(url)
    return relays[:MAX_INBOX_RELAYS]


def _neg_id(event_id: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in event_id)  # ties: the lowest id wins


def cached(store: Store, pubkey: str, now: int) -> list[str] | None:
    """Cached relays for `pubkey`, or None when absent or older than a day."""
    row = sync.get_row(store, CACHE_PREFIX + pubkey)
    if row is None or now - row[1] >= CACHE_SECONDS:
        return None
    try:
        relays = json.loads(row[0])
    except ValueError:
        return None
    return (
        [r for r in relays if isinstance(r, str) and usable_relay(r)][:MAX_INBOX_RELAYS]
        if isinstance(relays, list)
        else None
    )


async def refresh(
    store: Store, pool: Any, pubkeys: Iterable[str], now: int, timeout: float
) -> dict[str, list[str]]:
    """Inbox relays for each pubkey, fetching (one request) only those not cached."""
    found: dict[str, list[str]] = {}
    missing = []
    for pubkey in dict.fromkeys(pubkeys):
        relays = cached(store, pubkey, now)
        if relays is None:
            missing.append(pubkey)
        else:
            found[pubkey] = relays
    if not missing:
        return found
    try:
        events = await pool.fetch([{"kinds": [INBOX_KIND], "authors": missing}], timeout)
    except Exception as exc:  # noqa: BLE001 - inbox relays are best effort
        logger.debug("inbox relay lookup failed: %s", exc)
        return found
    with store.immediate() as conn:
        for pubkey in missing:
            relays = inbox_relays_from(events, pubkey)
            found[pubkey] = relays
            sync.set_value(conn, CACHE_PREFIX + pubkey, json.dumps(relays), now)
            if relays:
                logger.debug("recipient=%s announces %d inbox relays", short(pubkey), len(relays))
    return found


async def for_audience(
    store: Store, pool: Any, audience: Any, now: int, timeout: float
) -> dict[str, list[str]]:
    """Inbox relays of every solver and observer who takes the `nip17` envelope (cached a day)."""
    recipients = [p for p in (*audience.solvers, *audience.observers) if audience.uses(p, "nip17")]
    found = await refresh(store, pool, recipients, now, timeout) if recipients else {}
    await pool.add_extra_relays(
        [url for urls in found.values() for url in urls]
    )  # connect before sending
    return found
