"""Tiny static ELF programs, one per architecture, that the harness writes itself.

Each is an ELF header, one program header and a few instructions that wait forever in a
system call (``pause``, or ``ppoll`` with nothing to poll where the architecture has no
``pause``): the smallest program that shows, while it runs, how the engine's kernel
started it. No library, no loader, no instruction newer than the first CPU of its
architecture, so any kernel (or emulator) of that architecture runs it.

They are what :mod:`harness.survey` runs in an engine to find out which platforms it can
run and how. Each also has a twin that exits at once (``exit_group(0)``), what the survey
times to learn what an exec itself costs on the engine. Every ARM variant shares the ARM
program (it is ARMv4 code, the ARMv5 to v7 CPUs run it alike), and every x86-64 level
the x86-64 one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .arch import ArchSpec, spec_for
from .platform import Platform

#: Where the program is loaded: page-aligned for 4, 16 and 64 KiB pages.
BASE = 0x400000
PT_LOAD = 1
PF_R, PF_X = 4, 1


def _words(*words: int, big: bool = False) -> bytes:
    return b"".join(struct.pack(">I" if big else "<I", w) for w in words)


def _rv_jal(offset: int) -> int:
    """RISC-V ``jal x0, offset``."""
    imm = offset & 0x1FFFFF
    high, low, mid, top = (imm >> 20) & 1, (imm >> 1) & 0x3FF, (imm >> 11) & 1, (imm >> 12) & 0xFF
    return high << 31 | low << 21 | mid << 20 | top << 12 | 0x6F


# Each body: set up the call, trap, and branch back to where the call is set up again
# (the result overwrites a register the call reads).
_ARM64 = _words(
    0xAA1F03E0,  # mov x0, xzr
    0xAA1F03E1,  # mov x1, xzr
    0xAA1F03E2,  # mov x2, xzr
    0xAA1F03E3,  # mov x3, xzr
    0xD2800928,  # mov x8, #73      (ppoll)
    0xD4000001,  # svc #0
    0x17FFFFFA,  # b   .-24        (back to the first mov: x0 holds the result)
)
_ARM = _words(
    0xE3A0701D,  # mov r7, #29      (pause)
    0xEF000000,  # svc #0
    0xEAFFFFFD,  # b   .-4
)
_RISCV64 = _words(
    0x00000513,  # li a0, 0
    0x00000593,  # li a1, 0
    0x00000613,  # li a2, 0
    0x00000693,  # li a3, 0
    0x04900893,  # li a7, 73        (ppoll)
    0x00000073,  # ecall
    _rv_jal(-24),  # j  .-24        (a0 holds the result)
)
_LOONG64 = _words(
    0x02C00004,  # addi.d a0, zero, 0
    0x02C00005,  # addi.d a1, zero, 0
    0x02C00006,  # addi.d a2, zero, 0
    0x02C00007,  # addi.d a3, zero, 0
    0x02C1240B,  # addi.d a7, zero, 73  (ppoll)
    0x002B0000,  # syscall 0
    0x53FFEBFF,  # b .-24               (a0 holds the result)
)


def _ppc64(big: bool) -> bytes:
    return _words(
        0x3800001D,  # li r0, 29        (pause)
        0x44000002,  # sc
        0x4BFFFFF8,  # b  .-8
        big=big,
    )


def _mips(number: int, big: bool) -> bytes:
    return _words(
        0x24020000 | number,  # addiu v0, zero, NR_pause
        0x0000000C,  # syscall
        0x1000FFFD,  # b .-8             (v0 holds the result)
        0x00000000,  # nop               (delay slot)
        big=big,
    )


def _exits(family: str) -> bytes:
    """``exit_group(0)``: the program that costs an exec nothing but starting and ending."""
    return {
        "amd64": bytes.fromhex("b8e700000031ff0f05"),  # mov eax,231; xor edi,edi; syscall
        "386": bytes.fromhex("b8fc00000031dbcd80"),  # mov eax,252; xor ebx,ebx; int 0x80
        "arm64": _words(0xAA1F03E0, 0xD2800BC8, 0xD4000001),  # mov x0,xzr; mov x8,#94; svc #0
        "arm": _words(0xE3A00000, 0xE3A070F8, 0xEF000000),  # mov r0,#0; mov r7,#248; svc #0
        "ppc64le": _words(0x38600000, 0x380000EA, 0x44000002),  # li r3,0; li r0,234; sc
        "ppc64": _words(0x38600000, 0x380000EA, 0x44000002, big=True),
        "s390x": bytes.fromhex("a72900000af8"),  # lghi %r2,0; svc 248
        "riscv64": _words(0x00000513, 0x05E00893, 0x00000073),  # li a0,0; li a7,94; ecall
        "loong64": _words(0x02C00004, 0x02C1780B, 0x002B0000),  # addi.d a0,zero,0; addi.d a7,zero,94; syscall 0
        "mips64le": _words(0x24040000, 0x24021455, 0x0000000C),  # li a0,0; li v0,5205; syscall
        "mips64": _words(0x24040000, 0x24021455, 0x0000000C, big=True),
        "mipsle": _words(0x24040000, 0x24021096, 0x0000000C),  # li a0,0; li v0,4246; syscall
        "mips": _words(0x24040000, 0x24021096, 0x0000000C, big=True),
    }[family]


@dataclass(frozen=True)
class Program:
    family: str
    spec: ArchSpec
    code: bytes
    flags: int = 0

    def elf(self) -> bytes:
        """The whole file."""
        spec, big = self.spec, self.spec.big_endian
        e = ">" if big else "<"
        ident = b"\x7fELF" + bytes([2 if spec.elf_class == 64 else 1, 2 if big else 1, 1, 0]) + b"\0" * 8
        if spec.elf_class == 64:
            ehsize, phsize = 64, 56
            entry = BASE + ehsize + phsize
            size = ehsize + phsize + len(self.code)
            header = ident + struct.pack(
                e + "HHIQQQIHHHHHH", 2, spec.machine, 1, entry, ehsize, 0, self.flags, ehsize, phsize, 1, 0, 0, 0
            )
            phdr = struct.pack(e + "IIQQQQQQ", PT_LOAD, PF_R | PF_X, 0, BASE, BASE, size, size, 0x10000)
        else:
            ehsize, phsize = 52, 32
            entry = BASE + ehsize + phsize
            size = ehsize + phsize + len(self.code)
            header = ident + struct.pack(
                e + "HHIIIIIHHHHHH", 2, spec.machine, 1, entry, ehsize, 0, self.flags, ehsize, phsize, 1, 0, 0, 0
            )
            phdr = struct.pack(e + "IIIIIIII", PT_LOAD, 0, BASE, BASE, size, size, PF_R | PF_X, 0x10000)
        return header + phdr + self.code


def _spec(name: str) -> ArchSpec:
    spec = spec_for(Platform.parse(f"linux/{name}"))
    assert spec is not None, name
    return spec


EF_ARM_EABI5 = 0x05000000
EF_PPC64_ABI2 = 2
EF_MIPS_ARCH_32 = 0x50000000
EF_MIPS_ARCH_64 = 0x60000000
EF_MIPS_ABI_O32 = 0x00001000
EF_LOONGARCH_LP64D = 0x43  # double-float ABI, object ABI v1

PROGRAMS: dict[str, Program] = {
    p.family: p
    for p in (
        Program("amd64", _spec("amd64"), bytes.fromhex("b8220000000f05ebf7")),  # mov eax,34; syscall; jmp
        Program("386", _spec("386"), bytes.fromhex("b81d000000cd80ebf7")),  # mov eax,29; int 0x80; jmp
        Program("arm64", _spec("arm64"), _ARM64),
        Program("arm", _spec("arm/v5"), _ARM, EF_ARM_EABI5),
        Program("ppc64le", _spec("ppc64le"), _ppc64(False), EF_PPC64_ABI2),
        Program("ppc64", _spec("ppc64"), _ppc64(True), EF_PPC64_ABI2),
        Program("s390x", _spec("s390x"), bytes.fromhex("0a1da7f4ffff")),  # svc 29; j .-2
        Program("riscv64", _spec("riscv64"), _RISCV64),
        Program("loong64", _spec("loong64"), _LOONG64, EF_LOONGARCH_LP64D),
        Program("mips64le", _spec("mips64le"), _mips(5033, False), EF_MIPS_ARCH_64),
        Program("mips64", _spec("mips64"), _mips(5033, True), EF_MIPS_ARCH_64),
        Program("mipsle", _spec("mipsle"), _mips(4029, False), EF_MIPS_ARCH_32 | EF_MIPS_ABI_O32),
        Program("mips", _spec("mips"), _mips(4029, True), EF_MIPS_ARCH_32 | EF_MIPS_ABI_O32),
    )
}


#: Each architecture's program that exits at once (status 0): what an exec costs.
EXITS: dict[str, Program] = {fam: replace(p, code=_exits(fam)) for fam, p in PROGRAMS.items()}


def family(platform: Platform) -> str:
    """The program family of ``platform``: its architecture, with every ARM variant one."""
    return platform.architecture


def program_for(platform: Platform) -> Program | None:
    if platform.os != "linux":
        return None
    return PROGRAMS.get(family(platform))
