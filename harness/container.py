"""Running containers of one platform's image, started with testcontainers.

testcontainers' reaper (Ryuk) is an image from Docker Hub, which this harness must not
need: it is disabled, and every container carries labels that say whose it is, so the
harness removes its own containers (and leftovers of a crashed run) by label.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker.errors
import requests
from testcontainers.core.container import DockerContainer

from .errors import MultiarchError
from .labels import LABEL, LABEL_DIGEST, LABEL_IMAGE, LABEL_PID, LABEL_PLATFORM, LABEL_SESSION  # noqa: F401

#: Sleeps far longer than any run while staying within 32-bit time_t.
KEEPALIVE_SECONDS = "2147483647"


class CommandTimeout(MultiarchError, TimeoutError):
    """A command ran past its timeout; the message says which, where and for how long."""


class ContainerExited(MultiarchError, RuntimeError):
    """The container stopped by itself: its exit code and last output are in the message."""


class ContainerGone(MultiarchError, RuntimeError):
    """The container stopped or vanished while in use (killed, removed, out of memory)."""


@dataclass(frozen=True)
class CommandResult:
    """What ``container.run(cmd)`` returns."""

    __test__ = False

    command: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def __str__(self) -> str:
        return f"$ {shlex.join(self.command)} -> exit {self.exit_code}"


class Container:
    """A running container of one (image, platform), reused for many commands."""

    def __init__(
        self,
        pinned: str,
        platform: str,
        *,
        keepalive: Sequence[str],
        labels: dict[str, str],
        environment: dict[str, str] | None = None,
        docker_client_kw: dict[str, Any] | None = None,
    ) -> None:
        self.pinned = pinned
        self.platform = platform
        self._tc = DockerContainer(pinned, docker_client_kw=docker_client_kw)
        for key, value in (environment or {}).items():
            self._tc.with_env(key, value)
        self._tc.with_kwargs(
            entrypoint=list(keepalive),
            labels=labels,
            privileged=False,
        )

    def start(self) -> Container:
        """Start it; a container that exits at once (an illegal instruction under a faithful
        CPU, a missing loader) is an error carrying its exit code and output."""
        self._tc.start()
        wrapped = self._tc.get_wrapped_container()
        for _ in range(10):
            wrapped.reload()
            if wrapped.status != "created":
                break
            time.sleep(0.05)
        if wrapped.status != "running":
            state = wrapped.attrs.get("State", {})
            logs = self.logs().strip()[-500:]
            raise ContainerExited(
                f"{self.pinned} ({self.platform}) exited with code {state.get('ExitCode')} right after "
                f"start" + (f": {logs}" if logs else "")
            )
        return self

    @property
    def id(self) -> str:
        return str(self._tc.get_wrapped_container().id)

    def run(self, cmd: str | Sequence[str], *, user: str = "", timeout: float | None = None) -> CommandResult:
        """Run a command in the container. A string is split like a shell would (no shell).

        With ``timeout``, a command still running after that many seconds raises
        :class:`CommandTimeout`; the engine cannot stop one exec, so the caller must then
        throw the container away (the harness does).
        """
        argv = tuple(shlex.split(cmd)) if isinstance(cmd, str) else tuple(cmd)
        if not argv:
            raise ValueError("container.run() needs a command")
        wrapped = self._tc.get_wrapped_container()
        api = wrapped.client.api
        start = time.perf_counter()
        try:
            exec_id = api.exec_create(wrapped.id, list(argv), user=user)["Id"]
        except (docker.errors.APIError, requests.ConnectionError) as exc:
            raise self._gone(argv) or exc from exc
        box: dict[str, Any] = {}

        def go() -> None:
            try:
                box["output"] = api.exec_start(exec_id, demux=True)
            except BaseException as exc:
                box["error"] = exc

        worker = threading.Thread(target=go, daemon=True)
        worker.start()
        worker.join(timeout)
        took = time.perf_counter() - start
        if worker.is_alive():
            raise CommandTimeout(f"$ {shlex.join(argv)} was still running after {timeout:.0f}s on {self.platform}")
        if "error" in box:
            raise self._gone(argv) or box["error"]
        out, err = box.get("output") or (None, None)
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        if exit_code is None or exit_code >= 128:  # no exit code, or a signal: was it the container?
            # A container that is killed or removed SIGKILLs its processes; only then can the
            # engine lag behind. A command that died of its own signal (SIGILL) waits for nothing.
            gone = self._gone(argv, settle=0.5 if exit_code in (None, 137) else 0.0)
            if gone is not None:
                raise gone
        return CommandResult(
            argv,
            exit_code if exit_code is not None else -1,
            (out or b"").decode("utf-8", "replace"),
            (err or b"").decode("utf-8", "replace"),
            took,
        )

    def _gone(self, argv: Sequence[str], settle: float = 0.0) -> ContainerGone | None:
        """A :class:`ContainerGone` when the container is no longer running, else None.
        ``settle``: how long to let the engine catch up (a kill ends the exec before the
        engine marks the container stopped)."""
        wrapped = self._tc.get_wrapped_container()
        deadline = time.monotonic() + settle
        while True:
            try:
                wrapped.reload()
            except docker.errors.NotFound:
                return ContainerGone(
                    f"$ {shlex.join(argv)}: the container of {self.platform} was removed during the run"
                )
            except docker.errors.APIError:
                return None
            except requests.ConnectionError as exc:
                host = wrapped.client.api.base_url
                return ContainerGone(
                    f"$ {shlex.join(argv)}: the engine running {self.platform} ({host}) stopped answering during "
                    f"the run ({type(exc).__name__})"
                )
            if wrapped.status != "running":
                break
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        state = wrapped.attrs.get("State", {})
        why = "out of memory" if state.get("OOMKilled") else f"exit code {state.get('ExitCode')}"
        return ContainerGone(
            f"$ {shlex.join(argv)}: the container of {self.platform} stopped during the run ({wrapped.status}, {why})"
        )

    def logs(self) -> str:
        out, err = self._tc.get_logs()
        return (out + err).decode("utf-8", "replace")

    def stop(self) -> None:
        # It may be gone already, or its engine; the label sweep at the end catches what is left.
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self._tc.stop(force=True)
