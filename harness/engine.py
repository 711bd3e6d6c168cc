"""The container engine: its own platform, how it runs each platform, pulls by digest.

The engine's platform is asked of the engine (on a Mac the engine is a Linux VM whose
architecture need not be the laptop's). Emulation is read from binfmt_misc when the engine
runs on this machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import binfmt
from .arch import spec_for
from .errors import MultiarchError
from .platform import Platform

if TYPE_CHECKING:
    import docker

NATIVE = "native"
EMULATED = "emulated"
UNAVAILABLE = "unavailable"

INSTALL_QEMU = (
    "install QEMU user-mode handlers: `apt-get install qemu-user-static binfmt-support` "
    "(Debian/Ubuntu) or `docker run --privileged --rm tonistiigi/binfmt --install all`"
)


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
    def __init__(self, base_url: str | None = None, client: docker.DockerClient | None = None) -> None:
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
        self.version = str(info.get("Version", "?"))
        self.platform = Platform.normalized(str(info.get("Os", "linux")), str(info.get("Arch", "")))
        self._handlers: list[binfmt.Handler] | None = None

    @property
    def description(self) -> str:
        return f"docker {self.version} at {self.base_url}"

    @property
    def is_local(self) -> bool:
        return self.base_url.startswith("unix://") or self.base_url.startswith("npipe://")

    @property
    def handlers(self) -> list[binfmt.Handler]:
        if self._handlers is None:
            self._handlers = binfmt.read_handlers() if self.is_local else []
        return self._handlers

    def mode(self, platform: Platform) -> Mode:
        if platform in self.platform.compatible():
            return Mode(NATIVE, f"the engine runs {self.platform}")
        if platform.os != self.platform.os:
            return Mode(UNAVAILABLE, f"{platform.os} images cannot run on a {self.platform.os} engine")
        spec = spec_for(platform)
        if spec is None:
            return Mode(UNAVAILABLE, f"no known ELF identity for {platform}, so no emulator can be found")
        if not self.is_local:
            return Mode(EMULATED, f"remote engine: assuming it emulates {platform}")
        handler = binfmt.handler_for(spec, self.handlers)
        if handler is None:
            return Mode(UNAVAILABLE, f"no binfmt_misc handler for {spec.description}; {INSTALL_QEMU}")
        if not handler.enabled:
            return Mode(
                UNAVAILABLE,
                f"binfmt_misc handler {handler.name} is disabled; run `update-binfmts --enable {handler.name}`",
            )
        if not handler.opens_early:
            return Mode(
                UNAVAILABLE,
                f"binfmt_misc handler {handler.name} lacks the F flag, so containers cannot open "
                f"{handler.interpreter}; {INSTALL_QEMU}",
            )
        if spec.qemu_cpu:
            return Mode(
                EMULATED,
                f"qemu via binfmt_misc handler {handler.name}, CPU {spec.qemu_cpu}",
                (("QEMU_CPU", spec.qemu_cpu),),
            )
        return Mode(EMULATED, f"qemu via binfmt_misc handler {handler.name}")

    def pull(self, pinned: str, auth: tuple[str, str] | None = None) -> None:
        """Pull ``name@digest`` unless present. One pull per digest at a time on this machine.

        The engine keeps one platform per tag, so pulls and runs always go by the
        platform's own manifest digest.
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
