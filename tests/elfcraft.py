"""Small, valid ELF files made to order, for tests that need no real binaries."""

from __future__ import annotations

import struct
from collections.abc import Sequence


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
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_RPATH = 15
DT_RUNPATH = 29
DT_VERDEF = 0x6FFFFFFC
DT_VERDEFNUM = 0x6FFFFFFD
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF
DF_1_NODEFLIB = 0x800
VER_FLG_BASE = 1
VER_FLG_WEAK = 2
SHT_STRTAB = 3
SHF_WRITE = 1
SHF_ALLOC = 2
SHT_DYNAMIC = 6
SHT_GNU_VERDEF = 0x6FFFFFFD
SHT_GNU_VERNEED = 0x6FFFFFFE
#: Where the segment holding the dynamic strings and version tables is mapped, past its
#: file offset: the parser must map DT_STRTAB and the like through PT_LOAD to find them.
TABLES_VADDR = 0x400000
#: A needed version: its name, or (name, weak).
Version = str | tuple[str, bool]


def elf_hash(name: bytes) -> int:
    """The SysV ELF hash, as vna_hash and vd_hash hold it."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g & 0xFFFFFFFF
    return h


class _Strings:
    """A dynamic string table: each string once, offset 0 the empty one."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.at: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        if text not in self.at:
            self.at[text] = len(self.data)
            self.data += text.encode("utf-8", "surrogateescape") + b"\0"
        return self.at[text]


def _verneed_table(
    e: str, strings: _Strings, verneed: Sequence[tuple[str, Sequence[Version]]], first_index: int
) -> bytes:
    """``.gnu.version_r``: an Elf_Verneed per library, each followed by its Elf_Vernaux
    entries (16 bytes each in both classes), chained by byte offsets."""
    out = bytearray()
    index = first_index
    for i, (file, versions) in enumerate(verneed):
        last = i == len(verneed) - 1
        out += struct.pack(f"{e}HHIII", 1, len(versions), strings(file), 16, 0 if last else 16 + 16 * len(versions))
        for j, version in enumerate(versions):
            name, weak = (version, False) if isinstance(version, str) else version
            flags = VER_FLG_WEAK if weak else 0
            nxt = 0 if j == len(versions) - 1 else 16
            out += struct.pack(f"{e}IHHII", elf_hash(name.encode()), flags, index, strings(name), nxt)
            index += 1
    return bytes(out)


