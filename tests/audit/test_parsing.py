"""What operators type: `--since` durations, id prefixes, option mistakes, output switches."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serbero_cli.errors import UsageError
from serbero_cli.typed_input import UNIT_SECONDS, parse_duration, pick_unique, since_cutoff
from tests.audit.conftest import A, B, C, plant


@pytest.mark.parametrize(
    "text,seconds",
    [
        pytest.param("30m", 1800, id="minutes"),
        pytest.param("2h", 7200, id="hours"),
        pytest.param("7d", 604800, id="days"),
        pytest.param("45s", 45, id="seconds"),
        pytest.param("1w", 604800, id="weeks"),
        pytest.param(" 2H ", 7200, id="case-and-spaces"),
    ],
)
def test_parse_duration_accepts_a_number_and_a_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "0m", "5", "m", "1.5h", "-1h", "2x", "1h30m", "h2", "10 minutes"]
)
def test_parse_duration_rejects_anything_else_with_a_hint(text):
    with pytest.raises(UsageError, match="use a number and a unit, e.g. 30m, 2h, 7d"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=999_999_999), st.sampled_from(sorted(UNIT_SECONDS)))
def test_parse_duration_round_trips(n, unit):
    assert parse_duration(f"{n}{unit}") == n * UNIT_SECONDS[unit]


@given(st.text(max_size=20))
def test_parse_duration_either_parses_or_raises_usage_error(text):
    try:
        assert parse_duration(text) > 0
    except UsageError:
        pass


def test_since_cutoff_counts_back_from_now():
    assert since_cutoff(None, 1000) is None
    assert since_cutoff("10m", 1000) == 400


@pytest.mark.parametrize(
    "typed,matches,expected",
    [
        pytest.param("ab", ["ab12"], "ab12", id="unique-prefix"),
        pytest.param("ab12", ["ab12", "ab123"], "ab12", id="exact-wins-over-longer"),
    ],
)
def test_pick_unique_resolves(typed, matches, expected):
    assert pick_unique("dispute", typed, matches) == expected


@pytest.mark.parametrize(
    "typed,matches,message",
    [
        pytest.param("zz", [], "no dispute id starts with 'zz'", id="none"),
        pytest.param(
            "ab",
            ["ab1", "ab2"],
            "dispute id prefix 'ab' is ambiguous: it matches ab1, ab2; type more",
            id="ambiguous",
        ),
        pytest.param(
            "a", [f"a{i}" for i in range(6)], "a0, a1, a2, a3, a4, …", id="ambiguous-many"
        ),
        pytest.param("", [], "give a dispute id", id="empty"),
    ],
)
def test_pick_unique_explains_what_went_wrong(typed, matches, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        pick_unique("dispute", typed, matches)


def test_ambiguous_prefix_on_the_command_line_names_the_candidates(audit):
    result = audit("dispute", "abcd1234")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: dispute id prefix 'abcd1234' is ambiguous: it matches {A}, {B}; "
        "type more characters"
    )
    assert json.loads(audit("dispute", "abcd1234", "--json").stdout)["exit_code"] == 2


@pytest.mark.parametrize("typed,expected", [(A[:-1] + "b", B), ("c0f", C), ("C0FFEE", C), (A, A)])
def test_unique_prefixes_resolve_on_every_id_option(audit, typed, expected):
    doc = json.loads(audit("dispute", typed, "--json").stdout)
    assert doc["dispute"]["dispute_id"] == expected
    assert (
        json.loads(audit("notifications", "--dispute", typed, "--json").stdout)["filters"][
            "dispute_id"
        ]
        == expected
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["disputes", "--since", "yesterday"], "--since: 'yesterday' is not a duration"),
        (["disputes", "--state", "open"], "--state: 'open' is not one of new, notified, taken"),
        (["notifications", "--status", "lost"], "--status: 'lost' is not one of pending, sending"),
        (["handoffs", "--state", "done"], "--state: 'done' is not one of pending"),
        (["disputes", "--json", "--csv"], "--json and --csv cannot be combined"),
        (["disputes", "--limit", "-1"], "--limit: use a number of rows from 1 to"),
        (["events", "--limit", "-5"], "--limit: use a number of rows from 1 to"),
        (["disputes", "--limit", str(2**70)], "--limit: use a number of rows from 1 to"),
        (
            ["notifications", "--type", "reminder"],
            "--type: 'reminder' is not one of initial, assignment, re-notification",
        ),
        (
            ["events", "--kind", "nonsense"],
            "--kind: 'nonsense' is not one of start_attempt_started",
        ),
        (["sessions", "--state", "open"], "--state: 'open' is not one of awaiting_response"),
        (
            ["dispatches", "--status", "lost"],
            "--status: 'lost' is not one of sending, dispatched, send_failed",
        ),
        (["notifications", "--type", "reminder", "--json"], "--type: 'reminder' is not one of"),
        (["transcript", "0000"], "no session id starts with '0000'"),
        (["dispatches", "--check", "--id", "x"], "--check and --id cannot be combined"),
    ],
)
def test_option_mistakes_exit_2_with_one_line(audit, args, message):
    result = audit(*args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    if "--json" in args:  # one JSON document whatever the exit code
        assert json.loads(result.stdout)["exit_code"] == 2
    else:
        assert result.stdout == ""


def test_common_options_work_before_the_sub_command(audit):
    doc = json.loads(audit("--json", "--limit", "1", "disputes").stdout)
    assert (
        doc["report"] == "audit.disputes/v1" and len(doc["rows"]) == 1 and doc["truncated"] is True
    )


def test_colour_and_borders_only_when_asked_off_a_terminal(audit):
    plain = audit("disputes").stdout
    assert "\x1b[" not in plain and "│" not in plain
    coloured = audit("disputes", "--color", "--borders").stdout
    assert "\x1b[" in coloured and "│" in coloured


def test_a_type_or_kind_found_in_the_database_is_accepted_though_not_known(audit, audit_db):
    _, db = audit_db
    plant(
        db,
        "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, attempts, created_at, body) "
        "VALUES (?, 'ab', 'observer_headline', 'sent', 1, 1, 'x')",
        (A,),
    )
    plant(
        db,
        "INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('future_kind', '{}', 1)",
    )
    rows = json.loads(audit("notifications", "--type", "observer_headline", "--json").stdout)[
        "rows"
    ]
    assert [r["notif_type"] for r in rows] == ["observer_headline"]
    rows = json.loads(audit("events", "--kind", "future_kind", "--json").stdout)["rows"]
    assert [r["kind"] for r in rows] == ["future_kind"]
