"""One config loader; every problem reported with file, line and key; secrets never echoed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serbero_cli.config import KEYS, SECTIONS, load_config, load_reasoning_api_key, section_fields
from serbero_cli.errors import ConfigError
from serbero_cli.keytext import bech32_encode, npub, nsec, parse_secret_key, public_key_of

SECRET = "5f" * 32
MOSTRO = public_key_of(parse_secret_key("11" * 32))
SOLVER = public_key_of(parse_secret_key("22" * 32))
OFF_CURVE = "00" * 31 + "05"  # x = 5 has no point on secp256k1


def write(tmp_path: Path, body: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o600)
    return path


def base(extra: str = "", solvers: str = "") -> str:
    return (
        f'[serbero]\nprivate_key = "{SECRET}"\n\n[mostro]\npubkey = "{MOSTRO}"\n\n'
        f'[[relays]]\nurl = "ws://127.0.0.1:7777"\n{solvers}{extra}'
    )


def problems(tmp_path: Path, body: str, env=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body), env=env or {})
    return info.value.problems


def test_minimal_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, base()), env={})
    assert cfg.mostro_pubkey == MOSTRO and cfg.relays == ("ws://127.0.0.1:7777",)
    assert cfg.public_key == public_key_of(parse_secret_key(SECRET))
    assert cfg.db_path == tmp_path / "serbero.db"
    assert (
        cfg.delivery.max_attempts == 5
        and cfg.mediation.enabled is False
        and not cfg.mediation_active
    )
    assert cfg.mostro_transport == "auto" and cfg.solvers == ()


def test_npub_nsec_and_nostr_uri_forms_become_lowercase_hex(tmp_path):
    body = base(
        solvers=f'[[solvers]]\npubkey = "nostr:{npub(SOLVER)}"\npermission = "write"\n'
        f'[[solvers]]\npubkey = "{MOSTRO.upper()}"\n'
    )
    body = body.replace(f'"{SECRET}"', f'"{nsec(parse_secret_key(SECRET))}"').replace(
        f'pubkey = "{MOSTRO}"', f'pubkey = "{npub(MOSTRO)}"', 1
    )
    cfg = load_config(write(tmp_path, body), env={})
    assert cfg.private_key.reveal() == SECRET and cfg.mostro_pubkey == MOSTRO
    assert [(s.pubkey, s.permission) for s in cfg.solvers] == [(SOLVER, "write"), (MOSTRO, "read")]


@pytest.mark.parametrize(
    "snippet,needle",
    [
        pytest.param(
            '[[solvers]]\npubkey = "not-a-key"\n',
            "[[solvers]] pubkey: not a valid public key",
            id="garbage",
        ),
        pytest.param(
            f'[[solvers]]\npubkey = "{OFF_CURVE}"\n',
            "[[solvers]] pubkey: not a valid public key",
            id="off-curve",
        ),
        pytest.param(
            f'[[solvers]]\npubkey = "{SOLVER}"\n[[solvers]]\npubkey = "{npub(SOLVER)}"\n',
            "duplicate solver",
            id="duplicate-after-conversion",
        ),
        pytest.param(
            f'[[solvers]]\npubkey = "{SOLVER}"\npermission = "admin"\n',
            "[[solvers]] permission",
            id="bad-permission",
        ),
        pytest.param(
            "[delivery]\nmax_attempts = true\n",
            "[delivery] max_attempts: must be an integer",
            id="bool-int",
        ),
        pytest.param(
            "[delivery]\nmax_attempts = 1.5\n",
            "[delivery] max_attempts: must be an integer",
            id="float-int",
        ),
        pytest.param(
            '[delivery]\nmax_attempts = "3"\n',
            "[delivery] max_attempts: must be an integer",
            id="str-int",
        ),
        pytest.param(
            "[delivery]\nmax_attempts = 0\n",
            "[delivery] max_attempts: must be >= 1",
            id="out-of-range",
        ),
        pytest.param(
            "[listen]\nfetch_timout_seconds = 3\n",
            "[listen] fetch_timout_seconds: unknown key",
            id="typo",
        ),
        pytest.param("[lisen]\nx = 1\n", "[lisen]: unknown section", id="unknown-section"),
        pytest.param(
            '[reasoning]\nprovider = "ppqai"\n',
            "[reasoning] provider: must be one of",
            id="old-provider",
        ),
        pytest.param('[mostro]\ntransport = "carrier-pigeon"\n', "transport", id="bad-transport"),
        pytest.param(
            "[escalation]\ndispatch_interval_seconds = 0\n",
            "dispatch_interval_seconds: must be >= 1",
            id="interval-zero-even-disabled",
        ),
        pytest.param(
            "[escalation]\nretries = 3\n",
            "[escalation] retries: unknown key",
            id="escalation-unknown",
        ),
        pytest.param(
            "[reasoning]\nrequest_timeout_seconds = -1\n", "must be >= 0", id="negative-timeout"
        ),
        pytest.param("[mediation]\nenabled = 1\n", "must be true or false", id="int-bool"),
    ],
)
def test_invalid_values_name_file_line_and_key(tmp_path, snippet, needle):
    body = (
        base(extra=snippet)
        if not snippet.startswith("[mostro]")
        else base(extra="").replace(
            f'[mostro]\npubkey = "{MOSTRO}"\n',
            f'[mostro]\npubkey = "{MOSTRO}"\n' + snippet.split("\n", 1)[1],
        )
    )
    found = problems(tmp_path, body)
    matching = [p for p in found if needle in p]
    assert matching, found
    path, line = matching[0].split(":")[0:2]
    assert path.endswith("config.toml") and line.isdigit()


def test_every_problem_is_reported_at_once_and_in_line_order(tmp_path):
    body = base(
        extra="[delivery]\nmax_attempts = 0\nsend_timeout_seconds = -2\n[listen]\nbogus = 1\n"
    )
    found = problems(tmp_path, body)
    assert len(found) == 3
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)


def test_missing_required_keys_and_relays(tmp_path):
    found = problems(tmp_path, '[serbero]\nlog_level = "info"\n')
    text = "\n".join(found)
    assert "private_key" in text and "[mostro] pubkey" in text and "[[relays]]" in text


def test_invalid_secret_is_reported_without_echoing_it(tmp_path):
    bad = "zz" + SECRET[2:]
    found = problems(tmp_path, base().replace(SECRET, bad))
    assert any("[serbero] private_key: not a valid secret key" in p for p in found)
    assert all(bad not in p and SECRET[2:] not in p for p in found)


def test_env_overrides_are_trimmed_and_blank_ignored(tmp_path):
    other = "6a" * 32
    path = write(tmp_path, base())
    cfg = load_config(
        path,
        env={
            "SERBERO_PRIVATE_KEY": f"  {other}\n",
            "SERBERO_DB_PATH": "  ",
            "SERBERO_LOG": "debug",
        },
    )
    assert (
        cfg.private_key.reveal() == other
        and cfg.db_path == tmp_path / "serbero.db"
        and cfg.log_level == "debug"
    )
    cfg = load_config(path, env={"SERBERO_DB_PATH": "data/x.db"})
    assert cfg.db_path == tmp_path / "data" / "x.db"


def test_private_key_may_come_only_from_env(tmp_path):
    body = base().replace(f'private_key = "{SECRET}"\n', "")
    assert problems(tmp_path, body)
    cfg = load_config(write(tmp_path, body), env={"SERBERO_PRIVATE_KEY": SECRET})
    assert cfg.private_key.reveal() == SECRET


def test_bad_env_secret_names_the_variable(tmp_path):
    found = problems(tmp_path, base(), env={"SERBERO_PRIVATE_KEY": "nsec1garbage"})
    assert any(p.startswith(f"{tmp_path / 'config.toml'}: SERBERO_PRIVATE_KEY") for p in found)


def test_dropped_reference_keys_warn_and_are_ignored(tmp_path):
    body = base(
        extra='[chat]\ninbound_fetch_interval_seconds = 30\n[reasoning]\napi_key = "sk-should-not-be-read"\n'
    )
    cfg = load_config(write(tmp_path, body), env={})
    assert len(cfg.warnings) == 2
    assert any("inbound_fetch_interval_seconds" in w for w in cfg.warnings)
    assert all("sk-should-not-be-read" not in w for w in cfg.warnings)


def test_world_readable_config_with_a_private_key_warns(tmp_path):
    path = write(tmp_path, base())
    path.chmod(0o644)
    assert any("chmod 600" in w for w in load_config(path, env={}).warnings)


def test_invalid_toml_points_at_the_line(tmp_path):
    found = problems(tmp_path, base() + "\n[delivery\nmax_attempts = 3\n")
    assert len(found) == 1 and "invalid TOML" in found[0]
    assert found[0].split(":")[1].isdigit()


def test_reasoning_api_key_comes_from_the_named_env_var(tmp_path):
    cfg = load_config(write(tmp_path, base(extra='[reasoning]\napi_key_env = "MY_KEY"\n')), env={})
    with pytest.raises(ConfigError, match="MY_KEY"):
        load_reasoning_api_key(cfg, env={"MY_KEY": "  "})
    key = load_reasoning_api_key(cfg, env={"MY_KEY": " sk-123 "})
    assert key.reveal() == "sk-123" and "sk-123" not in repr(key)


def test_secret_repr_never_shows_the_value(tmp_path, caplog):
    cfg = load_config(write(tmp_path, base()), env={})
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("t").info("config %r %s", cfg, cfg.private_key)
    assert SECRET not in caplog.text and SECRET not in repr(cfg)


def test_transport_alias_and_api_base_trim(tmp_path):
    body = base(extra='[reasoning]\napi_base = "https://api.example.org/v1/"\n').replace(
        f'pubkey = "{MOSTRO}"\n', f'pubkey = "{MOSTRO}"\ntransport = "gift-wrap"\n', 1
    )
    cfg = load_config(write(tmp_path, body), env={})
    assert (
        cfg.mostro_transport == "giftwrap"
        and cfg.reasoning.api_base == "https://api.example.org/v1"
    )


def test_key_table_and_dataclasses_agree():
    for section in SECTIONS:
        fields = section_fields(section)
        if fields:
            assert sorted(fields) == sorted(k.name for k in KEYS if k.section == section), section


def test_bech32_rejects_bad_checksum():
    good = npub(SOLVER)
    with pytest.raises(ValueError):
        from serbero_cli.keytext import parse_public_key

        parse_public_key(good[:-1] + ("q" if good[-1] != "q" else "p"))
    assert bech32_encode("npub", bytes.fromhex(SOLVER)) == good


def test_both_toml_parsers_read_the_sample_and_a_full_config_alike(tmp_path):
    """The loader parses with tomllib and falls back to tomlkit only for a file tomllib rejects
    (docs/operations.md#benchmarks): both must turn a good file into the same values."""
    import tomllib

    import tomlkit

    from tests.helpers import SAMPLE, write_config

    full = write_config(
        tmp_path / "c.toml",
        private_key="5f" * 32,
        mostro_pubkey="ab" * 32,
        relays=["ws://127.0.0.1:1", "wss://relay.example"],
        solvers=[("cd" * 32, "write", ["mostro"])],
        observers=[("ef" * 32, None)],
        sections={"timeouts": {"renotification_seconds": 60}},
    )
    for text in (SAMPLE.read_text(encoding="utf-8"), full.read_text(encoding="utf-8")):
        assert tomllib.loads(text) == tomlkit.parse(text).unwrap()


@pytest.mark.parametrize(
    "text, needle",
    [
        ('[serbero]\nprivate_key = "x"\nprivate_key = "y"\n', "private_key"),
        ("[serbero]\nlog_level = \n", ":2: invalid TOML"),
    ],
)
def test_a_file_the_fast_parser_rejects_still_gets_a_located_error(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert needle in str(err.value) and str(path) in str(err.value)
