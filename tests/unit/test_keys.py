"""keys.py: the pure-Python curve check agrees with libsecp256k1; bech32 round-trips; secrets stay hidden."""

from __future__ import annotations

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serbero_cli.keytext import (
    Secret,
    bech32_decode,
    generate_secret,
    is_valid_xonly,
    npub,
    nsec,
    parse_public_key,
    parse_secret_key,
    public_key_of,
)


def lifts_with_coincurve(x: bytes) -> bool:
    try:
        coincurve.PublicKey(b"\x02" + x)
        return True
    except ValueError:
        return False


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_curve_check_agrees_with_libsecp256k1(x):
    assert is_valid_xonly(x.hex()) == lifts_with_coincurve(x)


@pytest.mark.parametrize("value", ["00" * 32, "ff" * 32, "zz" * 32, "ab" * 31, ""])
def test_edge_values_are_rejected_or_checked(value):
    expected = (
        len(value) == 64
        and all(c in "0123456789abcdef" for c in value)
        and lifts_with_coincurve(bytes.fromhex(value))
    )
    assert is_valid_xonly(value) == expected


def test_generated_keys_round_trip_through_bech32():
    secret = generate_secret()
    pub = public_key_of(secret)
    assert parse_public_key(npub(pub)) == pub and parse_public_key(f"nostr:{npub(pub)}") == pub
    assert parse_secret_key(nsec(secret)) == secret
    assert bech32_decode(npub(pub)) == ("npub", bytes.fromhex(pub))


def test_secret_never_shows_its_value():
    secret = Secret("deadbeef")
    assert (
        "deadbeef" not in repr(secret)
        and "deadbeef" not in str(secret)
        and "deadbeef" not in f"{secret}"
    )
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_nostr_sdk_and_coincurve_derive_the_same_public_key():
    """`public_key_of` uses nostr_sdk when a phase has loaded it, coincurve otherwise."""
    import subprocess
    import sys

    code = (
        "import sys; from serbero_cli.keytext import Secret, public_key_of; s = Secret(sys.argv[1]); "
        "a = public_key_of(s); import nostr_sdk; b = public_key_of(s); print(a, b)"
    )
    for secret in (
        "01" * 32,
        "7f" * 32,
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140",
    ):
        out = subprocess.run(
            [sys.executable, "-c", code, secret], capture_output=True, text=True, check=True
        )
        without_sdk, with_sdk = out.stdout.split()
        assert without_sdk == with_sdk and len(with_sdk) == 64
