"""escalation.md §8.2 FX-4: ten dispatch-once processes at once never deliver a handoff twice."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.dispatch_once.conftest import handoff_dms
from tests.helpers import ROOT


def start_runs(config, count: int) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    cmd = [sys.executable, "-m", "serbero_cli", "--config", str(config), "dispatch-once"]
    return [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                             cwd=str(ROOT)) for _ in range(count)]


def test_fx_4_ten_processes_three_waves_each_handoff_exactly_once(esc_config, seed, solvers, serbero_pub):
    writer = solvers[1]
    cfg = esc_config()
    disputes: dict[int, str] = {}
    codes: list[int] = []
    for wave_size in (7, 7, 6):
        for _ in range(wave_size):
            dispute = seed.dispute()
            disputes[seed.handoff(dispute)] = dispute
        procs = start_runs(cfg, 10)
        for proc in procs:
            _, stderr = proc.communicate(timeout=60)
            codes.append(proc.returncode)
            assert proc.returncode in (0, 75), stderr
    assert len(codes) == 30 and set(codes) <= {0, 75}
    rows = seed.dispatches()
    assert sorted(r["handoff_event_id"] for r in rows) == sorted(disputes)
    assert {r["status"] for r in rows} == {"dispatched"} and {r["attempts"] for r in rows} == {1}
    dms = handoff_dms(writer, serbero_pub)
    assert sorted(dm.content.split("\n")[3] for dm in dms) == sorted(f"Dispute: {d}" for d in disputes.values())
    assert len(seed.audit("escalation_dispatched")) == 20
    assert len(seed.rows("SELECT id FROM notifications")) == 20
