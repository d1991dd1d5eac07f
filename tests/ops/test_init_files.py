"""`serbero init --db-path` and `--env-file`, and keys written the way the operator typed them."""

from __future__ import annotations

import stat

import tomlkit

from serbero_cli.config import load_config
from serbero_cli.keytext import npub, parse_secret_key, public_key_of
from tests.helpers import run_serbero


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def env_from(path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_env_file_gets_the_key_0600_and_the_config_none(tmp_path, mostro, solvers, relay):
    cfg, env_file = tmp_path / "config.toml", tmp_path / "serbero.env"
    proc = run_serbero(
        None,
        "init",
        "--path",
        str(cfg),
        "--env-file",
        str(env_file),
        "--db-path",
        "state/serbero.db",
        "--mostro-pubkey",
        npub(mostro.pubkey),
        "--relay",
        relay.url,
        *[arg for s in solvers for arg in ("--solver", f"{npub(s.pubkey)}:{s.permission}")],
    )
    assert proc.returncode == 0, proc.stderr
    assert (mode(cfg), mode(env_file), mode(tmp_path / "state")) == (0o600, 0o600, 0o700)
    env = env_from(env_file)
    assert list(env) == ["SERBERO_PRIVATE_KEY"] and env["SERBERO_PRIVATE_KEY"].startswith("nsec1")
    secret = parse_secret_key(env["SERBERO_PRIVATE_KEY"])
    assert "private_key =" not in cfg.read_text()
    assert (
        env["SERBERO_PRIVATE_KEY"] not in proc.stdout + proc.stderr
        and secret.reveal() not in proc.stdout
    )
    assert f"{npub(public_key_of(secret))}:read" in proc.stdout and str(env_file) in proc.stdout
    # The files work as written: listen with the key from the env file notifies both solvers.
    mostro.open_dispute()
    listen = run_serbero(cfg, "listen", env=env)
    assert listen.returncode == 0, listen.stderr
    assert all(len(s.inbox(sender=public_key_of(secret))) == 1 for s in solvers)
    assert (tmp_path / "state" / "serbero.db").exists()


def test_db_path_is_written_as_given_and_resolved_from_the_config_folder(tmp_path):
    cfg = tmp_path / "etc" / "config.toml"
    absolute = tmp_path / "var" / "lib" / "serbero" / "serbero.db"
    assert run_serbero(None, "init", "--path", str(cfg), "--db-path", str(absolute)).returncode == 0
    assert tomlkit.parse(cfg.read_text())["serbero"]["db_path"] == str(absolute)
    assert absolute.parent.is_dir() and mode(absolute.parent) == 0o700
    relative = tmp_path / "etc2" / "config.toml"
    assert (
        run_serbero(None, "init", "--path", str(relative), "--db-path", "db/serbero.db").returncode
        == 0
    )
    text = relative.read_text()
    assert 'db_path = "db/serbero.db"' in text and (relative.parent / "db").is_dir()


def test_a_db_path_that_names_a_folder_is_refused(tmp_path):
    proc = run_serbero(
        None, "init", "--path", str(tmp_path / "c.toml"), "--db-path", str(tmp_path) + "/"
    )
    assert (
        proc.returncode == 2 and "--db-path" in proc.stderr and not (tmp_path / "c.toml").exists()
    )


def test_an_existing_env_file_is_not_overwritten_without_force_and_nothing_is_written(tmp_path):
    cfg, env_file = tmp_path / "config.toml", tmp_path / "serbero.env"
    env_file.write_text("SERBERO_REASONING_API_KEY=sk-keep-me\n")
    proc = run_serbero(None, "init", "--path", str(cfg), "--env-file", str(env_file))
    assert proc.returncode == 2 and str(env_file) in proc.stderr and "--force" in proc.stderr
    assert env_file.read_text() == "SERBERO_REASONING_API_KEY=sk-keep-me\n" and not cfg.exists()
    proc = run_serbero(None, "init", "--path", str(cfg), "--env-file", str(env_file), "--force")
    assert (
        proc.returncode == 0
        and list(env_from(env_file)) == ["SERBERO_PRIVATE_KEY"]
        and mode(env_file) == 0o600
    )


def test_a_failed_config_write_removes_the_env_file_it_just_made(tmp_path):
    env_file = tmp_path / "serbero.env"
    target = tmp_path / "is-a-folder"
    target.mkdir()
    proc = run_serbero(None, "init", "--path", str(target), "--env-file", str(env_file), "--force")
    assert proc.returncode == 2 and not env_file.exists()


def test_keys_typed_as_npub_stay_npub_and_hex_stays_hex(tmp_path, mostro, solvers):
    reader, writer = solvers
    cfg = tmp_path / "config.toml"
    proc = run_serbero(
        None,
        "init",
        "--path",
        str(cfg),
        "--mostro-pubkey",
        f"nostr:{npub(mostro.pubkey)}",
        "--solver",
        f"{npub(writer.pubkey)}:write",
        "--solver",
        reader.pubkey.upper(),
        "--relay",
        "wss://relay.example.org",
    )
    assert proc.returncode == 0, proc.stderr
    doc = tomlkit.parse(cfg.read_text())
    assert doc["mostro"]["pubkey"] == npub(mostro.pubkey)
    assert [(s["pubkey"], s["permission"]) for s in doc["solvers"]] == [
        (npub(writer.pubkey), "write"),
        (reader.pubkey, "read"),
    ]
    loaded = load_config(cfg, env={})
    assert loaded.mostro_pubkey == mostro.pubkey
    assert [(s.pubkey, s.permission) for s in loaded.solvers] == [
        (writer.pubkey, "write"),
        (reader.pubkey, "read"),
    ]
