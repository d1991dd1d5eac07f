"""nostr_sdk key objects built from our Secret/hex values; the only place a Secret is unwrapped for signing."""

from __future__ import annotations

from functools import lru_cache

import nostr_sdk as ns

from serbero_cli.keytext import Secret


@lru_cache(maxsize=8)
def keys_from_secret(secret: Secret) -> ns.Keys:
    """nostr_sdk Keys for a secret key, parsed once per process (a backlog signs thousands of events)."""
    return ns.Keys(ns.SecretKey.parse(secret.reveal()))


def public_key(hex_key: str) -> ns.PublicKey:
    """A nostr_sdk PublicKey from lowercase hex (already validated on the curve)."""
    return ns.PublicKey.parse(hex_key)
