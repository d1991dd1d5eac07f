"""Where a secret comes from: the variable, a file it names, a systemd credential, or the config.

For a secret whose variable is `NAME` (`SERBERO_PRIVATE_KEY`, or the one `[reasoning] api_key_env`
names), the first of these that is set wins:

1. `NAME` itself (blank counts as unset);
2. `NAME_FILE`: the path of a file whose content, trimmed, is the secret (Docker and Kubernetes
   secrets, a root-owned 0600 file);
3. the systemd credential `$CREDENTIALS_DIRECTORY/<credential>` (`LoadCredential=` in the unit:
   the service reads it without the file being readable by the serbero user otherwise). A blank
   credential counts as unset: the units pair each `LoadCredential=` with a blank
   `SetCredential=` (one newline), which systemd uses when the file to load is missing;
4. the config file (for the private key only; the API key never lives there).

A source that is set but unusable (unreadable or empty file) is an error naming the variable or
credential and the path, never a silent fall-through to the next source, and never the content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PRIVATE_KEY_CREDENTIAL = "serbero-private-key"
API_KEY_CREDENTIAL = "serbero-reasoning-api-key"
# A secret is a line or two; a bigger file is a wrong path, and reading it would waste memory.
MAX_SECRET_FILE_BYTES = 64 * 1024


class SecretSourceError(ValueError):
    """A secret source is set but cannot be used; the message names it, never its content."""


@dataclass(frozen=True)
class FoundSecret:
    """A secret's text (trimmed) and where it came from, for messages: `SERBERO_PRIVATE_KEY_FILE (/run/…)`."""

    text: str
    source: str


def find_secret(env: Mapping[str, str], name: str, credential: str) -> FoundSecret | None:
    """The secret for variable `name` from the first source that is set; None when none is.

    Raise SecretSourceError when a set source cannot be read or is empty.
    """
    value = (env.get(name) or "").strip()
    if value:
        return FoundSecret(value, f"{name} (environment)")
    file_var = f"{name}_FILE"
    path_text = (env.get(file_var) or "").strip()
    if path_text:
        return FoundSecret(
            _read(Path(path_text), f"{file_var} ({path_text})"), f"{file_var} ({path_text})"
        )
    folder = (env.get("CREDENTIALS_DIRECTORY") or "").strip()
    if folder:
        path = Path(folder) / credential
        if path.exists():
            where = f"credential {credential} ({path})"
            text = _read(path, where, empty_ok=True)
            if text:
                return FoundSecret(text, where)
    return None


def _read(path: Path, where: str, *, empty_ok: bool = False) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretSourceError(
            f"{where}: cannot read the file: {exc.strerror or exc.__class__.__name__}"
        ) from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretSourceError(
            f"{where}: the file is larger than {MAX_SECRET_FILE_BYTES} bytes; not a secret"
        )
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretSourceError(f"{where}: the file is not UTF-8 text") from None
    if not text and not empty_ok:
        raise SecretSourceError(f"{where}: the file is empty")
    return text
