"""Doctor checks on the database file itself: its folder, its mode, SQLite's side files, its pages.

The database holds solver keys, dispute ids and party messages, so it must be private (0600);
serbero creates it that way, but a copy, a restore or an older version may not have. A `-wal` or
`-shm` file left by another user (a run as root, say) blocks every later run; doctor names it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from serbero_cli.setup.checks import FAIL, OK, Check

if TYPE_CHECKING:
    from serbero_cli.store.db import Store

SIDE_FILES = ("-wal", "-shm")
QUICK_CHECK_LINES = 5


def check_folder(db_path: Path) -> Check:
    """The folder must exist (only `serbero init` creates folders) and be writable."""
    folder = db_path.parent
    if not folder.is_dir():
        return Check(
            "database folder",
            FAIL,
            f"{folder} does not exist",
            f"create it (mkdir -m 700 {folder}) or fix [serbero] db_path; runs exit 2 until then",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            "database folder",
            FAIL,
            f"{folder} is not writable by this user",
            "SQLite needs the folder writable for the -wal/-shm files and the lock files",
        )
    if db_path.exists() and not os.access(db_path, os.W_OK):
        return Check(
            "database folder",
            FAIL,
            f"{db_path} is not writable by this user",
            "run serbero as the owner of the database",
        )
    return Check("database folder", OK, f"{folder} is writable")


def check_file_modes(db_path: Path) -> list[Check]:
    """The database and its side files: private (no group/other bits), writable by this user."""
    if not db_path.exists():
        return []
    files = [db_path] + [Path(f"{db_path}{suffix}") for suffix in SIDE_FILES]
    present = [(p, p.stat().st_mode) for p in files if p.exists()]
    loose = [(p, mode) for p, mode in present if mode & (stat.S_IRWXG | stat.S_IRWXO)]
    rows = []
    if loose:
        shown = ", ".join(f"{p.name} {stat.S_IMODE(mode):04o}" for p, mode in loose)
        rows.append(
            Check(
                "database mode",
                FAIL,
                f"readable by group or others: {shown}",
                "chmod 600 " + " ".join(str(p) for p, _ in loose),
            )
        )
    else:
        rows.append(
            Check("database mode", OK, f"{db_path.name} mode {stat.S_IMODE(present[0][1]):04o}")
        )
    for path, _ in present[1:]:
        if not os.access(path, os.W_OK):
            rows.append(
                Check(
                    "database files",
                    FAIL,
                    f"{path} is not writable by this user (left by another user?)",
                    f"stop every serbero run, then chown it to the database owner or remove {path}",
                )
            )
    return rows


def check_integrity(store: Store) -> Check:
    """`PRAGMA quick_check` on an open (read-only) store."""
    from serbero_cli.store.db import quick_check

    try:
        problems = quick_check(store, QUICK_CHECK_LINES)
    except Exception as exc:  # noqa: BLE001 - a broken file is a finding, not a crash
        return Check("database integrity", FAIL, f"quick_check failed: {exc}", _RESTORE_HINT)
    if not problems:
        return Check("database integrity", OK, "quick_check ok")
    return Check("database integrity", FAIL, "quick_check: " + "; ".join(problems), _RESTORE_HINT)


_RESTORE_HINT = (
    "the file is damaged: stop every serbero run, keep a copy, then restore a backup "
    "(or `sqlite3 serbero.db .recover`)"
)
