"""Small, valid ELF files made to order, for tests that need no real binaries."""

from __future__ import annotations

import struct


def _round(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def arm_attributes(cpu_arch: int, prefix: bytes = b"") -> bytes:
    """A ``.ARM.attributes`` section saying ``Tag_CPU_arch = cpu_arch`` after ``prefix``."""
    attrs = prefix + b"\x06" + _uleb(cpu_arch)
    subsub = b"\x01" + struct.pack("<I", 5 + len(attrs)) + attrs
    sub = b"aeabi\0" + subsub
    return b"A" + struct.pack("<I", 4 + len(sub)) + sub


DT_SONAME = 14
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_PIE = 0x08000000
#: Dynamic sections of the three kinds of ET_DYN file (see harness.elf.is_library).
PIE = ((DT_FLAGS_1, DF_1_PIE),)
SONAME = ((DT_SONAME, 1),)


def make_elf(
    *,
    elf_class: int = 64,
    big_endian: bool = False,
    machine: int = 62,
    flags: int = 0,
    etype: int = 2,
    osabi: int = 0,
    interp: str | None = None,
    arm_cpu_arch: int | None = None,
    padding: int = 0,
    lead: int = 0,
    dynamic: tuple[tuple[int, int], ...] | None = None,
    late_phdrs: bool = False,
    loads: tuple[int, ...] = (),
    x86_isa: int | None = None,
    property_in: int = 0x6474E553,
) -> bytes:
    """An ELF file: header, program headers (PT_INTERP for ``interp``, PT_DYNAMIC for
    ``dynamic``'s (tag, value) entries), then ``lead`` zero bytes before the loader path,
    ``padding`` zero bytes after the dynamic section, the ARM attributes and the section
    table. ``late_phdrs`` puts the program headers after everything else, before the
    section headers, as patchelf leaves some files. ``loads`` are the alignments of PT_LOAD
    segments over the whole file; ``x86_isa`` the bits of a GNU_PROPERTY_X86_ISA_1_NEEDED
    note, in a PT_GNU_PROPERTY segment (or a PT_NOTE one: ``property_in=4``)."""
    e = ">" if big_endian else "<"
    is64 = elf_class == 64
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    phnum = (1 if interp else 0) + (1 if dynamic is not None else 0) + len(loads) + (x86_isa is not None)
    start = ehsize + (0 if late_phdrs else phnum * phentsize)
    body = bytearray()
    segments: list[tuple[int, int, int]] = []  # p_type, offset, size
    body += b"\0" * lead
    if x86_isa is not None:
        while (start + len(body)) % 8:
            body += b"\0"
        pad = 8 if is64 else 4
        prop = struct.pack(f"{e}III", 0xC0008002, 4, x86_isa).ljust(_round(12, pad), b"\0")
        note = struct.pack(f"{e}III", 4, len(prop), 5) + b"GNU\0" + prop
        segments.append((property_in, start + len(body), len(note)))
        body += note
    if interp:
        interp_bytes = interp.encode() + b"\0"
        segments.append((3, start + len(body), len(interp_bytes)))
        body += interp_bytes
    if dynamic is not None:
        while (start + len(body)) % 8:
            body += b"\0"
        fmt = f"{e}qQ" if is64 else f"{e}iI"
        raw = b"".join(struct.pack(fmt, tag, value) for tag, value in (*dynamic, (0, 0)))
        segments.append((2, start + len(body), len(raw)))
        body += raw
    body += b"\0" * padding
    sections: list[tuple[bytes, int, int, int]] = []  # name, type, offset, size
    if arm_cpu_arch is not None:
        data = arm_attributes(arm_cpu_arch)
        sections.append((b".ARM.attributes", 0x70000003, start + len(body), len(data)))
        body += data
    names = b"\0" + b"".join(n + b"\0" for n, *_ in sections) + b".shstrtab\0"
    sections.append((b".shstrtab", 3, start + len(body), len(names)))
    body += names
    while (start + len(body)) % 8:
        body += b"\0"
    phdrs = b""
    total = ehsize + phnum * phentsize + len(body) + (len(sections) + 1) * shentsize
    for p_type, off, size, align in [(1, 0, total, a) for a in loads] + [(*s, 1) for s in segments]:
        if is64:
            phdrs += struct.pack(f"{e}IIQQQQQQ", p_type, 4, off, 0, 0, size, size, align)
        else:
            phdrs += struct.pack(f"{e}IIIIIIII", p_type, off, 0, 0, size, size, 4, align)
    phoff = ehsize if phnum else 0
    if late_phdrs:
        phoff = start + len(body)
        body += phdrs
        phdrs = b""
    shoff = start + len(body)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big_endian else 1, 1, osabi]) + b"\0" * 8
    addr = "Q" if is64 else "I"
    header = ident + struct.pack(
        f"{e}HHI{addr}{addr}{addr}IHHHHHH",
        etype,
        machine,
        1,
        0,
        phoff,
        shoff,
        flags,
        ehsize,
        phentsize,
        phnum,
        shentsize,
        len(sections) + 1,
        len(sections),
    )
    shdrs = b"\0" * shentsize
    for name, sh_type, sh_off, size in sections:
        idx = names.index(name + b"\0")
        if is64:
            shdrs += struct.pack(f"{e}IIQQQQIIQQ", idx, sh_type, 0, 0, sh_off, size, 0, 0, 1, 0)
        else:
            shdrs += struct.pack(f"{e}IIIIIIIIII", idx, sh_type, 0, 0, sh_off, size, 0, 0, 1, 0)
    return header + phdrs + bytes(body) + shdrs


#: (elf_class, big_endian, machine, flags) of a plain executable of each platform.
PLATFORM_ELF = {
    "linux/amd64": (64, False, 62, 0),
    "linux/386": (32, False, 3, 0),
    "linux/arm64": (64, False, 183, 0),
    "linux/arm/v7": (32, False, 40, 0x05000400),
    "linux/arm/v6": (32, False, 40, 0x05000400),
    "linux/arm/v5": (32, False, 40, 0x05000200),
    "linux/ppc64le": (64, False, 21, 2),
    "linux/s390x": (64, True, 22, 0),
    "linux/riscv64": (64, False, 243, 5),
    "linux/mips64le": (64, False, 8, 0),
}


def elf_for(platform: str, **kw: object) -> bytes:
    cls, big, machine, flags = PLATFORM_ELF[platform]
    arm = {"linux/arm/v7": 10, "linux/arm/v6": 6, "linux/arm/v5": 4}.get(platform)
    params: dict[str, object] = {"elf_class": cls, "big_endian": big, "machine": machine, "flags": flags}
    if arm is not None:
        params["arm_cpu_arch"] = arm
    params.update(kw)
    return make_elf(**params)  # type: ignore[arg-type]


#: e_flags of Debian armhf code: EABI5, hard-float.
ARMHF = 0x05000400


def arm(level: int = 10, flags: int = ARMHF, **kw: object) -> bytes:
    """A 32-bit ARM file whose attributes say ``Tag_CPU_arch`` ``level``."""
    return make_elf(elf_class=32, machine=40, flags=flags, arm_cpu_arch=level, **kw)  # type: ignore[arg-type]
