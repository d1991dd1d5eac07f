"""Shared test helpers that are not fixtures: config building, subprocess runs, polling, checksums."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "config.toml.sample"


def write_config(
    path: Path,
    *,
    private_key: str,
    mostro_pubkey: str,
    relays: list[str],
    solvers: list[tuple[str, str]],
    db_path: str = "serbero.db",
    sections: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write a config built from config.toml.sample, so every test exercises the sample too."""
    doc = tomlkit.parse(SAMPLE.read_text(encoding="utf-8"))
    doc["serbero"]["private_key"] = private_key
    doc["serbero"]["db_path"] = db_path
    doc["mostro"]["pubkey"] = mostro_pubkey
    relay_tables = tomlkit.aot()
    for url in relays:
        t = tomlkit.table()
        t["url"] = url
        relay_tables.append(t)
    doc["relays"] = relay_tables
    solver_tables = tomlkit.aot()
    for pubkey, permission in solvers:
        t = tomlkit.table()
        t["pubkey"] = pubkey
        t["permission"] = permission
        solver_tables.append(t)
    if solvers:
        doc["solvers"] = solver_tables
    else:
        del doc["solvers"]
    for section, values in (sections or {}).items():
        if section not in doc:
            doc[section] = tomlkit.table()
        for key, value in values.items():
            doc[section][key] = value
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tomlkit.dumps(doc))
    return path


def run_serbero(config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 90,
                check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m serbero_cli [--config config] args…` as a real subprocess."""
    cmd = [sys.executable, "-m", "serbero_cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    full_env.update(env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=str(ROOT))
    if check and proc.returncode != 0:
        raise AssertionError(f"serbero {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_serbero_tty(config: Path | None, *args: str, env: dict[str, str] | None = None,
                    timeout: float = 90) -> tuple[int, str, str]:
    """Run `serbero` with stdout on a pseudo-terminal (stderr on a pipe): (exit code, stdout, stderr).

    The terminal is 120 columns wide and `TERM=dumb`, so rich draws its tables without colour codes;
    the master side is read while the process runs, and "\r\n" comes back as "\n".
    """
    import fcntl
    import pty
    import select
    import struct
    import tempfile
    import termios

    cmd = [sys.executable, "-m", "serbero_cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    full_env.update({"TERM": "dumb", "COLUMNS": "120", "LINES": "40"}, **(env or {}))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=slave, stderr=err, stdin=subprocess.DEVNULL, env=full_env,
                                cwd=str(ROOT))
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"serbero {' '.join(args)} did not finish within {timeout}s")
                if not select.select([master], [], [], 0.2)[0]:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side of the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    stdout = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return code, stdout, stderr


def run_json(config: Path, *args: str, **kw: Any) -> tuple[int, dict[str, Any], str]:
    proc = run_serbero(config, *args, "--json", **kw)
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"stdout is not one JSON document: {proc.stdout!r}\nstderr: {proc.stderr}") from exc
    return proc.returncode, doc, proc.stderr


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns a truthy value or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def db_rows(db_path: Path, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    conn = sqlite3.connect(str(db_path))
    try:
        cur = conn.execute(sql, params)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def db_checksum(db_path: Path) -> str:
    """sha256 of the main file bytes plus its SQL dump (after a checkpoint with writers closed)."""
    h = hashlib.sha256()
    if not db_path.exists():
        return "missing"
    conn = sqlite3.connect(str(db_path))
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        h.update("\n".join(conn.iterdump()).encode())
    finally:
        conn.close()
    h.update(db_path.read_bytes())
    return h.hexdigest()


def file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""
