"""`serbero init`: a 0600 config from the sample with a fresh key, the exact npub…:read string, no overwrite."""

from __future__ import annotations

import os
import re
import stat

import nostr_sdk as ns
import tomlkit

from serbero_cli.config import load_config, render_sample
from serbero_cli.keytext import npub, parse_secret_key, public_key_of
from tests.helpers import run_json, run_serbero

NPUB_READ = re.compile(r"\b(npub1[02-9ac-hj-np-z]{58}):read\b")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_0600_config_whose_key_matches_the_printed_registration(cli, tmp_path):
    path = tmp_path / "config.toml"
    result = cli("init", "--path", str(path))
    assert result.exit_code == 0, result.stderr
    assert _mode(path) == 0o600
    secret = parse_secret_key(tomlkit.parse(path.read_text())["serbero"]["private_key"])
    public_key = public_key_of(secret)
    assert f"{npub(public_key)}:read" in result.stdout
    assert public_key in result.stdout
    assert (
        NPUB_READ.findall(result.stdout) == [npub(public_key)] * 2
    )  # the string, then the next step
    assert "read solver can be taken over by a human write solver" in result.stdout
    assert secret.reveal() not in result.stdout + result.stderr
    assert f"serbero --config {path} doctor" in result.stdout


def test_init_ignores_a_permissive_umask(cli, tmp_path):
    old = os.umask(0)
    try:
        result = cli("init", "--path", str(tmp_path / "config.toml"))
    finally:
        os.umask(old)
    assert result.exit_code == 0
    assert _mode(tmp_path / "config.toml") == 0o600


def test_init_keeps_every_comment_of_the_sample(cli, tmp_path):
    path = tmp_path / "config.toml"
    cli("init", "--path", str(path))
    written = path.read_text().splitlines()
    body = render_sample().split("\n[", 1)[1]
    comments = [line for line in body.splitlines() if line.startswith("#")]
    assert comments and all(line in written for line in comments)


def test_init_refuses_to_overwrite_without_force(cli, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("# mine\n")
    result = cli("init", "--path", str(path))
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert result.stdout == ""
    assert path.read_text() == "# mine\n"


def test_init_force_replaces_the_file_with_a_new_0600_inode(cli, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("# mine\n")
    path.chmod(0o644)
    old_inode = path.stat().st_ino
    result = cli("init", "--path", str(path), "--force")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"replaced {path}")
    assert _mode(path) == 0o600
    assert path.stat().st_ino != old_inode
    assert 'private_key = "nsec1' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temp file left behind


def test_init_key_to_env_prints_the_key_once_and_leaves_it_out_of_the_file(
    cli, tmp_path, clean_env
):
    path = tmp_path / "config.toml"
    mostro = ns.Keys.generate().public_key().to_hex()
    result = cli(
        "init",
        "--path",
        str(path),
        "--key-to-env",
        "--mostro-pubkey",
        mostro,
        "--relay",
        "wss://relay.example.org",
        "--solver",
        ns.Keys.generate().public_key().to_bech32(),
    )
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("SERBERO_PRIVATE_KEY=")]
    assert len(lines) == 1 and lines[0].startswith("SERBERO_PRIVATE_KEY=nsec1")
    assert "EnvironmentFile" in result.stdout
    text = path.read_text()
    assert not re.search(r"^private_key\s*=", text, re.M)
    assert "SERBERO_PRIVATE_KEY" in text  # the comment that says where the key lives
    secret = parse_secret_key(lines[0].split("=", 1)[1])
    assert f"{npub(public_key_of(secret))}:read" in result.stdout
    config = load_config(path, {"SERBERO_PRIVATE_KEY": secret.reveal()})
    assert config.public_key == public_key_of(secret)


def test_init_fill_options_give_a_config_the_loader_accepts(cli, tmp_path):
    path = tmp_path / "config.toml"
    mostro = ns.Keys.generate().public_key()
    reader, writer = ns.Keys.generate().public_key(), ns.Keys.generate().public_key()
    result = cli(
        "init",
        "--path",
        str(path),
        "--mostro-pubkey",
        f"nostr:{mostro.to_bech32()}",
        "--relay",
        "ws://127.0.0.1:7777",
        "--relay",
        "wss://relay.example.org",
        "--solver",
        reader.to_hex(),
        "--solver",
        f"nostr:{writer.to_bech32()}:write",
    )
    assert result.exit_code == 0, result.stderr
    assert "Edit " not in result.stdout  # nothing left to fill in
    config = load_config(path, {})
    assert config.mostro_pubkey == mostro.to_hex()
    assert config.relays == ("ws://127.0.0.1:7777", "wss://relay.example.org")
    assert [(s.pubkey, s.permission) for s in config.solvers] == [
        (reader.to_hex(), "read"),
        (writer.to_hex(), "write"),
    ]
    assert config.db_path == tmp_path / "serbero.db"


def test_init_without_fill_options_names_the_placeholders_to_edit(cli, tmp_path):
    path = tmp_path / "config.toml"
    result = cli("init", "--path", str(path))
    assert (
        "Edit " in result.stdout
        and "[mostro] pubkey" in result.stdout
        and "[[solvers]] pubkey" in result.stdout
    )


def test_init_rejects_bad_options_without_writing_anything(cli, tmp_path):
    path = tmp_path / "config.toml"
    cases = [
        ("--mostro-pubkey", "not-a-key"),
        ("--relay", "https://relay.example.org"),
        ("--solver", ns.Keys.generate().public_key().to_hex() + ":admin"),
        ("--solver", "f" * 64),  # not on the curve
    ]
    for option, value in cases:
        result = cli("init", "--path", str(path), option, value)
        assert result.exit_code == 2, (option, value, result.stdout)
        assert option in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not path.exists()


def test_init_writes_where_the_global_config_option_points(cli, tmp_path):
    path = tmp_path / "etc" / "serbero.toml"
    result = cli("--config", str(path), "init")
    assert result.exit_code == 0, result.stderr
    assert path.exists() and _mode(path) == 0o600
    assert f"serbero --config {path} doctor" in result.stdout


def test_init_then_doctor_pass_as_a_newcomer_runs_them(tmp_path, relay, mostro):
    """`serbero init … && serbero doctor` exits 0 on a fresh folder (subprocesses, real relay)."""
    path = tmp_path / "config.toml"
    mostro.open_dispute()
    solver = ns.Keys.generate().public_key().to_bech32()
    init = run_serbero(
        None,
        "init",
        "--path",
        str(path),
        "--mostro-pubkey",
        mostro.pubkey,
        "--relay",
        relay.url,
        "--solver",
        f"{solver}:write",
    )
    assert init.returncode == 0, init.stderr
    code, doc, stderr = run_json(path, "doctor")
    assert code == 0, (doc, stderr)
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["config"]["status"] == "ok"
    assert by_name[f"relay {relay.url}"]["status"] == "ok"
    assert by_name["mostro disputes"]["status"] == "ok"
    assert by_name["database"]["status"] == "warn"  # created by the first run, not by doctor
    assert not (tmp_path / "serbero.db").exists()
