"""Running: the containers of a run, started on first use, shared by a platform's tests,
replaced when a command kills theirs, and removed at the end. Timeouts scale by each
platform's slowdown, measured here from the ``uname`` check's command.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from .engine import Engine, EngineError
from .labels import HOSTNAME, LABEL, LABEL_DIGEST, LABEL_HOST, LABEL_IMAGE, LABEL_PID, LABEL_PLATFORM, LABEL_SESSION
from .once import Once, waiter
from .planner import Planner, Target, unavailable
from .platform import Platform
from .registry import RegistryError, credentials
from .timings import Timings

if TYPE_CHECKING:
    from .container import CommandResult, Container
    from .prefetch import Prefetcher

DEFAULT_EMULATION_FACTOR = 10.0
#: How images reach the engine: ``auto`` (see :meth:`ContainerPool.feeds`), ``pull`` or ``load``.
FEEDS = ("auto", "pull", "load")
#: Containers removed side by side at the end.
CLEANUP_THREADS = 8


class ContainerPool:
    def __init__(
        self,
        planner: Planner,
        engine_for: Callable[[Platform], Engine],
        native: Callable[[], Platform],
        session_id: str,
        timeout: float,
        *,
        timings: Timings | None = None,
        feed: str = "auto",
    ) -> None:
        if feed not in FEEDS:
            raise ValueError(f"feed {feed!r}: one of {', '.join(FEEDS)}")
        self.planner = planner
        self._engine_for = engine_for
        self._native = native
        self.session_id = session_id
        #: Seconds a command may take natively; emulated platforms get it times their slowdown.
        self.timeout = timeout
        #: Platform -> seconds of its `uname -m`: what the timeouts of emulated platforms scale by.
        self._calibration: dict[Platform, float] = {}
        #: Target key -> its shared container (or why it could not start: kept, so the
        #: platform's other tests fail at once with the same reason).
        self._containers: Once[str, Container] = Once()
        #: id(container) -> (image, platform), for the cleanup's timings.
        self._owners: dict[int, tuple[str, str]] = {}
        #: id(container) -> a container released (:meth:`release`) and not yet removed:
        #: :meth:`close` removes what the background work queued for removal and dropped.
        self._released: dict[int, Container] = {}
        self._released_lock = threading.Lock()
        self.timings = timings or Timings()
        self.feed = feed
        #: Loads the engine refused (then it pulled): said in the report.
        self.load_failures: list[str] = []
        #: Called now and then while a thread waits for a start under way in another.
        self.on_wait: Callable[[], None] | None = None
        #: Target key -> what the engine runs it by, once brought into the engine's store.
        self._brought: Once[str, str] = Once(keep_errors=False)
        #: Set when the run ends: no container starts after it, pulls and loads break off.
        self._closing = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def calibrate(self, platform: Platform, seconds: float) -> None:
        """Time of one short command on ``platform`` (the first one given counts)."""
        self._calibration.setdefault(platform, seconds)

    def labels(self, target: Target | None = None) -> dict[str, str]:
        out = {LABEL: "true", LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid()), LABEL_HOST: HOSTNAME}
        if target is not None:
            out |= {LABEL_IMAGE: target.image, LABEL_PLATFORM: str(target.platform), LABEL_DIGEST: target.digest}
        return out

    def keepalive(self, target: Target) -> list[str]:
        sleep = self.planner.which(target, "sleep")
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
        mine, native = self._calibration.get(target.platform), self._calibration.get(self._native())
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
        alone: bool = False,
    ) -> CommandResult:
        """Run ``cmd`` in ``target``'s container (or the one given) with a timeout scaled to
        the platform (``alone``: as :meth:`harness.container.Container.run`). A command that
        times out takes its container with it: the next command of that platform gets a
        fresh one."""
        from .container import CommandTimeout, ContainerGone

        factor = self.slowdown_factor(target)
        limit = (timeout if timeout is not None else self.timeout) * factor
        running = container or self.container(target)
        try:
            result = running.run(cmd, user=user, timeout=limit, alone=alone)
            cpu, wall = self._engine_for(target.platform).exec_cost()
            if result.cpu_s is not None and cpu is not None:
                return replace(result, inside_s=max(result.cpu_s - cpu, 0.0))
            if wall is not None:
                return replace(result, inside_s=max(result.duration_s - wall, 0.0))
            return result
        except CommandTimeout as exc:
            self._drop(target, running)
            scale = f"{timeout or self.timeout:.0f}s x {factor:.1f} for {target.mode.kind}"
            raise CommandTimeout(f"{exc} (limit {scale}); its container was removed") from None
        except ContainerGone as exc:
            self._drop(target, running)
            raise ContainerGone(f"{target.image}: {exc}; the next command gets a fresh container") from None

    def _drop(self, target: Target, running: Container) -> None:
        """Remove ``running``; if it was ``target``'s shared container, the next use starts another."""
        running.stop()
        self._containers.forget(target.key, running)

    def release(self, target: Target) -> Container | None:
        """Take ``target``'s shared container out of the pool (its platform's items are
        done): the caller removes it (:meth:`remove`), and a later use starts another."""
        with self._released_lock:  # not while close() takes what is left: removed once
            running = self._containers.done(target.key)
            if running is not None:
                self._released[id(running)] = running
                self._containers.forget(target.key, running)
        return running

    def fresh(self, target: Target) -> Container:
        """A container of ``target`` of its own, not shared: the caller stops it."""
        return self._start(target)

    def container(self, target: Target) -> Container:
        """The running container of ``target``, started on first use and then reused; if
        another thread is starting it (the prefetch), this one waits for that start."""
        return self._container(target, keep_error=True)

    def prefetch_container(self, target: Target) -> None:
        """:meth:`container`, ahead of need, in a background thread. A start that fails here
        is not kept: the test that needs the container starts it again in its own thread
        and meets the failure itself (a background thread sees the process environment
        change under it, for one, as pytest sets and removes PYTEST_CURRENT_TEST)."""
        self._container(target, keep_error=False)

    def _container(self, target: Target, keep_error: bool) -> Container:
        waited = functools.partial(self.timings.add, target.image, str(target.platform), "wait")
        wait = waiter(lambda: self.on_wait, waited)
        try:
            return self._containers.get(target.key, lambda: self._start(target), wait, keep_error=keep_error)
        except Exception:
            if not keep_error or self._containers.started(target.key):
                raise
            # What this waited for failed in the background, and was not kept: start it here.
            return self._containers.get(target.key, lambda: self._start(target), wait, keep_error=True)

    def started(self, target: Target) -> bool:
        """Whether ``target``'s shared container is started or being started."""
        return self._containers.started(target.key)

    def _start(self, target: Target) -> Container:
        from .container import KEEPALIVE_SECONDS, Container, ContainerExited  # testcontainers loads only to run

        stand_in = unavailable(target, strict=False)
        if stand_in is not None:
            raise EngineError(stand_in.detail)
        engine = self._engine_for(target.platform)
        image = self.bring(target)
        self._refuse_if_closed(target)
        # The keepalive is looked up in the image once its layers are read; until then the
        # runtime finds `sleep` on the PATH itself, and a start that fails asks the layers why.
        audited = self.planner.audited(target)
        keepalive = self.keepalive(target) if audited else ["sleep", KEEPALIVE_SECONDS]
        try:
            container = Container(
                image,
                str(target.platform),
                keepalive=keepalive,
                labels=self.labels(target),
                environment=dict(target.mode.env),
                docker_client_kw={"environment": {"DOCKER_HOST": engine.base_url}},
                local_kernel=engine.survey().this_kernel,
            )
        except Exception as exc:  # its client could not reach the engine
            why = f"the engine at {engine.base_url} failed: {exc}"
            raise EngineError(f"starting {image} ({target.platform}): {why}") from exc
        with self.timings.span(target.image, str(target.platform), "start"):
            try:
                container.start()
            except Exception as exc:
                container.stop()
                if not audited:
                    self.keepalive(target)  # no `sleep` in the image: that is the reason
                if isinstance(exc, ContainerExited):  # its message says what the container said
                    raise EngineError(str(exc)) from exc
                raise EngineError(f"{image} ({target.platform}) did not start: {exc}") from exc
        if self.closed:  # the run ended while it started: it must not outlive the last sweep
            container.stop()
            self._refuse_if_closed(target)
        self.timings.ready(target.image, str(target.platform))
        self._owners[id(container)] = (target.image, str(target.platform))
        return container

    def _refuse_if_closed(self, target: Target) -> None:
        if self.closed:
            raise EngineError(f"{target.image} ({target.platform}): not started, the run is ending")

    def bring(self, target: Target) -> str:
        """Put ``target``'s image in its engine's store, once; what to run it by."""
        return self._brought.get(target.key, lambda: self._bring(self._engine_for(target.platform), target))

    def _bring(self, engine: Engine, target: Target) -> str:
        """Put ``target``'s image in ``engine``'s store; what to run it by. Pulled by digest,
        or loaded from the blobs the audit read (see :meth:`feeds`)."""
        self._refuse_if_closed(target)
        image, platform = target.image, str(target.platform)
        try:
            pinned = self.planner.pinned(target)
        except RegistryError as exc:
            raise EngineError(str(exc)) from None
        if self.feeds(target) and not engine.has(pinned):
            config, layers = self.planner.blob_digests(target)
            if engine.has(config):  # loaded before, by this run or another
                return config
            files = self.planner.blobs(target)  # as the audit read them: waited for
            with self.timings.span(image, platform, "pull", shown="load"):
                try:
                    return engine.load(files, config, layers, stop=self._closing)
                except EngineError as exc:  # an engine that cannot load it may still pull it
                    self._refuse_if_closed(target)
                    self.load_failures.append(f"{platform}: {exc}")
        registry_host = pinned.split("/", 1)[0] if "/" in pinned else ""
        with self.timings.span(image, platform, "pull"):
            progress = functools.partial(self.timings.progress, image, platform)
            engine.pull(pinned, credentials(registry_host) if registry_host else None, progress, stop=self._closing)
        return pinned

    def feeds(self, target: Target) -> bool:
        """Whether ``target``'s image goes into the engine from the blobs the audit read
        (``docker load``) rather than by a pull: under ``feed="load"`` for any registry
        image; under ``"auto"`` for one whose registry is not on this machine, where the
        engine's pull would fetch every byte across the link a second time. A registry
        on loopback is pulled from: the pull starts at once, without waiting for the
        audit's reads, and costs what a load does (measured in bench/cold_run.py)."""
        if self.feed == "pull" or not self.planner.feedable(target):
            return False
        return self.feed == "load" or not self.planner.on_loopback(target)

    def close(self, engines: Sequence[Engine], background: Sequence[Prefetcher] = ()) -> None:
        """Remove every container this process started, side by side, and any left with
        its labels. ``background`` (the prefetch) is stopped first: its queued work is
        dropped and what runs is waited for (a pull or load breaks off; a start under way
        removes its own container), so no container starts after the sweep below."""
        self._closing.set()
        for work in background:
            work.close()
        with self._released_lock:  # and those released whose removal was dropped with the queue
            containers = self._containers.values() + list(self._released.values())
            self._containers.clear()
            self._released.clear()
        if containers:
            with ThreadPoolExecutor(max_workers=min(len(containers), CLEANUP_THREADS)) as pool:
                list(pool.map(self._remove, containers))
        for engine in engines:
            # The engine may be gone, and its containers with it.
            with contextlib.suppress(EngineError):
                engine.remove_labelled({LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid())})

    def remove(self, container: Container) -> None:
        """Remove a container :meth:`release` gave, timed as its platform's cleanup (unless
        :meth:`close` has removed it already)."""
        with self._released_lock:
            if self._released.pop(id(container), None) is None:
                return
        self._remove(container)

    def _remove(self, container: Container) -> None:
        image, platform = self._owners.get(id(container), ("", container.platform))
        with self.timings.span(image, platform, "cleanup"):
            container.stop()
