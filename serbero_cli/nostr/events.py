"""Plain-data view of Nostr events, so decisions outside nostr/ never touch nostr_sdk objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NostrEvent:
    """A verified event as plain data. `tags` are lists of strings; times are unix seconds."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: tuple[tuple[str, ...], ...]
    content: str

    def tag_values(self, name: str) -> list[str]:
        """Values (second element) of every tag called `name`."""
        return [t[1] for t in self.tags if len(t) >= 2 and t[0] == name]

    def first_tag(self, name: str) -> str | None:
        values = self.tag_values(name)
        return values[0] if values else None


def from_sdk(event: Any) -> NostrEvent:
    """Convert a nostr_sdk Event (already verified by the client) to NostrEvent."""
    return NostrEvent(
        id=event.id().to_hex(),
        pubkey=event.author().to_hex(),
        created_at=event.created_at().as_secs(),
        kind=event.kind().as_u16(),
        tags=tuple(tuple(t.to_vec()) for t in event.tags()),
        content=event.content(),
    )
