"""`serbero init`: write a commented config with a fresh Serbero key (docs/operations.md#commands).

The text is `render_sample()` edited with tomlkit, so every comment of the sample survives and
the file is the same shape the loader and the tests already know. The file is created 0600 in
one step (`O_CREAT | O_EXCL`), so there is no moment when another user could read the key, and
an existing file is replaced only with `force`, through a 0600 temp file and `os.replace`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serbero_cli.config import parse_config, render_sample
from serbero_cli.errors import ConfigError, UsageError
from serbero_cli.keytext import (
    KeyFormatError,
    Secret,
    SecretKeyGiven,
    generate_secret,
    npub,
    nsec,
    parse_public_key,
    public_key_of,
)

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

PERMISSIONS = ("read", "write")
_RELAY_URL = re.compile(r"^wss?://[^\s/]+\S*$")
_HEADER = (
    "# Serbero configuration, written by `serbero init`. Every key is listed with its default.\n"
    "# Keys marked (required) must be set. Mediation and escalation are off by default.\n"
    "# Reference: README.md (Configuration) and `man serbero`.\n"
)
KEY_FROM_ENV_COMMENT = (
    "private_key is not stored in this file: set SERBERO_PRIVATE_KEY "
    "(for example in a systemd EnvironmentFile, mode 0600), SERBERO_PRIVATE_KEY_FILE, "
    "or the serbero-private-key systemd credential"
)


@dataclass(frozen=True)
class InitResult:
    """What `run_init` wrote. `env_secret` is set only with key_to_env: the caller shows it once."""

    path: Path
    public_key: str  # lowercase hex
    npub: str
    registration: str  # "npub1…:read", the exact string for admin-add-solver
    replaced: bool  # an existing file was replaced (--force)
    env_secret: Secret | None
    unfilled: tuple[str, ...]  # required keys still holding the sample's placeholder
    env_file: Path | None = None  # where SERBERO_PRIVATE_KEY was written (--env-file), else None
    db_path: str | None = None  # the db_path written into the file (--db-path), else None


def registration_string(pubkey_hex: str) -> str:
    """The `npub1…:read` text the Mostro operator registers; a bare npub would register read-write."""
    return f"{npub(pubkey_hex)}:read"


def parse_solver_option(value: str) -> tuple[str, str]:
    """`PUBKEY[:read|:write]` -> (hex, permission); raise UsageError on a bad key or suffix.

    The key may itself be `nostr:npub1…`, so only a trailing `:read` / `:write` is a permission.
    """
    text, permission, bad_suffix = _split_solver(value)
    try:
        key = parse_public_key(text)
    except SecretKeyGiven as exc:  # never echo it: the whole option value is the secret
        raise UsageError(f"--solver: {exc}") from None
    except KeyFormatError as exc:
        if bad_suffix is not None:
            raise UsageError(
                f"--solver {_shown(value)}: the permission must be read or write, "
                f"got {bad_suffix!r}"
            ) from None
        raise UsageError(f"--solver {_shown(value)}: not a valid public key ({exc})") from None
    return key, permission


def _shown(value: str) -> str:
    """An option value fit to echo: one line, at most 80 characters."""
    flat = " ".join(value.split())
    return flat if len(flat) <= 80 else flat[:77] + "…"


def written_form(text: str, pubkey_hex: str) -> str:
    """How a key the operator typed goes into the file: an npub stays an npub (without a `nostr:`
    prefix), anything else becomes lowercase hex. `text` must already have parsed to `pubkey_hex`."""
    bare = text.strip()
    if bare.lower().startswith("nostr:"):
        bare = bare[len("nostr:") :]
    return bare.lower() if bare.lower().startswith("npub1") else pubkey_hex


def _split_solver(value: str) -> tuple[str, str, str | None]:
    """(key text, permission, an unknown suffix or None). `nostr:npub1…` is a key, not a suffix."""
    text = value.strip()
    head, sep, tail = text.rpartition(":")
    if sep and tail.lower() in PERMISSIONS:
        return head, tail.lower(), None
    if sep and head and head.lower() != "nostr":
        return text, "read", tail
    return text, "read", None


def run_init(
    path: Path,
    *,
    force: bool = False,
    key_to_env: bool = False,
    mostro_pubkey: str | None = None,
    relays: Sequence[str] = (),
    solvers: Sequence[str] = (),
    secret: Secret | None = None,
    db_path: str | None = None,
    env_file: Path | None = None,
) -> InitResult:
    """Validate the options, build the config text and write it to `path` with mode 0600.

    `db_path` goes into the file as given (relative paths count from the config's folder, which
    the loader applies) and its folder is created (0700) when missing. With `env_file`, the key
    goes to that file as `SERBERO_PRIVATE_KEY=nsec1…` (mode 0600) instead of into the config.

    Raise UsageError (exit 2) for a bad option, an existing file without `force`, or a path that
    cannot be written.
    """
    mostro_key, relay_urls, solver_list = _validate_options(mostro_pubkey, relays, solvers)
    db_text = _validate_db_path(db_path)
    secret = secret or generate_secret()
    key_elsewhere = key_to_env or env_file is not None
    text, unfilled = build_config_text(
        secret=None if key_elsewhere else secret,
        mostro_pubkey=mostro_key,
        relays=relay_urls,
        solvers=solver_list,
        db_path=db_text,
    )
    for target in (path, env_file):
        if target is not None and not force and (target.exists() or target.is_symlink()):
            raise UsageError(f"{target} already exists; pass --force to replace it")
    if db_text is not None:
        _make_db_folder(path, db_text)
    if not unfilled:
        _check_loads(text, path, secret)
    existed = path.exists() or path.is_symlink()
    if env_file is not None:
        env_existed = env_file.exists()
        write_private_file(env_file, f"SERBERO_PRIVATE_KEY={nsec(secret)}\n", force=force)
    try:
        write_private_file(path, text, force=force)
    except UsageError:
        if env_file is not None and not env_existed:
            env_file.unlink(missing_ok=True)  # a key nobody's config can use is no use
        raise
    public_key = public_key_of(secret)
    return InitResult(
        path=path,
        public_key=public_key,
        npub=npub(public_key),
        registration=registration_string(public_key),
        replaced=existed,
        env_secret=secret if key_to_env and env_file is None else None,
        unfilled=unfilled,
        env_file=env_file,
        db_path=db_text,
    )


def build_config_text(
    *,
    secret: Secret | None,
    mostro_pubkey: str | None,
    relays: Sequence[str],
    solvers: Sequence[tuple[str, str]],
    db_path: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The sample with the given values filled in. Return (text, required keys left as placeholders).

    `secret=None` leaves the key out of the file with a comment saying where it comes from. Keys
    are written as given (npub or hex): see `written_form`.
    """
    import tomlkit

    sample = render_sample()
    body = sample[sample.index("\n[") + 1 :]  # our own header replaces the "generated from" lines
    doc = tomlkit.parse(_HEADER + "\n" + body)
    unfilled: list[str] = []
    if secret is None:
        _replace_key_with_comment(doc, "serbero", "private_key", KEY_FROM_ENV_COMMENT)
    else:
        doc["serbero"]["private_key"] = nsec(secret)
    if db_path is not None:
        doc["serbero"]["db_path"] = db_path
    if mostro_pubkey:
        doc["mostro"]["pubkey"] = mostro_pubkey
    else:
        unfilled.append("[mostro] pubkey")
    if relays:
        _fill_array(doc, "relays", [{"url": url} for url in relays])
    if solvers:
        _fill_array(doc, "solvers", [{"pubkey": pk, "permission": perm} for pk, perm in solvers])
    else:
        unfilled.append("[[solvers]] pubkey")
    return tomlkit.dumps(doc), tuple(unfilled)


