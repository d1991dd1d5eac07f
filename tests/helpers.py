"""Shared test helpers that are not fixtures: config building, subprocess runs, polling, checksums."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
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


@functools.cache
def _parsed_sample() -> bytes:
    """config.toml.sample parsed by tomlkit, pickled: unpickling a fresh copy takes about a tenth
    of parsing the commented sample again, and most tests write a config."""
    return pickle.dumps(tomlkit.parse(SAMPLE.read_text(encoding="utf-8")))


def write_config(
    path: Path,
    *,
    private_key: str,
    mostro_pubkey: str,
    relays: list[str],
    solvers: list[tuple[str, ...]],
    db_path: str = "serbero.db",
    sections: dict[str, dict[str, Any]] | None = None,
    envelopes: list[str] | None = None,
    observers: list[tuple[str, list[str] | None]] | None = None,
) -> Path:
    """Write a config built from config.toml.sample, so every test exercises the sample too.

    `envelopes` is `[delivery] envelopes`. It defaults to NIP-17 only: the suites written before
    the `mostro` envelope existed count one message per solver and read it with a NIP-17 client,
    and keep doing exactly that. The envelope tests (tests/ecosystem/) pass both, or `mostro`.
    A solver may be (pubkey, permission, envelopes) to override them for that solver; an observer
    is (pubkey, envelopes or None for the default).
    """
    doc = pickle.loads(_parsed_sample())
    doc["delivery"]["envelopes"] = list(envelopes) if envelopes is not None else ["nip17"]
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
    for pubkey, permission, *own in solvers:
        t = tomlkit.table()
        t["pubkey"] = pubkey
        t["permission"] = permission
        if own and own[0] is not None:
            t["envelopes"] = list(own[0])
        solver_tables.append(t)
    if observers:
        observer_tables = tomlkit.aot()
        for pubkey, observer_envelopes in observers:
            t = tomlkit.table()
            t["pubkey"] = pubkey
            if observer_envelopes is not None:
                t["envelopes"] = list(observer_envelopes)
            observer_tables.append(t)
        doc["observers"] = observer_tables
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


def run_serbero(
    config: Path | None,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 90,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run `python -m serbero_cli [--config config] args…` as a real subprocess."""
    cmd = [sys.executable, "-m", "serbero_cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
    full_env.update(env or {})
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=str(ROOT)
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"serbero {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def invoke(
    config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run `serbero [--config config] args…` in this process through Typer's CliRunner.

    The same command code, option parsing, exit-code handling and rendering as `run_serbero`, minus
    the fresh interpreter (about half a second of CPU each): for tests whose point is not the process
    boundary. Output goes to a pipe as far as the command can tell. SERBERO_* variables of the outer
    environment are hidden, as `run_serbero` hides them, and the root logger is put back afterwards
    (every command replaces its handlers). `timeout` is accepted for symmetry and ignored.
    """
    import logging

    from typer.testing import CliRunner

    from serbero_cli.cli.app import app

    cmd = (["--config", str(config)] if config is not None else []) + list(args)
    full_env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SERBERO_")}
    full_env.update(env or {})
    loggers = [logging.getLogger(name) for name in ("", "httpx", "httpcore")]
    saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    try:
        result = CliRunner().invoke(app, cmd, env=full_env, catch_exceptions=False)
    finally:
        for lg, handlers, level in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
    return subprocess.CompletedProcess(
        ["serbero", *cmd], result.exit_code, result.stdout, result.stderr
    )


def invoke_json(config: Path, *args: str, **kw: Any) -> tuple[int, dict[str, Any], str]:
    """`invoke` with --json: (exit code, the one JSON document, stderr)."""
    proc = invoke(config, *args, "--json", **kw)
    try:
        doc = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(
            f"stdout is not one JSON document: {proc.stdout!r}\nstderr: {proc.stderr}"
        ) from exc
    return proc.returncode, doc, proc.stderr


def run_serbero_tty(
    config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> tuple[int, str, str]:
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
        proc = subprocess.Popen(
            cmd, stdout=slave, stderr=err, stdin=subprocess.DEVNULL, env=full_env, cwd=str(ROOT)
        )
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(
                        f"serbero {' '.join(args)} did not finish within {timeout}s"
                    )
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
        raise AssertionError(
            f"stdout is not one JSON document: {proc.stdout!r}\nstderr: {proc.stderr}"
        ) from exc
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


def content_checksum_without_run_records(db_path: Path) -> str:
    """sha256 of the SQL dump minus the `*_run_record` rows of `sync_state`, which every run that
    opened the database writes whatever its exit code (a run that changed nothing else keeps this)."""
    conn = sqlite3.connect(str(db_path))
    try:
        lines = [
            line
            for line in conn.iterdump()
            if not (line.startswith('INSERT INTO "sync_state"') and "_run_record'" in line)
        ]
    finally:
        conn.close()
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def run_record(db_path: Path, phase_key: str) -> dict[str, Any] | None:
    """The stored run record of `listen`, `mediate_once` or `dispatch_once`, or None."""
    rows = db_rows(
        db_path, "SELECT value FROM sync_state WHERE key = ?", (f"{phase_key}_run_record",)
    )
    return json.loads(rows[0]["value"]) if rows else None


def file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def marker_of(text: str) -> str | None:
    """A structured message's version marker: its first line that looks like `name/vN` (how tools
    find it below the `Dispute <id> · <subject>` line)."""
    import re

    return next((line for line in text.split("\n") if re.fullmatch(r"[a-z_]+/v[0-9]+", line)), None)


def body_after_marker(text: str) -> list[str]:
    """The lines from the version marker on."""
    lines = text.split("\n")
    marker = marker_of(text)
    return lines[lines.index(marker) :] if marker else lines
