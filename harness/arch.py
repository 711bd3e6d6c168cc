"""What each platform looks like from inside: ELF headers and ``uname -m``.

The figures are the ones measured on these machines (QEMU 7.2 user mode on an x86-64
host) and the ELF specifications; see PLATFORMS.md in the shared notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .platform import Platform

EM_NAMES = {
    3: "Intel 80386 (EM_386)",
    8: "MIPS (EM_MIPS)",
    20: "PowerPC (EM_PPC)",
    21: "PowerPC64 (EM_PPC64)",
    22: "IBM S/390 (EM_S390)",
    40: "ARM (EM_ARM)",
    62: "x86-64 (EM_X86_64)",
    183: "AArch64 (EM_AARCH64)",
    243: "RISC-V (EM_RISCV)",
    258: "LoongArch (EM_LOONGARCH)",
}

#: ``Tag_CPU_arch`` values of ``.ARM.attributes`` and the architecture each names.
ARM_CPU_ARCH = {
    0: "pre-v4",
    1: "ARMv4",
    2: "ARMv4T",
    3: "ARMv5T",
    4: "ARMv5TE",
    5: "ARMv5TEJ",
    6: "ARMv6",
    7: "ARMv6KZ",
    8: "ARMv6T2",
    9: "ARMv6K",
    10: "ARMv7",
    11: "ARMv6-M",
    12: "ARMv6S-M",
    13: "ARMv7E-M",
    14: "ARMv8-A",
    15: "ARMv8-R",
    16: "ARMv8-M.baseline",
    17: "ARMv8-M.mainline",
    18: "ARMv8.1-A",
    19: "ARMv8.2-A",
    20: "ARMv8.3-A",
    21: "ARMv8.1-M.mainline",
    22: "ARMv9-A",
}

#: The newest ``Tag_CPU_arch`` a CPU of each arm variant executes.
ARM_MAX_CPU_ARCH = {"v5": 5, "v6": 9, "v7": 10, "v8": 14}


#: The page sizes Linux kernels of each architecture are built with (the first is the
#: usual one): a file whose PT_LOAD segments are aligned to less than the kernel's page
#: size does not load there.
PAGE_SIZES = {
    "arm64": (4096, 16384, 65536),
    "ppc64le": (65536, 4096),
    "ppc64": (65536, 4096),
    "mips64le": (4096, 16384, 65536),
    "mips64": (4096, 16384, 65536),
    "loong64": (16384, 4096, 65536),
}


def page_sizes(platform: Platform) -> tuple[int, ...]:
    """The page sizes kernels of ``platform`` may have: 4 KiB alone for most."""
    return PAGE_SIZES.get(platform.architecture, (4096,))


def machine_name(machine: int) -> str:
    return EM_NAMES.get(machine, f"machine {machine}")


@dataclass(frozen=True)
class ArchSpec:
    """The ELF identity and ``uname -m`` of one platform."""

    elf_class: int  # 32 or 64
    big_endian: bool
    machine: int
    uname: str  # on its own hardware
    uname_qemu: str  # under qemu-user with the CPU the harness picks (qemu_cpu)
    binfmt: str  # the qemu-user binfmt_misc handler that runs it
    #: The CPU QEMU emulates for this platform (QEMU_CPU). QEMU's default ARM CPU ("max")
    #: runs ARMv8's AArch32 code, crypto instructions included, so an arm/v6 image carrying
    #: v7 code would pass there and die on a Raspberry Pi Zero, and ARMv8 code would pass in
    #: arm/v7 and die on an ARMv7 board; with a CPU of the platform's own level it dies here
    #: too. arm/v7 gets a Cortex-A15 (ARMv7-A, VFPv4, NEON, Thumb-2): everything Debian's
    #: armhf baseline (ARMv7, VFPv3-D16, Thumb-2) assumes, and no ARMv8 instruction.
    qemu_cpu: str | None = None

    @property
    def description(self) -> str:
        order = "MSB" if self.big_endian else "LSB"
        return f"ELF{self.elf_class} {order} {machine_name(self.machine)}"


_SPECS: dict[str, ArchSpec] = {
    "amd64": ArchSpec(64, False, 62, "x86_64", "x86_64", "qemu-x86_64"),
    "386": ArchSpec(32, False, 3, "i686", "i686", "qemu-i386"),
    "arm64": ArchSpec(64, False, 183, "aarch64", "aarch64", "qemu-aarch64"),
    "arm/v8": ArchSpec(32, False, 40, "armv8l", "armv7l", "qemu-arm"),
    "arm/v7": ArchSpec(32, False, 40, "armv7l", "armv7l", "qemu-arm", "cortex-a15"),
    "arm/v6": ArchSpec(32, False, 40, "armv6l", "armv6l", "qemu-arm", "arm1176"),
    "arm/v5": ArchSpec(32, False, 40, "armv5tel", "armv5tel", "qemu-arm", "arm926"),
    "ppc64le": ArchSpec(64, False, 21, "ppc64le", "ppc64le", "qemu-ppc64le"),
    "ppc64": ArchSpec(64, True, 21, "ppc64", "ppc64", "qemu-ppc64"),
    "s390x": ArchSpec(64, True, 22, "s390x", "s390x", "qemu-s390x"),
    "riscv64": ArchSpec(64, False, 243, "riscv64", "riscv64", "qemu-riscv64"),
    "mips64le": ArchSpec(64, False, 8, "mips64", "mips64", "qemu-mips64el"),
    "mips64": ArchSpec(64, True, 8, "mips64", "mips64", "qemu-mips64"),
    "mipsle": ArchSpec(32, False, 8, "mips", "mips", "qemu-mipsel"),
    "mips": ArchSpec(32, True, 8, "mips", "mips", "qemu-mips"),
    "loong64": ArchSpec(64, False, 258, "loongarch64", "loongarch64", "qemu-loongarch64"),
}


def spec_for(platform: Platform) -> ArchSpec | None:
    """The spec of a Linux platform, or None for one this harness cannot check."""
    if platform.os != "linux":
        return None
    key = platform.architecture
    if platform.architecture == "arm":
        key = f"arm/{platform.variant or 'v7'}"
    return _SPECS.get(key)


def expected_uname(platform: Platform, host: Platform, emulated: bool) -> tuple[str, ...]:
    """The values ``uname -m`` may print in a container of ``platform`` on ``host``.

    Natively, the kernel answers for the host: Docker sets no 32-bit personality, so a
    linux/386 container on an amd64 host says x86_64, and arm/v7 on an arm64 host says
    aarch64 (or armv8l on kernels that apply the compat personality).
    """
    spec = spec_for(platform)
    if spec is None:
        return ()
    if emulated:
        return (spec.uname_qemu,)
    if platform == host:
        return (spec.uname,)
    host_spec = spec_for(host)
    if host_spec is None:
        return (spec.uname,)
    if host.architecture == "arm64" and platform.architecture == "arm":
        return (host_spec.uname, "armv8l", spec.uname)
    return (host_spec.uname, spec.uname)
