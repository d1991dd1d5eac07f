"""Text from outside is data in every audit rendering: rich markup stays literal (no MarkupError),
terminal escapes and bidi controls show as U+FFFD, CSV cells never start a formula.

The hostile rows are written through the store, the way the phases write them; ids too, because
a store row is what a phase's parser let through at some point (or an older Serbero did).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import open_db
from serbero_cli.store.mediation import insert_event
from tests.helpers import run_serbero

MARKUP = "[bold]loud[/x][/]"
ESCAPE = "\x1b[2J\x1b]8;;http://evil.example\x07link\x1b[0m"
BIDI = "\u202etxt.exe\u2066"
FORMULA = '=HYPERLINK("http://evil.example","click")'
HOSTILE_ID = f"dead{MARKUP}beef-{ESCAPE}"
SESSION = "0bad5e55-0000-4000-8000-000000000000"
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours, when --color is on


def plant_hostile_rows(db: Path) -> None:
    now = int(time.time())
    with open_db(db) as store:
        with store.immediate() as conn:
            disputes_store.insert_dispute(
                conn,
                dispute_id=HOSTILE_ID,
                event_id="e" * 64,
                mostro_pubkey="f" * 64,
                initiator_role=f"buyer{BIDI}",
                dispute_status=FORMULA,
                event_timestamp=now - 100,
                now=now,
                lifecycle_state="notified",
                assigned_solver=None,
            )
            disputes_store.move_dispute(
                conn,
                HOSTILE_ID,
                "notified",
                "taken",
                now,
                f"by {MARKUP}",
                assigned_solver=f"@solver{ESCAPE}",
            )
            outbox.queue(
                conn,
                HOSTILE_ID,
                f"type{MARKUP}",
                [outbox.Delivery("ab" * 32, "nip17", f"body {ESCAPE}")],
                now - 50,
            )
            conn.execute(
                "INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, "
                "policy_hash, current_classification, started_at, last_transition_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    SESSION,
                    HOSTILE_ID,
                    "classified",
                    f"bundle{MARKUP}",
                    "-1+2",
                    f"+class{BIDI}",
                    now - 40,
                    now - 40,
                ),
            )
            conn.execute(
                "INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, "
                "inner_event_id, inner_event_created_at, content, persisted_at) "
                "VALUES (?, 'inbound', 'buyer', 'b1', 'x1', ?, ?, ?)",
                (
                    SESSION,
                    now - 30,
                    f"{FORMULA}\nsecond line {MARKUP} {ESCAPE} {BIDI}\ttab",
                    now - 30,
                ),
            )
            insert_event(
                conn,
                "session_opened",
                {"note": f"{MARKUP}{ESCAPE}", "dispute_id": HOSTILE_ID},
                now=now - 20,
                session_id=SESSION,
            )
        (row,) = [
            r for r in outbox.due(store, now=now, max_attempts=5) if r.dispute_id == HOSTILE_ID
        ]
        with store.immediate() as conn:
            outbox.claim(conn, row, now - 10, None, None)
            outbox.mark_failed(conn, row.id, f"relay said {MARKUP} {ESCAPE} {BIDI} @{FORMULA}")


@pytest.fixture
def hostile(audit_db):
    config, db = audit_db
    plant_hostile_rows(db)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        from serbero_cli.cli.app import app

        result = runner.invoke(
            app,
            ["--config", str(config), "audit", *args],
            env={"COLUMNS": "100"},
            catch_exceptions=False,
        )
        assert result.exit_code == code, result.stderr
        return result.stdout

    return invoke


VIEWS = [
    [],
    ["disputes"],
    ["dispute", "dead"],
    ["notifications"],
    ["sessions"],
    ["transcript", SESSION],
    ["events"],
    ["events", "--kind", "session_opened", "--utc"],
]


@pytest.mark.parametrize("args", VIEWS, ids=[" ".join(a) or "dashboard" for a in VIEWS])
@pytest.mark.parametrize("colour", ["--no-color", "--color"])
def test_hostile_text_is_shown_inert_in_every_view(hostile, args, colour):
    out = hostile(*args, colour)
    visible = SGR.sub("", out)
    assert CONTROLS.search(visible.replace("\n", "")) is None, repr(out)
    if args and args[0] in ("dispute", "notifications", "transcript"):
        assert "[/x]" in visible and "\ufffd" in visible


def test_the_dispute_view_through_the_real_command_prints_markup_literally(audit_db):
    config, db = audit_db
    plant_hostile_rows(db)
    proc = run_serbero(config, "audit", "dispute", "dead", env={"COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr
    assert "dispute deadbeef" not in proc.stdout  # the tags were not applied and eaten
    assert (
        f"dead{MARKUP}beef-\ufffd[2J\ufffd]8;;http://evil.example\ufffdlink\ufffd[0m" in proc.stdout
    )
    assert CONTROLS.search(proc.stdout.replace("\n", "")) is None


@pytest.mark.parametrize(
    "args",
    [
        ["disputes"],
        ["notifications"],
        ["transcript", SESSION],
        ["sessions"],
        ["dispute", "dead"],
        ["events"],
    ],
)
def test_csv_cells_never_start_a_formula_and_hold_no_controls(hostile, args):
    table = list(csv.reader(io.StringIO(hostile(*args, "--csv"))))
    header, rows = table[0], table[1:]
    cells = [cell for row in rows for cell in row]
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert all(CONTROLS.search(c.replace("\n", "")) is None for c in cells)
    doc = json.loads(hostile(*args, "--json"))
    by_column = [dict(zip(header, row, strict=True)) for row in rows]
    if args == ["disputes"]:
        mine = next(r for r in by_column if r["dispute_id"].startswith("dead"))
        assert mine["dispute_status"] == "'" + FORMULA
        assert re.fullmatch(r"\d+", mine["event_timestamp"])  # numbers are written as they are
        assert FORMULA in [
            r["dispute_status"] for r in doc["rows"]
        ]  # JSON keeps the value as stored
    if args[0] == "transcript":
        (message,) = by_column
        assert message["content"].startswith(
            "'" + FORMULA + "\nsecond line"
        )  # still one multi-line cell
    if args == ["sessions"]:
        session = next(r for r in by_column if r["session_id"] == SESSION)
        assert session["policy_hash"] == "'-1+2" and session["current_classification"].startswith(
            "'+class"
        )


def test_a_negative_number_is_not_mistaken_for_a_formula():
    from serbero_cli.audit.export import cell

    assert (
        cell(-5) == "-5" and cell(-0.5) == "-0.5" and cell("-5") == "'-5" and cell(True) == "true"
    )
    assert cell({"k": "=1"}) == '{"k":"=1"}'
