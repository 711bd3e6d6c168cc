"""Where an image comes from: a registry, an OCI layout or archive, or the local engine.

Every source answers the same questions: which platforms does it hold (by digest), what
does each platform's config say, what is in its filesystem, and what should the engine run.

    REF                           a registry reference (tag or digest), e.g. ghcr.io/o/app:1.4
    docker://REF                  the same, spelled as containers-transports do
    oci:PATH[:TAG]                an OCI image layout directory
    oci-archive:PATH[:TAG]        an OCI image layout in a tar file
    docker-daemon:NAME            an image already in the engine: one platform in the classic
                                  store; every platform it holds in the containerd store
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .errors import MultiarchError
from .layers import (
    DEFAULT_MAX_LAYER_BYTES,
    Filesystem,
    IndexCache,
    LayerError,
    LayerIndex,
    LayerTooLarge,
    index_layer,
    layer_index,
    open_decompressed,
)
from .manifest import DocumentError, ImageConfig, ImageManifest, Index, parse_manifest
from .platform import Platform
from .reference import Reference
from .registry import BlobInterrupted, Registry, RegistryError
from .streams import ChunkReader

if TYPE_CHECKING:
    from .engine import Engine

REF_NAME = "org.opencontainers.image.ref.name"
#: How many times a layer whose download broke off is read (from its start).
BLOB_TRIES = 3


#: Where OCI layouts and archives are copied so that the engine can pull them by digest.
DEFAULT_SCRATCH_REGISTRY = "127.0.0.1:5000"


class SourceError(MultiarchError, ValueError):
    """A source that cannot be opened or read; the message names it and the fix."""


@dataclass(frozen=True)
class Resolved:
    is_index: bool
    digest: str  # of the index (or of the single manifest)
    entries: tuple[tuple[Platform, str], ...]  # platform -> manifest digest, index order
    notes: tuple[str, ...] = ()


class Source(ABC):
    def __init__(self, name: str, layer_limit: int = DEFAULT_MAX_LAYER_BYTES) -> None:
        self.name = name
        #: The most bytes one layer may decompress to.
        self.layer_limit = layer_limit

    @abstractmethod
    def resolve(self, pin: str | None = None) -> Resolved: ...

    @abstractmethod
    def config(self, digest: str) -> ImageConfig: ...

    @abstractmethod
    def filesystem(self, digest: str) -> Filesystem: ...

    @abstractmethod
    def runnable(self, digest: str, engine: Engine) -> str:
        """What the engine runs for this platform: a reference pinned by digest, never a tag."""

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release what the source holds open."""


def _entries(doc: Index | ImageManifest, single: ImageConfig | None) -> Resolved:
    if isinstance(doc, Index):
        notes = []
        seen: dict[Platform, str] = {}
        for desc in doc.platform_entries:
            assert desc.platform is not None
            if desc.platform in seen:
                notes.append(f"the index lists {desc.platform} more than once; the first entry is tested")
                continue
            seen[desc.platform] = desc.digest
        return Resolved(True, doc.digest, tuple(seen.items()), tuple(notes))
    assert single is not None
    return Resolved(
        False,
        doc.digest,
        ((single.platform, doc.digest),),
        (f"this tag is not a manifest list: it is a single {single.platform} image",),
    )


