"""Test-only pause points for crash tests (`SERBERO_TEST_HOOK=<name>`).

When the variable names a hook, the run prints `HOOK <name> <detail>` to stderr and sleeps 60 s
there, so a test can SIGKILL it at exactly that point. Unset in production: one env lookup.
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
