"""The built-in checks of one (image, platform): config, elf and uname.

Each returns a :class:`CheckResult` whose detail a person can act on: what was expected,
what was found, and where.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import ARM_CPU_ARCH, ARM_MAX_CPU_ARCH, expected_uname, spec_for
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

    def to_json(self) -> dict[str, str]:
        return {"outcome": self.outcome, "detail": self.detail}


def check_config(entry: Platform, config: ImageConfig) -> CheckResult:
    if config.platform == entry:
        return CheckResult(PASSED, f"config says {config.platform}, as the index entry does")
    raw = "/".join(x for x in (config.raw_os, config.raw_architecture, config.raw_variant) if x)
    return CheckResult(
        FAILED,
        f"the image config says {raw or 'nothing'} but the index entry says {entry}: "
        "the image was built for another platform or mislabelled when the index was made",
    )


def elf_findings(platform: Platform, fs: Filesystem) -> tuple[int, list[str]]:
    """How many ELF files were checked, and a sentence for each that does not fit."""
    spec = spec_for(platform)
    assert spec is not None
    problems: list[str] = []
    files = fs.elf_files()
    max_arm = ARM_MAX_CPU_ARCH.get(platform.variant or "") if platform.architecture == "arm" else None
    for path, node in files:
        if node.elf_error:
            problems.append(f"{path}: {node.elf_error.removeprefix(path + ': ')}")
            continue
        info = node.elf
        assert info is not None
        if (info.elf_class, info.big_endian, info.machine) != (spec.elf_class, spec.big_endian, spec.machine):
            problems.append(f"{path} is {info.description}, expected {spec.description}")
            continue
        if max_arm is not None and info.arm_cpu_arch is not None and info.arm_cpu_arch > max_arm:
            need = ARM_CPU_ARCH.get(info.arm_cpu_arch, f"Tag_CPU_arch {info.arm_cpu_arch}")
            problems.append(
                f"{path} needs {need} (Tag_CPU_arch {info.arm_cpu_arch}); "
                f"{platform} CPUs run at most {ARM_CPU_ARCH[max_arm]}"
            )
        if info.interp and fs.lookup(info.interp) is None:
            problems.append(f"{path} is dynamically linked but its loader {info.interp} is not in the image")
    return len(files), problems


def check_elf(platform: Platform, fs: Filesystem) -> CheckResult:
    if spec_for(platform) is None:
        return CheckResult(SKIPPED, f"no ELF rules for {platform}")
    count, problems = elf_findings(platform, fs)
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