class DocumentSource(Source):
    """A source of OCI documents and blobs: registries, layouts and archives."""

    def __init__(self, name: str, cache: IndexCache, layer_limit: int = DEFAULT_MAX_LAYER_BYTES) -> None:
        super().__init__(name, layer_limit)
        self.cache = cache
        self._docs: dict[str, Index | ImageManifest] = {}
        self._lock = threading.RLock()

    @abstractmethod
    def _fetch_root(self, pin: str | None) -> Index | ImageManifest: ...

    @abstractmethod
    def _fetch(self, digest: str) -> Index | ImageManifest: ...

    @abstractmethod
    def blob_path(self, digest: str) -> Path:
        """A local file holding the blob, its digest verified."""

    @abstractmethod
    def document_bytes(self, digest: str) -> bytes:
        """The exact bytes of an index or manifest, to copy it with its digest unchanged."""

    def document(self, digest: str) -> Index | ImageManifest:
        with self._lock:
            if digest not in self._docs:
                self._docs[digest] = self._fetch(digest)
            return self._docs[digest]

    def manifest(self, digest: str) -> ImageManifest:
        doc = self.document(digest)
        if not isinstance(doc, ImageManifest):
            raise SourceError(f"{self.name}: {digest} is an index where an image manifest was expected")
        return doc

    def resolve(self, pin: str | None = None) -> Resolved:
        doc = self._fetch_root(pin)
        self._docs[doc.digest] = doc
        return _entries(doc, self.config(doc.digest) if isinstance(doc, ImageManifest) else None)

    def config(self, digest: str) -> ImageConfig:
        manifest = self.manifest(digest)
        path = self.blob_path(manifest.config.digest)
        return ImageConfig.parse(path.read_bytes(), f"{self.name} config {manifest.config.digest}")

    def filesystem(self, digest: str) -> Filesystem:
        fs = Filesystem()
        for desc in self.manifest(digest).layers:
            fs.apply(self._layer(desc.digest))
        return fs

    def _layer(self, digest: str) -> LayerIndex:
        """A layer's index; a download that broke off is read again from the start."""
        for attempt in range(1, BLOB_TRIES + 1):
            try:
                return layer_index(self.blob_opener(digest), digest, digest[:19], self.cache, limit=self.layer_limit)
            except BlobInterrupted:
                if attempt == BLOB_TRIES:
                    raise
        raise AssertionError("unreachable")

    def blob_opener(self, digest: str) -> Path | Callable[[], AbstractContextManager[Any]]:
        """How to read a layer blob: its file, or (registries) a stream fetched as it is read."""
        return self.blob_path(digest)


class RegistrySource(DocumentSource):
    def __init__(
        self, name: str, ref: Reference, registry: Registry, layer_limit: int = DEFAULT_MAX_LAYER_BYTES
    ) -> None:
        super().__init__(name, IndexCache(registry.cache_dir), layer_limit)
        self.ref = ref
        self.registry = registry

    def _fetch_root(self, pin: str | None) -> Index | ImageManifest:
        return self.registry.manifest(self.ref, pin)

    def _fetch(self, digest: str) -> Index | ImageManifest:
        return self.registry.manifest(self.ref, digest)

    def blob_path(self, digest: str) -> Path:
        return self.registry.blob_path(self.ref, digest)

    def blob_opener(self, digest: str) -> Path | Callable[[], AbstractContextManager[Any]]:
        return lambda: self.registry.open_blob(self.ref, digest)

    def document_bytes(self, digest: str) -> bytes:
        return self.registry.manifest_bytes(self.ref, digest)

    def runnable(self, digest: str, engine: Engine) -> str:
        return self.ref.with_digest(digest).pinned


