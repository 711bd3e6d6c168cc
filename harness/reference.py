"""Image references: ``[registry/]repository[:tag][@digest]``, normalised like Docker."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from .errors import MultiarchError

DOCKER_HUB = "registry-1.docker.io"
_HUB_NAMES = {"docker.io", "index.docker.io", DOCKER_HUB}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


class ImageReferenceError(MultiarchError, ValueError):
    """An image reference that cannot be parsed; the message names it and the fix."""


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        raw = text
        text = text.strip()
        if not text or any(c.isspace() for c in text):
            raise ImageReferenceError(
                f"{raw!r} is not an image reference: expected [REGISTRY/]REPO[:TAG][@sha256:DIGEST]"
            )
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not _DIGEST.match(digest):
                raise ImageReferenceError(f"{raw!r}: digest {digest!r} is not sha256: followed by 64 hex digits")
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, text
        if registry in _HUB_NAMES:  # docker.io/busybox is Docker Hub's library/busybox
            registry = DOCKER_HUB
        tag = None
        name, colon, maybe_tag = path.rpartition(":")
        if colon and "/" not in maybe_tag:
            path, tag = name, maybe_tag
            if not _TAG.match(tag):
                raise ImageReferenceError(f"{raw!r}: tag {tag!r} is not valid")
        if registry == DOCKER_HUB and "/" not in path:
            path = "library/" + path
        if not _REPO.match(path):
            raise ImageReferenceError(
                f"{raw!r}: repository {path!r} is not valid (lower-case letters, digits, . _ - and /)"
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, path, tag, digest)

    @property
    def name(self) -> str:
        """``registry/repository`` as an engine spells it."""
        if self.registry == DOCKER_HUB:
            repo = self.repository.removeprefix("library/")
            return f"docker.io/{repo}"
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return replace(self, tag=None, digest=digest)

    @property
    def pinned(self) -> str:
        """``name@digest``: what the engine pulls and runs, never a tag."""
        if not self.digest:
            raise ImageReferenceError(f"{self} has no digest")
        return f"{self.name}@{self.digest}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def is_loopback(self) -> bool:
        return _is_loopback(_split_host(self.registry)[0])


def _split_host(registry: str) -> tuple[str, str]:
    """``host:port`` (or ``[v6]:port``) -> (host, port); the port is "" when none is given."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = registry.partition(":")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_registry(a: str, b: str) -> bool:
    """Whether two registry hosts are one: equal, or both loopback on the same port
    (``localhost:5000`` is ``127.0.0.1:5000``)."""
    if a == b:
        return True
    (host_a, port_a), (host_b, port_b) = _split_host(a), _split_host(b)
    return port_a == port_b and _is_loopback(host_a) and _is_loopback(host_b)


def short_name(image: str) -> str:
    """An image as people say it, without its registry host: ``samples/good:1.0``."""
    first, _, rest = image.partition("/")
    return rest if rest and ("." in first or ":" in first or first == "localhost") else image
