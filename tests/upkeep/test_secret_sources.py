"""Secrets from files and systemd credentials: the variable, then `<variable>_FILE`, then
`$CREDENTIALS_DIRECTORY/<credential>`, then the config file; an unusable source is a config error
that names the source and never shows the secret."""

from __future__ import annotations

import json
import os

import nostr_sdk as ns
import pytest

from serbero_cli.keytext import npub
from serbero_cli.secret_sources import SecretSourceError, find_secret
from tests.helpers import invoke
from tests.mediate_once.conftest import ask


def keypair() -> tuple[str, str]:
    keys = ns.Keys.generate()
    return keys.secret_key().to_hex(), keys.public_key().to_hex()


def shown_pubkey(cfg, env: dict[str, str]) -> str:
    proc = invoke(cfg, "keys", "show", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["public_key_hex"]


@pytest.fixture
def four_keys(tmp_path):
    """A different key in each source: config (via make_config), variable, file and credential."""
    (variable, variable_pub), (in_file, file_pub), (credential, credential_pub) = (
        keypair(),
        keypair(),
        keypair(),
    )
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"\n  {in_file}  \n")
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "serbero-private-key").write_text(credential + "\n")
    sources = {
        "SERBERO_PRIVATE_KEY": variable,
        "SERBERO_PRIVATE_KEY_FILE": str(key_file),
        "CREDENTIALS_DIRECTORY": str(creds),
    }
    return sources, {"variable": variable_pub, "file": file_pub, "credential": credential_pub}


def test_the_private_key_comes_from_the_variable_then_the_file_then_the_credential_then_the_config(
    make_config, serbero_keys, four_keys
):
    cfg = make_config()
    sources, pubs = four_keys
    assert shown_pubkey(cfg, sources) == pubs["variable"]
    del sources["SERBERO_PRIVATE_KEY"]
    assert shown_pubkey(cfg, sources) == pubs["file"]
    del sources["SERBERO_PRIVATE_KEY_FILE"]
    assert shown_pubkey(cfg, sources) == pubs["credential"]
    del sources["CREDENTIALS_DIRECTORY"]
    assert shown_pubkey(cfg, sources) == serbero_keys.public_key().to_hex()


def test_a_blank_variable_counts_as_unset(make_config, four_keys):
    sources, pubs = four_keys
    assert shown_pubkey(make_config(), {**sources, "SERBERO_PRIVATE_KEY": "  "}) == pubs["file"]


