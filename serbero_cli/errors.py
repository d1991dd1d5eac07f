"""Exception types that end a run early, and the exit codes every subcommand shares
(docs/operations.md#exit-codes)."""

from __future__ import annotations

import os
from enum import IntEnum


class ExitCode(IntEnum):
    """Stable exit codes; cron and systemd read them. The one place their meaning is written: the
    man pages and the README table are generated from `meaning` (docs/operations.md#exit-codes)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NO_RELAY = 3
    PARTIAL = 4
    LOCKED = 75

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "Success.",
    ExitCode.INTERNAL: "Unexpected internal error (a traceback only with --log-level debug).",
    ExitCode.USAGE: "Usage or configuration error; every config problem is listed as file:line: key: reason.",
    ExitCode.NO_RELAY: "No relay could be reached (or none answered).",
    ExitCode.PARTIAL: "The run finished but some work failed (it is retried next run), or a check found a problem.",
    ExitCode.LOCKED: "Another run of the same subcommand holds its lock file (systemd: SuccessExitStatus=75).",
}

# When several codes apply, the first in this order wins.
EXIT_PRECEDENCE = (
    ExitCode.USAGE,
    ExitCode.LOCKED,
    ExitCode.INTERNAL,
    ExitCode.NO_RELAY,
    ExitCode.PARTIAL,
    ExitCode.OK,
)
PRECEDENCE_TEXT = (
    "When several apply, the first of " + ", ".join(str(int(c)) for c in EXIT_PRECEDENCE) + " wins."
)


def worst_exit_code(*codes: int) -> int:
    """Return the code that wins among `codes` by the shared precedence."""
    for code in EXIT_PRECEDENCE:
        if code in codes:
            return int(code)
    return int(ExitCode.OK)


class SerberoError(Exception):
    """Base of every error that ends a run with a known exit code."""

    exit_code: int = ExitCode.INTERNAL


class ConfigError(SerberoError):
    """The configuration is unreadable or invalid; `problems` lists every finding."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(SerberoError):
    """A command-line argument is wrong."""

    exit_code = ExitCode.USAGE


class LockHeld(SerberoError):
    """Another run of the same subcommand holds the lock file."""

    exit_code = ExitCode.LOCKED

    def __init__(self, command: str, pid: int | None):
        self.command = command
        self.pid = pid
        super().__init__(f"{command}: lock held by pid {pid if pid is not None else 'unknown'}")


class NoRelayReachable(SerberoError):
    """No configured relay accepted a connection."""

    exit_code = ExitCode.NO_RELAY

    def __init__(self, detail: str = ""):
        super().__init__("no relay reachable" + (f": {detail}" if detail else ""))


class DatabaseError(SerberoError):
    """The database cannot be opened, is too new, or cannot be migrated."""

    exit_code = ExitCode.INTERNAL


class DatabaseUnreadable(DatabaseError):
    """The database file exists but cannot be read: corrupt, not SQLite, or not permitted."""


class DatabaseTooNew(DatabaseError):
    """The database was written by a newer serbero; this one must neither read nor migrate it."""

    exit_code = ExitCode.USAGE


class DatabaseFolderMissing(DatabaseError):
    """`db_path` names a folder that does not exist: a typo must not start a fresh database."""

    exit_code = ExitCode.USAGE

    def __init__(self, db_path: str | os.PathLike[str]):
        folder = os.path.dirname(os.fspath(db_path)) or "."
        super().__init__(
            f"database folder {folder} does not exist ([serbero] db_path = {db_path}); "
            "create it or fix db_path (only `serbero init` creates folders)"
        )


class DatabaseMissing(SerberoError):
    """A read-only command found no database, or one without our schema."""

    exit_code = ExitCode.USAGE
