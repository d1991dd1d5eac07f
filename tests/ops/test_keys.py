"""`serbero keys generate | show | convert`: round trips, the exit 2 answers, and no secret from `show`."""

from __future__ import annotations

import json

import nostr_sdk as ns
import pytest
from hypothesis import given
from hypothesis import strategies as st

from serbero_cli.errors import UsageError
from serbero_cli.keytext import CURVE_ORDER, Secret, npub, nsec, public_key_of
from serbero_cli.setup.keytools import convert_key
from tests.helpers import run_serbero, write_config


@pytest.fixture
def keyed_config(tmp_path):
    """A valid config whose private key the test knows."""
    keys = ns.Keys.generate()
    path = write_config(
        tmp_path / "config.toml",
        private_key=keys.secret_key().to_bech32(),
        mostro_pubkey=ns.Keys.generate().public_key().to_hex(),
        relays=["ws://127.0.0.1:7777"],
        solvers=[],
    )
    return path, keys


def test_keys_generate_prints_a_matching_pair_and_warns_on_stderr(cli):
    result = cli("keys", "generate", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    secret = Secret(doc["secret_key_hex"])
    assert doc["secret_key_nsec"] == nsec(secret)
    assert doc["public_key_hex"] == public_key_of(secret)
    assert doc["npub"] == npub(doc["public_key_hex"])
    assert doc["registration"] == doc["npub"] + ":read"
    assert "secret key" in result.stderr
    again = json.loads(cli("keys", "generate", "--json").stdout)
    assert again["secret_key_hex"] != doc["secret_key_hex"]


def test_keys_generate_text_lists_both_halves(cli):
    result = cli("keys", "generate")
    labels = [line.split("  ")[0].strip() for line in result.stdout.splitlines()]
    assert labels == [
        "secret key (nsec)",
        "secret key (hex)",
        "public key (npub)",
        "public key (hex)",
        "register as",
    ]


def test_keys_show_prints_only_the_public_side(cli, keyed_config):
    path, keys = keyed_config
    result = cli("--config", str(path), "keys", "show")
    assert result.exit_code == 0, result.stderr
    pub = keys.public_key()
    assert pub.to_hex() in result.stdout and f"{pub.to_bech32()}:read" in result.stdout
    everything = result.stdout + result.stderr
    assert (
        keys.secret_key().to_hex() not in everything
        and keys.secret_key().to_bech32() not in everything
    )
    doc = json.loads(cli("--config", str(path), "keys", "show", "--json").stdout)
    assert doc == {
        "public_key_hex": pub.to_hex(),
        "npub": pub.to_bech32(),
        "registration": pub.to_bech32() + ":read",
    }


def test_keys_show_uses_the_environment_key_like_the_loader(cli, keyed_config):
    path, _ = keyed_config
    other = ns.Keys.generate()
    result = cli(
        "--config",
        str(path),
        "keys",
        "show",
        env={"SERBERO_PRIVATE_KEY": other.secret_key().to_hex()},
    )
    assert other.public_key().to_hex() in result.stdout


def test_keys_show_secret_from_env_needs_no_config(cli, tmp_path):
    keys = ns.Keys.generate()
    result = cli(
        "--config",
        str(tmp_path / "missing.toml"),
        "keys",
        "show",
        "--secret-from-env",
        env={"SERBERO_PRIVATE_KEY": keys.secret_key().to_bech32()},
    )
    assert result.exit_code == 0, result.stderr
    assert keys.public_key().to_bech32() + ":read" in result.stdout
    assert keys.secret_key().to_bech32() not in result.stdout + result.stderr
    missing = cli("keys", "show", "--secret-from-env")
    assert missing.exit_code == 2 and "SERBERO_PRIVATE_KEY is unset" in missing.stderr


def test_keys_show_works_on_a_fresh_init_config_and_notes_its_placeholders(cli, tmp_path):
    path = tmp_path / "config.toml"
    cli("init", "--path", str(path))
    result = cli("--config", str(path), "keys", "show")
    assert result.exit_code == 0
    assert "2 other problems" in result.stderr and "serbero doctor" in result.stderr


def test_keys_show_with_a_bad_private_key_names_the_line(cli, tmp_path):
    path = write_config(
        tmp_path / "config.toml",
        private_key="abc",
        mostro_pubkey=ns.Keys.generate().public_key().to_hex(),
        relays=["ws://127.0.0.1:7777"],
        solvers=[],
    )
    result = cli("--config", str(path), "keys", "show")
    assert result.exit_code == 2
    assert f"{path}:7: [serbero] private_key: not a valid secret key" in result.stderr
    assert result.stdout == ""


def test_keys_convert_round_trips_public_keys(cli):
    pub = ns.Keys.generate().public_key()
    as_npub = cli("keys", "convert", "--as", "public", pub.to_hex().upper())
    assert (as_npub.exit_code, as_npub.stdout, as_npub.stderr) == (0, pub.to_bech32() + "\n", "")
    for value in (pub.to_bech32(), f"nostr:{pub.to_bech32()}"):
        back = cli("keys", "convert", value)
        assert (back.exit_code, back.stdout, back.stderr) == (0, pub.to_hex() + "\n", "")


def test_keys_convert_round_trips_secret_keys_and_warns_each_time(cli):
    keys = ns.Keys.generate()
    to_nsec = cli("keys", "convert", "--as", "secret", keys.secret_key().to_hex())
    assert to_nsec.stdout == keys.secret_key().to_bech32() + "\n"
    assert "secret key" in to_nsec.stderr
    to_hex = cli("keys", "convert", keys.secret_key().to_bech32())
    assert to_hex.stdout == keys.secret_key().to_hex() + "\n"
    assert "secret key" in to_hex.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(["a" * 64], "--as public or --as secret", id="hex-is-ambiguous"),
        pytest.param(["hello"], "not a key", id="garbage"),
        pytest.param(["--as", "public", "f" * 64], "not a valid public key", id="off-curve"),
        pytest.param(["--as", "secret", "0" * 64], "not a valid secret key", id="zero-secret"),
        pytest.param(
            ["--as", "secret", "npub1" + "q" * 58], "drop --as secret", id="npub-as-secret"
        ),
        pytest.param(["--as", "both", "a" * 64], "--as must be public or secret", id="bad-as"),
        pytest.param(
            ["npub1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"],
            "not a valid public key",
            id="bad-checksum",
        ),
    ],
)
def test_keys_convert_rejects_bad_input_with_one_line_and_exit_2(cli, args, message):
    result = cli("keys", "convert", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


@given(st.binary(min_size=32, max_size=32))
def test_convert_key_secret_round_trip_is_identity_or_a_usage_error(raw):
    hex_key = raw.hex()
    try:
        encoded = convert_key(hex_key, "secret")
    except UsageError:
        assert not 1 <= int(hex_key, 16) < CURVE_ORDER
        return
    assert encoded.value.startswith("nsec1") and encoded.is_secret
    assert convert_key(encoded.value).value == hex_key


@given(st.binary(min_size=32, max_size=32))
def test_convert_key_public_round_trip_is_identity_or_a_usage_error(raw):
    try:
        encoded = convert_key(raw.hex(), "public")
    except UsageError:
        return
    assert convert_key(encoded.value).value == raw.hex()
    assert convert_key("nostr:" + encoded.value).value == raw.hex()


def test_keys_convert_as_a_subprocess_keeps_stdout_to_the_value():
    keys = ns.Keys.generate()
    proc = run_serbero(None, "keys", "convert", keys.secret_key().to_bech32())
    assert proc.returncode == 0
    assert proc.stdout == keys.secret_key().to_hex() + "\n"
    assert proc.stderr.startswith("warning:")