class _LocalSource(DocumentSource):
    """Layouts and archives: documents are read from index.json and blobs/ by digest."""

    def __init__(
        self,
        name: str,
        path: Path,
        tag: str | None,
        registry: Registry,
        scratch: str,
        layer_limit: int = DEFAULT_MAX_LAYER_BYTES,
    ) -> None:
        super().__init__(name, IndexCache(registry.cache_dir), layer_limit)
        self.path = path
        self.tag = tag
        self.registry = registry
        self.scratch = scratch
        self._pushed: dict[str, str] = {}
        self._open()

    @abstractmethod
    def _open(self) -> None:
        """Check that ``path`` holds an OCI layout, and open it; a SourceError names it if not."""

    @abstractmethod
    def _read(self, relpath: str) -> bytes: ...

    def _fetch_root(self, pin: str | None) -> Index | ImageManifest:
        if pin:
            return self.document(pin)
        data = self._read("index.json")
        top = parse_manifest(data, "sha256:" + hashlib.sha256(data).hexdigest(), "", f"{self.name} index.json")
        if not isinstance(top, Index):
            raise SourceError(f"{self.name}: index.json is not an image index")
        entries = list(top.manifests)
        if self.tag is not None:
            entries = [d for d in entries if d.annotations.get(REF_NAME) == self.tag]
            if not entries:
                names = sorted({d.annotations.get(REF_NAME, "") for d in top.manifests} - {""})
                raise SourceError(f"{self.name}: no image tagged {self.tag!r} (tags: {', '.join(names) or 'none'})")
        if len(entries) == 1:
            return self.document(entries[0].digest)
        if self.tag is None and any(d.platform for d in entries):
            return top  # index.json itself lists the platforms
        raise SourceError(f"{self.name}: index.json holds {len(entries)} images; name one as {self.name}:TAG")

    def _fetch(self, digest: str) -> Index | ImageManifest:
        return parse_manifest(self.document_bytes(digest), digest, "", f"{self.name} {digest}")

    def document_bytes(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def runnable(self, digest: str, engine: Engine) -> str:
        """The engine pulls from a registry: copy this platform there once, byte for byte."""
        with self._lock:
            if digest not in self._pushed:
                repo = "multiarch-scratch/" + hashlib.sha256(self.name.encode()).hexdigest()[:16]
                ref = Reference.parse(f"{self.scratch}/{repo}")
                manifest = self.manifest(digest)
                try:
                    for desc in (manifest.config, *manifest.layers):
                        self.registry.push_blob(ref, desc.digest, self.blob_path(desc.digest))
                    self.registry.push_manifest(ref, digest, self.document_bytes(digest), manifest.media_type)
                except RegistryError as exc:
                    raise RegistryError(
                        f"cannot copy the image into the scratch registry {self.scratch} for the engine to "
                        f"pull ({exc}); start a registry there or name another with --scratch-registry HOST:PORT"
                    ) from None
                self._pushed[digest] = ref.with_digest(digest).pinned
            return self._pushed[digest]


def _verify(path: Path, digest: str, where: str) -> None:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            hasher.update(chunk)
    if "sha256:" + hasher.hexdigest() != digest:
        raise SourceError(f"{where}: blob {digest} does not match its content (sha256:{hasher.hexdigest()})")


def _blob_rel(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexd):
        raise SourceError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexd}"


class LayoutSource(_LocalSource):
    def _open(self) -> None:
        name, path = self.name, self.path
        self._verified: set[str] = set()
        try:
            layout = json.loads((path / "oci-layout").read_text())
        except (OSError, ValueError) as exc:
            raise SourceError(f"{name}: {path} is not an OCI image layout (no readable oci-layout file)") from exc
        if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
            raise SourceError(f"{name}: {path}/oci-layout has no imageLayoutVersion")

    def _read(self, relpath: str) -> bytes:
        try:
            return (self.path / relpath).read_bytes()
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read {relpath} ({exc.strerror})") from exc

    def blob_path(self, digest: str) -> Path:
        path = self.path / _blob_rel(digest)
        if not path.is_file():
            raise SourceError(f"{self.name}: blob {digest} is missing from the layout")
        if digest not in self._verified:
            _verify(path, digest, self.name)
            self._verified.add(digest)
        return path


class ArchiveSource(_LocalSource):
    """An OCI layout in a tar file. Blobs are copied once into the digest cache (verified),
    as registry downloads are; the image's files are never extracted."""

    def _open(self) -> None:
        name, path = self.name, self.path
        try:
            self.tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - kept open for the source's life
            self.members = {m.name.lstrip("./"): m for m in self.tar.getmembers() if m.isfile()}
        except (OSError, tarfile.TarError) as exc:
            raise SourceError(f"{name}: {path} is not a readable tar file ({exc})") from exc
        if "oci-layout" not in self.members:
            raise SourceError(f"{name}: {path} holds no oci-layout file: not an OCI archive")

    def close(self) -> None:
        self.tar.close()

    def _read(self, relpath: str) -> bytes:
        member = self.members.get(relpath)
        fh = self.tar.extractfile(member) if member else None
        if fh is None:
            raise SourceError(f"{self.name}: {relpath} is missing from the archive")
        return fh.read()

    def blob_path(self, digest: str) -> Path:
        cached = self.registry.blob_file(digest, self.name)
        if cached.exists():
            return cached
        with self._lock:
            member = self.members.get(_blob_rel(digest))
            fh = self.tar.extractfile(member) if member else None
            if fh is None:
                raise SourceError(f"{self.name}: blob {digest} is missing from the archive")
            return self.registry.store_blob(digest, iter(lambda: fh.read(1 << 20), b""), self.name)


