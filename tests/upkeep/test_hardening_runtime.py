"""The units set MemoryDenyWriteExecute=yes: the phases must run where no memory is both writable
and executable. Linux 6.3+ offers the same rule to any process (prctl PR_SET_MDWE), so each phase
runs here under it, against the loopback relay, simulated node and parties, and scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.mediate_once.conftest import API_ENV, ask

# Turn on "refuse exec gain" for this process and what it execs, then exec the command.
WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(99)
os.execv(sys.argv[1], sys.argv[1:])
"""
UNSUPPORTED = 99


def run_hardened(config, *args: str, env: dict[str, str] | None = None) -> dict:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")} | (env or {})
    cmd = [
        sys.executable,
        "-c",
        WRAPPER,
        sys.executable,
        "-m",
        "serbero_cli",
        "--config",
        str(config),
        *args,
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=full_env, cwd=ROOT)
    if proc.returncode == UNSUPPORTED:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or newer)")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_wrapper_really_refuses_writable_executable_memory():
    probe = (
        "import mmap\ntry:\n    mmap.mmap(-1, 4096, prot=7)\nexcept OSError:\n    print('refused')\n"
        "else:\n    print('allowed')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode == UNSUPPORTED:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or newer)")
    assert proc.stdout.strip() == "refused"


def test_listen_mediate_and_dispatch_run_without_writable_executable_memory(harness):
    h = harness(escalation={"enabled": True})
    dispute_id = h.node.open_dispute()
    doc = run_hardened(h.config_path, "listen")
    assert doc["notifications"]["sent"] == 2
    h.llm.push(ask(flags=["conflicting_claims"]))
    doc = run_hardened(h.config_path, "mediate-once", env=API_ENV)
    assert doc["escalations"] == {"conflicting_claims": 1} and doc["starts_attempted"] == 1, doc
    doc = run_hardened(h.config_path, "dispatch-once")
    assert doc["counts"]["dispatched"] == 1
    assert h.rows("SELECT lifecycle_state FROM disputes WHERE dispute_id=?", (dispute_id,)) == [
        {"lifecycle_state": "escalated"}
    ]
