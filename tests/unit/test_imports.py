"""Start-up budget (docs/architecture.md#start-up): the CLI module graph imports no nostr_sdk, httpx or rich until a
command needs them."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_heavy_modules():
    code = (
        "import sys, serbero_cli.cli.app; "
        "print(','.join(m for m in ('nostr_sdk', 'httpx', 'rich', 'sqlite_utils') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_listen_help_works_without_a_config():
    proc = subprocess.run(
        [sys.executable, "-m", "serbero_cli", "listen", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--dry-run" in proc.stdout and "--follow" in proc.stdout


def test_the_installed_serbero_entry_point_lists_every_subcommand():
    from pathlib import Path

    script = Path(sys.executable).parent / "serbero"
    assert script.exists(), "the package must be installed with its console script"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in (
        "listen",
        "mediate-once",
        "dispatch-once",
        "audit",
        "init",
        "keys",
        "doctor",
        "demo",
    ):
        assert command in proc.stdout


def test_the_command_named_on_the_line_is_the_only_one_built():
    from serbero_cli.cli.app import requested_command

    assert (
        requested_command(["--config", "listen", "audit"], {}) == "audit"
    )  # a value, then the command
    assert (
        requested_command(["-c", "x.toml", "--log-level", "debug", "listen", "-q"], {}) == "listen"
    )
    assert requested_command(["--config=x.toml", "mediate-once"], {}) == "mediate-once"
    assert requested_command(["--help"], {}) is None
    assert requested_command(["--version"], {}) is None
    assert requested_command(["lisen"], {}) is None  # unknown: the full app suggests the right name
    assert requested_command(["listen"], {"_SERBERO_COMPLETE": "bash_complete"}) is None
    assert requested_command([], {}) is None


def test_a_command_built_alone_reads_its_options_and_help_exactly_as_in_the_full_app():
    from typer.testing import CliRunner

    from serbero_cli.cli.app import COMMANDS, build_app

    runner = CliRunner()
    for name in COMMANDS:
        alone = runner.invoke(
            build_app(name), [name, "--help"], prog_name="serbero", env={"COLUMNS": "100"}
        )
        full = runner.invoke(
            build_app(), [name, "--help"], prog_name="serbero", env={"COLUMNS": "100"}
        )
        assert alone.exit_code == full.exit_code == 0
        assert alone.output == full.output, name
