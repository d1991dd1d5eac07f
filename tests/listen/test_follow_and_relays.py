"""Relays that connect and then say nothing, relays that drop, and a database held by another
process: `serbero listen` (one-shot and `--follow`) as a subprocess against loopback relays."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from tests.helpers import ROOT, db_rows, run_json, wait_for
from tests.stub_relay import start_stub_relay

FAST_FETCH = {"listen": {"fetch_timeout_seconds": 2}}


class Follower:
    """`serbero listen --follow` in the background, its stderr collected line by line."""

    def __init__(self, config, env: dict[str, str] | None = None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SERBERO_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serbero_cli", "--config", str(config), "listen", "--follow"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 20.0, after: int = 0) -> int:
        """Index of the first line from `after` on that contains `text`."""

        def found():
            if self.proc.poll() is not None and not any(text in ln for ln in self.lines[after:]):
                raise AssertionError(
                    f"listen --follow exited {self.proc.returncode}:\n" + "\n".join(self.lines)
                )
            return next(
                (i + 1 for i, ln in enumerate(self.lines[after:], start=after) if text in ln), None
            )

        return wait_for(found, timeout=timeout, interval=0.05) - 1

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(5)


def test_listen_exits_3_when_the_only_relay_accepts_but_never_answers(make_config, db_path):
    silent = start_stub_relay(silent=True)
    try:
        cfg = make_config(relays=[silent.url], solver_list=[], sections=FAST_FETCH)
        code, doc, err = run_json(cfg, "listen")
        assert code == 3 and doc["exit_code"] == 3
        assert "answered no request within 2s" in doc["error"]
        assert silent.requests >= 1  # it did connect and receive the REQ
        assert db_rows(db_path, "SELECT COUNT(*) AS n FROM disputes") == [{"n": 0}]
        # only the run record (every run that opened the database leaves one, whatever its exit code)
        assert db_rows(db_path, "SELECT key FROM sync_state") == [{"key": "listen_run_record"}]
        code, doc, _ = run_json(cfg, "listen", "--dry-run")
        assert code == 3
    finally:
        silent.shutdown()


def test_a_silent_relay_beside_a_working_one_counts_as_failed(make_config, mostro, relay, db_path):
    silent = start_stub_relay(silent=True)
    try:
        dispute_id = mostro.open_dispute()
        cfg = make_config(relays=[relay.url, silent.url], solver_list=[], sections=FAST_FETCH)
        code, doc, err = run_json(cfg, "listen")
        assert code == 0, err
        assert doc["relays"] == {"connected": 1, "failed": 1}
        assert f"relay={silent.url} connected but answered no request" in err
        assert {r["dispute_id"] for r in db_rows(db_path, "SELECT dispute_id FROM disputes")} == {
            dispute_id
        }
    finally:
        silent.shutdown()


def test_a_relay_that_answers_with_nothing_but_eose_counts_as_connected(make_config, db_path):
    empty = start_stub_relay(events=[])
    try:
        cfg = make_config(relays=[empty.url], solver_list=[], sections=FAST_FETCH)
        code, doc, err = run_json(cfg, "listen")
        assert code == 0, err
        assert doc["relays"] == {"connected": 1, "failed": 0} and doc["events"]["fetched"] == 0
    finally:
        empty.shutdown()


def test_follow_logs_a_warning_when_a_relay_drops_and_info_when_it_is_back(make_config):
    # The stub relay closes every connection when stopped, so the drop reaches the follower at
    # once (a LocalRelay shut down in process let a loaded run wait on it for over 20 s); a new
    # stub on the same port then plays the relay coming back.
    own = start_stub_relay()
    port = int(own.url.rsplit(":", 1)[1])
    cfg = make_config(relays=[own.url], solver_list=[])
    follower = Follower(cfg)
    restarted = None
    try:
        follower.wait_line("following dispute events")
        own.shutdown()
        dropped = follower.wait_line(f"relay={own.url} dropped")
        assert " WARNING " in follower.lines[dropped]
        restarted = start_stub_relay(port=port)
        # nostr-sdk retries a dropped relay after 10 s; when that attempt fails (a loaded machine may
        # not have the relay listening again yet) the next one may wait up to 60 s.
        back = follower.wait_line(f"relay={own.url} is back", timeout=90, after=dropped)
        assert " INFO " in follower.lines[back]
        assert follower.stop() == 0
    finally:
        follower.stop()
        if restarted is not None:
            restarted.shutdown()


def test_follow_survives_a_database_locked_past_the_busy_timeout(
    make_config, mostro, solvers, db_path
):
    # A short busy timeout keeps the test fast; the lock is held for several of them.
    cfg = make_config(sections={"serbero": {"busy_timeout_seconds": 0.2}})
    follower = Follower(cfg)
    holder = None
    try:
        follower.wait_line("following dispute events")
        holder = sqlite3.connect(db_path, isolation_level=None, timeout=10)
        holder.execute("BEGIN IMMEDIATE")
        dispute_id = mostro.open_dispute()
        first = follower.wait_line("database is locked by another process")
        assert "retrying in 1s" in follower.lines[first]
        second = follower.wait_line("database is locked by another process", after=first + 1)
        assert "retrying in 2s" in follower.lines[second]
        assert follower.proc.poll() is None
        assert all(s.inbox() == [] for s in solvers)
        holder.execute("ROLLBACK")
        holder.close()
        holder = None
        follower.wait_line("database is writable again", after=second)
        wait_for(lambda: all(len(s.inbox()) == 1 for s in solvers), timeout=10)
        rows = db_rows(db_path, "SELECT dispute_id, lifecycle_state FROM disputes")
        assert rows == [{"dispute_id": dispute_id, "lifecycle_state": "notified"}]
        assert follower.stop() == 0
        assert "Traceback" not in "\n".join(follower.lines)
    finally:
        if holder is not None:
            holder.close()
        follower.stop()


def test_one_shot_listen_exits_1_without_a_traceback_on_a_locked_database(
    make_config, mostro, db_path
):
    cfg = make_config(solver_list=[], sections={"serbero": {"busy_timeout_seconds": 0.2}})
    assert run_json(cfg, "listen")[0] == 0
    mostro.open_dispute()
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        code, doc, err = run_json(cfg, "listen")
        assert code == 1 and "database is locked" in doc["error"] + err
        assert "Traceback" not in err and time.monotonic() - started < 30
    finally:
        holder.execute("ROLLBACK")
        holder.close()
