"""Dispute-chat keys: the raw ECDH secret and the kind-14 channel keys (docs/wire-formats.md#party-chat).

Pure coincurve + hashlib, so the derivation can be checked against the published vectors without
nostr_sdk. Every value here is re-derived on each run from Serbero's secret and a trade pubkey;
nothing is stored but the public halves. Secrets travel as `Secret` and are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import coincurve

from serbero_cli.keytext import CURVE_ORDER, Secret

CONV_INFO = b"mostro:chat:conv:v1"
SIGN_INFO = b"mostro:chat:sign:v1"
_ZERO_SALT = (
    b"\x00" * 32
)  # HKDF with an absent salt uses HashLen zero bytes (RFC 5869, section 2.2)


class ChannelKeyError(ValueError):
    """A chat key cannot be derived (bad trade pubkey, or no valid scalar from HKDF)."""


@dataclass(frozen=True)
class ChannelKeys:
    """The chat channel with one party. Pubkeys are lowercase x-only hex; secrets print as ***.

    legacy_*: the 1059 address `pub(x)` and its secret `x`. conv_*: K_conv, which encrypts and whose
    pubkey is the kind-14 `p` tag. sign_*: K_sign, which signs the kind-14 outer event (its author).
    """

    party: str
    trade_pubkey: str
    legacy_secret: Secret
    legacy_pubkey: str
    conv_secret: Secret
    conv_pubkey: str
    sign_secret: Secret
    sign_pubkey: str


def shared_x(serbero_secret: Secret, trade_pubkey_hex: str) -> bytes:
    """Raw X coordinate of serbero_sk · lift_x(trade_pk): 32 bytes, even-Y lift, no hash.

    coincurve's `PrivateKey.ecdh` hashes the point and gives a different (wrong) value, so the
    multiplication is done by hand. Raise ChannelKeyError when the pubkey is not a curve point.
    """
    if len(trade_pubkey_hex) != 64:
        raise ChannelKeyError("trade pubkey must be 64 hex characters")
    try:
        point = coincurve.PublicKey(b"\x02" + bytes.fromhex(trade_pubkey_hex))
    except ValueError as exc:
        raise ChannelKeyError("trade pubkey is not a secp256k1 point") from exc
    return point.multiply(bytes.fromhex(serbero_secret.reveal())).format(compressed=True)[1:]


def is_valid_scalar(candidate: bytes) -> bool:
    """True when `candidate` read big-endian is in [1, n): usable as a secp256k1 secret key."""
    return 1 <= int.from_bytes(candidate, "big") < CURVE_ORDER


def hkdf_prk(x: bytes) -> bytes:
    """HKDF-Extract(salt = 32 zero bytes, ikm = x); salt absent gives the same PRK."""
    return hmac.new(_ZERO_SALT, x, hashlib.sha256).digest()


def hkdf_secret(
    x: bytes, info: bytes, is_valid: Callable[[bytes], bool] = is_valid_scalar
) -> bytes:
    """The first valid one-block HKDF-SHA256 output for `info`, then `info || c` for c = 1..255.

    Attempt 0 uses the bare info string; an output outside [1, n) moves on to the next suffix
    byte. `is_valid` is injectable so the retry path can be tested.
    Raise ChannelKeyError when all 256 attempts fail.
    """
    prk = hkdf_prk(x)
    for counter in range(256):
        attempt_info = info if counter == 0 else info + bytes([counter])
        out = hmac.new(prk, attempt_info + b"\x01", hashlib.sha256).digest()
        if is_valid(out):
            return out
    raise ChannelKeyError("HKDF produced no valid secret key in 256 attempts")


def xonly_pubkey(secret: bytes) -> str:
    """Lowercase x-only hex pubkey of a 32-byte secret."""
    return coincurve.PublicKeyXOnly.from_secret(secret).format().hex()


def derive_channel(serbero_secret: Secret, party: str, trade_pubkey: str) -> ChannelKeys:
    """All keys of the chat with `party` ("buyer"/"seller"), from Serbero's secret and the trade pubkey.

    Raise ChannelKeyError for a pubkey off the curve, or an ECDH x that is not a usable secret
    (probability about 2^-128; the legacy envelope uses x itself as a secret key).
    """
    trade = trade_pubkey.lower()
    x = shared_x(serbero_secret, trade)
    if not is_valid_scalar(x):
        raise ChannelKeyError("shared x is not a valid secret key")
    conv = hkdf_secret(x, CONV_INFO)
    sign = hkdf_secret(x, SIGN_INFO)
    return ChannelKeys(
        party=party,
        trade_pubkey=trade,
        legacy_secret=Secret(x.hex()),
        legacy_pubkey=xonly_pubkey(x),
        conv_secret=Secret(conv.hex()),
        conv_pubkey=xonly_pubkey(conv),
        sign_secret=Secret(sign.hex()),
        sign_pubkey=xonly_pubkey(sign),
    )


def shared_secrets_differ(serbero_secret: Secret, buyer_pubkey: str, seller_pubkey: str) -> bool:
    """True when the buyer's and the seller's ECDH secrets differ (a take reply must give two
    different chat channels).

    Raise ChannelKeyError when either pubkey is not a curve point.
    """
    return shared_x(serbero_secret, buyer_pubkey.lower()) != shared_x(
        serbero_secret, seller_pubkey.lower()
    )
