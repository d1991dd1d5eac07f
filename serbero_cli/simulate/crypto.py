"""Party- and node-side primitives of the Mostro protocols, written from the spec (no nostr_sdk).

The simulators use these to check Serbero independently: raw ECDH x, the kind-14 chat keys
K_conv / K_sign (docs/wire-formats.md#party-chat), Mostro's canonical message bytes and their
BIP-340 signatures (docs/wire-formats.md#take-request), and NIP-13 difficulty.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import coincurve

# secp256k1 group order: a derived secret must lie in [1, N).
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CONV_INFO = b"mostro:chat:conv:v1"
SIGN_INFO = b"mostro:chat:sign:v1"
# The node re-serializes the inner message in exactly this order.
MESSAGE_FIELD_ORDER = ("version", "request_id", "trade_index", "id", "action", "payload")


class DerivationError(ValueError):
    """No valid secret came out of 256 HKDF attempts (never seen in practice)."""


def ecdh_x(secret: bytes, xonly_pubkey: bytes) -> bytes:
    """The raw X coordinate of `secret · lift_x(pubkey)` (even-Y lift, no hash).

    `coincurve.PrivateKey.ecdh` hashes the point and would give a different, wrong key.
    """
    point = coincurve.PublicKey(b"\x02" + xonly_pubkey).multiply(secret)
    return point.format()[1:]


def is_valid_xonly(pubkey_hex: str) -> bool:
    """True when `pubkey_hex` is 64 hex chars that lift to a curve point."""
    try:
        raw = bytes.fromhex(pubkey_hex)
        if len(raw) != 32:
            return False
        coincurve.PublicKey(b"\x02" + raw)
        return True
    except (ValueError, TypeError):
        return False


def xonly_of(secret: bytes) -> bytes:
    """The 32-byte x-only public key of a secret."""
    return coincurve.PrivateKey(secret).public_key.format()[1:]


def _valid_secret(candidate: bytes) -> bool:
    return 1 <= int.from_bytes(candidate, "big") < SECP256K1_ORDER


def hkdf_prk(shared_x: bytes) -> bytes:
    """HKDF-Extract with the salt absent (= 32 zero bytes)."""
    return hmac.new(b"\x00" * 32, shared_x, hashlib.sha256).digest()


def hkdf_expand_32(prk: bytes, info: bytes) -> bytes:
    """HKDF-Expand for one block: HMAC(PRK, info || 0x01)."""
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def derive_chat_secret(
    prk: bytes, info: bytes, is_valid: Callable[[bytes], bool] = _valid_secret
) -> bytes:
    """The first valid expand(info [+ byte c]) for c = 0..255 (attempt 0 uses the bare info).

    Raises DerivationError when every attempt is out of range.
    """
    for counter in range(256):
        suffix = b"" if counter == 0 else bytes([counter])
        candidate = hkdf_expand_32(prk, info + suffix)
        if is_valid(candidate):
            return candidate
    raise DerivationError(f"no valid key for {info!r}")


def chat_secrets(
    shared_x: bytes, is_valid: Callable[[bytes], bool] = _valid_secret
) -> tuple[bytes, bytes]:
    """(K_conv secret, K_sign secret) of one chat channel, from the ECDH x."""
    prk = hkdf_prk(shared_x)
    return derive_chat_secret(prk, CONV_INFO, is_valid), derive_chat_secret(
        prk, SIGN_INFO, is_valid
    )


def nip44_conversation_key(secret: bytes, xonly_pubkey: bytes) -> bytes:
    """NIP-44 v2 conversation key: HMAC-SHA256(key="nip44-v2", msg=ECDH_x)."""
    return hmac.new(b"nip44-v2", ecdh_x(secret, xonly_pubkey), hashlib.sha256).digest()


def canonical_inner(inner: dict[str, Any]) -> dict[str, Any]:
    """The inner message as the node re-serializes it: fixed field order, unknown fields dropped.

    `request_id` / `trade_index` are written as null when absent; `id` is left out when absent.
    """
    out: dict[str, Any] = {}
    for field in MESSAGE_FIELD_ORDER:
        if field == "id" and inner.get("id") is None:
            continue
        out[field] = inner.get(field)
    return out


def canonical_message_json(message: dict[str, Any]) -> str:
    """Compact JSON of `{variant: inner}` in the node's field order; never sort_keys.

    serde_json writes non-ASCII characters as they are, hence ensure_ascii=False.
    """
    if not isinstance(message, dict) or len(message) != 1:
        raise ValueError("a Mostro message has exactly one variant key")
    ((variant, inner),) = message.items()
    if not isinstance(inner, dict):
        raise ValueError("the message variant must hold an object")
    return json.dumps({variant: canonical_inner(inner)}, separators=(",", ":"), ensure_ascii=False)


def message_digest(message: dict[str, Any]) -> bytes:
    """sha256 of the canonical bytes: what the BIP-340 signature covers."""
    return hashlib.sha256(canonical_message_json(message).encode("utf-8")).digest()


def sign_message(secret: bytes, message: dict[str, Any]) -> str:
    """128-hex BIP-340 signature over sha256(canonical JSON)."""
    return coincurve.PrivateKey(secret).sign_schnorr(message_digest(message)).hex()


def verify_message(pubkey_hex: str, message: dict[str, Any], signature_hex: str) -> bool:
    """True when `signature_hex` is a valid BIP-340 signature by `pubkey_hex` over the canonical bytes."""
    try:
        sig = bytes.fromhex(signature_hex)
        if len(sig) != 64:
            return False
        return coincurve.PublicKeyXOnly(bytes.fromhex(pubkey_hex)).verify(
            sig, message_digest(message)
        )
    except (ValueError, TypeError):
        return False


def leading_zero_bits(event_id_hex: str) -> int:
    """NIP-13 difficulty of an event id: its number of leading zero bits."""
    value = int(event_id_hex, 16)
    return 256 - value.bit_length() if value else 256
