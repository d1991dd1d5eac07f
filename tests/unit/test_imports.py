"""Start-up budget (docs/architecture.md#start-up): the CLI module graph imports no nostr_sdk, httpx or rich until a
command needs them."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_heavy_modules():
    code = ("import sys, serbero_cli.cli.app; "
            "print(','.join(m for m in ('nostr_sdk', 'httpx', 'rich', 'sqlite_utils') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_listen_help_works_without_a_config():
    proc = subprocess.run([sys.executable, "-m", "serbero_cli", "listen", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout and "--follow" in proc.stdout


def test_the_installed_serbero_entry_point_lists_every_subcommand():
    from pathlib import Path

    script = Path(sys.executable).parent / "serbero"
    assert script.exists(), "the package must be installed with its console script"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("listen", "mediate-once", "dispatch-once", "audit", "init", "keys", "doctor", "demo"):
        assert command in proc.stdout
