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
from dataclasses import dataclass, field, replace
from typing import Any

from . import checks
from .checks import CheckResult
from .container import (
    KEEPALIVE_SECONDS,
    LABEL,
    LABEL_DIGEST,
    LABEL_IMAGE,
    LABEL_PID,
    LABEL_PLATFORM,
    LABEL_SESSION,
    Container,
)
from .engine import UNAVAILABLE, Engine, EngineError, Mode
from .layers import Filesystem, read_layers
from .manifest import ImageConfig, ImageManifest, Index
from .platform import Platform, parse_list, sort_key
from .reference import Reference
from .registry import Registry


@dataclass(frozen=True)
class Target:
    """One platform of one image: what is tested, pinned by its own manifest digest."""

    ref: Reference  # as the user named it
    index_digest: str
    platform: Platform
    digest: str
    mode: Mode

    @property
    def pinned(self) -> str:
        return self.ref.with_digest(self.digest).pinned

    @property
    def key(self) -> str:
        return f"{self.ref}|{self.platform}"


@dataclass(frozen=True)
class ImagePlan:
    ref: Reference
    digest: str
    is_index: bool
    present: tuple[Platform, ...]
    targets: tuple[Target, ...]
    missing: tuple[Platform, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.ref)


class Harness:
    def __init__(
        self,
        platforms: str | list[Platform] | None = None,
        *,
        registry: Registry | None = None,
        engine: Engine | None = None,
        session_id: str | None = None,
        pins: dict[str, str] | None = None,
    ) -> None:
        self.requested = parse_list(platforms) if isinstance(platforms, str) else platforms
        self.registry = registry or Registry()
        self._engine = engine
        self.session_id = session_id or os.environ.get("MULTIARCH_SESSION_ID") or uuid.uuid4().hex[:12]
        #: Reference -> index digest decided elsewhere (by the xdist controller), so every
        #: process tests the same index even if the tag moves meanwhile.
        self.pins = dict(pins or {})
        self._plans: dict[str, ImagePlan] = {}
        self._plan_errors: dict[str, Exception] = {}
        self._manifests: dict[str, ImageManifest] = {}
        self._configs: dict[str, ImageConfig] = {}
        self._filesystems: dict[str, Filesystem] = {}
        self._containers: dict[str, Container] = {}
        self._lock = threading.RLock()

    # --- the engine ------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def mode(self, platform: Platform) -> Mode:
        try:
            return self.engine.mode(platform)
        except EngineError as exc:
            return Mode(UNAVAILABLE, str(exc))

    # --- resolving -------------------------------------------------------------------------
    def plan(self, ref_text: str) -> ImagePlan:
        """The platforms of ``ref_text`` to test. Resolved once; a failure is kept too."""
        with self._lock:
            if ref_text in self._plan_errors:
                raise self._plan_errors[ref_text]
            if ref_text not in self._plans:
                try:
                    self._plans[ref_text] = self._resolve(ref_text)
                except Exception as exc:
                    self._plan_errors[ref_text] = exc
                    raise
            return self._plans[ref_text]

    def _resolve(self, ref_text: str) -> ImagePlan:
        ref = Reference.parse(ref_text)
        doc = self.registry.manifest(ref, self.pins.get(ref_text))
        notes: list[str] = []
        entries: list[tuple[Platform, str]] = []
        if isinstance(doc, Index):
            seen: set[Platform] = set()
            for desc in doc.platform_entries:
                assert desc.platform is not None
                if desc.platform in seen:
                    notes.append(f"index lists {desc.platform} more than once; the first entry is tested")
                    continue
                seen.add(desc.platform)
                entries.append((desc.platform, desc.digest))
        else:
            self._manifests[doc.digest] = doc
            config = self._config(ref, doc)
            entries.append((config.platform, doc.digest))
            notes.append(f"{ref} is a single image, not a manifest list: only {config.platform} can be tested")
        present = tuple(sorted((p for p, _ in entries), key=sort_key))
        wanted = self.requested if self.requested is not None else list(present)
        by_platform = dict(entries)
        targets = tuple(Target(ref, doc.digest, p, by_platform[p], self.mode(p)) for p in wanted if p in by_platform)
        missing = tuple(p for p in wanted if p not in by_platform)
        return ImagePlan(ref, doc.digest, isinstance(doc, Index), present, targets, missing, tuple(notes))

    def _image_manifest(self, target: Target) -> ImageManifest:
        if target.digest not in self._manifests:
            doc = self.registry.manifest(target.ref, target.digest)
            if not isinstance(doc, ImageManifest):
                raise ValueError(f"{target.pinned}: the {target.platform} entry is itself an index")
            self._manifests[target.digest] = doc
        return self._manifests[target.digest]

    def _config(self, ref: Reference, manifest: ImageManifest) -> ImageConfig:
        if manifest.digest not in self._configs:
            data = self.registry.blob_bytes(ref, manifest.config)
            self._configs[manifest.digest] = ImageConfig.parse(data, f"{ref.name}@{manifest.config.digest}")
        return self._configs[manifest.digest]

    def config(self, target: Target) -> ImageConfig:
        return self._config(target.ref, self._image_manifest(target))

    def filesystem(self, target: Target) -> Filesystem:
        with self._lock:
            if target.digest not in self._filesystems:
                manifest = self._image_manifest(target)
                layers = [(self.registry.blob_path(target.ref, d), d.digest[:19]) for d in manifest.layers]
                self._filesystems[target.digest] = read_layers(layers)
            return self._filesystems[target.digest]

    # --- checks ------------------------------------------------------------------------------
    def check_config(self, target: Target) -> CheckResult:
        return checks.check_config(target.platform, self.config(target))

    def check_elf(self, target: Target) -> CheckResult:
        return checks.check_elf(target.platform, self.filesystem(target))

    def check_uname(self, target: Target) -> CheckResult:
        if not target.mode.runnable:
            return CheckResult(checks.SKIPPED, f"cannot run {target.platform} here: {target.mode.reason}")
        fs = self.filesystem(target)
        uname = fs.which("uname", self.config(target).path_dirs)
        if uname is None:
            return CheckResult(checks.SKIPPED, "the image has no uname on its PATH")
        result = self.container(target).run([uname, "-m"])
        if result.exit_code != 0:
            return CheckResult(
                checks.FAILED,
                f"`uname -m` exited {result.exit_code}: {(result.stderr or result.stdout).strip()[:300]}",
                result.duration_s,
            )
        verdict = checks.check_uname(target.platform, self.engine.platform, target.mode.emulated, result.stdout.strip())
        return replace(verdict, command_s=result.duration_s)

    # --- containers --------------------------------------------------------------------------
    def labels(self, target: Target | None = None) -> dict[str, str]:
        out = {LABEL: "true", LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid())}
        if target is not None:
            out |= {LABEL_IMAGE: str(target.ref), LABEL_PLATFORM: str(target.platform), LABEL_DIGEST: target.digest}
        return out

    def keepalive(self, target: Target) -> list[str]:
        fs = self.filesystem(target)
        sleep = fs.which("sleep", self.config(target).path_dirs)
        if sleep is None:
            raise EngineError(
                f"{target.pinned}: the image has no `sleep` on its PATH to keep a container running between commands"
            )
        return [sleep, KEEPALIVE_SECONDS]

    def container(self, target: Target) -> Container:
        """The running container of ``target``, started on first use and then reused."""
        if not target.mode.runnable:
            raise EngineError(f"cannot run {target.platform} here: {target.mode.reason}")
        with self._lock:
            running = self._containers.get(target.key)
            if running is not None:
                return running
            self.engine.pull(target.pinned)
            container = Container(
                target.pinned,
                str(target.platform),
                keepalive=self.keepalive(target),
                labels=self.labels(target),
                docker_client_kw={"environment": {"DOCKER_HOST": self.engine.base_url}},
            )
            try:
                container.start()
            except Exception as exc:
                container.stop()
                raise EngineError(f"{target.pinned} ({target.platform}) did not start: {exc}") from exc
            self._containers[target.key] = container
            return container

    def close(self) -> None:
        """Remove every container this process started, and any left with its labels."""
        with self._lock:
            for container in self._containers.values():
                container.stop()
            self._containers.clear()
            if self._engine is not None:
                # The engine may be gone, and its containers with it.
                with contextlib.suppress(Exception):
                    self._engine.remove_labelled({LABEL_SESSION: self.session_id, LABEL_PID: str(os.getpid())})

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
