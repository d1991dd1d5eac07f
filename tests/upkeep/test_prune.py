"""`serbero prune`: disputes resolved long ago go with everything that hangs off them; recent and open
ones stay; foreign keys hold. The history is made by real runs (listen, mediate-once, dispatch-once
against a simulated node, parties and model); "long ago" comes from running listen with its clock
set back when it records the resolution."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from serbero_cli.config import load_config
from serbero_cli.errors import LockHeld
from serbero_cli.listen.run import run_listen
from serbero_cli.runlock import RunLock
from serbero_cli.store.mediation import DISPUTE_EXPR
from serbero_cli.store.prune import TABLES
from serbero_cli.upkeep.prune import parse_age, run_prune
from tests.helpers import db_checksum, db_rows, invoke, invoke_json, run_json, run_serbero, wait_for
from tests.mediate_once.conftest import ask, summarize, summary

DAY = 86400
SHARED_RATIONALE = "Both accounts need checking against the bank statement before anyone decides."
# Every row of a dispute, table by table (sessions' children through the session).
OWNED_BY = {
    "disputes": "dispute_id = :d",
    "dispute_state_transitions": "dispute_id = :d",
    "notifications": "dispute_id = :d",
    "mediation_sessions": "dispute_id = :d",
    "mediation_messages": "session_id IN (SELECT session_id FROM mediation_sessions WHERE dispute_id = :d)",
    "mediation_summaries": "dispute_id = :d",
    "mediation_events": (
        "session_id IN (SELECT session_id FROM mediation_sessions WHERE dispute_id = :d) "
        f"OR (session_id IS NULL AND ({DISPUTE_EXPR}) = :d)"
    ),
    "escalation_dispatches": "dispute_id = :d",
}


def table_counts(db_path: Path) -> dict[str, int]:
    return {t: db_rows(db_path, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in TABLES}


def owned_rows(db_path: Path, dispute_id: str) -> dict[str, int]:
    return {
        t: db_rows(db_path, f"SELECT COUNT(*) AS n FROM {t} WHERE {w}", {"d": dispute_id})[0]["n"]
        for t, w in OWNED_BY.items()
    }


def foreign_key_problems(db_path: Path) -> list[tuple]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()


def listen_at(config_path: Path, when: int) -> None:
    """One listen run whose clock reads `when`: the transitions it records carry that time."""
    result = run_listen(load_config(config_path, env={}), clock=lambda: when)
    assert result.exit_code == 0


def reply_both(h, dispute_id: str) -> None:
    now = int(time.time())
    h.node.party(dispute_id, "buyer").reply("I paid, reference 4411.", created_at=now - 30)
    h.node.party(dispute_id, "seller").reply("Nothing has arrived.", created_at=now - 20)


@pytest.fixture
def history(harness):
    """Five disputes, built by real runs:

    * old_escalated: mediated, escalated, handed off by dispatch-once, resolved 60 days ago;
    * old_summarized: mediated to a summary delivered to the solvers, resolved 60 days ago;
    * old_plain: notified only, resolved 60 days ago;
    * recent: mediated (its opening shares a rationale row with old_escalated's), resolved now;
    * open_one: notified, never resolved.

    The node's revisions carry real times and listen rejects events from its future, so the old
    disputes are resolved by a listen run at the real time and "now" lies 60 days later: the
    recent one is resolved by a listen run whose clock reads that day, and prune runs at it too.
    """
    h = harness(escalation={"enabled": True})
    now = int(time.time())
    ids = {
        "old_escalated": h.node.open_dispute(created_at=now - 300),
        "recent": h.node.open_dispute(created_at=now - 200),
    }
    h.listen()
    h.llm.push(ask(rationale=SHARED_RATIONALE), ask(rationale=SHARED_RATIONALE))
    assert h.mediate().sessions_opened == 2
    reply_both(h, ids["old_escalated"])
    h.llm.push(ask(flags=["conflicting_claims"]))
    assert h.mediate().escalations == {"conflicting_claims": 1}
    code, doc, err = invoke_json(h.config_path, "dispatch-once")
    assert code == 0 and doc["counts"]["dispatched"] == 1, err

    ids["old_summarized"] = h.node.open_dispute(created_at=now - 100)
    h.listen()
    h.llm.push(ask())
    assert h.mediate().sessions_opened == 1
    reply_both(h, ids["old_summarized"])
    h.llm.push(summarize(), summary())
    assert h.mediate().summaries_generated == 1

    ids["old_plain"] = h.node.open_dispute(created_at=now - 50)
    ids["open_one"] = h.node.open_dispute(created_at=now - 40)
    h.listen()
    for name in ("old_escalated", "old_summarized", "old_plain"):
        h.node.auto_close(ids[name])
    h.listen()
    h.node.auto_close(ids["recent"])
    listen_at(h.config_path, now + 60 * DAY)
    states = {
        name: h.rows("SELECT lifecycle_state FROM disputes WHERE dispute_id=?", (i,))[0][
            "lifecycle_state"
        ]
        for name, i in ids.items()
    }
    assert states == {
        "old_escalated": "resolved",
        "recent": "resolved",
        "old_summarized": "resolved",
        "old_plain": "resolved",
        "open_one": "notified",
    }
    return h, ids


def prune_at(h, age: str, *, dry_run: bool = False) -> dict:
    """`serbero prune` as it runs 60 days from now (the history's "today")."""
    result = run_prune(
        load_config(h.config_path, env={}),
        older_than_seconds=parse_age(age),
        dry_run=dry_run,
        now=int(time.time()) + 60 * DAY,
    )
    return result.to_dict()


def test_prune_deletes_old_resolved_disputes_with_all_their_rows_and_keeps_the_rest(history):
    h, ids = history
    old = [ids["old_escalated"], ids["old_summarized"], ids["old_plain"]]
    kept = {name: owned_rows(h.db_path, ids[name]) for name in ("recent", "open_one")}
    doomed = {d: owned_rows(h.db_path, d) for d in old}
    # Between them the old disputes have rows in every table.
    assert [t for t in OWNED_BY if not doomed[ids["old_escalated"]][t]] == ["mediation_summaries"]
    assert doomed[ids["old_summarized"]]["mediation_summaries"] == 1
    assert (
        db_rows(
            h.db_path,
            f"SELECT COUNT(*) AS n FROM mediation_events WHERE session_id IS NULL "
            f"AND ({DISPUTE_EXPR}) = ?",
            (ids["old_escalated"],),
        )[0]["n"]
        > 0
    )
    before = table_counts(h.db_path)
    checksum = db_checksum(h.db_path)

    dry = prune_at(h, "30d", dry_run=True)
    assert dry["dry_run"] is True and db_checksum(h.db_path) == checksum
    done = prune_at(h, "30d")
    assert done["dry_run"] is False and done["exit_code"] == 0

    after = table_counts(h.db_path)
    assert done["counts"] == dry["counts"] == {t: before[t] - after[t] for t in TABLES}
    for table in OWNED_BY:
        assert done["counts"][table] == sum(doomed[d][table] for d in old), table
    assert done["counts"]["reasoning_rationales"] > 0
    assert all(not any(owned_rows(h.db_path, d).values()) for d in old)
    assert {name: owned_rows(h.db_path, ids[name]) for name in kept} == kept
    assert foreign_key_problems(h.db_path) == []
    assert db_rows(h.db_path, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]


def test_prune_keeps_a_rationale_another_dispute_still_refers_to(history):
    h, ids = history
    (shared,) = h.rows(
        "SELECT rationale_id FROM reasoning_rationales WHERE rationale_text=?", (SHARED_RATIONALE,)
    )
    recent_session = h.rows(
        "SELECT session_id FROM mediation_sessions WHERE dispute_id=?", (ids["recent"],)
    )[0]

    def recent_users() -> int:
        return h.rows(
            f"SELECT COUNT(*) AS n FROM mediation_events WHERE rationale_id = :r AND ({OWNED_BY['mediation_events']})",
            {"r": shared["rationale_id"], "d": ids["recent"]},
        )[0]["n"]

    users = recent_users()
    assert users >= 1  # the recent dispute's opening refers to the same rationale row
    assert prune_at(h, "30d")["exit_code"] == 0
    (row,) = h.rows(
        "SELECT session_id FROM reasoning_rationales WHERE rationale_id=?",
        (shared["rationale_id"],),
    )
    assert row["session_id"] in (None, recent_session["session_id"])  # never a session that is gone
    assert recent_users() == users and foreign_key_problems(h.db_path) == []
    orphans = h.rows(
        "SELECT r.rationale_id FROM reasoning_rationales r WHERE NOT EXISTS "
        "(SELECT 1 FROM mediation_events e WHERE e.rationale_id = r.rationale_id) AND NOT EXISTS "
        "(SELECT 1 FROM mediation_summaries s WHERE s.rationale_id = r.rationale_id) AND "
        "(r.session_id IS NULL OR r.session_id NOT IN (SELECT session_id FROM mediation_sessions))"
    )
    assert orphans == []


def test_a_second_prune_finds_nothing_and_a_longer_age_keeps_everything(history):
    h, _ = history
    before = table_counts(h.db_path)
    doc = prune_at(h, "90d")
    assert set(doc["counts"].values()) == {0} and table_counts(h.db_path) == before
    assert sum(prune_at(h, "30d")["counts"].values()) > 0
    assert set(prune_at(h, "30d")["counts"].values()) == {0}


@pytest.fixture
def resolved_history(make_config, mostro, db_path):
    """Twelve disputes opened 21 days ago and resolved 20 days ago, each step recorded by a listen run
    whose clock read that day; then two disputes opened today and still open."""
    cfg = make_config()
    now = int(time.time())
    old = [mostro.open_dispute(created_at=now - 21 * DAY + i) for i in range(12)]
    listen_at(cfg, now - 21 * DAY + 60)
    for i, dispute_id in enumerate(old):
        mostro.set_status(dispute_id, "settled", created_at=now - 20 * DAY + i)
    listen_at(cfg, now - 20 * DAY + 60)
    opened = [mostro.open_dispute(created_at=now - 100 + i) for i in range(2)]
    assert invoke(cfg, "listen").returncode == 0
    return cfg, old, opened


@pytest.mark.parametrize("age", ["6d", "167h", "10079m", "0d", "180", "soon", "-10d"])
def test_an_age_under_seven_days_or_not_a_duration_is_refused_with_exit_2(
    resolved_history, db_path, age
):
    cfg, _, _ = resolved_history
    checksum = db_checksum(db_path)
    for extra in ([], ["--dry-run"]):
        proc = invoke(cfg, "prune", f"--resolved-before={age}", *extra)
        assert proc.returncode == 2 and proc.stdout == "" and "--resolved-before" in proc.stderr, (
            proc.stderr
        )
    assert db_checksum(db_path) == checksum


def test_exactly_seven_days_is_accepted(resolved_history):
    cfg, old, _ = resolved_history
    code, doc, _ = invoke_json(cfg, "prune", "--resolved-before", "7d", "--dry-run")
    assert code == 0 and doc["counts"]["disputes"] == len(old)


def test_the_summary_line_lists_every_table(resolved_history):
    cfg, old, _ = resolved_history
    proc = run_serbero(cfg, "prune", "--resolved-before", "14d")
    assert proc.returncode == 0
    (line,) = proc.stdout.splitlines()
    fields = dict(word.split("=", 1) for word in line.removeprefix("prune: ").split())
    assert set(TABLES) <= set(fields) and fields["disputes"] == str(len(old))
    # detected as new, notified, resolved; one DM to each of the two solvers
    assert fields["dispute_state_transitions"] == str(3 * len(old)) and fields[
        "notifications"
    ] == str(2 * len(old))


def test_each_batch_of_disputes_is_its_own_transaction(resolved_history, db_path):
    cfg, old, opened = resolved_history
    result = run_prune(
        load_config(cfg, env={}),
        older_than_seconds=14 * DAY,
        dry_run=False,
        now=int(time.time()),
        batch_size=5,
    )
    assert (result.batches, result.counts["disputes"]) == (3, len(old))
    assert [
        r["dispute_id"]
        for r in db_rows(db_path, "SELECT dispute_id FROM disputes ORDER BY dispute_id")
    ] == sorted(opened)
    assert foreign_key_problems(db_path) == []


def test_prune_waits_for_a_running_phase_then_proceeds(resolved_history, db_path):
    cfg, old, _ = resolved_history
    lock = RunLock(db_path, "mediate", "mediate-once")
    lock.__enter__()
    released = threading.Timer(1.0, lock.__exit__, args=(None, None, None))
    released.start()
    try:
        started = time.monotonic()
        code, doc, err = run_json(cfg, "prune", "--resolved-before", "14d", "--wait", "30")
        assert code == 0 and doc["counts"]["disputes"] == len(old), err
        assert time.monotonic() - started >= 0.9
    finally:
        released.join()


@pytest.mark.parametrize("name", ["mediate", "dispatch"])
def test_prune_exits_75_while_a_phase_keeps_its_lock_and_deletes_nothing(
    resolved_history, db_path, name
):
    cfg, _, _ = resolved_history
    checksum = db_checksum(db_path)
    with RunLock(db_path, name, "test"):
        proc = run_serbero(cfg, "prune", "--resolved-before", "14d", "--wait", "0.5")
        assert proc.returncode == 75 and "lock held" in proc.stderr, proc.stderr
        code, doc, _ = run_json(
            cfg, "prune", "--resolved-before", "14d", "--dry-run"
        )  # a dry run takes no lock
        assert code == 0 and doc["counts"]["disputes"] == 12
        with pytest.raises(LockHeld):
            run_prune(
                load_config(cfg, env={}),
                older_than_seconds=14 * DAY,
                dry_run=False,
                now=int(time.time()),
                lock_wait_seconds=0,
            )
    assert db_checksum(db_path) == checksum


def test_prune_runs_while_listen_follow_keeps_writing(resolved_history, db_path, mostro):
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers import ROOT

    cfg, old, opened = resolved_history
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    follow = subprocess.Popen(
        [sys.executable, "-m", "serbero_cli", "--config", str(cfg), "listen", "--follow"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = ""
        while "following dispute events" not in line:
            line = follow.stderr.readline()
            assert line, "listen --follow ended early"
        fresh = [mostro.open_dispute() for _ in range(3)]
        code, doc, err = run_json(cfg, "prune", "--resolved-before", "14d")
        assert code == 0 and doc["counts"]["disputes"] == len(old), err
        fresh += [mostro.open_dispute() for _ in range(3)]
        wait_for(
            lambda: (
                db_rows(db_path, "SELECT COUNT(*) AS n FROM disputes")[0]["n"] == len(opened) + 6
            ),
            15,
        )
    finally:
        follow.send_signal(signal.SIGTERM)
        follow.wait(timeout=30)
    assert follow.returncode == 0
    assert foreign_key_problems(db_path) == []
    assert doc["counts"]["notifications"] == 2 * len(old)


def test_prune_without_a_database_is_exit_2_and_creates_none(make_config, db_path):
    cfg = make_config()
    proc = run_serbero(cfg, "prune", "--resolved-before", "30d")
    assert proc.returncode == 2 and "database not found" in proc.stderr and not db_path.exists()