def test_listen_signs_with_the_key_from_a_credential(make_config, mostro, solvers, tmp_path):
    secret, pubkey = keypair()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "serbero-private-key").write_text(secret)
    cfg = make_config()
    mostro.open_dispute()
    proc = invoke(cfg, "listen", env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert proc.returncode == 0, proc.stderr
    assert all(len(s.inbox(sender=pubkey)) == 1 for s in solvers)


@pytest.mark.parametrize(
    "make_bad, why",
    [
        pytest.param(lambda p: None, "No such file or directory", id="missing"),
        pytest.param(lambda p: p.write_text("  \n"), "the file is empty", id="empty"),
        pytest.param(
            lambda p: (p.write_text("nsec1secret"), p.chmod(0)),
            "Permission denied",
            id="unreadable",
        ),
        pytest.param(lambda p: p.mkdir(), "Is a directory", id="a-folder"),
    ],
)
def test_an_unusable_key_file_is_a_config_error_naming_the_variable_not_the_content(
    make_config, tmp_path, make_bad, why
):
    if why == "Permission denied" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    bad = tmp_path / "key-file"
    make_bad(bad)
    proc = invoke(make_config(), "listen", env={"SERBERO_PRIVATE_KEY_FILE": str(bad)})
    assert proc.returncode == 2, proc.stderr
    assert f"SERBERO_PRIVATE_KEY_FILE ({bad})" in proc.stderr and why in proc.stderr
    assert "nsec1secret" not in proc.stderr + proc.stdout


def test_a_file_that_is_not_a_key_is_reported_by_source_without_its_content(make_config, tmp_path):
    bad = tmp_path / "key-file"
    bad.write_text("SERBERO_PRIVATE_KEY=nsec1notreallyakeyatall")
    proc = invoke(make_config(), "listen", env={"SERBERO_PRIVATE_KEY_FILE": str(bad)})
    assert proc.returncode == 2 and f"SERBERO_PRIVATE_KEY_FILE ({bad})" in proc.stderr
    assert "notreallyakey" not in proc.stderr


def test_a_set_but_unusable_source_does_not_fall_through_to_the_next(
    make_config, four_keys, tmp_path
):
    sources, _ = four_keys
    sources["SERBERO_PRIVATE_KEY_FILE"] = str(tmp_path / "gone")
    del sources["SERBERO_PRIVATE_KEY"]
    proc = invoke(make_config(), "keys", "show", env=sources)
    assert proc.returncode == 2 and "SERBERO_PRIVATE_KEY_FILE" in proc.stderr


def test_keys_show_secret_from_env_reads_the_file_too(make_config, four_keys):
    sources, pubs = four_keys
    del sources["SERBERO_PRIVATE_KEY"]
    proc = invoke(make_config(), "keys", "show", "--secret-from-env", env=sources)
    assert proc.returncode == 0 and npub(pubs["file"]) in proc.stdout


def test_mediation_sends_the_api_key_from_a_file_and_from_a_credential(harness, tmp_path):
    h = harness()
    h.open()
    key_file = tmp_path / "api-key"
    key_file.write_text("sk-from-file-0123456789\n")
    h.llm.push(ask())
    code, doc, err = h.mediate_cli(
        env={"SERBERO_REASONING_API_KEY": "", "SERBERO_REASONING_API_KEY_FILE": str(key_file)}
    )
    assert code == 0 and doc["sessions_opened"] == 1, err
    assert h.llm.model_requests()[-1].headers["authorization"] == "Bearer sk-from-file-0123456789"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "serbero-reasoning-api-key").write_text("sk-from-credential-0123456789")
    h.open()
    h.llm.push(ask())
    code, doc, err = h.mediate_cli(
        env={"SERBERO_REASONING_API_KEY": "", "CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert code == 0 and doc["sessions_opened"] == 1, err
    assert (
        h.llm.model_requests()[-1].headers["authorization"]
        == "Bearer sk-from-credential-0123456789"
    )
    assert "sk-from" not in err


def test_an_unreadable_api_key_file_is_exit_2_naming_the_variable(harness, tmp_path):
    h = harness()
    code, doc, err = h.mediate_cli(
        env={
            "SERBERO_REASONING_API_KEY": "",
            "SERBERO_REASONING_API_KEY_FILE": str(tmp_path / "nope"),
        }
    )
    assert code == 2 and "SERBERO_REASONING_API_KEY_FILE" in doc["error"], err


@pytest.mark.parametrize(
    "env, expected",
    [
        pytest.param({}, None, id="nothing-set"),
        pytest.param({"K": " v "}, "v", id="variable-trimmed"),
        pytest.param(
            {"CREDENTIALS_DIRECTORY": "/nonexistent"}, None, id="credential-folder-without-the-file"
        ),
    ],
)
def test_find_secret_without_files(env, expected):
    found = find_secret(env, "K", "cred")
    assert (found.text if found else None) == expected


def test_find_secret_refuses_a_huge_file(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 70_000)
    with pytest.raises(SecretSourceError, match="larger than"):
        find_secret({"K_FILE": str(big)}, "K", "cred")


def test_an_empty_credential_counts_as_unset_so_the_units_fallback_works(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cred").write_text(
        ""
    )  # what an empty SetCredential= leaves when LoadCredential= found no file
    assert find_secret({"CREDENTIALS_DIRECTORY": str(creds)}, "K", "cred") is None
    (creds / "cred").write_text(" s3cret \n")
    assert find_secret({"CREDENTIALS_DIRECTORY": str(creds)}, "K", "cred").text == "s3cret"
