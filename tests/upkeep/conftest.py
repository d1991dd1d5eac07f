"""Upkeep tests reuse the mediation harness: a Mostro node sim, party sims and a scripted model."""

from tests.mediate_once.conftest import harness, llm, med_sections, node  # noqa: F401 - pytest fixtures
