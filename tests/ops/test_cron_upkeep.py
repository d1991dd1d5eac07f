"""The cron set-up's upkeep: the backup and prune lines use real options, and the logrotate file
rotates the phase logs (run for real on a scratch folder when logrotate is installed)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess

import pytest

from tests.helpers import ROOT
from tests.ops.conftest import parse_cli

CRONTAB = (ROOT / "scripts" / "crontab.example").read_text()
LOGROTATE = (ROOT / "scripts" / "logrotate" / "serbero").read_text()


def upkeep_jobs() -> list[list[str]]:
    jobs = []
    for line in CRONTAB.splitlines():
        if re.match(r"^\d", line):  # a timed (not every-minute) job
            command = line.split(None, 5)[5].split(">>")[0]
            command = re.sub(r"\$\([^)]*\)", "Mon", command)  # a command substitution: one word
            jobs.append(shlex.split(command)[1:])
    return jobs


def test_the_crontab_backs_up_nightly_and_prunes_weekly_with_real_options():
    jobs = upkeep_jobs()
    assert [argv[0] for argv in jobs] == ["backup", "prune"]
    for argv in jobs:
        parse_cli(argv)
    assert "--resolved-before" in jobs[1] and "--force" in jobs[0]


def test_every_cron_log_is_one_logrotate_covers():
    logs = set(re.findall(r">>(/var/log/serbero/[\w.-]+\.log)", CRONTAB))
    pattern = re.search(r"^(/var/log/serbero/\*\.log) \{", LOGROTATE, re.M).group(1)
    assert logs and all(log.startswith(pattern.removesuffix("*.log")) for log in logs)


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_rotates_the_phase_logs(tmp_path):
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    logs = tmp_path / "log"
    logs.mkdir(mode=0o755)
    (logs / "listen.log").write_text(
        "2024-05-01T12:00:00Z INFO serbero_cli.listen.run: events fetched=1\n"
    )
    conf = tmp_path / "serbero"
    conf.write_text(
        LOGROTATE.replace("/var/log/serbero", str(logs))
        .replace("su serbero serbero", f"su {user} {group}")
        .replace("create 0640 serbero serbero", f"create 0640 {user} {group}")
    )
    proc = subprocess.run(
        ["logrotate", "-v", "-f", "-s", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr
    assert (
        (logs / "listen.log.1").read_text().startswith("2024-05-01T12:00:00Z")
    )  # delaycompress: not yet .gz
    assert (logs / "listen.log").stat().st_size == 0 and oct((logs / "listen.log").stat().st_mode)[
        -3:
    ] == "640"
