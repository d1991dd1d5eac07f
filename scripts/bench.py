"""Serbero benchmarks: each case is timed next to a floor measured in the same run, on the same relay.

cold-listen  one-shot `serbero listen` with nothing new   vs  a bare nostr_sdk connect + fetch + exit
backlog      `serbero listen` over 500 disputes x 3 solvers (1 500 DMs)  vs  a bare nostr_sdk loop
             building and publishing 1 500 NIP-17 DMs
audit-100k   `serbero audit` dashboard on 100 000 disputes  vs  the sqlite3 CLI running the same counts
audit-views  every default audit view and `audit metrics`, in process, on a year of a busy node
             (100 000 disputes, 300 000 notifications): wall time each, and every query's plan
             checked for a full scan of a big table (no floor: the target is under 1 s a view)

Each case and its floor run N times, alternately (median, min, max); peak RSS comes from wait4().
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serbero_cli.simulate import aio  # noqa: E402
from serbero_cli.simulate.mostro import SimMostro, build_dispute_event  # noqa: E402
from serbero_cli.simulate.relay import start_relay  # noqa: E402
from tests.helpers import write_config  # noqa: E402

TARGETS = {"cold-listen": 1.5, "backlog": 1.3, "audit-100k": 3.0}

FLOOR_FETCH = """
import asyncio, sys, json
from datetime import timedelta
import nostr_sdk as ns
async def main():
    c = ns.Client()
    await c.add_relay(ns.RelayUrl.parse(sys.argv[1]))
    await c.try_connect(timedelta(seconds=10))
    f = ns.Filter.from_json(json.dumps({"kinds": [38386], "authors": [sys.argv[2]], "since": int(sys.argv[3])}))
    await c.fetch_events(ns.ReqTarget.auto([f]), timeout=timedelta(seconds=10))
    await c.shutdown()
asyncio.run(main())
"""

FLOOR_DMS = """
import asyncio, sys
from datetime import timedelta
import nostr_sdk as ns
async def main():
    c = ns.Client()
    await c.add_relay(ns.RelayUrl.parse(sys.argv[1]))
    await c.try_connect(timedelta(seconds=10))
    keys = ns.Keys.parse(sys.argv[2])
    receivers = [ns.PublicKey.parse(p) for p in sys.argv[3].split(",")]
    for i in range(int(sys.argv[4])):
        for r in receivers:
            ev = ns.nip17_make_private_msg(keys, r, f"dispute {i}")
            await c.send_event(ev, ok_timeout=timedelta(seconds=5))
    await c.shutdown()
