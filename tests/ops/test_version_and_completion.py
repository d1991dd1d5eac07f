"""`serbero --version` / `-V` and Typer's shell completion, through the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

SERBERO = Path(sys.executable).with_name("serbero")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SERBERO_", "_SERBERO"))}
    return subprocess.run(
        [str(SERBERO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**full_env, **(env or {})},
    )


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_version_and_exits_0(flag):
    proc = run(flag)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"serbero {version('serbero')}\n", "")


def test_version_needs_no_config():
    proc = run("--config", "/nonexistent/config.toml", "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("serbero ")


def test_show_completion_prints_a_bash_script_for_serbero():
    proc = run("--show-completion", "bash")
    assert (
        proc.returncode == 0 and "_serbero_completion" in proc.stdout and "complete " in proc.stdout
    )


@pytest.mark.parametrize(
    "words, cword, expected",
    [
        pytest.param("serbero lis", "1", "listen", id="command"),
        pytest.param("serbero listen --qu", "2", "--quiet", id="option"),
        pytest.param("serbero pru", "1", "prune", id="prune"),
    ],
)
def test_bash_completion_completes_commands_and_options(words, cword, expected):
    proc = run(env={"_SERBERO_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert proc.returncode == 0 and proc.stdout.split() == [expected]
