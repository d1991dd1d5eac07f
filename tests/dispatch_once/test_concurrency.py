"""dispatch-once runs at the same time never deliver a handoff twice: under one lock, and under different
locks where only the claims in the database keep them apart (docs/delivery.md#claim-send-finalize)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from serbero_cli.config import load_config
from serbero_cli.dispatch.run import run_dispatch_once
from tests.dispatch_once.conftest import handoff_dms
from tests.helpers import ROOT, run_json


def start_runs(config, count: int) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    cmd = [sys.executable, "-m", "serbero_cli", "--config", str(config), "dispatch-once"]
    return [
        subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        for _ in range(count)
    ]


def test_ten_dispatch_processes_in_two_waves_deliver_each_handoff_once(
    esc_config, seed, solvers, serbero_pub
):
    """Ten processes start at once, twice; new handoffs arrive between the waves. The lock lets one
    run at a time, and whichever it is sends each handoff once, the first wave's never again."""
    writer = solvers[1]
    cfg = esc_config()
    disputes: dict[int, str] = {}
    codes: list[int] = []
    for wave_size in (7, 6):
        for _ in range(wave_size):
            dispute = seed.dispute()
            disputes[seed.handoff(dispute)] = dispute
        procs = start_runs(cfg, 10)
        for proc in procs:
            _, stderr = proc.communicate(timeout=60)
            codes.append(proc.returncode)
            assert proc.returncode in (0, 75), stderr
    assert len(codes) == 20 and set(codes) <= {0, 75}
    rows = seed.dispatches()
    assert sorted(r["handoff_event_id"] for r in rows) == sorted(disputes)
    assert {r["status"] for r in rows} == {"dispatched"} and {r["attempts"] for r in rows} == {1}
    dms = handoff_dms(writer, serbero_pub)
    assert sorted(dm.content.split("\n")[3] for dm in dms) == sorted(
        f"Dispute: {d}" for d in disputes.values()
    )
    assert len(seed.audit("escalation_dispatched")) == len(disputes) == 13
    assert len(seed.rows("SELECT id FROM notifications")) == len(disputes)


def second_path(db_path: Path) -> Path:
    """The same database file under another name: a run that uses it takes another lock file, so
    only the claims in the database keep it from sending what the other run sends."""
    other = db_path.parent / "other" / "serbero.db"
    other.parent.mkdir()
    other.symlink_to(db_path)
    return other


def test_runs_under_different_locks_claim_each_handoff_once_and_the_solver_gets_one_copy(
    esc_config, seed, solvers, serbero_pub, db_path, make_config
):
    """Run A claims the first of two handoffs; before it sends, run B (same file, another lock) runs
    from start to end. B claims the second handoff and republishes A's claim of the first as its
    stored event; A then loses the second on the unique claim and sends only what it holds. Each
    handoff is recorded once and the solver holds one copy of each."""
    writer = solvers[1]
    cfg = esc_config()
    other_db = second_path(db_path)
    other_cfg = make_config(name="other.toml", sections={"escalation": {"enabled": True}})
    other_cfg.write_text(other_cfg.read_text().replace(str(db_path), str(other_db)))
    first, second = seed.dispute(), seed.dispute()
    first_handoff, second_handoff = seed.handoff(first), seed.handoff(second)
    rival: list[dict] = []

    def run_the_other_one(name: str, handoff_id: object) -> None:
        if name == "after_claim" and not rival:
            code, doc, err = run_json(other_cfg, "dispatch-once")
            assert code == 0, err
            rival.append(doc)

    result = run_dispatch_once(load_config(cfg), dry_run=False, checkpoint=run_the_other_one)
    assert result.exit_code == 0
    actions = {h["handoff_event_id"]: h["action"] for h in rival[0]["handoffs"]}
    assert actions == {first_handoff: "resend", second_handoff: "send"}
    ours = {h["handoff_event_id"]: h for h in result.to_dict()["handoffs"]}
    assert (ours[second_handoff]["action"], ours[second_handoff]["detail"]) == (
        "skip_in_flight",
        "claimed by another run",
    )
    assert ours[second_handoff]["deliveries"] == []
    assert ours[first_handoff]["detail"] == "finalize found the row moved on"
    rows = {r["handoff_event_id"]: r for r in seed.dispatches()}
    assert {h: (r["status"], r["attempts"]) for h, r in rows.items()} == {
        first_handoff: ("dispatched", 2),
        second_handoff: ("dispatched", 1),
    }
    dms = handoff_dms(writer, serbero_pub)
    assert sorted(dm.content.split("\n")[3] for dm in dms) == sorted(
        [f"Dispute: {first}", f"Dispute: {second}"]
    )


def test_two_runs_under_different_locks_at_once_send_each_handoff_once(
    esc_config, seed, solvers, serbero_pub, db_path, make_config
):
    """However the two runs interleave, the compare-and-set claim lets exactly one send each handoff."""
    writer = solvers[1]
    cfg = esc_config()
    other_db = second_path(db_path)
    other_cfg = make_config(name="other.toml", sections={"escalation": {"enabled": True}})
    other_cfg.write_text(other_cfg.read_text().replace(str(db_path), str(other_db)))
    disputes = {seed.handoff(d): d for d in (seed.dispute() for _ in range(6))}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "serbero_cli", "--config", str(c), "dispatch-once", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        for c in (cfg, other_cfg)
    ]
    docs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        docs.append(json.loads(out))
    assert sum(d["counts"]["dispatched"] for d in docs) == len(disputes)
    rows = seed.dispatches()
    assert sorted(r["handoff_event_id"] for r in rows) == sorted(disputes)
    assert {(r["status"], r["attempts"]) for r in rows} == {("dispatched", 1)}
    dms = handoff_dms(writer, serbero_pub)
    assert sorted(dm.content.split("\n")[3] for dm in dms) == sorted(
        f"Dispute: {d}" for d in disputes.values()
    )
