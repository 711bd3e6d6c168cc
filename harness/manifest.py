"""Registry documents as frozen values, parsed once at the edge.

Indexes (OCI image index, Docker manifest list), image manifests (OCI, Docker v2 schema 2)
and image configs. Nothing past this module reads the raw JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MultiarchError
from .platform import Platform, PlatformError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
#: On an attestation entry: the digest of the platform manifest it is about.
ATTESTED = "vnd.docker.reference.digest"


class DocumentError(MultiarchError, ValueError):
    """A registry document that is not what it claims to be."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Descriptor:
        if not isinstance(data, Mapping):
            raise DocumentError(f"{where}: a descriptor is not a JSON object: {data!r:.200}")
        try:
            digest = str(data["digest"])
            size = int(data.get("size", -1))
        except (KeyError, TypeError, ValueError) as exc:
            raise DocumentError(f"{where}: descriptor without a valid digest/size: {data!r:.200}") from exc
        plat = data.get("platform")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, Mapping) or not all(isinstance(v, str) for v in annotations.values()):
            raise DocumentError(f"{where}: descriptor {digest}: annotations are not an object of strings")
        try:
            platform = Platform.from_oci(plat) if isinstance(plat, Mapping) else None
        except PlatformError as exc:
            raise DocumentError(f"{where}: descriptor {digest}: {exc}") from exc
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=digest,
            size=size,
            platform=platform,
            annotations=dict(annotations),
        )

    @property
    def is_attestation(self) -> bool:
        if self.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
            return True
        return self.platform is not None and self.platform.is_unknown


@dataclass(frozen=True)
class Index:
    media_type: str
    digest: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def platform_entries(self) -> tuple[Descriptor, ...]:
        """Entries that are platforms: attestations and entries without one left out."""
        return tuple(d for d in self.manifests if d.platform is not None and not d.is_attestation)

    def attestations_of(self, digest: str) -> tuple[Descriptor, ...]:
        """The attestation manifests (BuildKit's SBOM and provenance) attached to the entry ``digest``."""
        return tuple(d for d in self.manifests if d.is_attestation and d.annotations.get(ATTESTED) == digest)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    digest: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageConfig:
    platform: Platform
    raw_architecture: str
    raw_os: str
    raw_variant: str | None
    env: tuple[str, ...]
    #: ``config.Labels``: where the image says it came from, among others.
    labels: Mapping[str, str] = field(default_factory=dict)
    #: ``created``, as written (RFC 3339), or "".
    created: str = ""

    @classmethod
    def parse(cls, data: bytes, where: str) -> ImageConfig:
        doc = _load(data, where)
        cfg = doc.get("config") or {}
        env = (cfg.get("Env") or []) if isinstance(cfg, Mapping) else None
        if not isinstance(env, list) or not all(isinstance(item, str) for item in env):
            raise DocumentError(f"{where}: config.Env is not a list of strings")
        labels = (cfg.get("Labels") or {}) if isinstance(cfg, Mapping) else None
        if not isinstance(labels, Mapping):
            raise DocumentError(f"{where}: config.Labels is not an object")
        try:
            platform = Platform.from_oci(doc)
        except PlatformError as exc:
            raise DocumentError(f"{where}: {exc}") from exc
        return cls(
            platform=platform,
            raw_architecture=str(doc.get("architecture", "")),
            raw_os=str(doc.get("os", "")),
            raw_variant=doc.get("variant"),
            env=tuple(env),
            labels={str(k): str(v) for k, v in labels.items()},
            created=str(doc.get("created") or ""),
        )

    @property
    def path_dirs(self) -> tuple[str, ...]:
        for item in self.env:
            if item.startswith("PATH="):
                return tuple(p for p in item[5:].split(":") if p)
        return ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise DocumentError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _annotations(doc: Mapping[str, Any], where: str) -> dict[str, str]:
    found = doc.get("annotations") or {}
    if not isinstance(found, Mapping) or not all(isinstance(v, str) for v in found.values()):
        raise DocumentError(f"{where}: annotations are not an object of strings")
    return {str(k): v for k, v in found.items()}


def parse_manifest(data: bytes, digest: str, content_type: str, where: str) -> Index | ImageManifest:
    """Parse an index or image manifest. The ``mediaType`` field wins over the header."""
    doc = _load(data, where)
    media_type = str(doc.get("mediaType") or content_type.split(";")[0].strip())
    if media_type not in INDEX_TYPES and "manifests" in doc and media_type not in MANIFEST_TYPES:
        media_type = OCI_INDEX
    if media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise DocumentError(f"{where}: index without a manifests list")
        return Index(
            media_type, digest, tuple(Descriptor.from_dict(e, where) for e in entries), _annotations(doc, where)
        )
    if media_type in MANIFEST_TYPES or "layers" in doc:
        if not isinstance(doc.get("config"), Mapping) or not isinstance(doc.get("layers"), list):
            raise DocumentError(f"{where}: image manifest without config and layers")
        return ImageManifest(
            media_type or OCI_MANIFEST,
            digest,
            Descriptor.from_dict(doc["config"], where),
            tuple(Descriptor.from_dict(layer, where) for layer in doc["layers"]),
            _annotations(doc, where),
        )
    raise DocumentError(f"{where}: unsupported manifest media type {media_type!r}; supported: {ACCEPT}")
