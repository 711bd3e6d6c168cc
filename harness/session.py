"""One run of the harness: a small front over its planner (images resolved to platforms,
read without running anything) and its container pool (running them).

Usable from plain Python::

    from harness import Harness
    with Harness(platforms="linux/amd64,linux/arm64") as h:
        plan = h.plan("127.0.0.1:5000/samples/good:1.0")
        for target in plan.targets:
            print(target.platform, h.check("elf", target))
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checks, release
from . import probe as probing
from .arch import page_sizes
from .checks import PASSED, SKIPPED, CheckResult, read_result, results_key, write_result
from .engine import UNAVAILABLE, Engine, EngineError, Mode
from .errors import MultiarchError
from .labels import LABEL_SESSION
from .layers import DEFAULT_MAX_LAYER_BYTES, Filesystem
from .manifest import ImageConfig
from .planner import ImagePlan, PlanError, Planner, Target, unavailable
from .platform import Platform, parse_list
from .pool import DEFAULT_EMULATION_FACTOR, ContainerPool
from .prefetch import Prefetcher
from .registry import Registry
from .sources import DEFAULT_SCRATCH_REGISTRY, RegistrySource, Source
from .survey import Survey, families_of
from .timings import Timings

if TYPE_CHECKING:
    from .container import CommandResult, Container

__all__ = ["DEFAULT_EMULATION_FACTOR", "Harness", "ImagePlan", "PlanError", "Target"]


def default_parallel() -> int:
    """Images pulled (or loaded) and containers started at once: one more than the cores,
    at most eight. An engine's pull is its own CPU work (decompressing, unpacking), so
    more of them than that only makes each platform ready later, the first included,
    which the first tests wait for; fewer leaves the engine waiting on its registry
    (3 was fastest on 2 cores, against 2, 4 and 6, by a small margin: README *Cold runs*)."""
    return min(8, (os.cpu_count() or 1) + 1)


class Harness:
    """Everything is given by the caller: the library reads no setting from the environment.
    It reads only what says where things are, as docker and caches do: DOCKER_HOST (the
    default engine), DOCKER_CONFIG (registry logins), MULTIARCH_CACHE_DIR or XDG_CACHE_HOME
    (where blobs and layer indexes are cached)."""

    def __init__(
        self,
        platforms: str | list[Platform] | None = None,
        *,
        registry: Registry | None = None,
        engine: Engine | None = None,
        session_id: str | None = None,
        pins: dict[str, str] | None = None,
        plans: Sequence[ImagePlan] = (),
        plan_errors: dict[str, str] | None = None,
        elf_include: Sequence[str] = (),
        elf_exclude: Sequence[str] = (),
        scratch_registry: str | None = None,
        timeout: float = 120.0,
        engines: dict[Platform, str] | None = None,
        strict_elf: bool = False,
        strict_platforms: bool = False,
        max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES,
        page_sizes: Mapping[Platform | None, int] | None = None,
        qemu_cpus: Mapping[Platform, str] | None = None,
        surveys: Mapping[str, Survey] | None = None,
        require_attestations: Sequence[str] = (),
        parallel: int | None = None,
        feed: str = "auto",
    ) -> None:
        self.requested = parse_list(platforms) if isinstance(platforms, str) else platforms
        self._engine = engine
        #: Platform -> DOCKER_HOST of the engine that runs it (the default engine otherwise).
        self.routes = dict(engines or {})
        self._routed: dict[str, Engine] = {}
        #: Engine URL -> what another process already found it runs (xdist's controller).
        self._surveys = dict(surveys or {})
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.elf_include = tuple(elf_include)
        self.elf_exclude = tuple(elf_exclude)
        #: Warnings of the elf check (32-bit compat code, libraries above the ARM variant) fail it.
        self.strict_elf = strict_elf
        #: A platform this host cannot run fails its engine checks instead of skipping them.
        self.strict_platforms = strict_platforms
        #: The page size the pages check holds each platform to (None: every platform that
        #: has such pages); a platform not named is only reported.
        self.page_sizes = dict(page_sizes or {})
        #: The CPU QEMU emulates for a platform (QEMU_CPU), over the harness's own choice.
        self.qemu_cpus = dict(qemu_cpus or {})
        #: Attestation kinds (``sbom``, ``provenance``) the provenance check requires on every platform.
        self.require_attestations = tuple(require_attestations)
        self._lock = threading.RLock()
        #: Where this process's time goes, per image and platform (:mod:`harness.timings`).
        self.timings = Timings()
        #: How many platforms' layers, pulls and starts :meth:`prepare` runs at once.
        self.parallel = parallel or default_parallel()
        #: The background work, made on first use (:meth:`_background`).
        self._work: dict[str, Prefetcher] = {}
        self._ranks: dict[str, int] = {}
        #: Target keys whose layers a process of its own is reading (harness.warm).
        self._warming: set[str] = set()
        self._warmers: list[subprocess.Popen[bytes]] = []
        self.planner = Planner(
            self.requested,
            registry or Registry(),
            scratch_registry or DEFAULT_SCRATCH_REGISTRY,
            mode_of=self.mode,
            route_of=self.routes.get,
            daemon=lambda: self.engine,
            pins=pins,
            plans=plans,
            plan_errors=plan_errors,
            layer_limit=max_layer_bytes,
            timings=self.timings,
        )
        self.pool = ContainerPool(
            self.planner,
            self.engine_for,
            lambda: self.engine.platform,
            self.session_id,
            timeout,
            timings=self.timings,
            feed=feed,
        )
        self._probe_lock = threading.Lock()
        self._probe_results: dict[tuple[Platform, str | None], probing.ProbeResult] = {}
        #: Built-in checks (by name) that :meth:`prepare` runs in the background for each
        #: target whose container it starts; :meth:`check` then takes their results.
        self.early_checks: tuple[str, ...] = ()
        self._early: dict[tuple[str, str], Future[CheckResult]] = {}
        self._taken: set[tuple[str, str]] = set()

    # --- engines -----------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._new_engine(None)
        return self._engine

    def engine_for(self, platform: Platform) -> Engine:
        """The engine that runs ``platform``: its ``--engine`` route, else the default."""
        url = self.routes.get(platform)
        if url is None:
            return self.engine
        with self._lock:
            if url not in self._routed:
                self._routed[url] = self._new_engine(url)
            return self._routed[url]

    def _new_engine(self, url: str | None) -> Engine:
        engine = Engine(url)
        engine.adopt(self._surveys.get(engine.base_url))
        engine.labels = {LABEL_SESSION: self.session_id}
        engine.survey_cache = self.planner.registry.cache_dir / "surveys"
        if self.requested is not None:  # ask about the platforms of this run only
            engine.wanted = set(families_of(self.requested))
        return engine

    def engines(self) -> list[Engine]:
        """The engines this run uses: the default one and every ``--engine`` route."""
        out = [self.engine]
        for platform in self.routes:
            engine = self.engine_for(platform)
            if engine not in out:
                out.append(engine)
        return out

    def surveys(self) -> dict[str, Survey]:
        """Each engine of this run, surveyed (:mod:`harness.survey`): URL -> survey."""
        return {e.base_url: e.survey() for e in self.engines()}

    def host_platform(self, platform: Platform) -> Platform:
        return self.engine_for(platform).platform

    def page_size(self, platform: Platform) -> int | None:
        if platform in self.page_sizes:
            return self.page_sizes[platform]
        size = self.page_sizes.get(None)
        return size if size in page_sizes(platform) else None

    def mode(self, platform: Platform) -> Mode:
        try:
            engine = self.engine_for(platform)
            mode = engine.mode(platform)
        except EngineError as exc:
            return Mode(UNAVAILABLE, str(exc))
        cpu = self.qemu_cpus.get(platform)
        if cpu is not None and mode.emulated:
            env = (*((k, v) for k, v in mode.env if k != "QEMU_CPU"), ("QEMU_CPU", cpu))
            chosen = dict(mode.env).get("QEMU_CPU")  # the engine's own choice, said at the end of its reason
            base = mode.reason.removesuffix(f", CPU {chosen}") if chosen else mode.reason
            mode = replace(mode, reason=f"{base}, CPU {cpu} (--qemu-cpu)", env=env)
        if platform in self.routes:
            return replace(mode, reason=f"{mode.reason} (engine {engine.base_url})")
        return mode

    # --- planning (no engine needed but for the modes) ---------------------------------------
    def plan(self, image: str) -> ImagePlan:
        """The platforms of ``image`` to test. Resolved once; a failure is kept too."""
        return self.planner.plan(image)

    def source(self, image: str) -> Source:
        """Where ``image`` is read from (a registry, a layout, an archive, the engine's store)."""
        return self.planner.source(image)

    def config(self, target: Target) -> ImageConfig:
        return self.planner.config(target)

    def filesystem(self, target: Target) -> Filesystem:
        return self.planner.filesystem(target)

    def which(self, target: Target, name: str) -> str | None:
        return self.planner.which(target, name)

    def audit(self, image: str, check: str = "elf") -> dict[Platform, CheckResult]:
        """A static check (``elf``, ``libs``, ``pages``) of every requested platform of
        ``image``: no engine needed.

        This is what a release gate runs on a candidate before it is pushed or promoted,
        including platforms this host could not run. Missing platforms are not in the result
        (``plan()`` says which they are).
        """
        spec = checks.builtin(check)
        if spec.needs_engine:
            raise ValueError(f"the {check} check runs containers: audit() runs only static checks")
        return {t.platform: self.check(check, t) for t in self.planner.static_targets(image)}

    # --- the index as a whole, and the release before it ---------------------------------------
    def origins(self, image: str) -> list[release.Origin]:
        """What each platform of the index of ``image`` says of where it came from."""
        return release.origins(self.source(image), self.planner.resolved(image))

    def provenance(self, image: str) -> tuple[CheckResult, list[release.Origin]]:
        """The ``provenance`` check of ``image`` (see :mod:`harness.release`), and what it compared."""
        found = self.origins(image)
        return release.check_provenance(found, self.require_attestations), found

    def compare(self, image: str, baseline: str) -> release.Comparison:
        """``image`` against the release before it, ``baseline`` (any source: registry, layout,
        archive), every platform of either side: nothing runs."""
        before = [release.facts(self, t) for t in self.planner.static_targets(baseline, every=True)]
        after = [release.facts(self, t) for t in self.planner.static_targets(image, every=True)]
        return release.compare(baseline, self.planner.resolved(baseline).digest, before, after)

    # --- checks --------------------------------------------------------------------------------
    def check(self, name: str, target: Target) -> CheckResult:
        """Run the built-in check ``name`` (see :data:`harness.checks.BUILTIN_CHECKS`) on
        ``target``; or take its result from :meth:`prepare`, which ran it in the background
        (waited for, if it is still running; run here, if it failed there)."""
        key = (name, target.key)
        with self._lock:
            self._taken.add(key)  # a background run not started yet will not start now
            early = self._early.pop(key, None)
        if early is None:
            return self._check(name, target)
        try:
            return early.result()
        except Exception:  # met again here, where it is reported
            return self._check(name, target)

    def _works_beside(self, target: Target) -> bool:
        """Whether background work may run beside ``target``'s tests (its checks ahead of
        their items, the removal of a container its platform is done with) without changing
        what the run measures: only on an engine whose containers' CPU time is read here
        (its own kernel's cgroups). Elsewhere a command's time is its wall time, which
        anything running beside it (an exec, a removal, or this machine's CPU, which may be
        the engine's VM) would lengthen: that work waits for its turn, or the run's end."""
        try:
            return self.engine_for(target.platform).survey().this_kernel
        except EngineError:
            return False

    def _check_early(self, name: str, target: Target) -> None:
        key = (name, target.key)
        if not self._works_beside(target):
            return
        with self._lock:
            if key in self._taken or key in self._early:
                return
            early = self._early[key] = Future()
        try:
            early.set_result(self._check(name, target))
        except Exception as exc:
            early.set_exception(exc)

    def _check(self, name: str, target: Target) -> CheckResult:
        spec = checks.builtin(name)
        if spec.needs_engine:
            stand_in = unavailable(target, self.strict_platforms)
            if stand_in is not None:
                return stand_in
        # Only a registry's blobs are verified as they are fetched and kept by digest; a
        # layout or archive on disk may have changed under the same digest, and is read again.
        if not spec.cached or not isinstance(self.planner.source(target.image), RegistrySource):
            return spec.run(self, target)
        settings = {
            "include": self.elf_include,
            "exclude": self.elf_exclude,
            "strict_elf": self.strict_elf,
            "page_size": self.page_size(target.platform),
        }
        key = results_key(name, str(target.platform), target.digest, settings)
        cache = self.planner.registry.cache_dir / "results"
        found = read_result(cache, key)
        if found is None:
            found = spec.run(self, target)
            write_result(cache, key, found)
        return found

    def probe(self, target: Target) -> CheckResult:
        """Time the slowdown probe's commands (:mod:`harness.probe`) on ``target``'s platform:
        once per platform and engine in this process, in the first image that can run them.
        A measurement, not a check: a platform that cannot run is skipped, never failed."""
        stand_in = unavailable(target, strict=False)
        if stand_in is not None:
            return stand_in
        key = (target.platform, self.routes.get(target.platform))
        with self._probe_lock:
            done = self._probe_results.get(key)
            if done is None:
                done = self._probe(target)
                if done.samples:  # an image that could not run them leaves the platform to the next
                    self._probe_results[key] = done
        if not done.samples:
            return CheckResult(SKIPPED, done.detail)
        return CheckResult(PASSED, done.detail, samples=dict(done.samples))

    def _probe(self, target: Target) -> probing.ProbeResult:
        cmds = probing.commands(self.filesystem(target), self.config(target).path_dirs)
        if not cmds:
            return probing.ProbeResult(failures={"probe": "the image has none of uname, sh and sha256sum"})

        def run(argv: Sequence[str]) -> tuple[int, float, str]:
            result = self.run(target, argv, alone=True)
            return result.exit_code, result.own_s, result.stderr or result.stdout

        try:
            result = probing.run_probe(cmds, run)
        except MultiarchError as exc:  # the engine failed, a command timed out, the container died
            return probing.ProbeResult(failures={"probe": str(exc)})
        return replace(result, image=target.image)

    # --- running -------------------------------------------------------------------------------
    def prepare(self, targets: Sequence[Target], *, containers: bool = True, checks: bool | None = None) -> None:
        """Start in the background what the checks and tests of ``targets`` will wait for:
        each platform's layers read (the audit), its image brought into the engine and,
        with ``containers``, its container started (the image is brought either way: the
        engine's store is this machine's, and another process's container starts from
        it). ``parallel`` things at a time, the first platform's first: its tests start
        as soon as its container is up, while the others are still being fetched. With
        ``checks`` (by default, with ``containers``) the layers are indexed here and the
        :attr:`early_checks` run here too; without, whoever runs the checks does.
        Asking for a platform's filesystem or container later waits for that one only; a
        failure here is met again, and reported, by whoever asks."""
        checks = containers if checks is None else checks
        prefetch = self._prefetcher()
        if prefetch is None:
            return
        self._warm(targets, dict(os.environ))
        for target in targets:
            rank = self._rank(target)
            if target.mode.runnable:
                start = self.pool.prefetch_container if containers else self.pool.bring
                prefetch.submit((rank, 0), functools.partial(start, target))
            if checks and target.key not in self._warming:
                prefetch.submit((rank, 1), functools.partial(self.planner.filesystem, target))
            aside = self._waiter() if checks else None
            if aside is not None:  # the checks' results are ready when their items run, after the tests
                for name in self.early_checks:
                    if (name, target.key) not in self._early:
                        aside.submit((rank, 2), functools.partial(self._check_early, name, target))

    def prepare_images(self, refs: Sequence[str], *, bring: bool = False, start_first: bool = False) -> None:
        """Start resolving ``refs`` and reading the layers of their requested platforms in
        the background: nothing of this needs the engine's answers, so it overlaps with
        asking the engine what it runs. With ``bring``, each requested platform's image is
        brought into the engine too (the caller knows they are to run: the user named
        them), before the engine has said how it runs them. With ``start_first``, the
        first platform's container is started as soon as the engine has said how (its
        survey, asked here if no one has yet): the first tests need nothing else."""
        prefetch = self._prefetcher()
        if prefetch is None:
            return

        # The environment is read here, by the caller: another thread's view of it may be
        # changed under it (pytest sets and removes PYTEST_CURRENT_TEST around every test).
        env = dict(os.environ)

        def read(ref: str) -> None:
            targets = self.planner.static_targets(ref)
            self._warm(targets, env)
            for target in targets:
                if bring:
                    prefetch.submit((self._rank(target), 0), functools.partial(self.pool.bring, target))
                if target.key not in self._warming:
                    prefetch.submit((self._rank(target), 1), functools.partial(self.planner.filesystem, target))

        def start(ref: str) -> None:
            for target in self.planner.plan(ref).targets[:1]:
                if target.mode.runnable:
                    self.pool.prefetch_container(target)

        for ref in refs:
            prefetch.submit((-1,), functools.partial(read, ref))
        aside = self._waiter() if start_first and refs else None
        if aside is not None:
            aside.submit((-1,), functools.partial(start, refs[0]))

    def _warm(self, targets: Sequence[Target], env: Mapping[str, str]) -> None:
        """Read the layers of the registry images among ``targets`` in a process of their
        own (:mod:`harness.warm`), in this order: the audit's Python work then holds no
        lock the tests need. The checks that need them wait for each layer (the cache
        locks it while it is read), then read its index from the cache.

        The planner is asked outside this harness's lock: it holds its own while it asks
        the harness how each platform runs (:meth:`mode`), which takes this one."""
        with self._lock:
            fresh = [t for t in targets if t.key not in self._warming]
        readable = [t for t in fresh if self.planner.feedable(t) and not self.planner.cached(t)]
        names = {t.key: self.planner.pinned_name(t) for t in readable}
        with self._lock:
            if self.pool.closed:
                return
            todo = sorted((t for t in readable if t.key not in self._warming), key=self._rank)
            if not todo:
                return
            self._warming.update(t.key for t in todo)
            cmd = [sys.executable, "-m", "harness.warm", "--cache", str(self.planner.registry.cache_dir)]
            cmd += ["--insecure"] if self.planner.registry.insecure else []
            cmd += ["--max-layer-bytes", str(self.planner.layer_limit), *(names[t.key] for t in todo)]
            top = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (top, env.get("PYTHONPATH", "")) if p)
            try:
                self._warmers.append(
                    subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env={**env, "PYTHONPATH": path},
                    )
                )
            except OSError:  # read here, then
                self._warming.difference_update(t.key for t in todo)

    def prepare_container(self, target: Target) -> None:
        """Start ``target``'s container in the background, unless it is started already."""
        if target.mode.runnable and not self.pool.started(target):
            self.prepare([target])

    def release(self, target: Target) -> None:
        """Remove ``target``'s shared container in the background: the caller is done with
        its platform (the next platform's tests run meanwhile, and the run's end has one
        container less to wait for). It leaves the pool at once: a later use, if any,
        starts another rather than meet this one being removed. On an engine where that
        removal would lengthen the next tests' times, the container stays to the run's end."""
        if not self._works_beside(target):
            return
        running = self.pool.release(target)
        if running is None:
            return
        prefetch = self._prefetcher()
        if prefetch is not None:  # else the run is ending, and its close() removes it
            prefetch.submit((self._rank(target), 3), functools.partial(self.pool.remove, running))

    def _prefetcher(self) -> Prefetcher | None:
        """``parallel`` threads for the layers, pulls, loads and starts (None once the run ends)."""
        return self._background("prefetch", lambda: Prefetcher(self.parallel))

    def _waiter(self) -> Prefetcher | None:
        """One thread, beside the prefetch, for background work that mostly waits (the first
        container's start, for the engine's answers; a check, for its container or its
        layers): in the prefetch's threads it would hold back the pulls it waits for."""
        return self._background("aside", lambda: Prefetcher(1, name="multiarch-aside"))

    def _background(self, kind: str, make: Callable[[], Prefetcher]) -> Prefetcher | None:
        with self._lock:
            if self.pool.closed:
                return None
            if kind not in self._work:
                self._work[kind] = make()
            return self._work[kind]

    def _rank(self, target: Target) -> int:
        """The platform's place in the run: the order it was first prepared in."""
        with self._lock:
            return self._ranks.setdefault(target.key, len(self._ranks))

    def calibrate(self, platform: Platform, seconds: float) -> None:
        self.pool.calibrate(platform, seconds)

    def run(
        self,
        target: Target,
        cmd: str | Sequence[str],
        *,
        user: str = "",
        timeout: float | None = None,
        container: Container | None = None,
        alone: bool = False,
    ) -> CommandResult:
        """As :meth:`harness.pool.ContainerPool.run`."""
        return self.pool.run(target, cmd, user=user, timeout=timeout, container=container, alone=alone)

    def container(self, target: Target) -> Container:
        """The running container of ``target``, started on first use and then reused."""
        return self.pool.container(target)

    def fresh_container(self, target: Target) -> Container:
        """A container of ``target`` of its own, not shared: the caller stops it."""
        return self.pool.fresh(target)

    def close(self) -> None:
        """Remove every container this process started, and any left with its labels:
        the background work is stopped first (what is queued is dropped; a pull or load
        under way breaks off), so that no container starts after the last sweep."""
        with self._lock:
            background, self._work = list(self._work.values()), {}
            warmers, self._warmers = self._warmers, []
        for warmer in warmers:
            warmer.terminate()
        engines = [e for e in [self._engine, *self._routed.values()] if e is not None]
        self.pool.close(engines, background)
        for warmer in warmers:
            try:
                warmer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                warmer.kill()
                warmer.wait()
        self.planner.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
