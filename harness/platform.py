"""The one place that knows that ``aarch64 == arm64 == arm64/v8``.

Parsing, normalisation and matching follow containerd's ``platforms`` package: names are
lower-cased, architecture aliases folded, the default variant of an architecture dropped
(``arm64/v8`` is ``arm64``) and a bare ``arm`` means ``arm/v7``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import MultiarchError

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "armhf": "arm",
    "armel": "arm",
    "arm64le": "arm64",
    "ppc64el": "ppc64le",
    "mips64el": "mips64le",
    "loongarch64": "loong64",
}

# Variants that a Debian-style arch name implies (armel is ARMv5TE soft-float).
_ARCH_ALIAS_VARIANT = {"armhf": "v7", "armel": "v5"}

_DEFAULT_VARIANT = {"arm": "v7", "arm64": None}

# Variants an architecture can have; the first of each is what a bare name means.
_ARM_VARIANTS = ("v8", "v7", "v6", "v5")

#: Platforms this harness knows how to check. Others still parse; they are just not
#: suggested as corrections.
KNOWN: tuple[str, ...] = (
    "linux/amd64",
    "linux/amd64/v2",
    "linux/amd64/v3",
    "linux/amd64/v4",
    "linux/386",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/arm/v5",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/mips64le",
    "linux/mips64",
    "linux/mipsle",
    "linux/mips",
    "linux/ppc64",
    "linux/loong64",
)

_KNOWN_OS = ("linux", "windows", "darwin", "freebsd")


class PlatformError(MultiarchError, ValueError):
    """A platform string that cannot be understood; the message says how to fix it."""


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` or a bare ``arch[/variant]`` (Linux assumed)."""
        raw = text
        text = text.strip().lower()
        parts = text.split("/")
        if not text or any(not p for p in parts) or len(parts) > 3:
            raise PlatformError(_bad(raw))
        if parts[0] in _KNOWN_OS:
            os_, rest = parts[0], parts[1:]
        else:
            os_, rest = "linux", parts
        if not rest or len(rest) > 2:
            raise PlatformError(_bad(raw))
        arch = rest[0]
        variant = rest[1] if len(rest) == 2 else None
        return cls.normalized(os_, arch, variant)

    @classmethod
    def normalized(cls, os_: str, arch: str, variant: str | None = None) -> Platform:
        os_ = (os_ or "").lower()
        arch = (arch or "").lower()
        variant = (variant or "").lower() or None
        if variant is None:
            variant = _ARCH_ALIAS_VARIANT.get(arch)
        arch = _ARCH_ALIASES.get(arch, arch)
        if arch == "arm64":
            if variant in ("v8", "8"):
                variant = None
        elif arch == "amd64":
            if variant is not None and variant.isdigit():
                variant = "v" + variant
            if variant == "v1":  # every x86-64 CPU: plain amd64, as containerd has it
                variant = None
        elif arch == "arm":
            if variant is None:
                variant = _DEFAULT_VARIANT["arm"]
            elif variant.isdigit():
                variant = "v" + variant
        return cls(os_, arch, variant)

    @classmethod
    def from_oci(cls, data: Mapping[str, Any]) -> Platform:
        """From an OCI ``platform`` object or an image config (``architecture``, ``os``)."""
        fields = {key: data.get(key) for key in ("os", "architecture", "variant")}
        for key, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise PlatformError(f"platform field {key!r} is not a string: {value!r}")
        return cls.normalized(fields["os"] or "", fields["architecture"] or "", fields["variant"])

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @property
    def is_unknown(self) -> bool:
        """Attestation manifests carry ``unknown/unknown``: they are not platforms."""
        return self.os == "unknown" or self.architecture == "unknown"

    def compatible(self) -> tuple[Platform, ...]:
        """This platform and every platform an engine of this platform runs natively.

        containerd's fallbacks: amd64 runs 386; arm64 runs arm/v8 down to v5; arm/vN runs
        vN down to v5.
        """
        out = [self]
        if self.architecture == "amd64":
            # The x86-64 levels run natively only on CPUs that reach them: the platform's
            # own tests, and the elf check's level rule, tell.
            out += [Platform(self.os, "amd64", v) for v in ("v2", "v3", "v4") if v != self.variant]
            out.append(Platform(self.os, "386"))
        elif self.architecture == "arm64":
            out += [Platform(self.os, "arm", v) for v in _ARM_VARIANTS]
        elif self.architecture == "arm" and self.variant in _ARM_VARIANTS:
            idx = _ARM_VARIANTS.index(self.variant)
            out += [Platform(self.os, "arm", v) for v in _ARM_VARIANTS[idx + 1 :]]
        return tuple(out)


def _bad(text: str) -> str:
    return f"{text!r} is not a platform: expected OS/ARCH[/VARIANT], e.g. linux/arm64"


def parse_list(text: str) -> list[Platform] | None:
    """Parse a ``--platforms`` value. ``all`` (or empty) gives None: every entry."""
    text = text.strip()
    if text.lower() in ("", "all"):
        return None
    out: list[Platform] = []
    for item in text.split(","):
        if not item.strip():
            continue
        platform = Platform.parse(item)
        check_known(platform, item.strip())
        if platform not in out:
            out.append(platform)
    if not out:
        raise PlatformError(f"--platforms {text!r} names no platform; use e.g. linux/amd64,linux/arm64 or all")
    return out


def check_known(platform: Platform, given: str) -> None:
    """Refuse names that are almost certainly typos, suggesting the nearest known one."""
    if str(platform) in KNOWN or platform.os != "linux":
        return
    choices = list(KNOWN)
    near = difflib.get_close_matches(str(platform), choices, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}?" if near else "known platforms: " + ", ".join(KNOWN)
    raise PlatformError(f"unknown platform {given!r}: {hint}")


def sort_key(platform: Platform) -> tuple[int, str]:
    """Known platforms in their usual order (amd64 first), others after, by name."""
    name = str(platform)
    return (KNOWN.index(name) if name in KNOWN else len(KNOWN), name)


def format_list(platforms: Iterable[Platform]) -> str:
    return ",".join(str(p) for p in platforms)
