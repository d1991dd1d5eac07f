"""What a one-shot `serbero listen` loads when there is nothing new (docs/operations.md#benchmarks).

Cron runs it every minute, so every module on this path is paid for 1 440 times a day. The set is
pinned: a change that pulls in another module fails here and has to be a decision, not an accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import ROOT

# Every serbero_cli module an idle one-shot listen imports, and nothing more.
IDLE_LISTEN_MODULES = {
    "serbero_cli",
    "serbero_cli.cli",
    "serbero_cli.cli.app",
    "serbero_cli.cli.common",
    "serbero_cli.cli.listen",
    "serbero_cli.cli.render",
    "serbero_cli.config",
    "serbero_cli.config_schema",
    "serbero_cli.delivery",
    "serbero_cli.delivery.audience",
    "serbero_cli.delivery.outbox",
    "serbero_cli.domain",
    "serbero_cli.domain.dispute_events",
    "serbero_cli.domain.lifecycle",
    "serbero_cli.domain.notifications",
    "serbero_cli.errors",
    "serbero_cli.keytext",
    "serbero_cli.listen",
    "serbero_cli.listen.result",
    "serbero_cli.listen.run",
    "serbero_cli.listen.sweep",
    "serbero_cli.logsetup",
    "serbero_cli.nostr",
    "serbero_cli.nostr.dm",
    "serbero_cli.nostr.events",
    "serbero_cli.nostr.relays",
    "serbero_cli.nostr.sdk_keys",
    "serbero_cli.runlock",
    "serbero_cli.runrecord",
    "serbero_cli.safetext",
    "serbero_cli.secret_sources",
    "serbero_cli.stopping",
    "serbero_cli.store",
    "serbero_cli.store.clock",
    "serbero_cli.store.db",
    "serbero_cli.store.disputes",
    "serbero_cli.store.migrations",
    "serbero_cli.store.notifications",
    "serbero_cli.store.sync",
    "serbero_cli.toml_lines",
}

# Libraries a cron run must not pay for: tables, the round-trip TOML editor, the model client,
# a second secp256k1 library (nostr_sdk derives the key).
NEVER_ON_THE_IDLE_PATH = ("rich", "tomlkit", "httpx", "sqlite_utils", "coincurve")

_DUMP_MODULES = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "serbero"
from serbero_cli.cli import main
main()
"""


def _modules_of_listen(config, tmp_path) -> set[str]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP_MODULES, str(out), "--config", str(config), "listen"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("listen: events=0 "), proc.stdout  # the cron line, not a table
    return set(json.loads(out.read_text()))


def test_an_idle_one_shot_listen_imports_exactly_the_pinned_modules(make_config, tmp_path):
    config = make_config()
    _modules_of_listen(
        config, tmp_path
    )  # first run creates the database; the pinned path is the second
    loaded = _modules_of_listen(config, tmp_path)
    ours = {m for m in loaded if m == "serbero_cli" or m.startswith("serbero_cli.")}
    assert ours - IDLE_LISTEN_MODULES == set(), "new modules on the idle listen path"
    assert IDLE_LISTEN_MODULES - ours == set(), "modules left the idle path: shrink the pinned set"
    heavy = {m.split(".")[0] for m in loaded} & set(NEVER_ON_THE_IDLE_PATH)
    assert heavy == set()
    assert not any(
        m.startswith(("serbero_cli.mediation", "serbero_cli.audit", "serbero_cli.reasoning"))
        for m in loaded
    )
