"""The contracts run inside the Temporal workflow sandbox: they may import only the standard
library and each other. A contract that pulled in httpx or sqlmodel would load it into every
workflow run (and break determinism the day it did I/O)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[2] / "core" / "contracts"
MODULES = sorted(CONTRACTS.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_contracts_import_only_the_standard_library_and_each_other(path: Path) -> None:
    outside = {
        name
        for name in imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and name != "core.contracts"
        and not name.startswith("core.contracts.")
    }
    assert outside == set(), f"{path.name} imports {sorted(outside)}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\nimport httpx\nfrom sqlmodel import col\n")
    assert imported_modules(bad) >= {"httpx", "sqlmodel"}
