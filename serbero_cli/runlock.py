"""Per-subcommand run locks: `flock(LOCK_EX | LOCK_NB)` on `<db_path>.<name>.lock` (docs/architecture.md#locks).

The file is created with mode 0600, holds the PID of the owner, and is never deleted: deleting
it would let a second run lock a fresh inode while the first still holds the old one. The kernel
releases the lock when the process dies, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from serbero_cli.errors import DatabaseFolderMissing, LockHeld


class RunLock:
    """Hold the lock for a `with` block; raise LockHeld (exit 75) if another process has it."""

    def __init__(self, db_path: Path, name: str, command: str):
        self.db_path = Path(db_path)
        self.path = Path(f"{db_path}.{name}.lock")
        self.command = command
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if not self.path.parent.is_dir():
            raise DatabaseFolderMissing(self.db_path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:  # a lock file left by an older serbero may be looser; ours are private
            os.fchmod(fd, 0o600)
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LockHeld(self.command, pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def lock_holder(db_path: Path, name: str) -> int | None:
    """PID of the process holding `<db_path>.<name>.lock`, or None if it is free (for doctor)."""
    path = Path(f"{db_path}.{name}.lock")
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_held(db_path: Path, name: str) -> bool:
    """True if a running process holds `<db_path>.<name>.lock` (for audit and status).

    Read-only: the file is never created. When the PID written in it belongs to no live process
    the lock is free and the file is not locked at all, because even a brief shared lock could make
    a phase starting at that instant exit 75; only a live owner is confirmed with a non-blocking
    flock. A file that cannot be read counts as free.
    """
    path = Path(f"{db_path}.{name}.lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        pid = _read_pid(fd)
        if pid is not None and not _alive(pid):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
