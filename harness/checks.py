"""The built-in checks of one (image, platform): config, elf and uname.

Each returns a :class:`CheckResult` whose detail a person can act on: what was expected,
what was found, and where.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .arch import ARM_CPU_ARCH, ARM_MAX_CPU_ARCH, expected_uname, spec_for
from .elf import ELFInfo
from .layers import Filesystem
from .manifest import ImageConfig
from .platform import Platform

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
CHECKS = ("config", "elf", "uname")
#: How many offending paths a detail names before it summarises the rest.
MAX_LISTED = 8


@dataclass(frozen=True)
class CheckResult:
    outcome: str
    detail: str
    #: Time spent in commands inside the container, where the check ran any.
    command_s: float | None = None
    #: Timed commands (the slowdown probe): name -> seconds.
    samples: dict[str, float] | None = None

    def to_json(self) -> dict[str, str]:
        return {"outcome": self.outcome, "detail": self.detail}


def brief(reason: str) -> str:
    """A check's reason cut to its first finding, for a one-line summary: ``elf: 1 of 2 ELF
    files do not fit linux/arm64: /usr/bin/x is ...`` -> ``elf: /usr/bin/x is ...``."""
    return _MACHINE.sub("", _ONE_ELF.sub(r"\1", reason))


_ONE_ELF = re.compile(r"^(\w+: )1 of \d+ ELF files do not fit \S+: ")
_MACHINE = re.compile(r" \(EM_\w+\)")


def check_config(entry: Platform, config: ImageConfig) -> CheckResult:
    if config.platform == entry:
        return CheckResult(PASSED, f"config says {config.platform}, as the index entry does")
    raw = "/".join(x for x in (config.raw_os, config.raw_architecture, config.raw_variant) if x)
    return CheckResult(
        FAILED,
        f"the image config says {raw or 'nothing'} but the index entry says {entry}: "
        "the image was built for another platform or mislabelled when the index was made",
    )


#: e_flags bits that a dynamic binary must share with its loader, per machine.
_ABI_BITS = {
    40: (0xFF000600, "ARM EABI version and float ABI"),
    243: (0x6, "RISC-V float ABI"),
    258: (0x7, "LoongArch float ABI"),
    8: (0x0000F020, "MIPS ABI"),
}
_FLOAT = {40: {0x400: "hard-float", 0x200: "soft-float"}, 243: {0: "soft-float", 2: "single-float", 4: "double-float"}}
_GO_LEVEL = {"amd64": "GOAMD64", "arm": "GOARM"}


def _abi(machine: int, flags: int) -> str:
    mask, _ = _ABI_BITS[machine]
    names = _FLOAT.get(machine, {})
    bits = flags & mask
    if machine == 40:
        return f"EABI{flags >> 24} {names.get(flags & 0x600, 'float ABI unmarked')}"
    return names.get(bits, f"ABI flags {bits:#x}")


def _selected(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(path, pat) for pat in include):
        return False
    return not any(fnmatch.fnmatchcase(path, pat) for pat in exclude)


def elf_findings(
    platform: Platform, fs: Filesystem, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[int, list[str]]:
    """How many ELF files were checked, and a sentence for each problem found.

    ``include`` restricts the audit to paths matching any of its globs; ``exclude`` leaves
    out known exceptions (firmware for another CPU, say).
    """
    spec = spec_for(platform)
    assert spec is not None
    problems: list[str] = []
    files = [(p, n) for p, n in fs.elf_files() if _selected(p, include, exclude)]
    for path, node in files:
        if node.elf_error:
            problems.append(f"{path}: {node.elf_error.removeprefix(path + ': ')}")
            continue
        info = node.elf
        assert info is not None
        if (info.elf_class, info.big_endian, info.machine) != (spec.elf_class, spec.big_endian, spec.machine):
            problems.append(f"{path} is {info.description}, expected {spec.description}")
            continue
        problems.extend(_abi_problems(path, info, platform, fs))
    return len(files), problems


def _abi_problems(path: str, info: ELFInfo, platform: Platform, fs: Filesystem) -> list[str]:
    out: list[str] = []
    machine = info.machine
    if platform.architecture == "arm":
        max_arm = ARM_MAX_CPU_ARCH.get(platform.variant or "")
        if max_arm is not None and info.arm_cpu_arch is not None and info.arm_cpu_arch > max_arm:
            need = ARM_CPU_ARCH.get(info.arm_cpu_arch, f"Tag_CPU_arch {info.arm_cpu_arch}")
            out.append(
                f"{path} needs {need} (Tag_CPU_arch {info.arm_cpu_arch}); "
                f"{platform} CPUs run at most {ARM_CPU_ARCH[max_arm]}"
            )
        if info.flags >> 24 == 0 and info.go is None:
            out.append(f"{path} uses the old ARM ABI (OABI), which Linux kernels no longer run")
    if platform.architecture == "ppc64le" and info.flags & 3 == 1:
        out.append(f"{path} uses the ELFv1 ABI; ppc64le needs ELFv2")
    if platform.architecture in ("mips64le", "mips64") and info.flags & 0xF0000000 in (0x90000000, 0xA0000000):
        out.append(f"{path} needs a MIPS release 6 CPU; {platform} is MIPS64 release 2")
    out.extend(_go_problems(path, info, platform))
    if info.interp:
        loader = fs.lookup(info.interp)
        if loader is None:
            out.append(f"{path} is dynamically linked but its loader {info.interp} is not in the image")
        elif loader.elf is not None and machine in _ABI_BITS and loader.elf.machine == machine:
            mask, what = _ABI_BITS[machine]
            if (info.flags ^ loader.elf.flags) & mask:
                out.append(
                    f"{path} is {_abi(machine, info.flags)} but its loader {info.interp} is "
                    f"{_abi(machine, loader.elf.flags)}: the {what} differ"
                )
    return out


def _go_problems(path: str, info: ELFInfo, platform: Platform) -> list[str]:
    go = info.go_settings
    if not go:
        return []
    out = []
    goarch = go.get("GOARCH")
    if goarch and goarch != platform.architecture:
        out.append(f"{path} is a Go binary built with GOARCH={goarch}, not {platform.architecture}")
    level_key = _GO_LEVEL.get(platform.architecture)
    level = go.get(level_key or "")
    if level_key and level:
        want = (platform.variant or ("v7" if platform.architecture == "arm" else "v1")).lstrip("v")
        have = level.split(",")[0].lstrip("v")
        if have.isdigit() and want.isdigit() and int(have) > int(want):
            out.append(f"{path} is a Go binary built with {level_key}={level}; {platform} CPUs are level {want}")
    return out


def check_elf(
    platform: Platform, fs: Filesystem, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> CheckResult:
    if spec_for(platform) is None:
        return CheckResult(SKIPPED, f"no ELF rules for {platform}")
    count, problems = elf_findings(platform, fs, include, exclude)
    if count == 0:
        return CheckResult(SKIPPED, "no ELF files in the image")
    if problems:
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        tail = f"; and {more} more" if more else ""
        return CheckResult(
            FAILED, f"{len(problems)} of {count} ELF files do not fit {platform}: " + "; ".join(shown) + tail
        )
    what = _arm_levels(fs) if platform.architecture == "arm" else ""
    files = "1 ELF file" if count == 1 else f"{count} ELF files, all"
    return CheckResult(PASSED, f"{files} {spec_for(platform).description}{what}")  # type: ignore[union-attr]


def _arm_levels(fs: Filesystem) -> str:
    levels = sorted({n.elf.arm_cpu_arch for _, n in fs.elf_files() if n.elf and n.elf.arm_cpu_arch is not None})
    return " (" + ", ".join(ARM_CPU_ARCH.get(v, str(v)) for v in levels) + ")" if levels else ""


def check_uname(platform: Platform, host: Platform, emulated: bool, printed: str) -> CheckResult:
    expected = expected_uname(platform, host, emulated)
    how = "under qemu" if emulated else f"natively on {host}"
    if printed in expected:
        return CheckResult(PASSED, f"uname -m says {printed} ({how})")
    want = " or ".join(expected) or "?"
    return CheckResult(FAILED, f"uname -m says {printed!r}, expected {want} for {platform} {how}")
