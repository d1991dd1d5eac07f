"""Packaging: the wheel builds without a warning, carries the man pages to share/man/man1 (so `man
serbero` works after pip install), and the setup scripts stay quiet unless the install fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

MAN = ROOT / "man"
WARNING_WORDS = ("Warning", "deprecated", "Deprecat")
# This machine sets PYTHONDONTWRITEBYTECODE, so distutils says it skips byte-compiling: not the project's.
ENVIRONMENT_NOTES = ("byte-compiling is disabled",)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """A wheel built from this checkout with the venv's setuptools (offline), and the build log."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-v",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=out,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for leftover in (
        "build",
        "serbero.egg-info",
    ):  # an in-tree build leaves these (both git-ignored)
        shutil.rmtree(ROOT / leftover, ignore_errors=True)
    (path,) = out.glob("serbero-*.whl")
    return path, proc.stdout + proc.stderr


def test_the_wheel_builds_without_a_warning(wheel):
    _, log = wheel
    warnings = [
        line
        for line in log.splitlines()
        if any(w in line for w in WARNING_WORDS)
        and not any(note in line for note in ENVIRONMENT_NOTES)
    ]
    assert warnings == []


def test_the_wheel_declares_an_spdx_license(wheel):
    path, _ = wheel
    with zipfile.ZipFile(path) as zf:
        metadata = zf.read(
            next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        ).decode()
    assert "License-Expression: MIT" in metadata.splitlines()


def test_the_wheel_installs_every_man_page_under_share_man_man1(wheel):
    path, _ = wheel
    with zipfile.ZipFile(path) as zf:
        pages = {Path(n).name for n in zf.namelist() if "/data/share/man/man1/" in n}
    assert pages == {p.name for p in MAN.glob("*.1")} and "serbero.1" in pages


def test_man_finds_serbero_once_the_prefix_share_man_is_on_manpath(wheel, tmp_path):
    path, _ = wheel
    # A scratch venv, filled by this pip through --python: installing with --prefix into the test's
    # own environment would uninstall the serbero the suite runs.
    prefix = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(prefix / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "--no-compile",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    installed = prefix / "share" / "man" / "man1"
    assert (installed / "serbero.1").read_text() == (MAN / "serbero.1").read_text()
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    found = subprocess.run(
        ["man", "-w", "serbero-backup"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MANPATH": str(prefix / "share" / "man")},
    )
    assert found.stdout.strip() == str(installed / "serbero-backup.1"), found.stderr


@pytest.fixture
def script_copy(tmp_path) -> Path:
    """A scratch project holding a copy of scripts/ensure-venv and a pyproject.toml."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "ensure-venv", tmp_path / "scripts" / "ensure-venv")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    return tmp_path


FAKE_PYTHON = """#!/bin/sh
# Stands in for python: `-m venv DIR` makes DIR/bin/python (a copy of this script); `-m pip …` is noisy.
if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0; fi
i=0; while [ $i -lt 200 ]; do echo "Collecting something-$i"; i=$((i+1)); done
echo "pip noise on stderr" >&2
[ -n "$FAIL_PIP" ] && { echo "ERROR: No matching distribution found for nostr-sdk" >&2; exit 1; }
exit 0
"""


def run_script(project: Path, **env: str) -> subprocess.CompletedProcess:
    fake = project / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return subprocess.run(
        [str(project / "scripts" / "ensure-venv")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": str(fake), **env},
    )


def test_a_successful_install_prints_one_line_and_none_of_pips_output(script_copy):
    proc = run_script(script_copy)
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Setting up .venv" in proc.stderr
    assert (script_copy / ".venv" / ".serbero-installed").exists()
    again = run_script(script_copy)  # up to date: nothing to do, nothing printed
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_a_failed_install_shows_pips_output_and_fails(script_copy):
    proc = run_script(script_copy, FAIL_PIP="1")
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        "No matching distribution found for nostr-sdk" in proc.stderr
        and "Collecting something-199" in proc.stderr
    )
    assert "installing Serbero into .venv failed" in proc.stderr
    assert not (script_copy / ".venv" / ".serbero-installed").exists()
