"""`serbero doctor`: every health check as data, one `Check` row each (docs/operations.md#doctor).

`run_doctor()` never writes: the database is opened read-only (or not at all when missing), no
lock is taken, nothing is published. The order follows a run's own order: config first (without
it nothing else can be checked), then local files, then the network. The relay, Mostro and clock
checks live in `doctor_net.py`; the reasoning provider and the prompt bundle in `doctor_reasoning.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serbero_cli.config import Config, load_config
from serbero_cli.errors import ConfigError, DatabaseError, DatabaseMissing
from serbero_cli.safetext import short
from serbero_cli.setup.checks import FAIL, OK, WARN, Check, DoctorReport, ago

LOCKS = (("listen", "listen"), ("mediate", "mediate-once"), ("dispatch", "dispatch-once"))
LAST_RUNS = (
    ("listen_last_run", "listen"),
    ("mediate_once_last_run", "mediate-once"),
    ("dispatch_once_last_run", "dispatch-once"),
)


@dataclass(frozen=True)
class DbFacts:
    """What the read-only database look found, for the later checks (None when unknown)."""

    transport_cache: dict[str, Any] | None = None
    transport_cache_updated_at: int | None = None


def run_doctor(
    config_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    send_test_dm: bool = False,
) -> DoctorReport:
    """Run every check against the config at `config_path`; return the report (never raises for findings)."""
    from serbero_cli.setup import doctor_reasoning

    env = os.environ if env is None else env
    report = DoctorReport()
    try:
        config = load_config(config_path, env)
    except ConfigError as exc:
        report.config_error = True
        report.checks += [
            Check("config", FAIL, problem, "fix this key; every problem is listed at once")
            for problem in exc.problems
        ]
        return report
    report.checks += check_config(config)
    api_key, key_rows = doctor_reasoning.check_api_key(config, env)
    bundle_rows, bundle_error = doctor_reasoning.check_bundle(config)
    report.config_error = any(c.status == FAIL for c in key_rows) or bundle_error
    db_rows, facts = check_database(config, int(clock()))
    net_rows, provider_rows = asyncio.run(_network(config, api_key, facts, clock))
    report.checks += db_rows + net_rows
    report.checks += check_solvers(config) + [check_registration(config)]
    report.checks += key_rows + provider_rows + bundle_rows
    report.checks += check_locks(config) + check_permissions(config)
    report.config_error = (
        report.config_error or not config.db_path.parent.is_dir()
    )  # runs exit 2 too
    if send_test_dm:
        from serbero_cli.setup.doctor_dm import send_test_dms

        report.checks += asyncio.run(send_test_dms(config))
    return report


async def _network(
    config: Config, api_key: Any, facts: DbFacts, clock: Callable[[], float]
) -> tuple[list[Check], list[Check]]:
    """Relays and Mostro, and the provider's health call, at the same time: doctor waits once."""
    from serbero_cli.setup import doctor_net, doctor_reasoning

    net, health = await asyncio.gather(
        doctor_net.check_network(config, facts, clock),
        doctor_reasoning.check_provider(config, api_key),
    )
    return net, health


def check_config(config: Config) -> list[Check]:
    rows = [
        Check(
            "config",
            OK,
            f"{config.path} is valid ({len(config.relays)} relay(s), "
            f"{len(config.solvers)} solver(s))",
        )
    ]
    for warning in config.warnings:
        # The loader's own mode warning is reported by check_permissions, with a hint.
        if "readable by group/others" not in warning:
            rows.append(Check("config", WARN, warning, "remove or rename the key"))
    if config.mediation.enabled and not config.reasoning.enabled:
        rows.append(
            Check(
                "config",
                WARN,
                "[mediation] enabled = true but [reasoning] enabled = false",
                "mediate-once does nothing until both are true",
            )
        )
    return rows


