"""The mediation harness, reused: a Mostro node sim, party sims and a scripted model server."""

from __future__ import annotations

from tests.mediate_once.conftest import harness, llm, med_sections, node  # noqa: F401 - fixtures

BOTH = ["mostro", "nip17"]
