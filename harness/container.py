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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker.errors
import requests
from testcontainers.core.container import DockerContainer

from .cgroups import cgroup_cpu_file, read_cpu_seconds
from .errors import MultiarchError
from .execio import exec_output
from .labels import LABEL, LABEL_DIGEST, LABEL_IMAGE, LABEL_PID, LABEL_PLATFORM, LABEL_SESSION  # noqa: F401

#: Sleeps far longer than any run while staying within 32-bit time_t.
KEEPALIVE_SECONDS = "2147483647"


class CommandTimeout(MultiarchError, TimeoutError):
    """A command ran past its timeout; the message says which, where and for how long."""


class ContainerExited(MultiarchError, RuntimeError):
    """The container stopped by itself: its exit code and last output are in the message."""


#: What runc says when the process of an exec failed before it started: "OCI runtime exec
#: failed: exec failed: unable to start container process: waiting for init preliminary
#: setup: read init-p: connection reset by peer".
NOT_STARTED = "waiting for init preliminary setup"

#: Exit code 126 is a command that did not start. When the container was killed as the
#: runtime started it, the runtime says so in words of the moment ("OCI runtime exec failed:
#: ... error executing setns process: signal: broken pipe", "cannot exec in a stopped state",
#: "task ... not found"), and the engine may not have marked the container stopped yet. What
#: the runtime (or a shell of the image) says when the image's own file could not be run,
#: lower-cased: the container is fine, and the 126 is the command's answer.
NOT_RUNNABLE = (
    b"exec format error",
    b"permission denied",
    b"no such file or directory",
    b"executable file not found",
    b"not a directory",
)


class ContainerGone(MultiarchError, RuntimeError):
    """The container stopped or vanished while in use (killed, removed, out of memory)."""


class TurnsClosed(Exception):
    """The container is going (a command in it timed out, or it is being removed): a
    command that waited for its turn there never started."""