def check_database(config: Config, now: int) -> tuple[list[Check], DbFacts]:
    """Open the database read-only: schema version, cached transport, last runs. Never create it."""
    from serbero_cli.setup import doctor_db
    from serbero_cli.store import migrations, sync
    from serbero_cli.store.db import open_db

    path = config.db_path
    if not path.parent.is_dir():
        return [
            Check(
                "database",
                FAIL,
                f"{path}: its folder does not exist",
                "create the folder or fix [serbero] db_path",
            )
        ], DbFacts()
    if not path.exists():
        return [
            Check(
                "database",
                WARN,
                f"{path} does not exist yet",
                "it will be created by the first run of listen (or mediate-once, dispatch-once)",
            )
        ], DbFacts()
    try:
        store = open_db(path, readonly=True)
    except (DatabaseMissing, DatabaseError) as exc:
        return [
            Check(
                "database", FAIL, str(exc), "restore the file or move it aside and start a new one"
            )
        ], DbFacts()
    try:
        version, code = migrations.current_version(store.conn), len(migrations.MIGRATIONS)
        rows = []
        if version == code:
            rows.append(Check("database", OK, f"{path}: schema version {version} (current)"))
        else:
            rows.append(
                Check(
                    "database",
                    WARN,
                    f"{path}: schema version {version}, this serbero has {code}",
                    "the next run of listen, mediate-once or dispatch-once migrates it",
                )
            )
        rows.append(doctor_db.check_integrity(store))
        if not store.table_exists("sync_state"):
            return rows, DbFacts()
        runs = []
        for key, command in LAST_RUNS:
            row = sync.get_row(store, key)
            runs.append(f"{command} {ago(now - row[1])}" if row else f"{command} never")
        rows.append(Check("last runs", OK, ", ".join(runs)))
        return rows, _transport_facts(sync.get_row(store, "mostro_transport"))
    finally:
        store.close()


def _transport_facts(row: tuple[str, int] | None) -> DbFacts:
    if row is None:
        return DbFacts()
    try:
        value = json.loads(row[0])
    except ValueError:
        value = None
    return DbFacts(value if isinstance(value, dict) else None, row[1])


def check_solvers(config: Config) -> list[Check]:
    solvers = config.solvers
    writers = sum(1 for s in solvers if s.permission == "write")
    rows = []
    if not solvers:
        rows.append(
            Check(
                "solvers",
                WARN,
                "no [[solvers]]: disputes are recorded but nobody is notified",
                "add a [[solvers]] table per human solver",
            )
        )
    else:
        rows.append(
            Check(
                "solvers",
                OK,
                f"{len(solvers)} valid key(s): {len(solvers) - writers} read, {writers} write",
            )
        )
    if config.escalation.enabled and not writers and not config.escalation.fallback_to_all_solvers:
        rows.append(
            Check(
                "solvers",
                WARN,
                'escalation is enabled but no solver has permission = "write" '
                "and fallback_to_all_solvers = false",
                "handoffs will be unroutable: add a write solver or enable the fallback",
            )
        )
    if any(s.pubkey == config.public_key for s in solvers):
        rows.append(
            Check(
                "solvers",
                WARN,
                f"Serbero's own key {short(config.public_key)} is listed as a solver",
                "remove it: Serbero would message itself",
            )
        )
    return rows


def check_registration(config: Config) -> Check:
    from serbero_cli.setup.init import registration_string

    return Check(
        "registration",
        OK,
        f"register on Mostro as: {registration_string(config.public_key)}",
        "the node operator sends admin-add-solver with exactly this text; a bare npub is read-write",
    )


def check_locks(config: Config) -> list[Check]:
    from serbero_cli.runlock import lock_holder

    rows = []
    for name, command in LOCKS:
        try:
            pid = lock_holder(config.db_path, name)
        except OSError as exc:
            rows.append(
                Check(
                    f"lock {command}",
                    WARN,
                    f"cannot read {config.db_path}.{name}.lock "
                    f"({exc.strerror or exc.__class__.__name__})",
                    "run doctor as the user that runs serbero",
                )
            )
            continue
        if pid is None:
            rows.append(Check(f"lock {command}", OK, "free"))
        else:
            who = f"pid {pid}" if pid > 0 else "an unknown pid"
            rows.append(
                Check(f"lock {command}", OK, f"held by {who}: a {command} run is in progress")
            )
    return rows


def check_permissions(config: Config) -> list[Check]:
    rows = []
    try:
        mode = config.path.stat().st_mode
    except OSError:
        mode = None
    if mode is not None:
        loose = mode & (stat.S_IRWXG | stat.S_IRWXO)
        if loose and _file_holds_private_key(config.path):
            rows.append(
                Check(
                    "config file mode",
                    WARN,
                    f"{config.path} holds private_key and is mode {stat.S_IMODE(mode):04o}",
                    f"chmod 600 {config.path}",
                )
            )
        else:
            rows.append(
                Check("config file mode", OK, f"{config.path} mode {stat.S_IMODE(mode):04o}")
            )
    from serbero_cli.setup import doctor_db

    rows.append(doctor_db.check_folder(config.db_path))
    rows += doctor_db.check_file_modes(config.db_path)
    return rows


def _file_holds_private_key(path: Path) -> bool:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except (OSError, UnicodeDecodeError, TOMLKitError):
        return False
    section = doc.get("serbero")
    return isinstance(section, dict) and "private_key" in section
