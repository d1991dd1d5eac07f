"""Config and command-line input that used to be accepted quietly or answered with an internal
error: duplicate TOML keys, unknown log levels, and secret keys given where a public key belongs."""

from __future__ import annotations

import json

import nostr_sdk as ns
import pytest

from tests.helpers import invoke, invoke_json


def test_a_key_set_twice_exits_2_naming_the_file_and_line(make_config, db_path):
    cfg = make_config()
    lines = cfg.read_text().splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("log_level"))
    lines.insert(first + 1, 'log_level = "debug"')
    cfg.write_text("\n".join(lines) + "\n")
    proc = invoke(cfg, "listen")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"{cfg}:{first + 2}: [serbero] log_level: duplicate key (first set on line {first + 1})"
    )
    assert not db_path.exists()


def test_a_key_set_twice_in_an_array_table_names_its_line(make_config):
    cfg = make_config()
    lines = cfg.read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("permission"))
    lines.insert(at + 1, 'permission = "write"')
    cfg.write_text("\n".join(lines) + "\n")
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 2 and doc["exit_code"] == 2
    assert f"{cfg}:{at + 2}: [[solvers]] permission: duplicate key" in err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("listen",), id="listen"),
        pytest.param(("keys", "generate"), id="keys-generate"),
        pytest.param(("doctor",), id="doctor"),
    ],
)
def test_an_unknown_log_level_option_is_a_usage_error(make_config, args):
    proc = invoke(make_config(), "--log-level", "verbose", *args)
    assert proc.returncode == 2
    assert (
        "--log-level" in proc.stderr
        and "'verbose' is not one of debug, info, warning, error" in proc.stderr
    )
    assert proc.stdout == ""


def test_an_unknown_serbero_log_is_a_usage_error_naming_it(make_config):
    code, doc, err = invoke_json(make_config(), "listen", env={"SERBERO_LOG": "verbose"})
    assert code == 2 and "SERBERO_LOG" in doc["error"] and "verbose" in doc["error"]
    proc = invoke(make_config(name="again.toml"), "doctor", env={"SERBERO_LOG": "verbose"})
    assert proc.returncode == 2 and "SERBERO_LOG 'verbose': must be one of" in proc.stderr


def test_log_levels_are_accepted_in_any_case(make_config):
    code, _, err = invoke_json(make_config(solver_list=[]), "--log-level", "WARNING", "listen")
    assert code == 0, err


@pytest.mark.parametrize("where", ["mostro", "solver"])
def test_an_nsec_in_a_pubkey_key_is_named_as_a_secret_and_never_echoed(make_config, where):
    secret = ns.Keys.generate().secret_key().to_bech32()
    if where == "mostro":
        cfg = make_config()
        text = cfg.read_text()
        doc_line = next(ln for ln in text.splitlines() if ln.startswith("pubkey"))
        cfg.write_text(text.replace(doc_line, f'pubkey = "{secret}"', 1))
        label = "[mostro] pubkey"
    else:
        cfg = make_config(solver_list=[(secret, "read")])
        label = "[[solvers]] pubkey"
    for args in (("listen",), ("doctor",), ("audit",)):
        proc = invoke(cfg, *args, "--json")
        assert proc.returncode == 2, (args, proc.stderr)
        assert f"{label}: this is a secret key (nsec); give the npub" in proc.stdout + proc.stderr
        assert secret not in proc.stdout + proc.stderr
        assert secret[5:25] not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--solver", "{nsec}"), id="solver"),
        pytest.param(("--solver", "{nsec}:write"), id="solver-with-permission"),
        pytest.param(("--solver", "nostr:{nsec}:admin"), id="solver-with-bad-permission"),
        pytest.param(("--mostro-pubkey", "{nsec}"), id="mostro-pubkey"),
    ],
)
def test_init_never_echoes_an_nsec_given_as_a_public_key(tmp_path, args):
    secret = ns.Keys.generate().secret_key().to_bech32()
    target = tmp_path / "config.toml"
    proc = invoke(None, "init", "--path", str(target), *(a.format(nsec=secret) for a in args))
    assert proc.returncode == 2
    assert "this is a secret key (nsec); give the npub" in proc.stderr
    assert secret[5:25] not in proc.stdout + proc.stderr
    assert not target.exists()


def test_keys_convert_refuses_an_nsec_as_a_public_key_without_echoing_it():
    secret = ns.Keys.generate().secret_key().to_bech32()
    proc = invoke(None, "keys", "convert", secret, "--as", "public")
    assert proc.returncode == 2
    assert secret[5:25] not in proc.stdout + proc.stderr
    assert "secret key" in proc.stderr


def test_an_nsec_solver_key_never_reaches_the_json_error(make_config):
    secret = ns.Keys.generate().secret_key().to_bech32()
    code, doc, err = invoke_json(make_config(solver_list=[(secret, "read")]), "listen")
    assert code == 2
    assert secret[5:25] not in json.dumps(doc) + err