class Turns:
    """Who may run a command in one container now. Commands share it (a test may run two
    at once, a server and its client); one run ``alone`` waits until none is running, and
    none starts until it ends. Its CPU time, and theirs, are read from the container's one
    cgroup: beside each other, each would count the other's. Nothing waits for a waiting
    ``alone`` (a test whose one command waits for its other would never end), and it waits
    at most ``patience`` seconds (a test may leave a command running in a thread of its
    own): then it runs beside them, and says so."""

    def __init__(self, patience: float = 10.0) -> None:
        self.patience = patience
        self._cond = threading.Condition()
        self._running = 0
        self._alone = False
        self._closed = False
        #: Commands waiting for their turn now.
        self.waiting = 0

    def close(self) -> None:
        """The container is going: what waits for a turn raises :class:`TurnsClosed`, and
        nothing starts in it any more."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @contextlib.contextmanager
    def turn(self, alone: bool) -> Iterator[bool]:
        """A turn to run one command: yields whether it has the container to itself."""
        took = ""
        try:
            with self._cond:
                self.waiting += 1
                try:
                    if alone:
                        free = self._cond.wait_for(
                            lambda: self._closed or not (self._alone or self._running), self.patience
                        )
                    else:
                        free = self._cond.wait_for(lambda: self._closed or not self._alone)
                finally:
                    self.waiting -= 1
                if self._closed:
                    raise TurnsClosed
                if alone and free:
                    self._alone, took = True, "alone"
                else:
                    self._running, took = self._running + 1, "beside"
            yield took == "alone"
        finally:
            if took:
                with self._cond:
                    if took == "alone":
                        self._alone = False
                    else:
                        self._running -= 1
                    self._cond.notify_all()


@dataclass(frozen=True)
class CommandResult:
    """What ``container.run(cmd)`` returns."""

    __test__ = False

    command: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    #: Wall time of the command as this process saw it: the engine's exec round trip included.
    duration_s: float
    #: CPU time the container used while the command ran, from its cgroup (None unless
    #: the engine runs on this machine's kernel); it includes the runtime setting the
    #: command up, which :attr:`inside_s` does not.
    cpu_s: float | None = None
    #: The command's own time inside the container: ``cpu_s``, else ``duration_s``, less
    #: what an exec that runs nothing costs on that engine
    #: (:meth:`harness.engine.Engine.exec_cost`).
    inside_s: float | None = None

    @property
    def own_s(self) -> float:
        """The time slowdowns compare: inside the container where the engine counts it,
        else the wall time."""
        return self.inside_s if self.inside_s is not None else self.duration_s

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
        local_kernel: bool = False,
    ) -> None:
        self.pinned = pinned
        self.platform = platform
        #: The engine runs on this machine's kernel: its cgroups can be read here.
        self._local_kernel = local_kernel
        self._cpu_file: Path | None = None
        self._turns = Turns()
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
        if self._local_kernel:
            self._cpu_file = cgroup_cpu_file(Path("/proc"), str(wrapped.attrs.get("State", {}).get("Pid", "")))
        return self

    @property
    def id(self) -> str:
        return str(self._tc.get_wrapped_container().id)

    def run(
        self, cmd: str | Sequence[str], *, user: str = "", timeout: float | None = None, alone: bool = False
    ) -> CommandResult:
        """Run a command in the container. A string is split like a shell would (no shell).

        With ``timeout``, a command still running after that many seconds raises
        :class:`CommandTimeout`; the engine cannot stop one exec, so the caller must then
        throw the container away (the harness does). With ``alone``, no other command
        runs in the container beside it (:class:`Turns`): a check's, beside the tests.
        """
        argv = tuple(shlex.split(cmd)) if isinstance(cmd, str) else tuple(cmd)
        if not argv:
            raise ValueError("container.run() needs a command")
        try:
            with self._turns.turn(alone) as own:
                try:
                    result = self._run(argv, user, timeout)
                    if result.exit_code == 126 and NOT_STARTED in result.stdout + result.stderr:
                        # runc lost the handshake with the process it was starting (seen under
                        # load with runc 1.1): the command never ran; running it again is no retry.
                        result = self._run(argv, user, timeout)
                except CommandTimeout:
                    self._turns.close()  # it runs on until the container goes: nothing joins it
                    raise
        except TurnsClosed:  # said as the container's state says it, if it says
            raise self._gone(argv) or ContainerGone(
                f"$ {shlex.join(argv)}: the container of {self.platform} was being removed; the command did not start"
            ) from None
        if alone and not own:  # it waited its patience out: the CPU time counts the others' too
            result = replace(result, cpu_s=None)
        return result

    def _run(self, argv: tuple[str, ...], user: str, timeout: float | None) -> CommandResult:
        wrapped = self._tc.get_wrapped_container()
        api = wrapped.client.api
        cpu_before = self.cpu_seconds()
        start = time.perf_counter()
        try:
            exec_id = api.exec_create(wrapped.id, list(argv), user=user)["Id"]
        except (docker.errors.APIError, requests.ConnectionError) as exc:
            raise self._gone(argv) or exc from exc
        box: dict[str, Any] = {}

        def go() -> None:
            try:
                box["output"] = exec_output(api, exec_id)
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
        try:
            exit_code = api.exec_inspect(exec_id).get("ExitCode")
        except (docker.errors.APIError, requests.ConnectionError) as exc:  # the engine went with the output
            raise self._gone(argv) or exc from exc
        cpu_after = self.cpu_seconds() if cpu_before is not None else None
        said = (out or b"") + (err or b"")
        if exit_code is None or exit_code >= 128 or exit_code == 126:  # was it the container?
            # A container that is killed or removed SIGKILLs its processes (the runtime's own
            # among them); only then can the engine lag behind. A command that died of its own
            # signal (SIGILL), or that the image could not run (exec format error), waits for nothing.
            if exit_code == 126:  # not started: by the runtime, or by a shell of the image
                own_fault = any(why in said.lower() for why in NOT_RUNNABLE)
            else:
                own_fault = exit_code is not None and exit_code != 137
            gone = self._gone(argv, settle=0.0 if own_fault else 0.5)
            if gone is not None:
                raise gone
        return CommandResult(
            argv,
            exit_code if exit_code is not None else -1,
            (out or b"").decode("utf-8", "replace"),
            (err or b"").decode("utf-8", "replace"),
            took,
            cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None,
        )

    def cpu_seconds(self) -> float | None:
        """CPU time the container's processes have used so far, from its cgroup's own
        count; None unless the engine runs on this machine's kernel (the engine's stats
        API answers only once a second, too slowly to time one command)."""
        return read_cpu_seconds(self._cpu_file)

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
        self._turns.close()  # a command waiting for its turn would start in a container going away
        # It may be gone already, or its engine; the label sweep at the end catches what is left.
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self._tc.stop(force=True)
