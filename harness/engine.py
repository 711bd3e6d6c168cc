"""The container engine: its own platform, how it runs each platform, pulls by digest.

Everything is asked of the engine (on a Mac the engine is a Linux VM whose architecture
need not be the laptop's, and whose kernel has its own emulators): its platform, its image
store, and how it runs each platform, found by running a tiny program of each
architecture in it (:mod:`harness.survey`). What cannot be asked is not guessed from this
machine's files: it is unavailable, with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import survey as surveying
from .arch import spec_for
from .errors import MultiarchError
from .platform import Platform
from .tinyelf import PROGRAMS

if TYPE_CHECKING:
    import docker

NATIVE = "native"
EMULATED = "emulated"
UNAVAILABLE = "unavailable"


class EngineError(MultiarchError, RuntimeError):
    """The engine is unreachable or refused an operation; the message says which."""


@dataclass(frozen=True)
class Mode:
    kind: str  # NATIVE, EMULATED or UNAVAILABLE
    reason: str
    #: Environment the platform's containers get (QEMU_CPU for faithful ARM variants).
    env: tuple[tuple[str, str], ...] = ()

    @property
    def runnable(self) -> bool:
        return self.kind != UNAVAILABLE

    @property
    def emulated(self) -> bool:
        return self.kind == EMULATED


class Engine:
    def __init__(
        self,
        base_url: str | None = None,
        client: docker.DockerClient | None = None,
        *,
        survey: surveying.Survey | None = None,
    ) -> None:
        import docker  # imported when an engine is first needed: static audits never load it

        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            self.client = client or docker.DockerClient(base_url=self.base_url, timeout=120)
            info = self.client.version()
        except docker.errors.DockerException as exc:
            raise EngineError(
                f"no container engine answers at {self.base_url}: {exc}. "
                "Start one (stack/setup.sh starts dockerd here) or set DOCKER_HOST."
            ) from exc
        self._version_info = dict(info)
        self.version = str(info.get("Version", "?"))
        self.platform = Platform.normalized(str(info.get("Os", "linux")), str(info.get("Arch", "")))
        #: The architectures to ask about when the engine is first surveyed (every one the
        #: harness has a program for, unless the caller narrows it).
        self.wanted: set[str] = set(PROGRAMS)
        #: Labels the survey's container carries besides the harness's own (the session's).
        self.labels: dict[str, str] = {}
        self._survey = survey
        self._survey_lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"docker {self.version} at {self.base_url}"

    def exec_cost(self) -> tuple[float | None, float | None]:
        """(CPU, wall) seconds an exec of a program that does nothing costs on this engine,
        as its survey measured: what a command's own time inside the container is
        measured without. About 20 and 60 ms here; 0.9 s of wall time on an arm64 engine
        in an emulated VM. (None, None) when the survey could not run."""
        found = self.survey()
        return found.exec_cpu_s, found.exec_wall_s

    @property
    def containerd_store(self) -> bool:
        """The engine keeps images in containerd's store (one name, every platform of an
        index; ``docker save`` writes an OCI layout), as its ``docker info`` says."""
        if self._survey is not None and self._survey.store:
            return self._survey.containerd_store
        with self._answering("docker info"):
            return surveying.store_of(self.client.info()).startswith("containerd")

    @property
    def surveyed(self) -> bool:
        return self._survey is not None

    def adopt(self, survey: surveying.Survey | None) -> None:
        """Take what another process found (xdist's controller) instead of asking again."""
        if survey is not None and self._survey is None:
            self._survey = survey

    def survey(self, families: Iterable[str] = ()) -> surveying.Survey:
        """What this engine is and how it runs each architecture, asked once per engine
        (again only for an architecture not asked yet)."""
        with self._survey_lock:
            done = self._survey
            missing = set(families) - set(done.runs if done else ())
            if done is None or (missing & set(PROGRAMS) and not done.error):
                from .labels import HOSTNAME, LABEL, LABEL_HOST, LABEL_PID

                labels = {LABEL: "true", LABEL_HOST: HOSTNAME, LABEL_PID: str(os.getpid()), **self.labels}
                asked = surveying.run_survey(
                    self.client, self.base_url, self.wanted | missing, labels, version=self._version_info
                )
                if done is not None and not asked.error:
                    asked = dataclasses.replace(asked, runs={**done.runs, **asked.runs})
                self._survey = done = asked
            return done

    def mode(self, platform: Platform) -> Mode:
        """How this engine runs ``platform``, as its survey found. What the survey could not
        ask is not guessed from this machine: only the engine's own platform (from
        ``docker version``) is then native, and the rest unavailable, saying why."""
        if platform.os != self.platform.os:
            return Mode(UNAVAILABLE, f"{platform.os} images cannot run on a {self.platform.os} engine")
        found = self.survey([platform.architecture])
        run = found.runs.get(platform.architecture)
        if run is None:
            why = found.error or f"the harness has no {platform.architecture} program to ask it with"
            if platform == self.platform:  # not its fallbacks: arm/v7 on an arm64 CPU without AArch32
                return Mode(NATIVE, f"the engine's own platform is {self.platform} (it could not be asked more: {why})")
            return Mode(UNAVAILABLE, f"the engine could not be asked whether it runs {platform}: {why}")
        if run.kind == surveying.NATIVE:
            return Mode(NATIVE, run.reason)
        if run.kind == surveying.UNAVAILABLE:
            return Mode(UNAVAILABLE, run.reason)
        spec = spec_for(platform)
        if run.emulator == "QEMU" and spec is not None and spec.qemu_cpu:
            return Mode(EMULATED, f"{run.reason}, CPU {spec.qemu_cpu}", (("QEMU_CPU", spec.qemu_cpu),))
        return Mode(EMULATED, run.reason)

    def pull(self, pinned: str, auth: tuple[str, str] | None = None) -> None:
        """Pull ``name@digest`` unless present. One pull per digest at a time on this machine.

        The classic store keeps one platform per tag (the containerd store keeps an index
        under one name, and runs the engine's platform of it), so pulls and runs always go
        by the platform's own manifest digest, on both.
        """
        import docker.errors

        lock = Path(tempfile.gettempdir()) / f"multiarch-pull-{hashlib.sha256(pinned.encode()).hexdigest()[:16]}.lock"
        with open(lock, "w") as fh, self._answering(pinned):
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self.client.images.get(pinned)
                return
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as exc:
                raise EngineError(f"inspecting {pinned}: {exc}") from exc
            repo, _, digest = pinned.partition("@")
            try:
                # docker-py's images.pull ignores errors reported inside the stream.
                auth_config = {"username": auth[0], "password": auth[1]} if auth else None
                events = self.client.api.pull(repo, tag=digest, stream=True, decode=True, auth_config=auth_config)
                for event in events:
                    if isinstance(event, dict) and event.get("error"):
                        raise EngineError(f"pulling {pinned}: {event['error']}")
            except docker.errors.APIError as exc:
                raise EngineError(f"pulling {pinned}: {exc.explanation or exc}") from exc

    def sweep_stale(self, session_id: str) -> int:
        """Remove containers that crashed runs on this machine left: another session's,
        started here by a process that no longer exists. Returns how many."""
        from .labels import HOSTNAME, LABEL, LABEL_HOST, LABEL_PID, LABEL_SESSION

        filters = {"label": [LABEL, f"{LABEL_HOST}={HOSTNAME}"]}
        with self._answering("sweeping containers of crashed runs"):
            stale = [
                c
                for c in self.client.containers.list(all=True, filters=filters)
                if (c.labels or {}).get(LABEL_SESSION) != session_id and not _alive((c.labels or {}).get(LABEL_PID, ""))
            ]
            return _remove(stale)

    def remove_labelled(self, labels: dict[str, Any]) -> int:
        """Remove every container carrying all of ``labels``; returns how many."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with self._answering("removing containers"):
            return _remove(self.client.containers.list(all=True, filters=filters))

    @contextlib.contextmanager
    def _answering(self, what: str) -> Iterator[None]:
        """An engine that stopped answering (or refuses) is an :class:`EngineError`."""
        import docker.errors
        import requests

        try:
            yield
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise EngineError(f"{what}: the engine at {self.base_url} failed: {exc}") from exc


def _remove(containers: list[Any]) -> int:
    import docker.errors

    removed = 0
    for container in containers:
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass  # gone already
    return removed


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True
