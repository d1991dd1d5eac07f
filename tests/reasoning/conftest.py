"""Fixtures for the reasoning tests: a scripted LLM server per test."""

from __future__ import annotations

import pytest

from serbero_cli.simulate.llm import LLMServer


@pytest.fixture
def llm():
    with LLMServer() as server:
        yield server
