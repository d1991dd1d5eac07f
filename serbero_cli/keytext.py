"""Key parsing without nostr_sdk: hex / npub / nsec (NIP-19 bech32), curve checks, the Secret wrapper.

Config loading runs on every start, so it must not pay for importing nostr_sdk; bech32 is small
enough to carry here. `PublicKey.parse` in nostr_sdk does not check that an x-only key is on the
curve, so every public key is lifted with coincurve.
"""

from __future__ import annotations

import re
import sys
from typing import NoReturn

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# secp256k1 group order: a secret key must be in [1, n).
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class KeyFormatError(ValueError):
    """A key string is not a valid key of the expected kind."""


class SecretKeyGiven(KeyFormatError):
    """A secret key (nsec) was given where a public key belongs; the message never holds the value."""

    def __init__(self) -> None:
        super().__init__("this is a secret key (nsec); give the npub")


class Secret:
    """A secret string whose repr/str never show the value; call `reveal()` at the one place that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("secret", self._value))

    def __reduce__(self) -> NoReturn:  # never pickle a secret by accident
        raise TypeError("Secret cannot be pickled")


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if ((top >> i) & 1) else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convertbits(data: list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    ret: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise KeyFormatError("bad bech32 data")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise KeyFormatError("bad bech32 padding")
    return ret


def bech32_decode(value: str) -> tuple[str, bytes]:
    """Decode a bech32 string into (hrp, payload bytes); raise KeyFormatError on any defect."""
    if value.lower() != value and value.upper() != value:
        raise KeyFormatError("mixed case bech32")
    value = value.lower()
    pos = value.rfind("1")
    if pos < 1 or pos + 7 > len(value) or len(value) > 120:
        raise KeyFormatError("not bech32")
    hrp, rest = value[:pos], value[pos + 1 :]
    try:
        data = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise KeyFormatError("not bech32") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise KeyFormatError("bad bech32 checksum")
    return hrp, bytes(_convertbits(data[:-6], 5, 8, False))


def bech32_encode(hrp: str, payload: bytes) -> str:
    """Encode bytes as bech32 with the given human-readable part."""
    data = _convertbits(list(payload), 8, 5, True)
    values = _hrp_expand(hrp) + data
    polymod = _polymod(values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


# secp256k1 field prime: y² = x³ + 7 over GF(P).
_FIELD_P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F


def is_valid_xonly(pubkey_hex: str) -> bool:
    """True when 64-hex `pubkey_hex` lifts to a secp256k1 point (BIP-340 lift_x).

    Pure Python on purpose: x is on the curve when x < p and x³ + 7 is a square mod p (Euler's
    criterion), which costs microseconds and keeps coincurve out of every config load.
    """
    if not _HEX64.match(pubkey_hex):
        return False
    x = int(pubkey_hex, 16)
    if x >= _FIELD_P:
        return False
    y_squared = (pow(x, 3, _FIELD_P) + 7) % _FIELD_P
    return pow(y_squared, (_FIELD_P - 1) // 2, _FIELD_P) in (0, 1)


def parse_public_key(value: str) -> str:
    """Return lowercase hex for a hex, `npub1…` or `nostr:npub1…` key on the curve.

    Raise KeyFormatError; SecretKeyGiven for an `nsec1…`, whose message carries no part of it.
    """
    text = value.strip()
    if text.lower().startswith("nostr:"):
        text = text[len("nostr:") :]
    if text.lower().startswith("nsec1"):
        raise SecretKeyGiven()
    if _HEX64.match(text):
        hex_key = text.lower()
    elif text.lower().startswith("npub1"):
        hrp, payload = bech32_decode(text)
        if hrp != "npub" or len(payload) != 32:
            raise KeyFormatError("not an npub")
        hex_key = payload.hex()
    else:
        raise KeyFormatError("expected 64 hex characters or npub1…")
    if not is_valid_xonly(hex_key):
        raise KeyFormatError("not a point on the secp256k1 curve")
    return hex_key


def parse_secret_key(value: str) -> Secret:
    """Return the lowercase hex secret for a hex or `nsec1…` key, wrapped; raise KeyFormatError."""
    text = value.strip()
    if _HEX64.match(text):
        hex_key = text.lower()
    elif text.lower().startswith("nsec1"):
        try:
            hrp, payload = bech32_decode(text)
        except KeyFormatError:
            raise KeyFormatError("not a valid nsec") from None
        if hrp != "nsec" or len(payload) != 32:
            raise KeyFormatError("not a valid nsec")
        hex_key = payload.hex()
    else:
        raise KeyFormatError("expected 64 hex characters or nsec1…")
    if not 1 <= int(hex_key, 16) < CURVE_ORDER:
        raise KeyFormatError("out of range for secp256k1")
    return Secret(hex_key)


def public_key_of(secret: Secret) -> str:
    """Return the x-only public key (lowercase hex) of a secret key.

    A phase that talks to relays has nostr_sdk loaded before it reads its config; deriving the key
    with it spares every cron run loading a second secp256k1 library. Both give the same key.
    """
    sdk = sys.modules.get("nostr_sdk")
    if sdk is not None:
        return str(sdk.Keys.parse(secret.reveal()).public_key().to_hex())
    import coincurve

    return coincurve.PublicKeyXOnly.from_secret(bytes.fromhex(secret.reveal())).format().hex()


def npub(pubkey_hex: str) -> str:
    return bech32_encode("npub", bytes.fromhex(pubkey_hex))


def nsec(secret: Secret) -> str:
    return bech32_encode("nsec", bytes.fromhex(secret.reveal()))


def generate_secret() -> Secret:
    """A fresh random secret key."""
    import secrets

    while True:
        candidate = secrets.token_bytes(32)
        if 1 <= int.from_bytes(candidate, "big") < CURVE_ORDER:
            return Secret(candidate.hex())
