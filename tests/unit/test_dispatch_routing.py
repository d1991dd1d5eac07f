"""The routing table (docs/delivery.md#routing), one parametrized row per rule and edge (pure function, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from serbero_cli.dispatch.routing import normalize_pubkey, resolve_recipients
from serbero_cli.keytext import Secret, npub, public_key_of

W1, W2, R1, R2, OUT = (public_key_of(Secret(f"{i:064x}")) for i in range(1, 6))


@dataclass(frozen=True)
class S:
    pubkey: str
    permission: str


def solvers(*pairs: tuple[str, str]) -> list[S]:
    return [S(k, p) for k, p in pairs]


@pytest.mark.parametrize(
    ("assigned", "configured", "fallback", "route", "recipients", "fb"),
    [
        pytest.param(
            W2,
            [(W1, "write"), (W2, "write")],
            False,
            "targeted",
            [W2],
            False,
            id="rule1-assigned-writer",
        ),
        pytest.param(
            OUT,
            [(W1, "write"), (W2, "write")],
            False,
            "broadcast",
            [W1, W2],
            False,
            id="rule2-assignee-not-configured",
        ),
        pytest.param(
            R1,
            [(R1, "read"), (W1, "write")],
            False,
            "broadcast",
            [W1],
            False,
            id="rule2-read-assignee",
        ),
        pytest.param(
            None,
            [(W1, "write"), (R1, "read"), (W2, "write")],
            False,
            "broadcast",
            [W1, W2],
            False,
            id="rule2-no-assignee-config-order",
        ),
        pytest.param(
            W1,
            [(R1, "read"), (W1, "write"), (W2, "write")],
            True,
            "targeted",
            [W1],
            False,
            id="rule1-wins-over-fallback",
        ),
        pytest.param(
            None,
            [(R1, "read"), (R2, "read")],
            True,
            "fallback",
            [R1, R2],
            True,
            id="rule3-fallback",
        ),
        pytest.param(
            R2,
            [(R1, "read"), (R2, "read")],
            True,
            "fallback",
            [R1, R2],
            True,
            id="rule3-read-assignee",
        ),
        pytest.param(None, [(R1, "read")], False, "unroutable", [], False, id="rule4-fallback-off"),
        pytest.param(None, [], True, "unroutable", [], False, id="rule4-zero-solvers-fallback-on"),
        pytest.param(
            None, [], False, "unroutable", [], False, id="rule4-zero-solvers-fallback-off"
        ),
    ],
)
def test_resolve_recipients_follows_the_table(
    assigned, configured, fallback, route, recipients, fb
):
    decision = resolve_recipients(assigned, solvers(*configured), fallback)
    assert decision.route == route
    assert list(decision.recipients) == recipients
    assert decision.fallback_broadcast is fb
    assert decision.configured_solver_count == len(configured)
    assert decision.routable is (route != "unroutable")


@pytest.mark.parametrize(
    ("assigned", "config_key"),
    [
        pytest.param(W1, npub(W1), id="npub-config-hex-assignee"),
        pytest.param(W1, W1.upper(), id="upper-config-hex-assignee"),
        pytest.param(W1, "nostr:" + npub(W1), id="nostr-npub-config"),
        pytest.param(npub(W1), W1, id="npub-assignee"),
        pytest.param(W1.upper(), W1, id="upper-assignee"),
    ],
)
def test_resolve_recipients_normalises_keys_to_lowercase_hex(assigned, config_key):
    decision = resolve_recipients(assigned, solvers((config_key, "write"), (W2, "write")), False)
    assert decision.route == "targeted" and decision.recipients == (W1,)


@pytest.mark.parametrize(
    "garbage", ["", "not-a-key", "ab" * 31, "zz" * 32, "0" * 64, "npub1qqqq", 42]
)
def test_resolve_recipients_garbage_assignee_counts_as_unassigned(garbage):
    assert normalize_pubkey(garbage) is None
    decision = resolve_recipients(garbage, solvers((W1, "write"), (W2, "write")), False)
    assert decision.route == "broadcast" and decision.recipients == (W1, W2)
