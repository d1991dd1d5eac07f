"""A consistent copy of the database while the phases keep running (SQLite's online backup API).

The copy is read inside one read transaction of a `mode=ro` connection, so it is the database as
of one commit: in WAL mode that reader never blocks a writer and no writer blocks it. The pages go
to a temp file born 0600 in the target's folder; the copy is switched to a rollback journal (one
self-contained file, no -wal beside it), checked with `PRAGMA quick_check`, synced, and only then
given its name: `os.link` when the name must be new (so a file that appeared meanwhile is never
overwritten), `os.replace` with `force`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from serbero_cli.errors import DatabaseError, DatabaseMissing, UsageError
from serbero_cli.store.db import _uri_path

QUICK_CHECK_LINES = 5


@dataclass(frozen=True)
class BackupResult:
    """What `backup_database` wrote."""

    path: Path
    size_bytes: int
    pages: int
    check: str  # "ok", or the first lines `PRAGMA quick_check` reported, joined with "; "
    seconds: float  # wall time of copy plus check
    replaced: bool  # an existing file was replaced (force)

    @property
    def ok(self) -> bool:
        return self.check == "ok"

    def to_dict(self) -> dict[str, object]:
        return {
            "report": "backup/v1",
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "pages": self.pages,
            "quick_check": self.check,
            "seconds": round(self.seconds, 3),
            "replaced": self.replaced,
            "exit_code": 0 if self.ok else 4,
        }


def backup_database(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the database at `source` to `target` (mode 0600) and check the copy.

    Raise UsageError when `target` exists without `force`, is the source itself, or its folder is
    missing; DatabaseMissing when `source` does not exist; DatabaseError when SQLite fails.
    """
    started = time.monotonic()
    target = Path(target)
    _check_target(Path(source), target, force)
    replaced = target.exists()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        pages, check = _copy_and_check(Path(source), tmp)
        _fsync(tmp)
        if force:
            os.replace(tmp, target)
        else:
            _link_new(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(
        target, target.stat().st_size, pages, check, time.monotonic() - started, replaced
    )


def _check_target(source: Path, target: Path, force: bool) -> None:
    if not source.exists():
        raise DatabaseMissing(f"database not found: {source}")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such folder (backup creates no folders)")
    if target.is_dir():
        raise UsageError(f"{target} is a folder; give a file name")
    if target.exists() and target.resolve() == source.resolve():
        raise UsageError(f"{target} is the database itself; give another path")
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to replace it")


def _copy_and_check(source: Path, tmp: Path) -> tuple[int, str]:
    try:
        src = sqlite3.connect("file:" + _uri_path(source) + "?mode=ro", uri=True, timeout=5.0)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot open database {source}: {exc}") from None
    try:
        src.execute("PRAGMA busy_timeout=5000")
        dst = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            # pages=-1: every page in one step, inside one read transaction, so the copy is one commit.
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            try:
                rows = [
                    r[0] for r in dst.execute("PRAGMA quick_check").fetchmany(QUICK_CHECK_LINES)
                ]
            except sqlite3.DatabaseError as exc:  # damage bad enough that the check itself stops
                rows = [str(exc)]
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"backup of {source} failed: {exc}") from None
    finally:
        src.close()
    return pages, "ok" if rows == ["ok"] else "; ".join(rows)


def _link_new(tmp: Path, target: Path) -> None:
    """Give the copy its name only if that name is still free."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise UsageError(f"{target} already exists; pass --force to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: check, then rename (a narrow race, on such systems only).
        if target.exists():
            raise UsageError(f"{target} already exists; pass --force to replace it") from None
        os.replace(tmp, target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
