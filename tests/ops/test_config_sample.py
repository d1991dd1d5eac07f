"""`config.toml.sample` is complete: generated from KEYS, loadable once filled, no unknown or missing key."""

from __future__ import annotations

import re

import nostr_sdk as ns
import pytest
import tomlkit

from serbero_cli.config import (
    ARRAY_SECTIONS,
    KEYS,
    REQUIRED,
    SECTIONS,
    load_config,
    render_sample,
    section_fields,
)
from serbero_cli.errors import ConfigError
from tests.helpers import SAMPLE

COMMENTED_KEY = re.compile(r"^# ([a-z_]+) = ")


def sample_keys() -> dict[str, set[str]]:
    """Live keys (parsed by tomlkit) and commented-out keys (`# key = …`) per section of the sample."""
    text = SAMPLE.read_text(encoding="utf-8")
    doc = tomlkit.parse(text).unwrap()
    found: dict[str, set[str]] = {}
    for section, value in doc.items():
        tables = value if isinstance(value, list) else [value]
        found[section] = {key for table in tables for key in table}
    section = None
    for line in text.splitlines():
        header = re.match(
            r"^(?:# )?\[\[?([a-z_]+)\]\]?$", line
        )  # an optional table is shown commented out
        if header:
            section = header.group(1)
        elif section and COMMENTED_KEY.match(line):
            found.setdefault(section, set()).add(COMMENTED_KEY.match(line).group(1))
    return found


def filled_sample(tmp_path):
    doc = tomlkit.parse(SAMPLE.read_text(encoding="utf-8"))
    doc["serbero"]["private_key"] = ns.Keys.generate().secret_key().to_bech32()
    doc["mostro"]["pubkey"] = ns.Keys.generate().public_key().to_bech32()
    doc["solvers"][0]["pubkey"] = ns.Keys.generate().public_key().to_hex()
    path = tmp_path / "config.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_sample_file_equals_render_sample():
    assert SAMPLE.read_text(encoding="utf-8") == render_sample(), "run scripts/gen-sample"


def test_sample_with_placeholders_replaced_loads_with_every_default(tmp_path):
    config = load_config(filled_sample(tmp_path), env={})
    assert config.warnings == ()
    assert config.relays == ("wss://relay.mostro.network",)
    for spec in KEYS:
        if (
            spec.default is REQUIRED
            or spec.section in ARRAY_SECTIONS
            or spec.section in ("serbero", "mostro")
        ):
            continue
        assert getattr(getattr(config, spec.section), spec.name) == spec.default, (
            spec.section,
            spec.name,
        )
    assert config.db_path == tmp_path / "serbero.db"


def test_sample_placeholders_fail_until_edited_and_name_their_lines():
    with pytest.raises(ConfigError) as info:
        load_config(SAMPLE, env={})
    keys = [re.sub(r"^.*?:\d+: ", "", p).split(":")[0] for p in info.value.problems]
    assert keys == ["[serbero] private_key", "[mostro] pubkey", "[[solvers]] pubkey"]


def test_every_key_of_the_table_is_in_the_sample():
    found = sample_keys()
    missing = [f"{k.section}.{k.name}" for k in KEYS if k.name not in found.get(k.section, set())]
    assert missing == []


def test_every_key_in_the_sample_is_known_to_the_loader():
    known = {(k.section, k.name) for k in KEYS}
    unknown = [
        f"{section}.{key}"
        for section, keys in sample_keys().items()
        for key in keys
        if (section, key) not in known
    ]
    assert unknown == []
    assert set(sample_keys()) == set(SECTIONS)


@pytest.mark.parametrize("section", [s for s in SECTIONS if section_fields(s)])
def test_every_key_reaches_its_config_dataclass(section):
    assert sorted(section_fields(section)) == sorted(k.name for k in KEYS if k.section == section)
