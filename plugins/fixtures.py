"""The fixtures a test of an image uses: ``multiarch``, ``multiarch_target``, ``platform``
and ``container``. Each test is parametrised with the :class:`harness.Target` objects of
its images' plans (see :func:`pytest_multiarch.plugin.pytest_generate_tests`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from harness import Harness
from harness.checks import FAILED
from harness.engine import EngineError
from harness.planner import Target, unavailable
from harness.platform import Platform

from .state import COMMAND_SECONDS, Unresolved, state_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.container import CommandResult, Container


@pytest.fixture
def multiarch(request: pytest.FixtureRequest) -> Harness:
    """The harness of this test process."""
    return state_of(request.config).harness


@pytest.fixture
def multiarch_target(request: pytest.FixtureRequest) -> Target:
    """The (image, platform) under test, pinned by its manifest digest."""
    param: Target | Unresolved = request.param
    if isinstance(param, Unresolved):
        pytest.fail(f"{param.image}: {param.error}", pytrace=False)
    stand_in = unavailable(param, state_of(request.config).opts.strict)
    if stand_in is not None and stand_in.outcome == FAILED:  # a skip was marked at collection
        pytest.fail(stand_in.detail, pytrace=False)
    return param


@pytest.fixture
def platform(multiarch_target: Target) -> Platform:
    """The platform under test; ``str(platform)`` is e.g. ``linux/arm64``."""
    return multiarch_target.platform


class TestContainer:
    """The ``container`` fixture: a running container of the platform under test."""

    __test__ = False

    def __init__(self, target: Target, harness: Harness, node: pytest.Item, own: Container | None = None) -> None:
        self.target = target
        self.platform = target.platform
        self._harness = harness
        self._node = node
        self._own = own  # a container of this test's own (fresh_container), else the shared one

    def run(self, cmd: str | Sequence[str], *, user: str = "", timeout: float | None = None) -> CommandResult:
        """Run ``cmd``; ``timeout`` (seconds natively, default --multiarch-timeout) is scaled
        by the platform's slowdown under emulation."""
        result = self._harness.run(self.target, cmd, user=user, timeout=timeout, container=self._own)
        self._node.stash[COMMAND_SECONDS] = self._node.stash.get(COMMAND_SECONDS, 0.0) + result.own_s
        return result

    @property
    def id(self) -> str:
        return str((self._own or self._harness.container(self.target)).id)

    def __repr__(self) -> str:
        return f"<container {self.target.image} ({self.platform})>"


@pytest.fixture
def container(request: pytest.FixtureRequest, multiarch_target: Target) -> Iterator[TestContainer]:
    """A running container of the image for the current platform: started once and reused
    by the platform's tests, or, for a test marked ``fresh_container``, its own."""
    harness = state_of(request.config).harness
    own = None
    try:
        if request.node.get_closest_marker("fresh_container"):
            own = harness.fresh_container(multiarch_target)
        else:
            harness.container(multiarch_target)
    except EngineError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield TestContainer(multiarch_target, harness, request.node, own)
    finally:
        if own is not None:
            own.stop()