def write_private_file(path: Path, text: str, *, force: bool) -> None:
    """Create `path` with mode 0600 and `text`; with `force`, atomically replace an existing file.

    Raise UsageError when the file exists and `force` is false, or when it cannot be written.
    """
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if force:
            _replace_atomically(path, data)
            return
        # Born 0600 (a chmod after writing leaves a readable window), and O_EXCL closes the
        # check-then-write race.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; pass --force to replace it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc.__class__.__name__}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc.__class__.__name__}") from None


def _replace_atomically(path: Path, data: bytes) -> None:
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory")
    # mkstemp creates the file 0600 with O_EXCL in the target folder, so os.replace stays atomic.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _validate_options(
    mostro_pubkey: str | None, relays: Sequence[str], solvers: Sequence[str]
) -> tuple[str | None, list[str], list[tuple[str, str]]]:
    problems: list[str] = []
    mostro_key = None
    if mostro_pubkey is not None:
        try:
            mostro_key = written_form(mostro_pubkey, parse_public_key(mostro_pubkey))
        except SecretKeyGiven as exc:
            problems.append(f"--mostro-pubkey: {exc}")
        except KeyFormatError as exc:
            problems.append(f"--mostro-pubkey: not a valid public key ({exc})")
    urls = []
    for url in relays:
        if not _RELAY_URL.match(url.strip()):
            problems.append(f"--relay {url}: must start with ws:// or wss://")
        urls.append(url.strip())
    parsed: list[tuple[str, str]] = []
    keys: list[str] = []
    for value in solvers:
        try:
            pubkey_hex, permission = parse_solver_option(value)
        except UsageError as exc:
            problems.append(str(exc))
            continue
        keys.append(pubkey_hex)
        parsed.append((written_form(_split_solver(value)[0], pubkey_hex), permission))
    if len(set(keys)) != len(keys):
        problems.append("--solver: the same key is given twice")
    if len(set(urls)) != len(urls):
        problems.append("--relay: the same URL is given twice")
    if problems:
        raise UsageError("; ".join(problems))
    return mostro_key, urls, parsed


