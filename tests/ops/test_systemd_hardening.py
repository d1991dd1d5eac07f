"""The systemd units: sandboxed to an exposure of 3.0 or lower, bounded oneshot runs, secrets as
credentials, and a failure hook shown. systemd-analyze checks run wherever it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.test_scheduling import SERVICES, UNITS, unit

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) ")
MAX_EXPOSURE = 3.0


def local_copy(name: str, tmp_path: Path) -> Path:
    """The unit (and its siblings) with ExecStart pointing at this checkout's serbero."""
    serbero = str(Path(sys.executable).with_name("serbero"))
    for sibling in UNITS.iterdir():
        (tmp_path / sibling.name).write_text(
            sibling.read_text().replace("/opt/serbero/.venv/bin/serbero", serbero)
        )
    return tmp_path / name


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_sandboxed_to_an_exposure_of_at_most_3(name, tmp_path):
    proc = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(local_copy(name, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = EXPOSURE.search(proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout


@pytest.mark.parametrize("name", [n for n in SERVICES if unit(n)["Service"]["Type"] == "oneshot"])
def test_oneshot_services_have_a_start_timeout(name):
    assert re.fullmatch(r"\d+(s|min)", unit(name)["Service"]["TimeoutStartSec"])


@pytest.mark.parametrize("name", SERVICES)
def test_services_load_both_secrets_as_credentials_with_a_blank_fallback(name):
    lines = (UNITS / name).read_text().splitlines()
    loads = {
        line.split("=", 1)[1].split(":", 1)[0]
        for line in lines
        if line.startswith("LoadCredential=")
    }
    fallbacks = {line.split("=", 1)[1] for line in lines if line.startswith("SetCredential=")}
    assert loads == {"serbero-private-key", "serbero-reasoning-api-key"}
    assert fallbacks == {f"{cred}:\\n" for cred in loads}


@pytest.mark.parametrize("name", SERVICES)
def test_services_show_an_on_failure_hook_and_drop_every_capability(name):
    text = (UNITS / name).read_text()
    assert re.search(r"^# .*OnFailure=\S+", text, re.M)
    service = unit(name)["Service"]
    assert service["CapabilityBoundingSet"] == "" and service["MemoryDenyWriteExecute"] == "yes"
    assert service["SystemCallArchitectures"] == "native" and "@system-service" in text
