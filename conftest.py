"""Project-wide test set-up: pytester for black-box plugin tests, and the engine tier.

Tests under tests/engine/ are marked ``engine`` automatically; ``-m "not engine"`` gives
the fast tier. When the stack does not answer, engine tests are skipped locally with the
reason, and fail in CI (CI=true), where a missing engine is a broken set-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ENGINE_DIR = Path(__file__).parent / "tests" / "engine"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_DIR in item.path.parents:
            item.add_marker(pytest.mark.engine)
