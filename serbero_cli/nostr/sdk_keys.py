"""nostr_sdk key objects built from our Secret/hex values; the only place a Secret is unwrapped for signing."""

from __future__ import annotations

import nostr_sdk as ns

from serbero_cli.keytext import Secret


def keys_from_secret(secret: Secret) -> ns.Keys:
    """nostr_sdk Keys for a secret key."""
    return ns.Keys(ns.SecretKey.parse(secret.reveal()))


def public_key(hex_key: str) -> ns.PublicKey:
    """A nostr_sdk PublicKey from lowercase hex (already validated on the curve)."""
    return ns.PublicKey.parse(hex_key)

