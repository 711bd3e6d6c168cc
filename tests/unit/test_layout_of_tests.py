"""How the tests are laid out: what pytest's default import mode needs, and where helpers live."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_test_module_names_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []


def _imports_a_conftest(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any("conftest" in name.split(".") for name in names):
            return True
    return False


def test_no_module_imports_from_a_conftest():
    """Which conftest module a bare ``conftest`` name means depends on the order pytest
    loaded them; shared helpers live in modules of their own (enginekit, layerkit, ...)."""
    importers = [p.relative_to(TESTS) for p in TESTS.rglob("*.py") if _imports_a_conftest(p)]
    assert importers == []
