"""Running: the containers of a run, started on first use, shared by a platform's tests,
replaced when a command kills theirs, and removed at the end. Timeouts scale by each
platform's slowdown, measured here from the ``uname`` check's command.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .engine import Engine, EngineError
from .labels import HOSTNAME, LABEL, LABEL_DIGEST, LABEL_HOST, LABEL_IMAGE, LABEL_PID, LABEL_PLATFORM, LABEL_SESSION
from .planner import Planner, Target, unavailable
from .platform import Platform
from .registry import RegistryError, credentials

if TYPE_CHECKING:
    from .container import CommandResult, Container

DEFAULT_EMULATION_FACTOR = 10.0


class ContainerPool:
    def __init__(
        self,
        planner: Planner,
        engine_for: Callable[[Platform], Engine],
        native: Callable[[], Platform],
        session_id: str,
        timeout: float,
    ) -> None:
        self.planner = planner
        self._engine_for = engine_for
        self._native = native
        self.session_id = session_id
        #: Seconds a command may take natively; emulated platforms get it times their slowdown.
        self.timeout = timeout
        #: Platform -> seconds of its `uname -m`: what the timeouts of emulated platforms scale by.
        self._calibration: dict[Platform, float] = {}
        self._containers: dict[str, Container] = {}
        self._start_errors: dict[str, EngineError] = {}
        self._lock = threading.RLock()

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
    ) -> CommandResult:
        """Run ``cmd`` in ``target``'s container (or the one given) with a timeout scaled to
        the platform. A command that times out takes its container with it: the next
        command of that platform gets a fresh one."""
        from .container import CommandTimeout, ContainerGone

        factor = self.slowdown_factor(target)
        limit = (timeout if timeout is not None else self.timeout) * factor
        running = container or self.container(target)
        try:
            result = running.run(cmd, user=user, timeout=limit)
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
        with self._lock:
            if self._containers.get(target.key) is running:
                del self._containers[target.key]

    def fresh(self, target: Target) -> Container:
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

    def _failed_start(self, target: Target, error: EngineError) -> EngineError:
        """Kept, so the other tests of this platform fail at once with the same reason."""
        self._start_errors[target.key] = error
        return error

    def _start(self, target: Target) -> Container:
        from .container import Container, ContainerExited  # testcontainers loads only to run

        stand_in = unavailable(target, strict=False)
        if stand_in is not None:
            raise EngineError(stand_in.detail)
        with self._lock:
            engine = self._engine_for(target.platform)
            try:
                pinned = self.planner.pinned(target)
            except RegistryError as exc:
                raise self._failed_start(target, EngineError(str(exc))) from None
            registry_host = pinned.split("/", 1)[0] if "/" in pinned else ""
            try:
                engine.pull(pinned, credentials(registry_host) if registry_host else None)
            except EngineError as exc:
                raise self._failed_start(target, exc) from None
            container = Container(
                pinned,
                str(target.platform),
                keepalive=self.keepalive(target),
                labels=self.labels(target),
                environment=dict(target.mode.env),
                docker_client_kw={"environment": {"DOCKER_HOST": engine.base_url}},
                local_kernel=engine.survey().this_kernel,
            )
            try:
                container.start()
            except ContainerExited as exc:  # its message says what the container said
                container.stop()
                raise self._failed_start(target, EngineError(str(exc))) from exc
            except Exception as exc:
                container.stop()
                detail = f"{pinned} ({target.platform}) did not start: {exc}"
                raise self._failed_start(target, EngineError(detail)) from exc
            return container

    def close(self, engines: Sequence[Engine]) -> None:
        """Remove every container this process started, and any left with its labels."""
        with self._lock:
            for container in self._containers.values():
                container.stop()
            self._containers.clear()
        for engine in engines:
            # The engine may be gone, and its containers with it.
            with contextlib.suppress(EngineError):
                engine.remove_labelled({LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid())})