class StoreSource(ArchiveSource):
    """An image in an engine with the containerd image store (Docker Engine 29's default,
    Docker Desktop's since 4.34). There one name holds a whole index, and ``docker save``
    writes it as an OCI layout: the index as pushed, with the blobs of the platforms the
    store has. It is read as an OCI archive; every platform whose manifest is in it is
    tested, and runs from the scratch registry, as a layout's do."""

    def __init__(
        self, name: str, image: str, engine: Engine, registry: Registry, scratch: str, layer_limit: int
    ) -> None:
        import docker.errors

        self.image = image
        try:
            found = engine.client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise SourceError(f"{name}: the engine has no image {image!r} (docker pull it first)") from exc
        except docker.errors.DockerException as exc:
            raise SourceError(f"{name}: the engine at {engine.base_url} failed: {exc}") from exc
        fd, tmp = tempfile.mkstemp(prefix="multiarch-store-", suffix=".tar")
        self._saved = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in found.save(chunk_size=1 << 20):
                    out.write(chunk)
            super().__init__(name, self._saved, None, registry, scratch, layer_limit)
        except BaseException as exc:
            self._saved.unlink(missing_ok=True)
            if isinstance(exc, docker.errors.DockerException):
                raise SourceError(f"{name}: docker save {image} failed: {exc}") from exc
            raise

    def resolve(self, pin: str | None = None) -> Resolved:
        whole = super().resolve(pin)
        held = tuple((p, d) for p, d in whole.entries if _blob_rel(d) in self.members)
        absent = [str(p) for p, d in whole.entries if _blob_rel(d) not in self.members]
        notes = whole.notes
        if absent:
            notes += (
                f"{self.image} in the engine's store holds {len(held)} of the index's platforms; not "
                f"pulled there: {', '.join(absent)} (docker pull --platform P {self.image})",
            )
        return Resolved(whole.is_index, whole.digest, held, notes)

    def close(self) -> None:
        super().close()
        self._saved.unlink(missing_ok=True)


class DaemonSource(Source):
    """An image in the engine's classic store. It holds one platform (the store keeps one
    per name), read with ``docker save`` as a stream: each layer is indexed as it passes
    and cached by its diff ID."""

    def __init__(
        self, name: str, image: str, engine: Engine, cache: IndexCache, layer_limit: int = DEFAULT_MAX_LAYER_BYTES
    ) -> None:
        super().__init__(name, layer_limit)
        self.image = image
        self.engine = engine
        self.cache = cache
        self._config: ImageConfig | None = None
        self._fs: Filesystem | None = None
        self._id = ""

    def _load(self) -> None:
        import docker.errors

        if self._fs is not None:
            return
        try:
            image = self.engine.client.images.get(self.image)
        except docker.errors.ImageNotFound as exc:
            raise SourceError(f"{self.name}: the engine has no image {self.image!r} (docker pull it first)") from exc
        self._id = str(image.id)
        diff_ids = list((image.attrs.get("RootFS") or {}).get("Layers") or [])
        indexes = {d: self.cache.get(d) for d in diff_ids}
        if any(v is None for v in indexes.values()):
            indexes.update(self._index_saved(image))
        fs = Filesystem()
        for d in diff_ids:
            index = indexes.get(d)
            if index is None:
                raise SourceError(f"{self.name}: layer {d} was not in the saved image")
            fs.apply(index)
        self._fs = fs
        attrs = image.attrs
        doc = {
            "os": attrs.get("Os"),
            "architecture": attrs.get("Architecture"),
            "variant": attrs.get("Variant"),
            "config": attrs.get("Config") or {},
        }
        self._config = ImageConfig.parse(json.dumps(doc).encode(), f"{self.name} config")

    def _index_saved(self, image: Any) -> dict[str, LayerIndex]:
        out: dict[str, LayerIndex] = {}
        stream = ChunkReader(image.save(chunk_size=1 << 20))
        with tarfile.open(fileobj=cast(Any, stream), mode="r|") as outer:
            for member in outer:
                if not (member.isfile() and member.name.endswith(".tar")) and not member.name.startswith(
                    "blobs/sha256/"
                ):
                    continue
                fh = outer.extractfile(member)
                if fh is None:
                    continue
                hashed = _HashingReader(fh)
                try:
                    index = index_layer(open_decompressed(hashed, member.name), member.name, limit=self.layer_limit)
                except LayerTooLarge:
                    raise  # a layer too large to read is no layer to leave out of the audit
                except LayerError:
                    continue  # a config or a manifest among the blobs: not a layer
                hashed.drain()
                diff_id = "sha256:" + hashed.hasher.hexdigest()
                self.cache.put(diff_id, index)
                out[diff_id] = index
        return out

    def resolve(self, pin: str | None = None) -> Resolved:
        self._load()
        assert self._config is not None
        return Resolved(
            False,
            self._id,
            ((self._config.platform, self._id),),
            (f"{self.image} from the engine's store: one platform, {self._config.platform}",),
        )

    def config(self, digest: str) -> ImageConfig:
        self._load()
        assert self._config is not None
        return self._config

    def filesystem(self, digest: str) -> Filesystem:
        self._load()
        assert self._fs is not None
        return self._fs

    def runnable(self, digest: str, engine: Engine) -> str:
        return self._id