asyncio.run(main())
"""


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one subprocess run."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise RuntimeError(f"{' '.join(cmd[:4])}… exited {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_maxrss


def paired(case_cmd: list[str], floor_cmd: list[str], runs: int, before=None) -> dict:
    """Run the case and its floor alternately, `runs` times each, so that a machine getting busier
    or quieter during the bench weighs on both sides alike. `before` runs ahead of each case run."""
    times: dict[str, list[float]] = {"case": [], "floor": []}
    rss = {"case": 0, "floor": 0}
    for _ in range(runs):
        for side, cmd in (("case", case_cmd), ("floor", floor_cmd)):
            if side == "case" and before:
                before()
            t, r = timed(cmd)
            times[side].append(t)
            rss[side] = max(rss[side], r)
    return {
        side: {
            "median": statistics.median(ts),
            "min": min(ts),
            "max": max(ts),
            "rss_kib": rss[side],
        }
        for side, ts in times.items()
    }


def serbero_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "serbero_cli", "--config", str(config), *args]


def bench_cold_listen(work: Path, relay, mostro, runs: int) -> dict:
    import nostr_sdk as ns

    solvers = [(ns.Keys.generate().public_key().to_hex(), "read")]
    config = write_config(
        work / "cold.toml",
        private_key=ns.Keys.generate().secret_key().to_hex(),
        mostro_pubkey=mostro.pubkey,
        relays=[relay.url],
        solvers=solvers,
        db_path=str(work / "cold.db"),
    )
    subprocess.run(serbero_cmd(config, "listen", "--quiet"), check=True, cwd=ROOT)
    since = int(time.time()) - 300
    return paired(
        serbero_cmd(config, "listen", "--quiet"),
        [sys.executable, "-c", FLOOR_FETCH, relay.url, mostro.pubkey, str(since)],
        runs,
    )


def bench_backlog(work: Path, relay, mostro, runs: int, disputes: int = 500) -> dict:
    import nostr_sdk as ns

    solver_keys = [ns.Keys.generate().public_key().to_hex() for _ in range(3)]
    now = int(time.time())

    async def publish_all():
        for i in range(disputes):
            ev = build_dispute_event(
                mostro.keys, str(uuid.uuid4()), "initiated", created_at=now - disputes + i
            )
            await mostro.publish_async(ev)

    aio.run(publish_all(), timeout=600)
    serbero = ns.Keys.generate()
    config = write_config(
        work / "backlog.toml",
        private_key=serbero.secret_key().to_hex(),
        mostro_pubkey=mostro.pubkey,
        relays=[relay.url],
        solvers=[(k, "read") for k in solver_keys],
        db_path=str(work / "backlog.db"),
    )

    def fresh_db():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work / 'backlog.db'}{suffix}").unlink(missing_ok=True)

    return paired(
        serbero_cmd(config, "listen", "--quiet"),
        [
            sys.executable,
            "-c",
            FLOOR_DMS,
            relay.url,
            serbero.secret_key().to_hex(),
            ",".join(solver_keys),
            str(disputes),
        ],
        runs,
        before=fresh_db,
    )


def bench_audit(work: Path, runs: int) -> dict:
    from serbero_cli.store.db import open_db

    db = work / "audit.db"
    store = open_db(db)
    now = int(time.time())
    states = ("new", "notified", "taken", "waiting", "escalated", "resolved")
    store.db["disputes"].insert_all(
        (
            {
                "dispute_id": str(uuid.uuid4()),
                "event_id": f"{i:064x}",
                "mostro_pubkey": "ab" * 32,
                "initiator_role": "buyer",
                "dispute_status": "initiated",
                "event_timestamp": now - i,
                "detected_at": now - i,
                "lifecycle_state": states[i % 6],
            }
            for i in range(100_000)
        ),
        batch_size=5000,
    )
    ids = [r[0] for r in store.conn.execute("SELECT dispute_id FROM disputes")]
    statuses = ("pending", "sent", "failed", "sent")
    store.db["notifications"].insert_all(
        (
            {
                "dispute_id": ids[i % len(ids)],
                "solver_pubkey": "cd" * 32,
                "notif_type": "initial",
                "status": statuses[i % 4],
                "attempts": 1,
                "created_at": now - i,
                "body": "x",
            }
            for i in range(300_000)
        ),
        batch_size=5000,
    )
    store.close()
    config = write_config(
        work / "audit.toml",
        private_key="5f" * 32,
        mostro_pubkey="ab" * 32,
        relays=["ws://127.0.0.1:1"],
        solvers=[],
        db_path=str(db),
    )
    sql = (
        "SELECT lifecycle_state, COUNT(*) FROM disputes GROUP BY 1; "
        "SELECT status, COUNT(*) FROM notifications GROUP BY 1; "
        "SELECT state, COUNT(*) FROM mediation_sessions GROUP BY 1;"
    )
    sqlite_cli = shutil.which("sqlite3")
    floor_cmd = (
        [sqlite_cli, str(db), sql]
        if sqlite_cli
        else [
            sys.executable,
            "-c",
            f"import sqlite3; c=sqlite3.connect({str(db)!r}); "
            f"[c.execute(s).fetchall() for s in {sql!r}.split(';') if s.strip()]",
        ]
    )
    return {
        **paired(serbero_cmd(config, "audit", "--json"), floor_cmd, runs),
        "floor_tool": "sqlite3 CLI" if sqlite_cli else "python sqlite3",
    }


def bench_audit_views(work: Path) -> dict:
    """Time every default view on the big synthetic database and check each statement's plan."""
    from serbero_cli.audit import checks, health, metrics, timeline, views
    from serbero_cli.store import audit_queries as queries
    from serbero_cli.store.audit_queries import AuditSettings
    from serbero_cli.store.db import open_db
    from tests.audit.bigdb import DEFAULT_VIEWS, NOW, build, plan_problems

    db = work / "views.db"
    started = time.perf_counter()
    build(db, 100_000)
    report = {"build_seconds": time.perf_counter() - started, "views": {}}
    statements: list[str] = []
    real = queries.open_source

    def open_traced(settings):
        source = real(settings)
        source.store.conn.set_trace_callback(statements.append)
        return source

    modules = (views, checks, timeline, health)
    for module in modules:
        module.open_source = open_traced
    reader = open_db(db, readonly=True)
    try:
        settings = AuditSettings.defaults(db)
        for name, view in [*DEFAULT_VIEWS, ("metrics", lambda s: metrics.run_metrics(s, now=NOW))]:
            statements.clear()
            started = time.perf_counter()
            view(settings)
            elapsed = time.perf_counter() - started
            problems = [
                p
                for sql in statements
                if sql.lstrip().upper().startswith(("SELECT", "WITH"))
                for p in plan_problems(reader.conn, sql)[1]
            ]
            report["views"][name] = {"seconds": elapsed, "plan_problems": problems}
    finally:
        reader.close()
        for module in modules:
            module.open_source = real
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=sorted([*TARGETS, "audit-views"]))
    args = parser.parse_args()
    # Measure the installed shape: byte-compiled, as pip leaves it (a stale cache would time the compiler).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "serbero_cli")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    work = Path(tempfile.mkdtemp(prefix="serbero-bench-"))
    relay = start_relay()
    mostro = SimMostro(relay.url)
    results = {}
    try:
        if args.only in (None, "cold-listen"):
            results["cold-listen"] = bench_cold_listen(work, relay, mostro, args.runs)
        if args.only in (None, "backlog"):
            results["backlog"] = bench_backlog(work, relay, mostro, max(1, min(args.runs, 3)))
        if args.only in (None, "audit-100k"):
            results["audit-100k"] = bench_audit(work, args.runs)
        audit_views = bench_audit_views(work) if args.only in (None, "audit-views") else None
    finally:
        mostro.close()
        relay.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    for name, r in results.items():
        r["ratio"] = r["case"]["median"] / r["floor"]["median"]
        r["target"] = TARGETS[name]
        r["meets_target"] = r["ratio"] <= TARGETS[name] and (
            name != "audit-100k" or r["case"]["median"] < 1.0
        )
    if args.json:
        print(
            json.dumps(
                {**results, **({"audit-views": audit_views} if audit_views else {})}, indent=2
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="serbero bench (seconds; ratio = case median / floor median)")
    for col in (
        "bench",
        "case median",
        "min",
        "max",
        "floor median",
        "ratio",
        "target",
        "peak RSS MiB",
    ):
        table.add_column(col, justify="right" if col != "bench" else "left")
    for name, r in results.items():
        c, f = r["case"], r["floor"]
        table.add_row(
            name,
            f"{c['median']:.3f}",
            f"{c['min']:.3f}",
            f"{c['max']:.3f}",
            f"{f['median']:.3f}",
            f"{r['ratio']:.2f}x",
            f"<= {r['target']}x" + (" ✓" if r["meets_target"] else " ✗"),
            f"{c['rss_kib'] / 1024:.0f}",
        )
    if results:
        Console().print(table)
    if audit_views:
        views_table = Table(
            title=f"audit views on 100 000 disputes (built in {audit_views['build_seconds']:.0f} s)"
        )
        for col in ("view", "seconds", "query plans"):
            views_table.add_column(col, justify="right" if col == "seconds" else "left")
        for name, r in audit_views["views"].items():
            views_table.add_row(
                name,
                f"{r['seconds']:.3f}" + (" ✓" if r["seconds"] < 1.0 else " ✗"),
                "; ".join(r["plan_problems"]) or "every query reads an index",
            )
        Console().print(views_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
