"""Small pure text helpers for people-facing audit output: short ids, relative ages, one-liners.

Tables show these; JSON always carries the full values (docs/operations.md#audit).
"""

from __future__ import annotations

import json
from typing import Any

ONE_LINE = 60
PAYLOAD_VALUE_CHARS = 16


def span(seconds: int) -> str:
    """A duration as `45s`, `12m`, `3h05m`, `2d4h`."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def age(now: int, at: int | None) -> str:
    """How long ago `at` was, relative to `now` (`in …` for a future time, `-` for none)."""
    if at is None:
        return "-"
    delta = int(now) - int(at)
    return span(delta) if delta >= 0 else "in " + span(-delta)


def one_line(text: Any, limit: int = ONE_LINE) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_json(text: Any) -> Any:
    """A stored JSON value decoded, or None when it is not valid JSON text."""
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def parse_object(text: Any) -> dict[str, Any] | None:
    """A stored JSON object decoded; None for anything else (the raw text stays beside it)."""
    value = parse_json(text)
    return value if isinstance(value, dict) else None


def payload_summary(payload: Any, raw: Any = None) -> str:
    """`key=value` pairs of an audit payload, values shortened; lists show their length."""
    if not isinstance(payload, dict):
        return "unreadable payload: " + one_line(raw, 40) if raw not in (None, "{}") else ""
    parts = []
    for key, value in payload.items():
        if isinstance(value, list):
            shown = f"[{len(value)}]"
        elif isinstance(value, dict):
            shown = "{…}"
        elif isinstance(value, str) and len(value) > PAYLOAD_VALUE_CHARS:
            shown = value[:PAYLOAD_VALUE_CHARS] + "…"
        else:
            shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        parts.append(f"{key}={shown}")
    return " ".join(parts)
