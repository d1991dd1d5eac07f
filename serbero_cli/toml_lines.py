"""Line numbers of TOML headers and keys, so config errors can say `config.toml:12:`.

tomlkit keeps no source positions; this scans the raw text the way a reader would: table and
array-of-tables headers, then `key =` lines inside them (multi-line strings are skipped).
"""

from __future__ import annotations

import re
from collections.abc import Collection


class KeyLines:
    """Line numbers of headers and keys in the raw TOML text (tomlkit keeps no positions)."""

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")

    def __init__(self, text: str):
        self.headers: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str | None, int, str], int] = {}
        # (section, index, key), first line, repeated line: what tomlkit refuses without saying where
        self.duplicates: list[tuple[tuple[str | None, int, str], int, int]] = []
        counts: dict[str, int] = {}
        current: tuple[str | None, int] = (None, 0)
        in_multiline = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            m = self._header.match(line)
            if m and not self._key.match(line):
                name = m.group(2).strip().strip("\"'")
                if m.group(1) == "[[":
                    index = counts.get(name, -1) + 1
                    counts[name] = index
                else:
                    index = 0
                current = (name, index)
                self.headers.setdefault((name, index), number)
                continue
            k = self._key.match(line)
            if k:
                key = k.group(1).strip("\"'")
                where = (current[0], current[1], key)
                if where in self.keys:
                    self.duplicates.append((where, self.keys[where], number))
                self.keys.setdefault(where, number)
                for quote in ('"""', "'''"):
                    if line.count(quote) % 2 == 1:
                        in_multiline = quote

    def header(self, section: str, index: int = 0) -> int | None:
        return self.headers.get((section, index))

    def key(self, section: str | None, index: int, name: str) -> int | None:
        return self.keys.get((section, index, name))


def duplicate_key_problems(path: object, text: str, array_sections: Collection[str]) -> list[str]:
    """`config.toml:7: [serbero] log_level: duplicate key (first set on line 5)`, one per repeat.

    tomlkit refuses a key set twice in one table without saying where; this finds the lines.
    """
    problems = []
    for (section, _index, key), first, repeat in KeyLines(text).duplicates:
        label = (
            ""
            if section is None
            else (f"[[{section}]] " if section in array_sections else f"[{section}] ")
        )
        problems.append(f"{path}:{repeat}: {label}{key}: duplicate key (first set on line {first})")
    return problems
