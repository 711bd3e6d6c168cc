"""What one pytest process knows of the run: its options, its harness, and its stash keys.

Every process (the only one, or each xdist worker) has its own :class:`State` and its own
:class:`harness.Harness`, made on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import Harness
from harness.planner import ImagePlan, Target
from harness.platform import Platform
from harness.registry import Registry
from harness.survey import Survey

from . import options
from .runinfo import RunRecorder, Signals

#: The fixture that every multiarch fixture rests on; its parameters are the targets.
TARGET_FIXTURE = "multiarch_target"


@dataclass(frozen=True)
class Unresolved:
    """The parameter of a test whose image could not be resolved: it fails with the reason."""

    image: str
    error: str


@dataclass
class State:
    opts: options.Options
    session_id: str
    is_worker: bool
    pins: dict[str, str] = field(default_factory=dict)
    handed: list[ImagePlan] = field(default_factory=list)
    handed_errors: dict[str, str] = field(default_factory=dict)
    #: Engine URL -> the controller's survey of it (harness.survey), as data.
    handed_surveys: dict[str, dict[str, Any]] = field(default_factory=dict)
    _harness: Harness | None = None
    #: Target key -> how many user tests this process's collection selected on it.
    selected_tests: dict[str, int] = field(default_factory=dict)
    #: Every image the collected tests name, before any selection; and the node ids of the
    #: built-in check items made for them.
    refs: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    signals: Signals = field(default_factory=Signals)
    #: Whether this process has started preparing the run's platforms (harness.Harness.prepare).
    prepared: bool = False
    #: id() of the last item of each platform this process runs -> its target (not under xdist).
    last_items: dict[int, Target] = field(default_factory=dict)
    #: In an xdist worker: platform -> the targets of it this worker has run items of.
    worker_targets: dict[Platform, set[Target]] = field(default_factory=dict)

    @property
    def harness(self) -> Harness:
        if self._harness is None:
            self._harness = Harness(
                self.opts.platforms,
                session_id=self.session_id,
                pins=self.pins,
                plans=self.handed,
                plan_errors=self.handed_errors,
                elf_include=self.opts.elf_include,
                elf_exclude=self.opts.elf_exclude,
                scratch_registry=self.opts.scratch_registry,
                registry=Registry(insecure=self.opts.insecure),
                timeout=self.opts.timeout,
                engines=dict(self.opts.engines),
                strict_elf=self.opts.strict_elf,
                strict_platforms=self.opts.strict,
                max_layer_bytes=self.opts.max_layer_bytes,
                page_sizes=dict(self.opts.page_sizes),
                qemu_cpus=dict(self.opts.qemu_cpus),
                require_attestations=self.opts.require_attestations,
                surveys={url: Survey.from_data(data) for url, data in self.handed_surveys.items()},
                parallel=self.opts.parallel,
                feed=self.opts.feed,
            )
        return self._harness

    @property
    def has_harness(self) -> bool:
        """Whether this process made its harness (asking for it makes one)."""
        return self._harness is not None

    def plan(self, ref: str) -> ImagePlan:
        return self.harness.plan(ref)

    def selected_on(self, target: Target) -> int:
        return self.selected_tests.get(target.key, 0)

    def close(self) -> None:
        """Remove this process's containers (again harmless)."""
        if self._harness is not None:
            self._harness.close()


STATE = pytest.StashKey[State]()
RECORDER = pytest.StashKey[RunRecorder]()
#: Seconds the commands of a test took inside its container (on the test's item).
COMMAND_SECONDS = pytest.StashKey[float]()


def state_of(config: pytest.Config) -> State:
    return config.stash[STATE]
