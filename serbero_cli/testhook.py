"""Test-only knobs: pause points for crash tests and a shorter SQLite busy wait.

`SERBERO_TEST_HOOK=<name>`: the run prints `HOOK <name> <detail>` to stderr and sleeps 60 s there,
so a test can SIGKILL it at exactly that point. `SERBERO_TEST_BUSY_TIMEOUT_MS=<n>`: SQLite waits
n ms for a lock instead of 5 s, so a lock test stays fast. Unset in production: one env lookup each.
"""

from __future__ import annotations

import os
import sys
import time


def pause(name: str, detail: object = "") -> None:
    if os.environ.get("SERBERO_TEST_HOOK") != name:
        return
    sys.stderr.write(f"HOOK {name} {detail}\n")
    sys.stderr.flush()
    time.sleep(60)


def busy_timeout_ms(default: int) -> int:
    """How long SQLite waits for a lock: `default`, unless a test shortened it."""
    value = os.environ.get("SERBERO_TEST_BUSY_TIMEOUT_MS", "")
    return int(value) if value.isascii() and value.isdigit() else default
