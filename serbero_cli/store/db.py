"""Opening the shared SQLite file: writers migrate, readers open `mode=ro` and never write.

`open_db()` builds the sqlite3 connection itself and hands it to sqlite-utils' `Database`
lazily (`Store.db`), because importing sqlite-utils costs ~100 ms and the cron hot path needs only
the raw connection. `immediate()` is the `BEGIN IMMEDIATE` block cross-phase decisions need
(sqlite-utils' `atomic()` issues a deferred BEGIN).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serbero_cli.errors import (
    DatabaseError,
    DatabaseFolderMissing,
    DatabaseMissing,
    DatabaseUnreadable,
)

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 5000

# For type hints outside store/: code there receives connections but never opens or queries one itself.
Connection = sqlite3.Connection


class Store:
    """An open database: `conn` for SQL, `db` for sqlite-utils helpers, `readonly` to tell them apart."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool):
        self.conn = conn
        self.path = path
        self.readonly = readonly
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            from sqlite_utils import Database

            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Run a SELECT and return rows as dicts."""
        cur = self.conn.execute(sql, params)
        cols = [c[0] for c in cur.description or ()]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    @contextlib.contextmanager
    def immediate(self) -> Iterator[sqlite3.Connection]:
        """A `BEGIN IMMEDIATE` transaction: commit on success, roll back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def table_exists(self, name: str) -> bool:
        return (
            self.scalar("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)) == 1
        )


def open_db(
    path: Path | str,
    *,
    readonly: bool = False,
    migrate: bool = True,
    busy_timeout_seconds: float = BUSY_TIMEOUT_MS / 1000,
) -> Store:
    """Open `path`. Writers: WAL, busy_timeout, foreign keys, pending migrations applied.

    Writers create a missing file with mode 0600 (SQLite gives its -wal and -shm files the same
    mode) but never a missing folder: raise DatabaseFolderMissing (exit 2). Readers
    (`readonly=True`): `mode=ro` URI, no migration; raise DatabaseMissing only when the file does
    not exist. Raise DatabaseUnreadable (exit 1) for a file that exists but cannot be read, and
    DatabaseTooNew (exit 2) when the schema is newer than this code.
    """
    from serbero_cli.store import migrations

    path = Path(path)
    busy_ms = max(1, int(busy_timeout_seconds * 1000))
    if readonly:
        if not path.exists():
            if not path.parent.is_dir():
                raise DatabaseFolderMissing(path)
            raise DatabaseMissing(f"database not found: {path}")
        uri = "file:" + _uri_path(path) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            conn.execute("PRAGMA query_only=ON")
            version = migrations.current_version(conn)
        except sqlite3.DatabaseError as exc:
            raise DatabaseUnreadable(f"cannot read database {path}: {exc}") from None
        if version > len(migrations.MIGRATIONS):
            conn.close()
            raise migrations.too_new(path, version)
        return Store(conn, path, readonly=True)
    _create_private(path)
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        raise DatabaseUnreadable(f"cannot open database {path}: {exc}") from None
    store = Store(conn, path, readonly=False)
    if migrate:
        try:
            migrations.apply(store)
        except DatabaseError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise DatabaseError(f"cannot migrate database {path}: {exc}") from None
    return store


def quick_check(store: Store, max_lines: int = 5) -> list[str]:
    """SQLite's `PRAGMA quick_check`: the problems it finds (at most `max_lines`), [] when the file is sound."""
    rows = [
        str(row[0])
        for row in store.conn.execute(f"PRAGMA quick_check({int(max_lines)})").fetchall()
    ]
    if rows == ["ok"]:
        return []
    lines = [
        line
        for row in rows
        for line in row.splitlines()
        if line and not line.startswith("*** in database")
    ]
    return lines[:max_lines]


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked/busy": another process held the lock past busy_timeout."""
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower()
        for word in ("database is locked", "database is busy", "database table is locked")
    )


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 whatever the umask; an existing file is left alone."""
    if not path.parent.is_dir():
        raise DatabaseFolderMissing(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise DatabaseUnreadable(
            f"cannot create database {path}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    os.close(fd)


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))