class _HashingReader:
    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.hasher = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.fh.read(n)
        self.hasher.update(data)
        return data

    def seekable(self) -> bool:
        return False

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def open_source(
    text: str,
    registry: Registry,
    engine: Engine | None = None,
    scratch: str = DEFAULT_SCRATCH_REGISTRY,
    layer_limit: int = DEFAULT_MAX_LAYER_BYTES,
) -> Source:
    """The source an ``--image`` value names; see the module doc for the forms."""
    kind, sep, rest = text.partition(":")
    if sep and kind in ("oci", "oci-archive"):
        path, tag = _path_and_tag(rest)
        cls = LayoutSource if kind == "oci" else ArchiveSource
        if not path.exists():
            raise SourceError(f"{text}: {path} does not exist")
        return cls(text, path, tag, registry, scratch, layer_limit)
    if sep and kind == "docker-daemon":
        if engine is None:
            raise SourceError(f"{text}: needs a container engine")
        if engine.containerd_store:
            return StoreSource(text, rest, engine, registry, scratch, layer_limit)
        return DaemonSource(text, rest, engine, IndexCache(registry.cache_dir), layer_limit)
    ref_text = text[len("docker://") :] if text.startswith("docker://") else text
    return RegistrySource(text, Reference.parse(ref_text), registry, layer_limit)


def check_source_name(text: str) -> None:
    """Refuse, naming the fix, an ``--image`` value that cannot name a source."""
    kind, sep, rest = text.partition(":")
    if sep and kind in ("oci", "oci-archive"):
        path, _ = _path_and_tag(rest)
        if not path.exists():
            raise SourceError(f"{text!r}: {path} does not exist (an {kind}: source is a path on this machine)")
        return
    if sep and kind == "docker-daemon":
        if not rest:
            raise SourceError(f"{text!r}: name the image, e.g. docker-daemon:app:1.4")
        return
    Reference.parse(text[len("docker://") :] if text.startswith("docker://") else text)


def _path_and_tag(rest: str) -> tuple[Path, str | None]:
    if Path(rest).exists():
        return Path(rest), None
    path, sep, tag = rest.rpartition(":")
    if sep and "/" not in tag and path:
        return Path(path), tag
    return Path(rest), None


__all__ = [
    "ArchiveSource",
    "DaemonSource",
    "DocumentError",
    "LayoutSource",
    "RegistryError",
    "RegistrySource",
    "Resolved",
    "Source",
    "SourceError",
    "StoreSource",
    "open_source",
]