def _verdef_table(e: str, strings: _Strings, base: str, verdef: Sequence[str]) -> bytes:
    """``.gnu.version_d``: the VER_FLG_BASE entry naming the file, then one Elf_Verdef per
    version, each with its Elf_Verdaux (the version, then its parent, as ld writes them)."""
    out = bytearray()
    names = [base, *verdef]
    for i, name in enumerate(names):
        last = i == len(names) - 1
        aux = [name] if i < 2 else [name, names[i - 1]]
        out += struct.pack(
            f"{e}HHHHIII",
            1,
            VER_FLG_BASE if i == 0 else 0,
            i + 1,
            len(aux),
            elf_hash(name.encode()),
            20,
            0 if last else 20 + 8 * len(aux),
        )
        for j, text in enumerate(aux):
            out += struct.pack(f"{e}II", strings(text), 0 if j == len(aux) - 1 else 8)
    return bytes(out)


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
    needed: Sequence[str] = (),
    soname: str | None = None,
    rpath: str | None = None,
    runpath: str | None = None,
    nodeflib: bool = False,
    verneed: Sequence[tuple[str, Sequence[Version]]] = (),
    verdef: Sequence[str] = (),
    verdef_base: str | None = None,
    table_lead: int = 0,
    tables_vaddr: int = TABLES_VADDR,
) -> bytes:
    """An ELF file: header, program headers (PT_INTERP for ``interp``, PT_DYNAMIC for
    ``dynamic``'s (tag, value) entries), then ``lead`` zero bytes before the loader path,
    ``padding`` zero bytes after the dynamic section, the ARM attributes and the section
    table. ``late_phdrs`` puts the program headers after everything else, before the
    section headers, as patchelf leaves some files. ``loads`` are the alignments of PT_LOAD
    segments over the whole file; ``x86_isa`` the bits of a GNU_PROPERTY_X86_ISA_1_NEEDED
    note, in a PT_GNU_PROPERTY segment (or a PT_NOTE one: ``property_in=4``).

    The dynamic section a linker writes: ``needed`` (DT_NEEDED, in order), ``soname``,
    ``rpath``, ``runpath``, ``nodeflib`` (DT_FLAGS_1 DF_1_NODEFLIB, or'd with a DT_FLAGS_1
    of ``dynamic``), ``verneed`` ((library, (version or (version, weak), ...)), ...: a
    ``.gnu.version_r``) and ``verdef`` (the versions a ``.gnu.version_d`` defines, after
    its VER_FLG_BASE entry named ``verdef_base``, else the soname). Any of them gives the
    file a string table and those tables, ``table_lead`` zero bytes after the loader path,
    then the dynamic section built from them, with ``dynamic``'s entries after its own.
    DT_STRTAB, DT_VERNEED and DT_VERDEF are virtual addresses: the tables lie in a PT_LOAD
    mapped at ``tables_vaddr`` plus its offset (a second one maps the dynamic section
    elsewhere); with ``loads``, those segments map the whole file at ``tables_vaddr``.
    The section table names them too (.dynstr, .gnu.version_r, .gnu.version_d, .dynamic),
    so other tools read them as they read a linker's files."""
    e = ">" if big_endian else "<"
    is64 = elf_class == 64
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    tables = bool(
        needed or soname is not None or rpath is not None or runpath is not None or nodeflib or verneed or verdef
    )
    if tables and dynamic is None:
        dynamic = ()
    own_loads = 2 if tables and not loads else 0
    # With tables, every PT_LOAD maps its bytes at a distance from their offset:
    # ``tables_vaddr`` for the tables' segment (or the whole file, with ``loads``), 2 MiB
    # more for the data segment, which holds the dynamic section.
    data_base = tables_vaddr + (0x200000 if own_loads else 0)
    phnum = (1 if interp else 0) + (1 if dynamic is not None else 0) + len(loads) + own_loads + (x86_isa is not None)
    start = ehsize + (0 if late_phdrs else phnum * phentsize)
    body = bytearray()
    segments: list[tuple[int, int, int]] = []  # p_type, offset, size
    # name, type, flags, offset, size, address, link (a section's index), info, entry size
    sections: list[tuple[bytes, int, int, int, int, int, int, int, int]] = []
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
    table_load: tuple[int, int] | None = None  # offset, size of the segment of the tables
    if tables:
        body += b"\0" * table_lead
        while (start + len(body)) % 8:
            body += b"\0"
        at = start + len(body)
        strings = _Strings()
        names = [strings(n) for n in needed]
        own = [(DT_NEEDED, n) for n in names]
        own += [
            (tag, strings(text))
            for tag, text in ((DT_SONAME, soname), (DT_RPATH, rpath), (DT_RUNPATH, runpath))
            if text is not None
        ]
        need_raw = _verneed_table(e, strings, verneed, len(verdef) + 2) if verneed else b""
        def_raw = _verdef_table(e, strings, verdef_base or soname or "lib.so", verdef) if verdef else b""
        strtab = bytes(strings.data)
        str_at = at
        need_at = _round(str_at + len(strtab), 8)
        def_at = _round(need_at + len(need_raw), 8)
        end = def_at + len(def_raw)
        table_load = (at, end - at)

        def addr(offset: int) -> int:
            return tables_vaddr + offset

        own += [(DT_STRTAB, addr(str_at)), (DT_STRSZ, len(strtab))]
        if verneed:
            own += [(DT_VERNEED, addr(need_at)), (DT_VERNEEDNUM, len(verneed))]
        if verdef:
            own += [(DT_VERDEF, addr(def_at)), (DT_VERDEFNUM, len(verdef) + 1)]
        assert dynamic is not None
        flags_1 = (DF_1_NODEFLIB if nodeflib else 0) | sum(v for t, v in dynamic if t == DT_FLAGS_1)
        if flags_1:
            own.append((DT_FLAGS_1, flags_1))
        dynamic = (*own, *((t, v) for t, v in dynamic if t != DT_FLAGS_1))
        body += strtab.ljust(need_at - str_at, b"\0") + need_raw.ljust(def_at - need_at, b"\0") + def_raw
        sections.append((b".dynstr", SHT_STRTAB, SHF_ALLOC, str_at, len(strtab), addr(str_at), 0, 0, 0))
        if verneed:
            sections.append(
                (
                    b".gnu.version_r",
                    SHT_GNU_VERNEED,
                    SHF_ALLOC,
                    need_at,
                    len(need_raw),
                    addr(need_at),
                    1,
                    len(verneed),
                    0,
                )
            )
        if verdef:
            sections.append(
                (
                    b".gnu.version_d",
                    SHT_GNU_VERDEF,
                    SHF_ALLOC,
                    def_at,
                    len(def_raw),
                    addr(def_at),
                    1,
                    len(verdef) + 1,
                    0,
                )
            )
    dyn_at = dyn_size = 0
    if dynamic is not None:
        while (start + len(body)) % 8:
            body += b"\0"
        fmt = f"{e}qQ" if is64 else f"{e}iI"
        raw = b"".join(struct.pack(fmt, tag, value) for tag, value in (*dynamic, (0, 0)))
        dyn_at, dyn_size = start + len(body), len(raw)
        segments.append((2, dyn_at, dyn_size))
        body += raw
        if tables:
            sections.append(
                (
                    b".dynamic",
                    SHT_DYNAMIC,
                    SHF_ALLOC | SHF_WRITE,
                    dyn_at,
                    dyn_size,
                    data_base + dyn_at,
                    1,
                    0,
                    16 if is64 else 8,
                )
            )
    body += b"\0" * padding
    if arm_cpu_arch is not None:
        data = arm_attributes(arm_cpu_arch)
        sections.append((b".ARM.attributes", 0x70000003, 0, start + len(body), len(data), 0, 0, 0, 0))
        body += data
    names_table = b"\0" + b"".join(n + b"\0" for n, *_ in sections) + b".shstrtab\0"
    sections.append((b".shstrtab", 3, 0, start + len(body), len(names_table), 0, 0, 0, 0))
    body += names_table
    while (start + len(body)) % 8:
        body += b"\0"
    phdrs = b""
    total = ehsize + phnum * phentsize + len(body) + (len(sections) + 1) * shentsize
    # p_type, offset, vaddr, size, align
    headers: list[tuple[int, int, int, int, int]] = [(1, 0, tables_vaddr if tables else 0, total, a) for a in loads]
    if table_load is not None and own_loads:
        table_at, table_size = table_load
        headers.append((1, table_at, tables_vaddr + table_at, table_size, 0x1000))
        headers.append((1, dyn_at, data_base + dyn_at, dyn_size, 0x1000))
    for p_type, off, size in segments:
        headers.append((p_type, off, data_base + off if tables and p_type == 2 else 0, size, 1))
    for p_type, off, vaddr, size, align in headers:
        if is64:
            phdrs += struct.pack(f"{e}IIQQQQQQ", p_type, 4, off, vaddr, vaddr, size, size, align)
        else:
            phdrs += struct.pack(f"{e}IIIIIIII", p_type, off, vaddr, vaddr, size, size, 4, align)
    phoff = ehsize if phnum else 0
    if late_phdrs:
        phoff = start + len(body)
        body += phdrs
        phdrs = b""
    shoff = start + len(body)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big_endian else 1, 1, osabi]) + b"\0" * 8
    addr_fmt = "Q" if is64 else "I"
    header = ident + struct.pack(
        f"{e}HHI{addr_fmt}{addr_fmt}{addr_fmt}IHHHHHH",
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
    for name, sh_type, sh_flags, sh_off, size, sh_addr, link, info, entsize in sections:
        idx = names_table.index(name + b"\0")
        if is64:
            shdrs += struct.pack(
                f"{e}IIQQQQIIQQ", idx, sh_type, sh_flags, sh_addr, sh_off, size, link, info, 1, entsize
            )
        else:
            shdrs += struct.pack(
                f"{e}IIIIIIIIII", idx, sh_type, sh_flags, sh_addr, sh_off, size, link, info, 1, entsize
            )
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
