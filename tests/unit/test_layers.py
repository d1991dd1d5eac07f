"""The package's seams, checked on the source (docs/architecture.md#rules): who may import whom.

Every import counts, the lazy ones inside functions too, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "serbero_cli"

# package -> packages it must never import (directly or lazily)
FORBIDDEN = {
    "domain": (
        "listen",
        "delivery",
        "mediation",
        "dispatch",
        "audit",
        "cli",
        "setup",
        "upkeep",
        "simulate",
    ),
    "delivery": ("listen", "mediation", "dispatch", "audit", "cli", "setup", "upkeep", "simulate"),
    "listen": ("mediation", "dispatch", "audit", "cli", "setup", "upkeep", "simulate"),
    "mediation": ("listen", "dispatch", "audit", "cli", "setup", "upkeep", "simulate"),
    "dispatch": ("listen", "mediation", "audit", "cli", "setup", "upkeep", "simulate"),
    "store": (
        "listen",
        "delivery",
        "mediation",
        "dispatch",
        "audit",
        "cli",
        "setup",
        "upkeep",
        "simulate",
        "nostr",
        "reasoning",
    ),
    "nostr": (
        "listen",
        "delivery",
        "mediation",
        "dispatch",
        "audit",
        "cli",
        "setup",
        "upkeep",
        "simulate",
        "store",
    ),
    "reasoning": (
        "listen",
        "delivery",
        "mediation",
        "dispatch",
        "audit",
        "cli",
        "setup",
        "upkeep",
        "simulate",
    ),
    "audit": ("listen", "delivery", "mediation", "dispatch", "cli", "setup", "upkeep", "simulate"),
}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_never_imports_the_layers_above_it(package):
    bad = []
    for path in (PACKAGE / package).rglob("*.py"):
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] == "serbero_cli" and len(parts) > 1 and parts[1] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert bad == []


def test_only_the_demo_command_imports_the_simulators():
    allowed = {PACKAGE / "cli" / "demo.py"}
    bad = [
        f"{p.relative_to(PACKAGE)}"
        for p in modules()
        if p not in allowed
        and "simulate" not in p.relative_to(PACKAGE).parts[:1]
        and any(n.startswith("serbero_cli.simulate") for n in imports_of(p))
    ]
    assert bad == []


def test_build_tools_stay_out_of_the_package():
    assert not any(n.startswith("devtools") for p in modules() for n in imports_of(p))
