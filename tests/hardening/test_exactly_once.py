"""Exactly-once delivery: every message is signed and stored before its first publish, and every
retry republishes the identical event, so a run killed at any instant never shows anyone a second
copy and never loses a message.

A backlog of 40 disputes × 3 solvers × 2 envelopes goes out through `serbero listen` runs that are
killed (SIGKILL) or stopped (SIGTERM) at varied moments; then one normal run must finish the job.
Where the kills land varies with the machine's speed, but the assertions hold for every kill
point, so the outcome never depends on timing luck.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

from serbero_cli.simulate.solver import SimSolver
from tests.helpers import ROOT, run_json, wait_for

DISPUTES = 40
BOTH = ["mostro", "nip17"]


def sending_or_sent(db_path) -> int:
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(db_path, timeout=5)
    try:
        return conn.execute(
            "SELECT COUNT(*) FROM notifications WHERE status IN ('sending','sent')"
        ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def start_listen(cfg):
    return subprocess.Popen(
        [sys.executable, "-m", "serbero_cli", "--config", str(cfg), "listen", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_runs_killed_at_varied_points_never_duplicate_or_lose_a_message(
    make_config, relay, mostro, db_path, serbero_keys
):
    solvers = [SimSolver(relay.url, name=f"s{i}") for i in range(3)]
    try:
        cfg = make_config(envelopes=BOTH, solver_list=[(s.pubkey, "read") for s in solvers])
        disputes = {mostro.open_dispute(initiator="buyer") for _ in range(DISPUTES)}
        chooser = random.Random(12)
        progress = 0
        for attempt in range(6):
            proc = start_listen(cfg)
            # Kill once this run has moved the outbox on (or at once, if the run is already past it).
            target = progress + chooser.randint(1, 40)
            try:
                wait_for(
                    lambda t=target, p=proc: sending_or_sent(db_path) >= t or p.poll() is not None,
                    timeout=60,
                    interval=0.01,
                )
            finally:
                sig = signal.SIGKILL if attempt % 2 == 0 else signal.SIGTERM
                proc.send_signal(sig)
                _, err = proc.communicate(timeout=60)
            if sig == signal.SIGTERM and proc.returncode not in (None, 0):
                raise AssertionError(
                    f"SIGTERM must end a run with exit 0, got {proc.returncode}\n{err}"
                )
            progress = sending_or_sent(db_path)
        code, doc, err = run_json(cfg, "listen")
        assert code == 0, err
        rows = _rows(
            db_path,
            "SELECT status, envelope, event_id, solver_pubkey, dispute_id FROM notifications",
        )
        assert len(rows) == DISPUTES * 3 * 2
        assert {r["status"] for r in rows} == {"sent"}
        assert len({r["event_id"] for r in rows}) == len(
            rows
        )  # one distinct event per message per envelope
        serbero = serbero_keys.public_key().to_hex()
        for solver in solvers:
            dms = solver.inbox(sender=serbero)
            assert len(dms) == DISPUTES and len({d.wrap_id for d in dms}) == DISPUTES
            assert {d.key_lines()["dispute_id"] for d in dms} == disputes
            seen = solver.mostrix(serbero)
            assert len(seen) == DISPUTES and {m.dispute_id for m in seen} == disputes
    finally:
        for solver in solvers:
            solver.close()


def test_sigterm_stops_claiming_records_what_was_in_flight_and_exits_zero(
    make_config, relay, mostro, db_path
):
    solvers = [SimSolver(relay.url, name=f"s{i}") for i in range(3)]
    try:
        cfg = make_config(envelopes=BOTH, solver_list=[(s.pubkey, "read") for s in solvers])
        for _ in range(DISPUTES):
            mostro.open_dispute(initiator="seller")
        proc = start_listen(cfg)
        try:
            wait_for(
                lambda: sending_or_sent(db_path) >= 1 or proc.poll() is not None,
                timeout=60,
                interval=0.01,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        if "stopped by SIGTERM" in err:  # the run was still sending when the signal came
            assert '"stopped_by": "SIGTERM"' in out
        code, doc, err = run_json(cfg, "listen")
        assert code == 0, err
        statuses = {r["status"] for r in _rows(db_path, "SELECT status FROM notifications")}
        assert statuses == {"sent"}
    finally:
        for solver in solvers:
            solver.close()


def test_a_republished_event_is_the_stored_one(make_config, mostro, solvers, db_path, serbero_keys):
    """A row left `sending` with its event (a run that died mid-send) goes out again at once, as
    exactly that event: the solver's inbox still holds one message."""
    cfg = make_config(envelopes=BOTH)
    mostro.open_dispute(initiator="buyer")
    assert run_json(cfg, "listen")[0] == 0
    before = {
        r["id"]: r["event_id"] for r in _rows(db_path, "SELECT id, event_id FROM notifications")
    }
    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE notifications SET status='sending', claimed_at=?, sent_at=NULL", (int(time.time()),)
    )
    conn.commit()
    conn.close()
    code, doc, err = run_json(cfg, "listen")
    assert code == 0 and doc["notifications"]["sent"] == len(before), err
    after = {
        r["id"]: r["event_id"] for r in _rows(db_path, "SELECT id, event_id FROM notifications")
    }
    assert after == before
    serbero = serbero_keys.public_key().to_hex()
    for solver in solvers:
        assert len(solver.inbox(sender=serbero)) == 1 and len(solver.mostrix(serbero)) == 1


def _rows(db_path, sql):
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()
