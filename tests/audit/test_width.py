"""Every audit view at 80 and 120 columns: no word or id is broken across lines.

Each view is rendered three times from the same clock: at 80 and 120 columns, and at 1000 where
nothing needs to wrap. A word split across lines leaves fragments that are not words of the wide
rendering, so every word of a narrow rendering must be a word of the wide one, or a word cut short
with `…` (a long word in a free-text column, or the start of a long path). Columns may be dropped;
words may not be broken. The width is pinned through COLUMNS, never taken from the test's terminal.
"""

from __future__ import annotations

import re
import time
import types

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from tests.audit.conftest import SESSION, A, plant
from tests.audit.test_views import PROBLEM_ROWS, VIEW_COMMANDS, args_for

BOX = "│╭╮╰╯─┬┴┼├┤"
SPLIT = re.compile(f"[\\s{BOX}]+")
UTC_VIEWS = [
    ("dispute", ["dispute", A, "--utc"]),
    ("transcript", ["transcript", SESSION, "--utc"]),
    ("events", ["events", "--utc"]),
]
LONG_URL = "https://example.org/a/very/long/path/that/does/not/fit/in/any/column/at/eighty/characters/at/all"


@pytest.fixture
def render_at(audit_db, monkeypatch):
    """render_at(width, *args) -> stdout of `serbero audit ARGS` with COLUMNS=width, one fixed clock."""
    config, _ = audit_db
    fixed = int(time.time())
    monkeypatch.setattr("serbero_cli.cli.audit.time", types.SimpleNamespace(time=lambda: fixed))
    runner = CliRunner()

    def invoke(width: int, *args: str) -> str:
        from serbero_cli.cli.app import app

        result = runner.invoke(
            app,
            ["--config", str(config), "audit", *args, "--no-color"],
            env={"COLUMNS": str(width)},
            catch_exceptions=False,
        )
        assert result.exit_code in (0, 4), result.stderr
        return result.stdout

    return invoke


def words(text: str) -> list[str]:
    return [w for w in SPLIT.split(text) if w]


def broken_words(narrow: str, wide: str) -> list[str]:
    """Words of `narrow` that are neither words of `wide` nor a word of it cut short with `…`."""
    whole = set(words(wide))
    bad = []
    for word in words(narrow):
        if word in whole:
            continue
        core = word.strip("…")
        if "…" not in word or not core or not any(core in w for w in whole):
            bad.append(word)
    return bad


def plant_long_words(db) -> None:
    plant(
        db,
        "INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, "
        "inner_event_created_at, content, persisted_at) VALUES (?, 'inbound', 'buyer', 'b1', 'long-words', "
        "?, ?, 1)",
        (
            SESSION,
            int(time.time()) - 100,
            f"proof is at {LONG_URL} and the reference is {'9' * 70} thanks",
        ),
    )
    plant(
        db,
        "UPDATE notifications SET error_message = ? WHERE status = 'failed'",
        (f"relay said: rate-limited by {LONG_URL}",),
    )


@pytest.mark.parametrize("borders", [False, True], ids=["plain", "borders"])
@pytest.mark.parametrize(
    "view,args",
    VIEW_COMMANDS + UTC_VIEWS,
    ids=[v for v, _ in VIEW_COMMANDS] + [f"{v}-utc" for v, _ in UTC_VIEWS],
)
def test_no_word_is_broken_at_80_or_120_columns(
    render_at, audit, audit_db, story, view, args, borders
):
    _, db = audit_db
    plant_long_words(db)
    if view in PROBLEM_ROWS:
        plant(db, *PROBLEM_ROWS[view])
    args = [*args_for(audit, story, args), "--borders" if borders else "--no-borders"]
    wide = render_at(1000, *args)
    assert wide.strip()
    for width in (80, 120):
        narrow = render_at(width, *args)
        assert max(cell_len(line) for line in narrow.splitlines()) <= width
        assert broken_words(narrow, wide) == [], f"at {width} columns:\n{narrow}"


def test_dropped_columns_go_before_words_break(render_at):
    wide = render_at(1000, "notifications")
    narrow = render_at(80, "notifications")
    header = next(line for line in narrow.splitlines() if line.startswith("id "))
    assert words(header) == ["id", "age", "dispute", "type", "status", "error"]
    assert "relays" in wide and "solver" in wide and "relays" not in narrow
    assert "failed_retrying" in narrow and "re-notification" in narrow


def test_count_tables_are_vertical_and_timelines_take_utc(render_at):
    dashboard = render_at(80)
    assert re.search(r"^notified\s+1\b", dashboard, re.M) and re.search(
        r"^escalated\s+1\b", dashboard, re.M
    )
    timeline = render_at(80, "dispute", A, "--utc")
    assert "time (UTC)" in timeline and re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\b", timeline)
    assert "time (UTC)" not in render_at(80, "dispute", A)


def test_the_word_check_catches_a_broken_word():
    assert broken_words("abcd1234-00\n00-4000 ok", "abcd1234-0000-4000 ok") == [
        "abcd1234-00",
        "00-4000",
    ]
    assert broken_words("ws://127.0.0… ok", "ws://127.0.0.1:1: ok") == []
