"""`serbero keys`: key conversions and "which public key does this config use" (docs/operations.md#commands).

Plain functions over `serbero_cli.keytext`; the command module decides what is printed where.
`configured_secret` never returns text, only a `Secret`, so the caller can derive the public
key without any code path that could print the private one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from serbero_cli.errors import ConfigError, UsageError
from serbero_cli.keytext import (
    KeyFormatError,
    Secret,
    npub,
    nsec,
    parse_public_key,
    parse_secret_key,
    public_key_of,
)
from serbero_cli.setup.init import registration_string

ENV_PRIVATE_KEY = "SERBERO_PRIVATE_KEY"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Identity:
    """The public side of Serbero's key, in every form an operator needs."""

    public_key: str  # lowercase hex
    npub: str
    registration: str  # "npub1…:read"

    def to_dict(self) -> dict[str, str]:
        return {
            "public_key_hex": self.public_key,
            "npub": self.npub,
            "registration": self.registration,
        }


@dataclass(frozen=True)
class Conversion:
    """One converted key. `is_secret` tells the caller to warn that it printed a secret."""

    value: str
    kind: str  # "public" | "secret"
    form: str  # "hex" | "npub" | "nsec"
    is_secret: bool


def identity_of(secret: Secret) -> Identity:
    public_key = public_key_of(secret)
    return Identity(public_key, npub(public_key), registration_string(public_key))


def convert_key(value: str, as_kind: str | None = None) -> Conversion:
    """hex -> npub/nsec (`as_kind` picks, since 64 hex could be either), npub/nsec -> hex.

    Raise UsageError with a one-line reason for anything else.
    """
    text = value.strip()
    lower = text.lower()
    if as_kind not in (None, "public", "secret"):
        raise UsageError(f"--as must be public or secret, got {as_kind!r}")
    if lower.startswith(("npub1", "nostr:npub1")):
        _expect(as_kind, "public", "an npub")
        return Conversion(_public(text), "public", "hex", is_secret=False)
    if lower.startswith("nsec1"):
        _expect(as_kind, "secret", "an nsec")
        return Conversion(_secret(text).reveal(), "secret", "hex", is_secret=True)
    if _HEX64.match(text):
        if as_kind is None:
            raise UsageError(
                "64 hex characters can be a public or a secret key: pass --as public or --as secret"
            )
        if as_kind == "public":
            return Conversion(npub(_public(text)), "public", "npub", is_secret=False)
        return Conversion(nsec(_secret(text)), "secret", "nsec", is_secret=True)
    raise UsageError("not a key: expected 64 hex characters, npub1…, nostr:npub1… or nsec1…")


def secret_from_env(env: Mapping[str, str]) -> Secret:
    """The key from SERBERO_PRIVATE_KEY, else SERBERO_PRIVATE_KEY_FILE, else the systemd credential;
    UsageError when none is set or the key is unreadable or invalid."""
    from serbero_cli.secret_sources import PRIVATE_KEY_CREDENTIAL, SecretSourceError, find_secret

    try:
        found = find_secret(env, ENV_PRIVATE_KEY, PRIVATE_KEY_CREDENTIAL)
    except SecretSourceError as exc:
        raise UsageError(str(exc)) from None
    if found is None:
        raise UsageError(
            f"{ENV_PRIVATE_KEY} is unset or empty (and neither {ENV_PRIVATE_KEY}_FILE nor the "
            f"{PRIVATE_KEY_CREDENTIAL} credential is set)"
        )
    try:
        return parse_secret_key(found.text)
    except KeyFormatError as exc:
        raise UsageError(f"{found.source}: not a valid secret key ({exc})") from None


def configured_secret(path: Path, env: Mapping[str, str]) -> tuple[Secret, list[str]]:
    """The private key Serbero would use with this config: the loader's answer, env override included.

    Return (secret, notes). A config that is wrong elsewhere (say a placeholder right after
    `serbero init`) still shows its key, with a note; a missing or bad key re-raises the
    loader's ConfigError with every problem.
    """
    from serbero_cli.config import load_config

    try:
        return load_config(path, env).private_key, []
    except ConfigError as exc:
        secret = _private_key_only(path, env)
        if secret is None:
            raise
        count = len(exc.problems)
        return secret, [
            f"{path} has {count} other problem{'s' if count != 1 else ''}; run `serbero doctor`"
        ]


def _private_key_only(path: Path, env: Mapping[str, str]) -> Secret | None:
    """The same key rule as the loader (the environment's sources beat the file), without judging
    the rest of the file."""
    from serbero_cli.secret_sources import PRIVATE_KEY_CREDENTIAL, SecretSourceError, find_secret

    try:
        from_env = find_secret(env, ENV_PRIVATE_KEY, PRIVATE_KEY_CREDENTIAL)
    except SecretSourceError:
        return None
    if from_env is not None:
        try:
            return secret_from_env(env)
        except UsageError:
            return None
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except (OSError, UnicodeDecodeError, TOMLKitError):
        return None
    section = doc.get("serbero")
    value = section.get("private_key") if isinstance(section, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_secret_key(value)
    except KeyFormatError:
        return None


def _public(text: str) -> str:
    try:
        return parse_public_key(text)
    except KeyFormatError as exc:
        raise UsageError(f"not a valid public key ({exc})") from None


def _secret(text: str) -> Secret:
    try:
        return parse_secret_key(text)
    except KeyFormatError as exc:
        raise UsageError(f"not a valid secret key ({exc})") from None


def _expect(as_kind: str | None, wanted: str, what: str) -> None:
    if as_kind is not None and as_kind != wanted:
        raise UsageError(f"{what} is a {wanted} key; drop --as {as_kind}")
