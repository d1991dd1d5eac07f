"""Parsing what operators type: `--since` durations and id prefixes (docs/operations.md#audit).

Both are pure functions; bad input is a `UsageError` (exit 2) with a message that says what to
type instead, because these are read at 3 a.m. by someone in a hurry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from serbero_cli.errors import UsageError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw])\s*$", re.IGNORECASE)
# Highest code point: `id >= prefix AND id < prefix || MAX_CHAR` selects exactly the ids that
# start with `prefix` (BINARY collation compares UTF-8 bytes), and SQLite can use the PK index.
MAX_CHAR = "\U0010ffff"
AMBIGUITY_SHOWN = 5


def parse_duration(text: str, option: str = "--since") -> int:
    """Return the seconds in `30m`, `2h`, `7d` (also `s` and `w`); raise UsageError otherwise."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"{option}: {text!r} is not a duration; use a number and a unit, e.g. 30m, 2h, 7d"
        )
    return int(match.group(1)) * UNIT_SECONDS[match.group(2).lower()]


def since_cutoff(text: str | None, now: int, option: str = "--since") -> int | None:
    """The unix time `text` ago from `now`, or None when no `--since` was given."""
    if text is None:
        return None
    return now - parse_duration(text, option)


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """Lower and upper bounds of an index range scan for ids starting with `prefix`."""
    return prefix, prefix + MAX_CHAR


def pick_unique(what: str, prefix: str, matches: Sequence[str]) -> str:
    """Resolve a typed id against the ids that start with it.

    An exact match wins even when it is also a prefix of other ids. Return the one id; raise
    UsageError when nothing matches or when several do (naming a few so the operator can pick).
    """
    if not prefix:
        raise UsageError(f"give a {what} id (a unique prefix is enough)")
    if prefix in matches:
        return prefix
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no {what} id starts with {prefix!r}")
    shown = ", ".join(matches[:AMBIGUITY_SHOWN])
    more = "" if len(matches) <= AMBIGUITY_SHOWN else ", …"
    raise UsageError(
        f"{what} id prefix {prefix!r} is ambiguous: it matches {shown}{more}; type more characters"
    )
