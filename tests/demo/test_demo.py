"""`serbero demo` runs offline, end to end, and its exit code tells the truth."""

from __future__ import annotations

import time

import pytest

from serbero_cli.simulate.demo import DemoReport, Expectation
from tests.helpers import run_serbero


@pytest.mark.parametrize(
    "scenario,expected",
    [
        pytest.param("both", ["mediation summary", "escalation handoff", "no handoff"], id="both"),
        pytest.param("cooperative", ["mediation summary"], id="cooperative"),
        pytest.param("escalation", ["escalation handoff"], id="escalation"),
    ],
)
def test_demo_runs_every_phase_and_exits_0(tmp_path, scenario, expected):
    started = time.monotonic()
    proc = run_serbero(
        None, "demo", "--scenario", scenario, "--dir", str(tmp_path / "demo"), timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 60
    out = proc.stdout
    assert "demo passed" in out and "✗" not in out
    for phrase in expected:
        assert phrase in out
    for phase in ("serbero listen", "serbero mediate-once", "serbero audit"):
        assert phase in out
    assert (tmp_path / "demo" / "serbero.db").exists()
    assert oct((tmp_path / "demo" / "config.toml").stat().st_mode & 0o777) == "0o600"


def test_demo_report_fails_when_any_expectation_is_unmet():
    report = DemoReport(directory=None)
    assert not report.ok  # nothing checked is not a pass
    report.expectations = [Expectation("a", "x", True), Expectation("b", "y", False)]
    assert not report.ok
    report.expectations[1].met = True
    assert report.ok


def test_demo_rejects_an_unknown_scenario():
    proc = run_serbero(None, "demo", "--scenario", "chaos")
    assert proc.returncode == 2 and "--scenario" in proc.stderr
