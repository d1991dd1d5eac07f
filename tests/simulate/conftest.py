"""Fixtures for the simulator tests: a node factory and Serbero's hand-built side."""

from __future__ import annotations

import pytest

from serbero_cli.simulate.mostro_node import MostroNodeSim
from tests.simulate.serbero_side import SerberoSide


@pytest.fixture
def serbero(relay):
    side = SerberoSide(relay.url)
    yield side
    side.close()


@pytest.fixture
def make_node(relay):
    """Build and start a MostroNodeSim on the test relay; every node is closed afterwards."""
    nodes = []

    def build(*, start: bool = True, **kwargs) -> MostroNodeSim:
        node = MostroNodeSim(relay.url, **kwargs)
        if start:
            node.start()
        nodes.append(node)
        return node

    yield build
    for node in nodes:
        node.close()


@pytest.fixture
def parties():
    """Close every PartySim/ThirdParty a test registers here."""
    made = []
    yield made.append
    for p in made:
        p.close()
