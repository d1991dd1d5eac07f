"""Transport and PoW resolution: every row of docs/mediation.md#transport (the pure part)."""

from __future__ import annotations

import json

import pytest

from serbero_cli.mediation.transport import normalize_configured, resolve_transport
from serbero_cli.nostr.mostro_messages import NodeInfo

NOW = 1_790_000_000


def info(version="2", pow_bits=8, first=12) -> NodeInfo:
    return NodeInfo(
        protocol_version=version,
        pow=pow_bits,
        pow_first_contact=first,
        mostro_version="0.18.5",
        event_id="ab" * 32,
        created_at=NOW - 100,
    )


def cache(transport="nip44", version="2", pow_bits=4, first=16, age=3600) -> dict:
    return {
        "transport": transport,
        "protocol_version": version,
        "pow": pow_bits,
        "pow_first_contact": first,
        "event_id": "cd" * 32,
        "event_created_at": NOW - age,
    }


@pytest.mark.parametrize(
    "configured, node, cached, transport, source, bits, warns",
    [
        pytest.param(
            "giftwrap",
            info("1", 8, 8),
            None,
            "giftwrap",
            "config",
            8,
            0,
            id="config-giftwrap-agrees",
        ),
        pytest.param(
            "nip44", info("2", 0, 12), None, "nip44", "config", 12, 0, id="config-nip44-agrees"
        ),
        pytest.param(
            "giftwrap",
            info("2", 0, 12),
            None,
            "giftwrap",
            "config",
            0,
            1,
            id="config-giftwrap-vs-v2-warns",
        ),
        pytest.param(
            "nip44", info("1", 8, 8), None, "nip44", "config", 8, 1, id="config-nip44-vs-v1-warns"
        ),
        pytest.param(
            "nip44",
            info(None, 0, None),
            None,
            "nip44",
            "config",
            0,
            2,
            id="config-nip44-vs-absent-tag",
        ),
        pytest.param(
            "giftwrap",
            info("3", 5, 5),
            None,
            "giftwrap",
            "config",
            5,
            1,
            id="config-vs-unsupported-warns",
        ),
        pytest.param(
            "nip44", None, cache(), "nip44", "config", 16, 0, id="config-no-event-pow-from-cache"
        ),
        pytest.param(
            "giftwrap", None, None, "giftwrap", "config", 0, 0, id="config-no-event-no-cache"
        ),
        pytest.param("auto", info("2", 0, 12), None, "nip44", "info_event", 12, 0, id="auto-v2"),
        pytest.param(
            "auto",
            info("2", 8, None),
            None,
            "nip44",
            "info_event",
            8,
            1,
            id="auto-v2-no-first-contact",
        ),
        pytest.param("auto", info("1", 8, 8), None, "giftwrap", "info_event", 8, 0, id="auto-v1"),
        pytest.param(
            "auto", info(None, 3, None), None, "giftwrap", "info_event", 3, 0, id="auto-tag-absent"
        ),
        pytest.param(
            "auto",
            info("1", None, None),
            None,
            "giftwrap",
            "info_event",
            0,
            0,
            id="auto-v1-non-integer-pow",
        ),
        pytest.param("auto", info("3"), cache(), None, "info_event", 0, 0, id="auto-unsupported-3"),
        pytest.param("auto", info("x"), None, None, "info_event", 0, 0, id="auto-unsupported-x"),
        pytest.param("auto", None, cache(age=3600), "nip44", "cache", 16, 0, id="auto-cache"),
        pytest.param(
            "auto",
            None,
            cache("giftwrap", "1", 6, 6, age=90_000),
            "giftwrap",
            "cache",
            6,
            1,
            id="auto-cache-older-than-24h-warns",
        ),
        pytest.param("auto", None, None, "giftwrap", "fallback", 0, 1, id="auto-fallback"),
        pytest.param(
            "auto",
            None,
            {"transport": "smoke-signals"},
            "giftwrap",
            "fallback",
            0,
            1,
            id="auto-malformed-cache-falls-back",
        ),
        pytest.param(
            "gift-wrap", info("1", 2, 2), None, "giftwrap", "config", 2, 0, id="alias-gift-wrap"
        ),
    ],
)
def test_resolve_transport_rows(configured, node, cached, transport, source, bits, warns):
    choice = resolve_transport(configured, node, cached, NOW)
    assert (choice.transport, choice.source, choice.pow_bits, len(choice.warnings)) == (
        transport,
        source,
        bits,
        warns,
    ), choice.warnings
    assert (choice.error is not None) == (transport is None)


def test_unsupported_protocol_is_an_error_naming_the_value():
    choice = resolve_transport("auto", info("3"), None, NOW)
    assert "'3'" in choice.error
    assert choice.cache_value["transport"] is None and choice.cache_value["protocol_version"] == "3"


def test_cached_unsupported_protocol_still_means_no_take():
    choice = resolve_transport("auto", None, cache(None, "3"), NOW)
    assert (choice.transport, choice.source) == (None, "cache") and choice.error


def test_fallback_warning_says_to_pin_transport_for_cashu_nodes():
    warning = resolve_transport("auto", None, None, NOW).warnings[0]
    assert "Cashu" in warning and "transport" in warning


def test_cache_value_is_written_whenever_an_event_is_found_in_fixed_order():
    for configured in ("auto", "giftwrap", "nip44"):
        choice = resolve_transport(configured, info("2", 0, 12), None, NOW)
        assert list(choice.cache_value) == [
            "transport",
            "protocol_version",
            "pow",
            "pow_first_contact",
            "event_id",
            "event_created_at",
        ]
        assert json.dumps(choice.cache_value, separators=(",", ":")) == (
            '{"transport":"nip44","protocol_version":"2","pow":0,"pow_first_contact":12,'
            f'"event_id":"{"ab" * 32}","event_created_at":{NOW - 100}}}'
        )


def test_cache_value_uses_null_for_absent_tags_and_is_none_without_an_event():
    choice = resolve_transport("auto", info(None, None, None), None, NOW)
    assert choice.cache_value["protocol_version"] is None and choice.cache_value["pow"] is None
    assert choice.cache_value["transport"] == "giftwrap"
    assert resolve_transport("auto", None, cache(), NOW).cache_value is None


def test_cache_round_trips_through_json():
    first = resolve_transport("auto", info("2", 1, 9), None, NOW)
    stored = json.loads(json.dumps(first.cache_value, separators=(",", ":")))
    second = resolve_transport("auto", None, stored, NOW + 600)
    assert (second.transport, second.source, second.pow_bits, second.warnings) == (
        "nip44",
        "cache",
        9,
        [],
    )


@pytest.mark.parametrize("value", ["Auto", "nip-44", "", "giftwrap "])
def test_unknown_configured_transport_is_rejected(value):
    with pytest.raises(ValueError):
        normalize_configured(value)
    with pytest.raises(ValueError):
        resolve_transport(value, None, None, NOW)
