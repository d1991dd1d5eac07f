"""Opening the shared SQLite file: writers migrate, readers open `mode=ro` and never write.

`open_db()` builds the sqlite3 connection itself and hands it to sqlite-utils' `Database`
lazily (`Store.db`), because importing sqlite-utils costs ~100 ms and the cron hot path needs only
the raw connection. `immediate()` is the `BEGIN IMMEDIATE` block cross-phase decisions need
(sqlite-utils' `atomic()` issues a deferred BEGIN).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serbero_cli.errors import DatabaseError, DatabaseMissing

# For type hints outside store/: code there receives connections but never opens or queries one itself.
Connection = sqlite3.Connection


class Store:
    """An open database: `conn` for SQL, `db` for sqlite-utils helpers, `readonly` to tell them apart."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool):
        self.conn = conn
        self.path = path
        self.readonly = readonly
        self._db = None

    @property
    def db(self):
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

    def query_one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

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
        return self.scalar("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)) == 1


def open_db(path: Path | str, *, readonly: bool = False, migrate: bool = True) -> Store:
    """Open `path`. Writers: WAL, busy_timeout, foreign keys, pending migrations applied.

    Readers (`readonly=True`): `mode=ro` URI, no migration; raise DatabaseMissing when the file
    does not exist. Raise DatabaseError when the schema is newer than this code.
    """
    from serbero_cli.store import migrations

    path = Path(path)
    if readonly:
        if not path.exists():
            raise DatabaseMissing(f"database not found: {path}")
        uri = "file:" + _uri_path(path) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA query_only=ON")
            version = migrations.current_version(conn)
        except sqlite3.DatabaseError as exc:
            raise DatabaseMissing(f"cannot read database {path}: {exc}") from None
        if version > len(migrations.MIGRATIONS):
            conn.close()
            raise DatabaseError(
                f"database {path} has schema version {version}, newer than this serbero "
                f"({len(migrations.MIGRATIONS)}); upgrade serbero"
            )
        return Store(conn, path, readonly=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from None
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


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))
