"""One run of the harness: images resolved to platforms, checks, and running containers.

Usable from plain Python::

    from harness import Harness
    with Harness(platforms="linux/amd64,linux/arm64") as h:
        plan = h.plan("127.0.0.1:5000/samples/good:1.0")
        for target in plan.targets:
            print(target.platform, h.check_elf(target))
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import checks
from . import probe as probing
from .checks import CheckResult
from .engine import UNAVAILABLE, Engine, EngineError, Mode
from .errors import MultiarchError
from .labels import HOSTNAME, LABEL, LABEL_DIGEST, LABEL_HOST, LABEL_IMAGE, LABEL_PID, LABEL_PLATFORM, LABEL_SESSION
from .layers import Filesystem
from .manifest import ImageConfig
from .platform import Platform, parse_list, sort_key
from .registry import Registry, RegistryError, credentials
from .sources import Source, open_source

if TYPE_CHECKING:
    from .container import CommandResult, Container

DEFAULT_EMULATION_FACTOR = 10.0


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


class PlanError(MultiarchError, RuntimeError):
    """An image that could not be resolved, as another process (the xdist controller) found."""


class Harness:
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
    ) -> None:
        self.requested = parse_list(platforms) if isinstance(platforms, str) else platforms
        self.registry = registry or Registry()
        self._engine = engine
        #: Platform -> DOCKER_HOST of the engine that runs it (the default engine otherwise).
        self.routes = dict(engines or {})
        self._routed: dict[str, Engine] = {}
        self.session_id = session_id or os.environ.get("MULTIARCH_SESSION_ID") or uuid.uuid4().hex[:12]
        #: Image -> index digest decided elsewhere (by the xdist controller), so every
        #: process tests the same index even if the tag moves meanwhile.
        self.pins = dict(pins or {})
        self.elf_include = tuple(elf_include)
        self.elf_exclude = tuple(elf_exclude)
        #: Warnings of the elf check (32-bit compat code, libraries above the ARM variant) fail it.
        self.strict_elf = strict_elf
        self.scratch_registry = scratch_registry or os.environ.get("MULTIARCH_SCRATCH_REGISTRY") or "127.0.0.1:5000"
        self._sources: dict[str, Source] = {}
        #: Plans made elsewhere (the xdist controller's, handed to its workers) are used as
        #: they are: every process tests the same platforms, digests and modes.
        self._plans: dict[str, ImagePlan] = {plan.image: plan for plan in plans}
        self._plan_errors: dict[str, Exception] = {ref: PlanError(why) for ref, why in (plan_errors or {}).items()}
        self._configs: dict[str, ImageConfig] = {}
        self._filesystems: dict[str, Filesystem] = {}
        #: Seconds a command may take natively; emulated platforms get it times their slowdown.
        self.timeout = timeout
        #: Platform -> seconds of its `uname -m`: what the timeouts of emulated platforms scale by.
        self._uname_seconds: dict[Platform, float] = {}
        self._containers: dict[str, Container] = {}
        self._start_errors: dict[str, EngineError] = {}
        self._lock = threading.RLock()
        self._probe_lock = threading.Lock()
        self._probe_results: dict[tuple[Platform, str | None], probing.ProbeResult] = {}

    # --- the engine ------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def engine_for(self, platform: Platform) -> Engine:
        """The engine that runs ``platform``: its ``--engine`` route, else the default."""
        url = self.routes.get(platform)
        if url is None:
            return self.engine
        with self._lock:
            if url not in self._routed:
                self._routed[url] = Engine(url)
            return self._routed[url]

    def mode(self, platform: Platform) -> Mode:
        try:
            engine = self.engine_for(platform)
            mode = engine.mode(platform)
        except EngineError as exc:
            return Mode(UNAVAILABLE, str(exc))
        if platform in self.routes:
            return replace(mode, reason=f"{mode.reason} (engine {engine.base_url})")
        return mode

    # --- resolving -------------------------------------------------------------------------
    def source(self, image: str) -> Source:
        with self._lock:
            if image not in self._sources:
                engine = None
                if image.startswith("docker-daemon:"):
                    engine = self.engine
                self._sources[image] = open_source(image, self.registry, engine, self.scratch_registry)
            return self._sources[image]

    def plan(self, image: str) -> ImagePlan:
        """The platforms of ``image`` to test. Resolved once; a failure is kept too."""
        with self._lock:
            if image in self._plan_errors:
                raise self._plan_errors[image]
            if image not in self._plans:
                try:
                    self._plans[image] = self._resolve(image)
                except Exception as exc:
                    self._plan_errors[image] = exc
                    raise
            return self._plans[image]

    def _resolve(self, image: str) -> ImagePlan:
        resolved = self.source(image).resolve(self.pins.get(image))
        present = tuple(sorted((p for p, _ in resolved.entries), key=sort_key))
        wanted = self.requested if self.requested is not None else list(present)
        by_platform = dict(resolved.entries)
        targets = tuple(
            Target(image, resolved.digest, p, by_platform[p], self.mode(p), self.routes.get(p))
            for p in wanted
            if p in by_platform
        )
        missing = tuple(p for p in wanted if p not in by_platform)
        return ImagePlan(image, resolved.digest, resolved.is_index, present, targets, missing, resolved.notes)

    def config(self, target: Target) -> ImageConfig:
        with self._lock:
            if target.key not in self._configs:
                self._configs[target.key] = self.source(target.image).config(target.digest)
            return self._configs[target.key]

    def filesystem(self, target: Target) -> Filesystem:
        with self._lock:
            if target.key not in self._filesystems:
                self._filesystems[target.key] = self.source(target.image).filesystem(target.digest)
            return self._filesystems[target.key]

    def pinned(self, target: Target) -> str:
        """What the engine pulls and runs for ``target``: by digest, never by tag."""
        return self.source(target.image).runnable(target.digest, self.engine)

    def audit(self, image: str) -> dict[Platform, CheckResult]:
        """The static ELF audit of every requested platform of ``image``: no engine needed.

        This is what a release gate runs on a candidate before it is pushed or promoted,
        including platforms this host could not run. Missing platforms are not in the result
        (``plan()`` says which they are).
        """
        resolved = self.source(image).resolve(self.pins.get(image))
        wanted = set(self.requested) if self.requested is not None else None
        source = self.source(image)
        return {
            platform: checks.check_elf(
                platform, source.filesystem(digest), self.elf_include, self.elf_exclude, strict=self.strict_elf
            )
            for platform, digest in resolved.entries
            if wanted is None or platform in wanted
        }

    # --- checks ------------------------------------------------------------------------------
    def check_config(self, target: Target) -> CheckResult:
        return checks.check_config(target.platform, self.config(target))

    def check_elf(self, target: Target) -> CheckResult:
        return checks.check_elf(
            target.platform, self.filesystem(target), self.elf_include, self.elf_exclude, strict=self.strict_elf
        )

    def check_uname(self, target: Target) -> CheckResult:
        if not target.mode.runnable:
            return CheckResult(checks.SKIPPED, f"cannot run {target.platform} here: {target.mode.reason}")
        fs = self.filesystem(target)
        uname = fs.which("uname", self.config(target).path_dirs)
        if uname is None:
            return CheckResult(checks.SKIPPED, "the image has no uname on its PATH", skip=checks.NO_UNAME)
        from .container import CommandTimeout, ContainerGone

        try:
            result = self.run(target, [uname, "-m"])
        except (EngineError, CommandTimeout, ContainerGone) as exc:
            return CheckResult(checks.FAILED, str(exc))
        if result.exit_code != 0:
            why = (result.stderr or result.stdout).strip()[:300]
            if result.exit_code == 132 and target.mode.emulated:
                cpu = dict(target.mode.env).get("QEMU_CPU", "QEMU's default")
                why += f" (SIGILL: the image needs instructions the {target.platform} CPU ({cpu}) lacks)"
            return CheckResult(checks.FAILED, f"`uname -m` exited {result.exit_code}: {why}", result.duration_s)
        self._uname_seconds.setdefault(target.platform, result.duration_s)
        host = self.engine_for(target.platform).platform
        verdict = checks.check_uname(target.platform, host, target.mode.emulated, result.stdout.strip())
        return replace(verdict, command_s=result.duration_s)

    def probe(self, target: Target) -> CheckResult:
        """Time the slowdown probe's commands (:mod:`harness.probe`) on ``target``'s platform:
        once per platform and engine in this process, in the first image that can run them."""
        if not target.mode.runnable:
            return CheckResult(checks.SKIPPED, f"cannot run {target.platform} here: {target.mode.reason}")
        key = (target.platform, self.routes.get(target.platform))
        with self._probe_lock:
            done = self._probe_results.get(key)
            if done is None:
                done = self._probe(target)
                if done.samples:  # an image that could not run them leaves the platform to the next
                    self._probe_results[key] = done
        if not done.samples:
            return CheckResult(checks.SKIPPED, done.detail)
        return CheckResult(checks.PASSED, done.detail, samples=dict(done.samples))

    def _probe(self, target: Target) -> probing.ProbeResult:
        cmds = probing.commands(self.filesystem(target), self.config(target).path_dirs)
        if not cmds:
            return probing.ProbeResult(failures={"probe": "the image has none of uname, sh and sha256sum"})

        def run(argv: Sequence[str]) -> tuple[int, float, str]:
            result = self.run(target, argv)
            return result.exit_code, result.duration_s, result.stderr or result.stdout

        from .container import CommandTimeout, ContainerGone

        try:
            result = probing.run_probe(cmds, run)
        except (EngineError, CommandTimeout, ContainerGone) as exc:
            return probing.ProbeResult(failures={"probe": str(exc)})
        return replace(result, image=target.image)

    # --- containers --------------------------------------------------------------------------
    def labels(self, target: Target | None = None) -> dict[str, str]:
        out = {LABEL: "true", LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid()), LABEL_HOST: HOSTNAME}
        if target is not None:
            out |= {LABEL_IMAGE: target.image, LABEL_PLATFORM: str(target.platform), LABEL_DIGEST: target.digest}
        return out

    def keepalive(self, target: Target) -> list[str]:
        fs = self.filesystem(target)
        sleep = fs.which("sleep", self.config(target).path_dirs)
        if sleep is None:
            raise EngineError(
                f"{target.image} ({target.platform}): the image has no `sleep` on its PATH to keep a "
                "container running between commands"
            )
        from .container import KEEPALIVE_SECONDS

        return [sleep, KEEPALIVE_SECONDS]

    def slowdown_factor(self, target: Target) -> float:
        """How much slower commands run on ``target``'s platform than natively: from the
        uname probes of this run when both sides ran here, else a cautious 10x for
        emulation (process start under QEMU is 12-14x slower, CPU work 2-4x)."""
        if not target.mode.emulated:
            return 1.0
        mine, native = self._uname_seconds.get(target.platform), self._uname_seconds.get(self.engine.platform)
        if mine and native:
            return min(max(mine / native, 2.0), 30.0)
        return DEFAULT_EMULATION_FACTOR

    def run(
        self,
        target: Target,
        cmd: str | Sequence[str],
        *,
        user: str = "",
        timeout: float | None = None,
        container: Container | None = None,
    ) -> CommandResult:
        """Run ``cmd`` in ``target``'s container (or the one given) with a timeout scaled to
        the platform. A command that times out takes its container with it: the next
        command of that platform gets a fresh one."""
        from .container import CommandTimeout, ContainerGone

        limit = (timeout if timeout is not None else self.timeout) * self.slowdown_factor(target)
        running = container or self.container(target)
        try:
            return running.run(cmd, user=user, timeout=limit)
        except CommandTimeout as exc:
            self._drop(target, running)
            scale = f"{timeout or self.timeout:.0f}s x {self.slowdown_factor(target):.1f} for {target.mode.kind}"
            raise CommandTimeout(f"{exc} (limit {scale}); its container was removed") from None
        except ContainerGone as exc:
            self._drop(target, running)
            raise ContainerGone(f"{target.image}: {exc}; the next command gets a fresh container") from None

    def _drop(self, target: Target, running: Container) -> None:
        """Remove ``running``; if it was ``target``'s shared container, the next use starts another."""
        running.stop()
        with self._lock:
            if self._containers.get(target.key) is running:
                del self._containers[target.key]

    def fresh_container(self, target: Target) -> Container:
        """A container of ``target`` of its own, not shared: the caller stops it."""
        return self._start(target)

    def container(self, target: Target) -> Container:
        """The running container of ``target``, started on first use and then reused."""
        with self._lock:
            running = self._containers.get(target.key)
            if running is not None:
                return running
            if target.key in self._start_errors:
                raise self._start_errors[target.key]
            container = self._start(target)
            self._containers[target.key] = container
            return container

    def _start(self, target: Target) -> Container:
        from .container import Container, ContainerExited  # testcontainers loads only to run

        if not target.mode.runnable:
            raise EngineError(f"cannot run {target.platform} here: {target.mode.reason}")
        with self._lock:
            try:
                pinned = self.pinned(target)
            except RegistryError as exc:
                # Kept, so the other tests of this platform fail at once with the same reason.
                self._start_errors[target.key] = EngineError(str(exc))
                raise self._start_errors[target.key] from None
            registry_host = pinned.split("/", 1)[0] if "/" in pinned else ""
            engine = self.engine_for(target.platform)
            try:
                engine.pull(pinned, credentials(registry_host) if registry_host else None)
            except EngineError as exc:
                self._start_errors[target.key] = exc
                raise
            container = Container(
                pinned,
                str(target.platform),
                keepalive=self.keepalive(target),
                labels=self.labels(target),
                environment=dict(target.mode.env),
                docker_client_kw={"environment": {"DOCKER_HOST": engine.base_url}},
            )
            try:
                container.start()
            except Exception as exc:
                container.stop()
                detail = (
                    str(exc)
                    if isinstance(exc, ContainerExited)
                    else f"{pinned} ({target.platform}) did not start: {exc}"
                )
                # Kept, so the other tests of this platform fail at once with the same reason.
                self._start_errors[target.key] = EngineError(detail)
                raise self._start_errors[target.key] from exc
            return container

    def close(self) -> None:
        """Remove every container this process started, and any left with its labels."""
        with self._lock:
            for container in self._containers.values():
                container.stop()
            self._containers.clear()
            for source in self._sources.values():
                source.close()
            self._sources.clear()
            for engine in [self._engine, *self._routed.values()]:
                if engine is None:
                    continue
                # The engine may be gone, and its containers with it.
                with contextlib.suppress(Exception):
                    engine.remove_labelled({LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid())})

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
