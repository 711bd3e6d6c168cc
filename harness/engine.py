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
from collections.abc import Callable, Iterable, Iterator, Sequence
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
        #: Where answers of surveys are kept between runs (:func:`harness.survey.cache_key`);
        #: None: asked every run.
        self.survey_cache: Path | None = None

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
            key = None
            if done is None and self.survey_cache is not None:
                key = self._survey_key()
                kept = surveying.load_cached(self.survey_cache, key) if key else None
                if kept is not None and not (self.wanted | missing) & set(PROGRAMS) - set(kept.runs):
                    self._survey = done = kept
                    return done
            if done is None or (missing & set(PROGRAMS) and not done.error):
                from .labels import HOSTNAME, LABEL, LABEL_HOST, LABEL_PID

                labels = {LABEL: "true", LABEL_HOST: HOSTNAME, LABEL_PID: str(os.getpid()), **self.labels}
                asked = surveying.run_survey(
                    self.client, self.base_url, self.wanted | missing, labels, version=self._version_info
                )
                if done is not None and not asked.error:
                    asked = dataclasses.replace(asked, runs={**done.runs, **asked.runs})
                if key is not None and self.survey_cache is not None:
                    surveying.keep(self.survey_cache, key, asked)
                self._survey = done = asked
            return done

    def _survey_key(self) -> str | None:
        """The key of this engine's survey in the cache (None: not to be cached)."""
        import docker.errors
        import requests

        try:
            info = self.client.info()
        except (docker.errors.DockerException, requests.RequestException):
            return None  # asked anew, which says what is wrong
        return surveying.cache_key(self.base_url, info, self._version_info)

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

    def has(self, image: str) -> bool:
        """Whether the engine's store holds ``image`` (a name@digest or an image ID)."""
        import docker.errors

        with self._answering(f"inspecting {image}"):
            try:
                self.client.images.get(image)
                return True
            except docker.errors.ImageNotFound:
                return False

    def pull(
        self,
        pinned: str,
        auth: tuple[str, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        """Pull ``name@digest`` unless present. One pull per digest at a time on this machine.

        The classic store keeps one platform per tag (the containerd store keeps an index
        under one name, and runs the engine's platform of it), so pulls and runs always go
        by the platform's own manifest digest, on both. ``progress`` hears the bytes
        downloaded so far and in all, as the engine reports them; ``stop``, once set,
        breaks the pull off.
        """
        import docker.errors

        with _machine_lock(pinned), self._answering(pinned):
            if self.has(pinned):
                return
            repo, _, digest = pinned.partition("@")
            layers: dict[str, tuple[int, int]] = {}
            try:
                # docker-py's images.pull ignores errors reported inside the stream.
                auth_config = {"username": auth[0], "password": auth[1]} if auth else None
                events = self.client.api.pull(repo, tag=digest, stream=True, decode=True, auth_config=auth_config)
                for event in events:
                    if isinstance(event, dict) and event.get("error"):
                        raise EngineError(f"pulling {pinned}: {event['error']}")
                    if stop is not None and stop.is_set():
                        raise EngineError(f"pulling {pinned}: broken off, the run is ending")
                    if progress is not None and isinstance(event, dict):
                        _count_bytes(event, layers, progress)
            except docker.errors.APIError as exc:
                raise EngineError(f"pulling {pinned}: {exc.explanation or exc}") from exc

    def load(
        self,
        blobs: Sequence[Path],
        config_digest: str,
        layer_digests: Sequence[str],
        *,
        stop: threading.Event | None = None,
    ) -> str:
        """Load an image from its blobs, already on this machine, as ``docker load`` does
        (an archive streamed from the files, nothing copied); returns the image ID the
        engine gave it. ``blobs`` are the config's file, then each layer's."""
        with _machine_lock(config_digest), self._answering(f"loading {config_digest[:19]}"):
            for event in self.client.api.load_image(_archive(blobs, config_digest, layer_digests, stop)):
                if isinstance(event, dict) and event.get("error"):
                    raise EngineError(f"loading {config_digest[:19]}: {event['error']}")
                said = str(event.get("stream", "")) if isinstance(event, dict) else ""
                if "Loaded image ID:" in said:
                    return said.split("Loaded image ID:", 1)[1].strip()
                if "Loaded image:" in said:
                    return said.split("Loaded image:", 1)[1].strip()
        raise EngineError(f"loading {config_digest[:19]}: the engine did not say which image it loaded")

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


@contextlib.contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    """One process of this machine at a time brings ``name`` into an engine: the others
    wait, then find it there."""
    lock = Path(tempfile.gettempdir()) / f"multiarch-pull-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _count_bytes(
    event: dict[str, Any], layers: dict[str, tuple[int, int]], progress: Callable[[int, int], None]
) -> None:
    """Add one event of a pull's stream to the bytes per layer, and report the sums."""
    detail = event.get("progressDetail") or {}
    layer = str(event.get("id", ""))
    status = str(event.get("status", ""))
    if not layer:
        return
    if status == "Downloading" and isinstance(detail.get("total"), int):
        layers[layer] = (int(detail.get("current") or 0), int(detail["total"]))
    elif status in ("Download complete", "Already exists", "Pull complete") and layer in layers:
        total = layers[layer][1]
        layers[layer] = (total, total)
    else:
        return
    progress(sum(done for done, _ in layers.values()), sum(total for _, total in layers.values()))


def _archive(
    blobs: Sequence[Path], config_digest: str, layer_digests: Sequence[str], stop: threading.Event | None = None
) -> Iterator[bytes]:
    """A ``docker save`` archive of one image, made of its blob files as they are (the
    engine decompresses layers itself): manifest.json, the config, one file per layer."""
    import json
    import tarfile

    config_name = config_digest.removeprefix("sha256:") + ".json"
    layer_names = [f"{digest.removeprefix('sha256:')}/layer.tar" for digest in layer_digests]
    manifest = json.dumps([{"Config": config_name, "RepoTags": None, "Layers": layer_names}]).encode()

    def member(name: str, size: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        return info.tobuf(tarfile.PAX_FORMAT)

    def pad(size: int) -> bytes:
        return b"\0" * (-size % tarfile.BLOCKSIZE)

    yield member("manifest.json", len(manifest)) + manifest + pad(len(manifest))
    for name, path in zip([config_name, *layer_names], blobs, strict=True):
        size = path.stat().st_size
        yield member(name, size)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                if stop is not None and stop.is_set():
                    raise EngineError(f"loading {config_digest[:19]}: broken off, the run is ending")
                yield chunk
        yield pad(size)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


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
