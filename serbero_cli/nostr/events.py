"""Plain-data view of Nostr events, so decisions outside nostr/ never touch nostr_sdk objects.

Events read from relays are hostile until parsed: the checks every reader shares (size, clock,
integer tags, identifiers) live here as small pure functions, so each parser applies the same rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_EVENT_JSON_BYTES = 64 * 1024
FUTURE_LIMIT_SECONDS = 600  # an event further ahead of the local clock is "from the future"
MAX_INT_TAG = 2**40  # unix seconds stay far below; anything larger is garbage or an attack
_ASCII_DIGITS = re.compile(r"[0-9]{1,13}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class NostrEvent:
    """A verified event as plain data. `tags` are lists of strings; times are unix seconds.

    `size` is the length of the event's JSON in bytes (0 when built without it, as tests do).
    """

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: tuple[tuple[str, ...], ...]
    content: str
    size: int = 0

    def tag_values(self, name: str) -> list[str]:
        """Values (second element) of every tag called `name`."""
        return [t[1] for t in self.tags if len(t) >= 2 and t[0] == name]

    def first_tag(self, name: str) -> str | None:
        values = self.tag_values(name)
        return values[0] if values else None


def parse_int_tag(value: str) -> int:
    """An integer tag value: ASCII digits only, 0 … 2^40. Return it; raise ValueError otherwise.

    `str.isdigit()` accepts superscripts and digits of other scripts, and `int()` accepts some of
    them plus spaces, signs and underscores, so neither may judge a value from a relay.
    """
    if not isinstance(value, str) or _ASCII_DIGITS.fullmatch(value) is None:
        raise ValueError("not an integer of ASCII digits")
    number = int(value)
    if number > MAX_INT_TAG:
        raise ValueError("integer out of range")
    return number


def is_uuid(value: str) -> bool:
    """True for a hyphenated UUID (8-4-4-4-12 hex digits, either case)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def is_from_the_future(created_at: int, now: int) -> bool:
    """True when `created_at` lies more than FUTURE_LIMIT_SECONDS ahead of `now`."""
    return created_at > now + FUTURE_LIMIT_SECONDS


def from_sdk(event: Any) -> NostrEvent:
    """Convert a nostr_sdk Event (already verified by the client) to NostrEvent."""
    return NostrEvent(
        id=event.id().to_hex(),
        pubkey=event.author().to_hex(),
        created_at=event.created_at().as_secs(),
        kind=event.kind().as_u16(),
        tags=tuple(tuple(t.to_vec()) for t in event.tags()),
        content=event.content(),
        size=len(event.as_json().encode("utf-8")),
    )
