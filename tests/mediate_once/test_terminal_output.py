"""What mediate-once prints after real work: its table of counts on a terminal, the one summary
line into a pipe. `serbero` runs as a subprocess, on a pseudo-terminal
or with stdout on a pipe, against the simulated node, parties and model."""

from __future__ import annotations

import re

from tests.helpers import run_serbero, run_serbero_tty
from tests.mediate_once.conftest import API_ENV, ask
from tests.ops.test_phase_output import summary


def row(table: str, key: str) -> str:
    """The value beside `key` in a two-column table drawn by rich."""
    match = re.search(rf"^[│┃|]\s*{re.escape(key)}\s*[│┃|]\s*(\S+)\s*[│┃|]$", table, re.M)
    assert match, f"no row {key!r} in\n{table}"
    return match.group(1)


def test_a_session_opened_on_a_terminal_is_a_table_and_an_escalation_in_a_pipe_is_one_line(harness):
    h = harness()
    h.open()
    h.llm.push(ask())
    code, table, err = run_serbero_tty(h.config_path, "mediate-once", env=API_ENV)
    assert code == 0, err
    assert table.lstrip().startswith("mediate-once") and "mediate-once: " not in table
    assert (
        row(table, "starts_attempted"),
        row(table, "sessions_opened"),
        row(table, "take_failures"),
    ) == ("1", "1", "0")
    assert (row(table, "provider_healthy"), row(table, "solver_auth_status")) == (
        "True",
        "authorized",
    )
    # Nobody answers for a day: the next run escalates the session (party_unresponsive), which
    # leaves no live session.
    h.execute("UPDATE mediation_sessions SET started_at=started_at-100000")
    proc = run_serbero(h.config_path, "mediate-once", env=API_ENV)
    assert proc.returncode == 0, proc.stderr
    fields = summary(proc.stdout, "mediate-once")
    assert (fields["sessions"], fields["opened"], fields["escalations"], fields["exit"]) == (
        "0",
        "0",
        "1",
        "0",
    )
    assert fields["solver_auth"] == "authorized" and "│" not in proc.stdout
