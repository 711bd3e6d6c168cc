"""Planning: images resolved to the platforms to test, and what can be read of them
without running anything (configs, filesystems, the static audit). No engine is needed
here: what runs where comes in as ``mode_of``, and a ``docker-daemon:`` source's engine
as ``daemon``, both asked for only when needed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checks
from .checks import FAILED, SKIPPED, CheckResult
from .engine import UNAVAILABLE, Mode
from .errors import MultiarchError
from .layers import DEFAULT_MAX_LAYER_BYTES, Filesystem
from .manifest import ImageConfig
from .once import Once, waiter
from .platform import Platform, sort_key
from .registry import Registry
from .sources import RegistrySource, Resolved, Source, open_source
from .timings import Timings

if TYPE_CHECKING:
    from .engine import Engine


@dataclass(frozen=True)
class Target:
    """One platform of one image: what is tested, pinned by its own manifest digest."""

    image: str  # the source as the user named it
    index_digest: str
    platform: Platform
    digest: str
    mode: Mode
    engine: str | None = None  # DOCKER_HOST of the engine routed to run it; None: the default

    @property
    def key(self) -> str:
        return f"{self.image}|{self.platform}"


def unavailable(target: Target, strict: bool) -> CheckResult | None:
    """The one rule for a platform this host cannot run: None when it can run; else what
    stands in for running it: a skip, or under ``--strict-platforms`` a failure, each
    saying why."""
    if target.mode.runnable:
        return None
    if strict:
        return CheckResult(FAILED, f"{target.platform} cannot run here (--strict-platforms): {target.mode.reason}")
    return CheckResult(SKIPPED, f"{target.platform} cannot run here: {target.mode.reason}")


@dataclass(frozen=True)
class ImagePlan:
    image: str
    digest: str
    is_index: bool
    present: tuple[Platform, ...]
    targets: tuple[Target, ...]
    missing: tuple[Platform, ...]
    notes: tuple[str, ...] = field(default=())

    def to_data(self) -> dict[str, Any]:
        """Plain data (JSON, execnet) that :meth:`from_data` turns back into this plan."""
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ImagePlan:
        def target(t: dict[str, Any]) -> Target:
            mode = t["mode"]
            env = tuple((k, v) for k, v in mode["env"])
            return Target(**t | {"platform": Platform(**t["platform"]), "mode": Mode(**mode | {"env": env})})

        return cls(
            **data
            | {
                "present": tuple(Platform(**p) for p in data["present"]),
                "targets": tuple(target(t) for t in data["targets"]),
                "missing": tuple(Platform(**p) for p in data["missing"]),
                "notes": tuple(data["notes"]),
            }
        )

    def coverage(self) -> CheckResult:
        """The ``index`` check: every requested platform is in the index, and one at least can be tested."""
        present = ", ".join(str(p) for p in self.present) or "none"
        note = ("; " + "; ".join(self.notes)) if self.notes else ""
        if self.missing:
            missing = ", ".join(str(p) for p in self.missing)
            return CheckResult(FAILED, f"missing from the index: {missing} (present: {present}){note}")
        if not self.targets:
            return CheckResult(FAILED, f"no runnable platform in the index (entries: {present}){note}")
        return CheckResult(checks.PASSED, f"{len(self.targets)} platforms tested of {len(self.present)} present{note}")


class PlanError(MultiarchError, RuntimeError):
    """An image that could not be resolved, as another process (the xdist controller) found."""


class Planner:
    """Sources, plans, configs and filesystems of a run's images, each made once and shared
    by the threads of this process."""

    def __init__(
        self,
        requested: list[Platform] | None,
        registry: Registry,
        scratch_registry: str,
        *,
        mode_of: Callable[[Platform], Mode],
        route_of: Callable[[Platform], str | None],
        daemon: Callable[[], Engine],
        pins: dict[str, str] | None = None,
        plans: Sequence[ImagePlan] = (),
        plan_errors: dict[str, str] | None = None,
        layer_limit: int = DEFAULT_MAX_LAYER_BYTES,
        timings: Timings | None = None,
    ) -> None:
        self.requested = requested
        self.timings = timings or Timings()
        #: The most bytes one layer may decompress to.
        self.layer_limit = layer_limit
        self.registry = registry
        self.scratch_registry = scratch_registry
        self._mode_of = mode_of
        self._route_of = route_of
        self._daemon = daemon
        #: Image -> index digest decided elsewhere (by the xdist controller), so every
        #: process tests the same index even if the tag moves meanwhile.
        self.pins = dict(pins or {})
        #: Plans made elsewhere (the xdist controller's, handed to its workers) are used as
        #: they are: every process tests the same platforms, digests and modes.
        self._plans: dict[str, ImagePlan] = {plan.image: plan for plan in plans}
        self._plan_errors: dict[str, MultiarchError] = {ref: PlanError(why) for ref, why in (plan_errors or {}).items()}
        self._sources: dict[str, Source] = {}
        self._configs: Once[str, ImageConfig] = Once()
        self._indexes: dict[str, Resolved] = {}
        #: Made once per (image, digest) by the first thread to ask, while other platforms'
        #: are made side by side (a run's prefetch reads several at once).
        self._filesystems: Once[tuple[str, str], Filesystem] = Once(keep_errors=False)
        self._lock = threading.RLock()
        #: Called now and then while a thread waits for layers another thread is reading.
        self.on_wait: Callable[[], None] | None = None

    def source(self, image: str) -> Source:
        with self._lock:
            if image not in self._sources:
                engine = self._daemon() if image.startswith("docker-daemon:") else None
                self._sources[image] = open_source(
                    image, self.registry, engine, self.scratch_registry, layer_limit=self.layer_limit
                )
            return self._sources[image]

    def plan(self, image: str) -> ImagePlan:
        """The platforms of ``image`` to test. Resolved once; a failure is kept too."""
        with self._lock:
            if image in self._plan_errors:
                raise self._plan_errors[image]
            if image not in self._plans:
                try:
                    self._plans[image] = self._resolve(image)
                except MultiarchError as exc:
                    self._plan_errors[image] = exc
                    raise
                except OSError as exc:  # the machine's: a cache folder that cannot be written, say
                    self._plan_errors[image] = PlanError(str(exc))
                    raise self._plan_errors[image] from exc
            return self._plans[image]

    def resolved(self, image: str) -> Resolved:
        """The index of ``image`` as its source resolved it, every platform entry: once, for
        plans, audits and the checks of the index as a whole alike."""
        with self._lock:
            if image not in self._indexes:
                with self.timings.span(image, "", "resolve"):
                    self._indexes[image] = self.source(image).resolve(self.pins.get(image))
            return self._indexes[image]

    def _resolve(self, image: str) -> ImagePlan:
        resolved = self.resolved(image)
        present = tuple(sorted((p for p, _ in resolved.entries), key=sort_key))
        wanted = self.requested if self.requested is not None else list(present)
        by_platform = dict(resolved.entries)
        targets = tuple(
            Target(image, resolved.digest, p, by_platform[p], self._mode_of(p), self._route_of(p))
            for p in wanted
            if p in by_platform
        )
        missing = tuple(p for p in wanted if p not in by_platform)
        return ImagePlan(image, resolved.digest, resolved.is_index, present, targets, missing, resolved.notes)

    def config(self, target: Target) -> ImageConfig:
        return self._configs.get(target.key, lambda: self.source(target.image).config(target.digest))

    def filesystem(self, target: Target) -> Filesystem:
        """The flattened filesystem of ``target``: its layers read (the audit), once."""

        def read() -> Filesystem:
            with self.timings.span(target.image, str(target.platform), "audit"):
                return self.source(target.image).filesystem(target.digest)

        waited = functools.partial(self.timings.add, target.image, str(target.platform), "wait")
        return self._filesystems.get((target.image, target.digest), read, waiter(lambda: self.on_wait, waited))

    def audited(self, target: Target) -> bool:
        """Whether ``target``'s layers are read already (nothing to wait for)."""
        return self._filesystems.done((target.image, target.digest)) is not None

    def _registry(self, target: Target) -> RegistrySource | None:
        """``target``'s source when it is a registry's (blobs kept by digest), else None."""
        source = self.source(target.image)
        return source if isinstance(source, RegistrySource) else None

    def _registry_only(self, target: Target) -> RegistrySource:
        source = self._registry(target)
        if source is None:
            raise TypeError(f"{target.image}: not a registry's image")
        return source

    def cached(self, target: Target) -> bool:
        """Whether ``target``'s layers are read already, here or into the cache by an
        earlier run (then reading them costs a few milliseconds a layer)."""
        if self.audited(target):
            return True
        source = self._registry(target)
        if source is None:
            return False
        try:
            layers = source.manifest(target.digest).layers
        except MultiarchError:
            return False
        return all(source.cache.has(layer.digest) for layer in layers)

    def feedable(self, target: Target) -> bool:
        """Whether ``target``'s image can go into an engine from the blobs the audit reads:
        a registry's, whose blobs are kept by digest."""
        return self._registry(target) is not None

    def on_loopback(self, target: Target) -> bool:
        source = self._registry(target)
        return source is not None and source.ref.is_loopback

    def pinned_name(self, target: Target) -> str:
        """``registry/repository@digest`` of ``target``'s manifest (a registry's image),
        without asking an engine as :meth:`pinned` may."""
        return self._registry_only(target).ref.with_digest(target.digest).pinned

    def blob_digests(self, target: Target) -> tuple[str, list[str]]:
        """The digests of ``target``'s config and layers (a registry's image)."""
        manifest = self._registry_only(target).manifest(target.digest)
        return manifest.config.digest, [layer.digest for layer in manifest.layers]

    def blobs(self, target: Target) -> list[Path]:
        """The files of ``target``'s config and layers, as the audit read them (it is waited
        for, or done here); fetched now only if the cache lost one since."""
        self.filesystem(target)
        config, layers = self.blob_digests(target)
        source = self._registry_only(target)
        return [source.blob_path(d) for d in (config, *layers)]

    def which(self, target: Target, name: str) -> str | None:
        """The path of command ``name`` on the image's PATH, as its config sets it."""
        return self.filesystem(target).which(name, self.config(target).path_dirs)

    def pinned(self, target: Target) -> str:
        """What the engine pulls and runs for ``target``: by digest, never by tag."""
        return self.source(target.image).runnable(target.digest, self._daemon())

    def static_targets(self, image: str, *, every: bool = False) -> list[Target]:
        """Every requested platform the index of ``image`` has (with ``every``, each platform
        it has), as targets for the static checks: their mode is never asked of an engine."""
        resolved = self.resolved(image)
        wanted = set(self.requested) if self.requested is not None and not every else None
        not_run = Mode(UNAVAILABLE, "a static audit runs no container")
        return [
            Target(image, resolved.digest, platform, digest, not_run)
            for platform, digest in resolved.entries
            if wanted is None or platform in wanted
        ]

    def entries(self, image: str) -> dict[Platform, Filesystem]:
        """The filesystem of every requested platform the index of ``image`` has."""
        return {t.platform: self.filesystem(t) for t in self.static_targets(image)}

    def close(self) -> None:
        self._filesystems.clear()
        with self._lock:
            for source in self._sources.values():
                source.close()
            self._sources.clear()
