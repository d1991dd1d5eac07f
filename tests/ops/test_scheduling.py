"""The cron and systemd examples: real commands and options, the latency settings, the hardening."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.ops.conftest import parse_cli

SCRIPTS = ROOT / "scripts"
UNITS = SCRIPTS / "systemd"
SERVICES = ("serbero-listen.service", "serbero-mediate.service", "serbero-dispatch.service")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ReadWritePaths": "/var/lib/serbero",
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNITS / name, encoding="utf-8")
    return parser


def serbero_invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after `serbero`) for every cron line and ExecStart in the examples."""
    found = []
    for line in (SCRIPTS / "crontab.example").read_text().splitlines():
        if not line.startswith("* "):
            continue
        job = line.split(None, 5)[5]
        segment = next(part for part in job.split(";") if "serbero " in part)
        argv = shlex.split(segment.split(">>")[0])
        found.append((f"cron {' '.join(argv)}", argv[1:]))
    for name in SERVICES:
        argv = shlex.split(unit(name)["Service"]["ExecStart"])
        found.append((name, argv[1:]))
    return found


@pytest.mark.parametrize(
    "where, argv", serbero_invocations(), ids=lambda v: v if isinstance(v, str) else None
)
def test_every_example_runs_a_real_command_with_real_options(where, argv):
    parse_cli(argv)  # unknown commands or options raise; a command not registered yet skips


def test_crontab_runs_dispatch_twice_a_minute_and_mails_only_failures():
    lines = [
        line
        for line in (SCRIPTS / "crontab.example").read_text().splitlines()
        if line.startswith("* * * * *")
    ]
    dispatch = [line for line in lines if "dispatch-once" in line]
    assert len(dispatch) == 2 and sum("sleep 30;" in line for line in dispatch) == 1
    assert {re.search(r"serbero ([a-z-]+)", line).group(1) for line in lines} == {
        "listen",
        "mediate-once",
        "dispatch-once",
    }
    assert all("[ $rc -eq 75 ]" in line and "flock" not in line for line in lines)


def test_listen_service_follows_and_timers_keep_the_latency_targets():
    assert unit("serbero-listen.service")["Service"]["ExecStart"].endswith(
        "serbero listen --follow"
    )
    dispatch = unit("serbero-dispatch.timer")["Timer"]
    assert (dispatch["OnUnitActiveSec"], dispatch["AccuracySec"]) == ("30s", "1s")
    mediate = unit("serbero-mediate.timer")["Timer"]
    assert (mediate["OnUnitActiveSec"], mediate["AccuracySec"]) == ("1min", "1s")
    for name in ("serbero-mediate.service", "serbero-dispatch.service"):
        service = unit(name)["Service"]
        assert (service["Type"], service["SuccessExitStatus"]) == ("oneshot", "75")


@pytest.mark.parametrize("name", SERVICES)
def test_services_run_hardened_as_a_dedicated_user_with_secrets_in_an_environment_file(name):
    service = unit(name)["Service"]
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert service["User"] == "serbero"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/serbero/serbero.env"
    assert service[
        "Environment"
    ]  # SERBERO_CONFIG / SERBERO_DB_PATH (the last line wins in configparser)
    assert "private_key" not in (UNITS / name).read_text().lower().replace(
        "serbero_private_key", ""
    )


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
@pytest.mark.parametrize("name", sorted(p.name for p in UNITS.iterdir()))
def test_systemd_analyze_accepts_every_unit(name, tmp_path):
    serbero = Path(sys.executable).with_name("serbero")
    text = (UNITS / name).read_text().replace("/opt/serbero/.venv/bin/serbero", str(serbero))
    (tmp_path / name).write_text(text)
    for sibling in UNITS.iterdir():  # a timer needs its service beside it
        if sibling.name != name:
            (tmp_path / sibling.name).write_text(
                sibling.read_text().replace("/opt/serbero/.venv/bin/serbero", str(serbero))
            )
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")