def _validate_db_path(db_path: str | None) -> str | None:
    if db_path is None:
        return None
    text = db_path.strip()
    if not text or text.endswith("/") or Path(text).name in ("", ".", ".."):
        raise UsageError(
            f"--db-path {db_path!r}: give the path of a file, e.g. /var/lib/serbero/serbero.db"
        )
    return text


def _make_db_folder(config_path: Path, db_text: str) -> None:
    """Create the database's folder (0700): the one place Serbero creates folders for the database."""
    target = Path(db_text).expanduser()
    if not target.is_absolute():
        target = config_path.resolve().parent / target
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--db-path: cannot create {target.parent}: {exc.strerror or exc.__class__.__name__}"
        ) from None


def _check_loads(text: str, path: Path, secret: Secret) -> None:
    """A complete config must pass the one loader before it is written (never a broken file)."""
    env = {"SERBERO_PRIVATE_KEY": secret.reveal()}
    try:
        parse_config(text, path, env)
    except ConfigError as exc:
        raise UsageError("the options give an invalid config: " + "; ".join(exc.problems)) from None


def _replace_key_with_comment(doc: TOMLDocument, section: str, key: str, comment: str) -> None:
    import tomlkit

    old = doc[section]
    new = tomlkit.table()
    for item_key, item in old.value.body:
        if item_key is None:
            new.add(item)
        elif item_key.key == key:
            new.add(tomlkit.comment(comment))
        else:
            new.add(item_key, item)
    doc[section] = new


def _fill_array(doc: TOMLDocument, section: str, rows: list[dict[str, str]]) -> None:
    """Set the sample's first [[section]] in place (its comments stay) and append the others."""
    import tomlkit

    array = doc[section]
    for name, value in rows[0].items():
        array[0][name] = value
    for row in rows[1:]:
        table = tomlkit.table()
        for name, value in row.items():
            table[name] = value
        table.add(tomlkit.nl())
        array.append(table)
