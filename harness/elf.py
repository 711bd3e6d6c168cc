"""Reading what an ELF file was built for: header, loader, ARM architecture level, and
whether it is a shared library or an executable.

Everything is parsed here directly with a few bounded struct reads: the header, the
program headers, the loader path, the dynamic section and, for ARM files, the section
table and the ``.ARM.attributes`` section it points to.

A file is read as a stream (a layer's tar member): :func:`reads_needed` says, from the
file's first :data:`HEAD_BYTES`, what :func:`parse` needs beyond them. Most files need
nothing more; a loader path past the head is one small range at a known offset; ARM
files (whose attributes are found through the section table at the end) and files whose
program headers lie past the head need a seekable copy of the whole file, which the
caller keeps in bounded memory or on disk.
"""

from __future__ import annotations

import posixpath
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from .arch import ARM_CPU_ARCH, machine_name
from .errors import MultiarchError

ELF_MAGIC = b"\x7fELF"
EM_ARM = 40
EM_X86_64 = 62
ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PT_NOTE = 4
PT_GNU_PROPERTY = 0x6474E553
NT_GNU_PROPERTY_TYPE_0 = 5
#: The x86 ISA levels a file needs (bit 0 baseline, 1 x86-64-v2, 2 v3, 3 v4), as binutils
#: writes them for ``-march=x86-64-v3`` and the like; glibc refuses to load a file whose
#: level the CPU does not reach.
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
SHT_ARM_ATTRIBUTES = 0x70000003
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_FLAGS_1 = 0x6FFFFFFB
DT_VERDEF = 0x6FFFFFFC
DT_VERDEFNUM = 0x6FFFFFFD
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF
DF_1_NODEFLIB = 0x800
DF_1_PIE = 0x08000000
VER_FLG_BASE = 1
VER_FLG_WEAK = 2
#: Bytes of a file read before deciding what else is needed.
HEAD_BYTES = 64 * 1024
#: Bounds on what a file may make the parser read: a loader path, the dynamic section,
#: the section table and the ARM attributes of real files are far smaller.
MAX_INTERP = 4096
MAX_PHNUM = 4096
MAX_DYNAMIC = 64 * 1024
MAX_SECTIONS = 1 << 16
MAX_ENTRY = 128  # bytes of one program or section header entry (32 to 64 in real files)
MAX_ATTRIBUTES = 1 << 20
MAX_NOTES = 64 * 1024
#: How far into a file its dynamic strings and version tables are looked for. They lie in
#: the first PT_LOAD, before the dynamic section: within 64 KiB in 98% of 6,725 Debian
#: files, at most 5.3 MiB in (libLLVM); see docs/measurements/elf-dynamic-layout.md. A file
#: whose tables lie further is reported as not checked.
MAX_DYNAMIC_PREFIX = 16 << 20
#: Version entries one file may declare (glibc's libc.so.6 defines about 40).
MAX_VERSIONS = 4096

#: e_flags bits that a dynamic binary must share with its loader and libraries, per machine.
ABI_BITS = {
    40: (0xFF000600, "ARM EABI version and float ABI"),
    243: (0x6, "RISC-V float ABI"),
    258: (0x7, "LoongArch float ABI"),
    8: (0x0000F020, "MIPS ABI"),
}


class ELFError(MultiarchError, ValueError):
    """A file that starts like ELF but cannot be read as one."""


GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"
#: The name of the ELF note Go's linker writes with the build ID, right after the headers.
GO_NOTE = b"Go\x00\x00"
#: Bytes after the Go build info magic that hold the version and module info.
GO_BUILDINFO_SPAN = 64 * 1024


@dataclass(frozen=True)
class Dynamic:
    """What the loader reads of a dynamic file: the libraries it needs and where it says to
    look for them, and the symbol versions it needs and defines."""

    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None
    #: DF_1_NODEFLIB: the loader's cache and default directories are not searched for its needs.
    nodeflib: bool = False
    #: Versions needed, per library name (``vn_file``): ((version, weak), ...).
    verneed: tuple[tuple[str, tuple[tuple[str, bool], ...]], ...] = ()
    #: Versions defined, the base entry (the file's own name) left out.
    verdef: tuple[str, ...] = ()
    #: Why the strings or version tables could not be read ("" when they were).
    unread: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in (("needed", list(self.needed)), ("verdef", list(self.verdef))):
            if value:
                out[key] = value
        for key, text in (("soname", self.soname), ("rpath", self.rpath), ("runpath", self.runpath)):
            if text is not None:
                out[key] = text
        if self.nodeflib:
            out["nodeflib"] = True
        if self.verneed:
            out["verneed"] = [[f, [[v, w] for v, w in vs]] for f, vs in self.verneed]
        if self.unread:
            out["unread"] = self.unread
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Dynamic:
        return cls(
            tuple(d.get("needed", ())),
            d.get("soname"),
            d.get("rpath"),
            d.get("runpath"),
            bool(d.get("nodeflib", False)),
            tuple((str(f), tuple((str(v), bool(w)) for v, w in vs)) for f, vs in d.get("verneed", ())),
            tuple(d.get("verdef", ())),
            str(d.get("unread", "")),
        )


@dataclass(frozen=True)
class ELFInfo:
    elf_class: int
    big_endian: bool
    machine: int
    flags: int
    osabi: int
    etype: int
    interp: str | None = None
    arm_cpu_arch: int | None = None
    #: ``build`` settings of a Go binary (GOARCH, GOARM, GOAMD64, ...), when it has them.
    go: tuple[tuple[str, str], ...] | None = None
    #: A shared library rather than an executable (see :func:`is_library`).
    library: bool = False
    #: The smallest alignment of its PT_LOAD segments: the largest page size it can run on.
    load_align: int | None = None
    #: GNU_PROPERTY_X86_ISA_1_NEEDED's bits (0: none said, or not an x86 file).
    x86_isa: int = 0
    #: What the loader reads of a file with a dynamic section (None: it has none).
    dynamic: Dynamic | None = None

    @property
    def x86_level(self) -> int:
        """The x86-64 level the file needs by its property note: 1 (baseline) to 4; 0 unsaid."""
        return self.x86_isa.bit_length()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "class": self.elf_class,
            "big": self.big_endian,
            "machine": self.machine,
            "flags": self.flags,
            "osabi": self.osabi,
            "etype": self.etype,
        }
        if self.interp is not None:
            out["interp"] = self.interp
        if self.arm_cpu_arch is not None:
            out["arm"] = self.arm_cpu_arch
        if self.go is not None:
            out["go"] = [list(kv) for kv in self.go]
        if self.library:
            out["lib"] = True
        if self.load_align is not None:
            out["align"] = self.load_align
        if self.x86_isa:
            out["isa"] = self.x86_isa
        if self.dynamic is not None:
            out["dyn"] = self.dynamic.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ELFInfo:
        go = d.get("go")
        return cls(
            int(d["class"]),
            bool(d["big"]),
            int(d["machine"]),
            int(d["flags"]),
            int(d["osabi"]),
            int(d["etype"]),
            d.get("interp"),
            d.get("arm"),
            tuple((str(k), str(v)) for k, v in go) if isinstance(go, list) else None,
            bool(d.get("lib", False)),
            d.get("align"),
            int(d.get("isa", 0)),
            Dynamic.from_json(d["dyn"]) if "dyn" in d else None,
        )

    @property
    def go_settings(self) -> dict[str, str]:
        return dict(self.go or ())

    @property
    def identity(self) -> str:
        """Class, byte order and machine: ``ELF32 LSB Intel 80386 (EM_386)``."""
        order = "MSB" if self.big_endian else "LSB"
        return f"ELF{self.elf_class} {order} {machine_name(self.machine)}"

    @property
    def description(self) -> str:
        out = self.identity
        if self.arm_cpu_arch is not None:
            out += f" {ARM_CPU_ARCH.get(self.arm_cpu_arch, f'Tag_CPU_arch {self.arm_cpu_arch}')}"
        return out


@dataclass(frozen=True)
class _Header:
    elf_class: int
    big_endian: bool
    osabi: int
    etype: int
    machine: int
    flags: int
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int

    @property
    def end(self) -> str:
        return ">" if self.big_endian else "<"

    @property
    def phdrs(self) -> tuple[int, int]:
        """(offset, size) of the program header table."""
        return self.phoff, self.phentsize * self.phnum


def _header(data: bytes, name: str) -> _Header:
    if len(data) < 52 or data[:4] != ELF_MAGIC:
        raise ELFError(f"{name}: truncated ELF header ({len(data)} bytes)")
    ei_class, ei_data, osabi = data[4], data[5], data[7]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise ELFError(f"{name}: invalid ELF ident (class {ei_class}, data {ei_data})")
    end = ">" if ei_data == 2 else "<"
    if ei_class == 2:
        if len(data) < 64:
            raise ELFError(f"{name}: truncated ELF64 header ({len(data)} bytes)")
        fields = struct.unpack_from(end + "HHIQQQIHHHHH", data, 16)
    else:
        fields = struct.unpack_from(end + "HHIIIIIHHHHH", data, 16)
    etype, machine, _ver, _entry, phoff, shoff, flags, _eh, phentsize, phnum, shentsize, shnum = fields
    elf_class = 64 if ei_class == 2 else 32
    return _Header(
        elf_class, ei_data == 2, osabi, etype, machine, flags, phoff, phentsize, phnum, shoff, shentsize, shnum
    )


@dataclass(frozen=True)
class Reads:
    """What :func:`parse` needs of a file beyond its head."""

    #: (offset, size) ranges past the head, to be kept as the file streams by.
    ranges: tuple[tuple[int, int], ...] = ()
    #: A seekable copy of the whole file: ARM files, whose attributes are found through the
    #: section table near the end, and files whose program headers lie past the head (what
    #: they point to is not known until they are read, and may lie before them).
    whole: bool = False
    #: No loader and no dynamic section: a static executable, as Go builds without cgo
    #: are, whose build info is looked for past the head even without Go's build ID note
    #: there (``-ldflags=-buildid=`` leaves it out).
    static: bool = False
    #: (offset, size) of the dynamic section: once it has streamed by, :func:`tables_past`
    #: says where the tables it points to lie, when they come after it (``patchelf``
    #: moves them there, into a segment of their own).
    dynamic: tuple[int, int] | None = None


def reads_needed(head: bytes, name: str) -> Reads:
    """What of the file, past ``head`` (its first bytes), :func:`parse` needs."""
    hdr = _header(head, name)
    if hdr.machine == EM_ARM:
        return Reads(whole=True)
    off, size = hdr.phdrs
    if hdr.phnum and off + size > len(head):
        _check_phdrs(hdr, name)
        return Reads(whole=True)
    segments = _program_headers(_View(head), hdr, name)
    # The property note is read for its x86 ISA level only.
    limits = {PT_INTERP: MAX_INTERP, PT_DYNAMIC: MAX_DYNAMIC} | (
        {PT_GNU_PROPERTY: MAX_NOTES} if hdr.machine == EM_X86_64 else {}
    )
    ranges = [
        (seg.offset, seg.filesz)
        for seg in segments
        if seg.type in limits and seg.filesz <= limits[seg.type] and seg.offset + seg.filesz > len(head)
    ]
    prefix = _dynamic_prefix(segments)
    if prefix > len(head):
        ranges.append((0, prefix))
    static = not any(seg.type in (PT_INTERP, PT_DYNAMIC) for seg in segments)
    dynamic = next(((seg.offset, seg.filesz) for seg in segments if seg.type == PT_DYNAMIC), None)
    return Reads(ranges=tuple(ranges), static=static, dynamic=dynamic)


def tables_past(head: bytes, dynamic: bytes, name: str) -> list[tuple[int, int]]:
    """(offset, size) of the string and version tables the dynamic section ``dynamic``
    points to, each bounded by the segment that holds it: what to keep of the rest of the
    file when they lie after the dynamic section."""
    hdr = _header(head, name)
    segments = _program_headers(_View(head), hdr, name)
    entries = _dynamic_entries(_View(dynamic), hdr, Segment(PT_DYNAMIC, 0, 0, len(dynamic), 0)) or []
    tags: dict[int, int] = {}
    for tag, value in entries:
        tags.setdefault(tag, value)
    out = []
    for tag, size in (
        (DT_STRTAB, min(tags.get(DT_STRSZ, 0), MAX_DYNAMIC_PREFIX)),
        (DT_VERNEED, MAX_NOTES),
        (DT_VERDEF, MAX_NOTES),
    ):
        if tag not in tags:
            continue
        for seg in segments:
            if seg.type == PT_LOAD and seg.vaddr <= tags[tag] < seg.vaddr + seg.filesz:
                at = tags[tag] - seg.vaddr + seg.offset
                out.append((at, min(size, seg.offset + seg.filesz - at)))
                break
    return [(at, size) for at, size in out if size > 0]


def _dynamic_prefix(segments: list[Segment]) -> int:
    """How much of a file's start to keep for its dynamic strings and version tables: they
    lie in the first PT_LOAD and before the dynamic section, which comes after them in the
    stream (0: the file has no dynamic section)."""
    dynamic = [seg for seg in segments if seg.type == PT_DYNAMIC]
    loads = [seg for seg in segments if seg.type == PT_LOAD]
    if not dynamic or not loads:
        return 0
    first = min(loads, key=lambda seg: seg.offset)
    return min(first.offset + first.filesz, dynamic[0].offset, MAX_DYNAMIC_PREFIX)


class Seekable(Protocol):
    """A seekable copy of a file (``io.BytesIO``, an open file, the layer reader's spool)."""

    def seek(self, pos: int, /) -> int: ...

    def read(self, size: int, /) -> bytes: ...


class _View:
    """The bytes known of one file: its head, ranges kept as it streamed by, and perhaps a
    seekable copy of the whole of it."""

    def __init__(self, head: bytes, ranges: Mapping[int, bytes] | None = None, whole: Seekable | None = None) -> None:
        self.head = head
        self.ranges = ranges or {}
        self.whole = whole

    def read(self, offset: int, size: int) -> bytes | None:
        """``size`` bytes at ``offset``, or None when they are not known (or past the end)."""
        if offset < 0 or size < 0:
            return None
        end = offset + size
        if end <= len(self.head):
            return self.head[offset:end]
        for start, data in self.ranges.items():
            if start <= offset and end <= start + len(data):
                return data[offset - start : end - start]
        if self.whole is not None:
            try:
                self.whole.seek(offset)
                out = self.whole.read(size)
            except (OverflowError, OSError):  # an offset no file reaches
                return None
            return out if len(out) == size else None
        return None


def _check_phdrs(hdr: _Header, name: str) -> None:
    entry = 56 if hdr.elf_class == 64 else 32
    if hdr.phnum > MAX_PHNUM or not entry <= hdr.phentsize <= MAX_ENTRY:
        raise ELFError(f"{name}: bad program header table ({hdr.phnum} x {hdr.phentsize})")


class Segment(NamedTuple):
    """One program header: what the loader maps, or points to."""

    type: int
    offset: int
    vaddr: int
    filesz: int
    align: int


def _program_headers(view: _View, hdr: _Header, name: str) -> list[Segment]:
    out: list[Segment] = []
    if hdr.phnum == 0:
        return out
    _check_phdrs(hdr, name)
    table = view.read(*hdr.phdrs)
    if table is None:
        raise ELFError(f"{name}: truncated program header table (at {hdr.phoff}, {hdr.phnum} x {hdr.phentsize})")
    fmt = hdr.end + ("IIQQQQQQ" if hdr.elf_class == 64 else "IIIIIIII")
    for i in range(hdr.phnum):
        if hdr.elf_class == 64:
            p_type, _fl, p_offset, p_va, _pa, p_filesz, _mem, p_align = struct.unpack_from(
                fmt, table, i * hdr.phentsize
            )
        else:
            p_type, p_offset, p_va, _pa, p_filesz, _mem, _fl, p_align = struct.unpack_from(
                fmt, table, i * hdr.phentsize
            )
        out.append(Segment(p_type, p_offset, p_va, p_filesz, p_align))
    return out


def parse(
    data: bytes,
    name: str = "<elf>",
    *,
    whole: Seekable | None = None,
    go_info: bytes | None = None,
    ranges: Mapping[int, bytes] | None = None,
) -> ELFInfo:
    """Read an ELF file's identity.

    ``data`` is its start, or all of it; what lies past it is read from ``ranges`` (offset
    -> bytes, what :func:`reads_needed` asked for) or from ``whole``, a seekable copy of the
    file. ``go_info`` is the file from the Go build info magic on, when the caller found one.
    ``name`` is the file's path: it names the file in errors, and its base name helps tell a
    library from an executable (:func:`is_library`).
    """
    hdr = _header(data, name)
    view = _View(data, ranges, whole)
    segments = _program_headers(view, hdr, name)
    interp = None
    dyn_seg = None
    aligns = [seg.align for seg in segments if seg.type == PT_LOAD]
    for seg in segments:
        if seg.type == PT_INTERP:
            if seg.filesz > MAX_INTERP:
                raise ELFError(f"{name}: PT_INTERP of {seg.filesz} bytes, far longer than a loader path")
            raw = view.read(seg.offset, seg.filesz)
            if raw is None:
                raise ELFError(f"{name}: PT_INTERP points outside the file")
            interp = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif seg.type == PT_DYNAMIC and dyn_seg is None:
            dyn_seg = seg
    arm_arch = _arm_cpu_arch(view, hdr, name) if hdr.machine == EM_ARM else None
    entries = _dynamic_entries(view, hdr, dyn_seg) if dyn_seg else None
    dynamic = _dynamic(view, hdr, segments, entries) if dyn_seg else None
    if go_info is None:
        at = data.find(GO_BUILDINFO_MAGIC)
        go_info = data[at:] if at >= 0 else None
    go = go_build_settings(go_info) if go_info else None
    facts = _dynamic_facts(entries) if entries is not None and hdr.etype == ET_DYN else None
    library = is_library(hdr.etype, interp is not None, facts, name)
    isa = _gnu_properties(view, hdr, segments).get(GNU_PROPERTY_X86_ISA_1_NEEDED, 0) if hdr.machine == EM_X86_64 else 0
    return ELFInfo(
        hdr.elf_class,
        hdr.big_endian,
        hdr.machine,
        hdr.flags,
        hdr.osabi,
        hdr.etype,
        interp,
        arm_arch,
        go,
        library,
        min(aligns) if aligns else None,
        isa,
        dynamic,
    )


def _gnu_properties(view: _View, hdr: _Header, segments: list[Segment]) -> dict[int, int]:
    """The 4-byte GNU properties (pr_type -> value) of the file's PT_GNU_PROPERTY segment,
    or of its PT_NOTE segments when it has none (linkers before binutils 2.32); those it
    cannot see (past the bytes read) are not in the result."""
    notes = [seg for seg in segments if seg.type == PT_GNU_PROPERTY] or [seg for seg in segments if seg.type == PT_NOTE]
    out: dict[int, int] = {}
    for seg in notes:
        raw = view.read(seg.offset, seg.filesz) if seg.filesz <= MAX_NOTES else None
        if raw is not None:
            out.update(_properties_of(raw, hdr))
    return out


def _up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _properties_of(raw: bytes, hdr: _Header) -> dict[int, int]:
    """The properties of the NT_GNU_PROPERTY_TYPE_0 notes in ``raw``, a run of ELF notes."""
    end, pad = hdr.end, 8 if hdr.elf_class == 64 else 4
    out: dict[int, int] = {}
    pos = 0
    while pos + 12 <= len(raw):
        namesz, descsz, ntype = struct.unpack_from(end + "III", raw, pos)
        desc_at = pos + 12 + _up(namesz, 4)
        nxt = desc_at + _up(descsz, pad if ntype == NT_GNU_PROPERTY_TYPE_0 else 4)
        if namesz > MAX_NOTES or descsz > MAX_NOTES or desc_at + descsz > len(raw):
            break  # a broken note: what it would say is not known
        if ntype == NT_GNU_PROPERTY_TYPE_0 and raw[pos + 12 : pos + 12 + namesz] == b"GNU\0":
            desc, q = raw[desc_at : desc_at + descsz], 0
            while q + 8 <= len(desc):
                pr_type, datasz = struct.unpack_from(end + "II", desc, q)
                if datasz == 4 and q + 12 <= len(desc):
                    out[pr_type] = struct.unpack_from(end + "I", desc, q + 8)[0]
                q += 8 + _up(datasz, pad)
        pos = nxt
    return out


_LIBRARY_NAME = re.compile(r".+\.so(\.\d[^/]*)?")


def is_library(etype: int, has_interp: bool, dynamic: tuple[bool, bool] | None, path: str) -> bool:
    """Whether a file is a shared library rather than an executable.

    ``dynamic`` is (DF_1_PIE is set, DT_SONAME is present) when the dynamic section was
    read (it always is, within the bounds of :func:`reads_needed`).

    - ET_EXEC is an executable; anything but ET_DYN (relocatable objects, core files) is
      no library either.
    - DF_1_PIE marks a position-independent executable, a static one too (binutils 2.33
      and newer, gold and lld write it).
    - DT_SONAME marks a library, including one that also has a loader, as glibc's
      libc.so.6 does.
    - Without either: ET_DYN without PT_INTERP is a library (an executable needs a loader,
      or carries DF_1_PIE when static); with PT_INTERP, the base name decides: ``*.so`` and
      ``*.so.N...`` are libraries.

    On Debian 12 roots (amd64, arm64, armhf, i386, ppc64el, s390x: about 3,200 ELF files)
    every PIE carries DF_1_PIE, libc.so.6 is the only library with a loader, and the name
    rule alone gives the same answer as the dynamic section for every file.
    """
    if etype != ET_DYN:
        return False
    if dynamic is not None:
        pie, soname = dynamic
        if pie:
            return False
        if soname:
            return True
    if not has_interp:
        return True
    return _LIBRARY_NAME.fullmatch(posixpath.basename(path)) is not None


def _dynamic_entries(view: _View, hdr: _Header, seg: Segment) -> list[tuple[int, int]] | None:
    """The (tag, value) entries of the dynamic section up to DT_NULL, or None when it is
    not among the bytes read or does not fit the file. A malformed dynamic section is no
    error here: the loader judges it."""
    entry = 16 if hdr.elf_class == 64 else 8
    size = min(seg.filesz, MAX_DYNAMIC) // entry * entry
    raw = view.read(seg.offset, size) if size else None
    if raw is None:
        return None
    out = []
    for tag, value in struct.iter_unpack(hdr.end + ("qQ" if hdr.elf_class == 64 else "iI"), raw):
        if tag == DT_NULL:
            break
        out.append((tag, value))
    return out


def _dynamic_facts(entries: list[tuple[int, int]]) -> tuple[bool, bool]:
    """(DF_1_PIE is set, DT_SONAME is present)."""
    pie = any(tag == DT_FLAGS_1 and value & DF_1_PIE for tag, value in entries)
    return pie, any(tag == DT_SONAME for tag, _ in entries)


class _Unread(Exception):
    """A table the dynamic section points to lies outside the bytes read (or the file)."""


def _dynamic(view: _View, hdr: _Header, segments: list[Segment], entries: list[tuple[int, int]] | None) -> Dynamic:
    """The libraries, search paths and versions the dynamic section names (see
    :class:`Dynamic`); what cannot be read is said in ``unread``, never guessed."""
    if entries is None:
        return Dynamic(unread="its dynamic section lies outside the bytes read")
    tags: dict[int, int] = {}
    for tag, value in entries:
        tags.setdefault(tag, value)
    loads = [seg for seg in segments if seg.type == PT_LOAD]

    def offset(addr: int) -> int:
        for seg in loads:
            if seg.vaddr <= addr < seg.vaddr + seg.filesz:
                return addr - seg.vaddr + seg.offset
        raise _Unread(f"address {addr:#x} is in no PT_LOAD segment")

    try:
        if DT_STRTAB not in tags:
            names = [tag for tag, _ in entries if tag in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH)]
            if names:
                raise _Unread("it names libraries but has no DT_STRTAB")
            return Dynamic()
        strtab = offset(tags[DT_STRTAB])
        strsz = min(tags.get(DT_STRSZ, 0), MAX_DYNAMIC_PREFIX)
        table = view.read(strtab, strsz)
        if table is None:
            raise _Unread(f"its dynamic strings (at {strtab:,}, {strsz:,} bytes) lie past the bytes read")

        def text(at: int) -> str:
            if not 0 <= at < len(table):
                raise _Unread(f"a string at {at} lies outside its {len(table)}-byte string table")
            end = table.find(b"\0", at)
            return table[at : end if end >= 0 else len(table)].decode("utf-8", "surrogateescape")

        def string(tag: int) -> str | None:
            return text(tags[tag]) if tag in tags else None

        needed = tuple(text(value) for tag, value in entries if tag == DT_NEEDED)
        tables = _Tables(view, hdr, offset, text, tags, _Budget())
        verneed = _verneed(tables) if DT_VERNEED in tags else ()
        verdef = _verdef(tables) if DT_VERDEF in tags else ()
        return Dynamic(
            needed,
            string(DT_SONAME),
            string(DT_RPATH),
            string(DT_RUNPATH),
            bool(tags.get(DT_FLAGS_1, 0) & DF_1_NODEFLIB),
            verneed,
            verdef,
        )
    except (_Unread, struct.error) as exc:
        return Dynamic(unread=str(exc))


class _Tables(NamedTuple):
    """What the version table readers work with: the bytes, the header, address to file
    offset, the string table, the dynamic tags and the entries left to walk."""

    view: _View
    hdr: _Header
    offset: Callable[[int], int]
    text: Callable[[int], str]
    tags: dict[int, int]
    budget: _Budget


class _Budget:
    """Version entries one file may make the reader walk, all its chains together: a
    crafted file whose chains share entries multiplies them otherwise."""

    def __init__(self) -> None:
        self.left = MAX_VERSIONS

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _Unread(f"it has more than {MAX_VERSIONS} version entries")


def _table_walk(
    view: _View, start: int, count: int, size: int, fmt: str, next_at: int, what: str, budget: _Budget
) -> list[tuple[int, tuple[int, ...]]]:
    """(offset, fields) of a chain of ``count`` version entries of ``size`` bytes, each
    linked to the next by the field at index ``next_at`` (a byte offset from itself)."""
    out = []
    at = start
    for _ in range(min(count, MAX_VERSIONS)):
        budget.take()
        raw = view.read(at, size)
        if raw is None:
            raise _Unread(f"its {what} (at {at:,}) lie past the bytes read")
        fields = struct.unpack(fmt, raw)
        out.append((at, fields))
        if not fields[next_at]:
            break
        at += fields[next_at]
    return out


def _verneed(
    t: _Tables,
) -> tuple[tuple[str, tuple[tuple[str, bool], ...]], ...]:
    out = []
    count = t.tags.get(DT_VERNEEDNUM, MAX_VERSIONS)
    # Elf_Verneed: vn_version, vn_cnt, vn_file, vn_aux, vn_next; Elf_Vernaux: vna_hash,
    # vna_flags, vna_other, vna_name, vna_next (the same in both classes).
    for at, (_v, cnt, file, aux, _n) in _table_walk(
        t.view, t.offset(t.tags[DT_VERNEED]), count, 16, t.hdr.end + "HHIII", 4, "needed versions", t.budget
    ):
        versions = tuple(
            (t.text(name), bool(flags & VER_FLG_WEAK))
            for _, (_h, flags, _o, name, _x) in _table_walk(
                t.view, at + aux, cnt, 16, t.hdr.end + "IHHII", 4, "needed versions", t.budget
            )
        )
        out.append((t.text(file), versions))
    return tuple(out)


def _verdef(
    t: _Tables,
) -> tuple[str, ...]:
    out = []
    count = t.tags.get(DT_VERDEFNUM, MAX_VERSIONS)
    # Elf_Verdef: vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next; its first
    # Elf_Verdaux (vda_name, vda_next) names the version.
    for at, (_v, flags, _ndx, _cnt, _h, aux, _n) in _table_walk(
        t.view, t.offset(t.tags[DT_VERDEF]), count, 20, t.hdr.end + "HHHHIII", 6, "defined versions", t.budget
    ):
        if flags & VER_FLG_BASE:
            continue
        raw = t.view.read(at + aux, 8)
        if raw is None:
            raise _Unread(f"its defined versions (at {at + aux:,}) lie past the bytes read")
        out.append(t.text(struct.unpack(t.hdr.end + "II", raw)[0]))
    return tuple(out)


def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint runs past the buffer")


def go_build_settings(buf: bytes) -> tuple[tuple[str, str], ...] | None:
    """``build`` settings from Go build info (Go 1.18 and newer), starting at its magic.

    Layout: 14-byte magic, pointer size, flags; with flag 2 the version and the module info
    follow inline as varint-prefixed strings at offset 32. Older layouts hold pointers into
    the binary's data instead, and give None.
    """
    if not buf.startswith(GO_BUILDINFO_MAGIC) or len(buf) < 32 or not buf[15] & 2:
        return None
    try:
        n, pos = _read_uvarint(buf, 32)
        pos += n  # the Go version string
        n, pos = _read_uvarint(buf, pos)
    except ValueError:
        return None
    modinfo = buf[pos : pos + n].decode("utf-8", "replace")
    settings = []
    for line in modinfo.splitlines():
        if line.startswith("build\t") and "=" in line:
            key, _, value = line[6:].partition("=")
            settings.append((key, value))
    return tuple(settings)


def _arm_cpu_arch(view: _View, hdr: _Header, name: str) -> int | None:
    """``Tag_CPU_arch`` from ``.ARM.attributes``, or None when the file has no such section.

    The section table is read directly (a few struct reads per section, a hundredth of
    what a general ELF library costs per file), and the attributes with bounded loops: a
    zero length or a count far past the file is an error, never a hang.
    """
    try:
        section = _arm_attributes_section(view, hdr)
        return _tag_cpu_arch(section) if section is not None else None
    except (ValueError, struct.error) as exc:
        raise ELFError(f"{name}: unreadable ARM attributes ({exc})") from exc


def _arm_attributes_section(view: _View, hdr: _Header) -> bytes | None:
    if hdr.shoff == 0:
        return None
    entry = 64 if hdr.elf_class == 64 else 40
    if not entry <= hdr.shentsize <= MAX_ENTRY:
        raise ValueError(f"section header entries of {hdr.shentsize} bytes")
    count = hdr.shnum
    if count == 0:  # more than 0xff00 sections: the count is in the first entry's sh_size
        first = view.read(hdr.shoff, entry)
        if first is None:
            raise ValueError(f"section table at {hdr.shoff} lies outside the file")
        count = _section(first, 0, hdr)[2]
    if count > MAX_SECTIONS:
        raise ValueError(f"{count} sections")
    table = view.read(hdr.shoff, count * hdr.shentsize)
    if table is None:
        raise ValueError(f"section table at {hdr.shoff} ({count} x {hdr.shentsize}) runs past the file")
    for i in range(count):
        sh_type, sh_offset, sh_size = _section(table, i * hdr.shentsize, hdr)
        if sh_type == SHT_ARM_ATTRIBUTES:
            if sh_size > MAX_ATTRIBUTES:
                raise ValueError(f"attributes section of {sh_size} bytes")
            data = view.read(sh_offset, sh_size)
            if data is None:
                raise ValueError(f"attributes section at {sh_offset} ({sh_size} bytes) lies outside the file")
            return data
    return None


def _section(table: bytes, at: int, hdr: _Header) -> tuple[int, int, int]:
    """(sh_type, sh_offset, sh_size) of the section header at ``at``."""
    if hdr.elf_class == 64:
        _name, sh_type, _flags, _addr, sh_offset, sh_size = struct.unpack_from(hdr.end + "IIQQQQ", table, at)
    else:
        _name, sh_type, _flags, _addr, sh_offset, sh_size = struct.unpack_from(hdr.end + "IIIIII", table, at)
    return sh_type, sh_offset, sh_size


def _uleb(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("ULEB128 runs past its attribute block")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _tag_cpu_arch(sec: bytes) -> int | None:
    """Walk format 'A' subsections -> the "aeabi" vendor -> Tag_File -> Tag_CPU_arch (6)."""
    if not sec or sec[0:1] != b"A":
        raise ValueError("attributes section does not start with format 'A'")
    pos = 1
    while pos < len(sec):
        if pos + 4 > len(sec):
            raise ValueError("truncated subsection header")
        length = int.from_bytes(sec[pos : pos + 4], "little")
        end = pos + length
        if length < 5 or end > len(sec):
            raise ValueError(f"subsection length {length} does not fit the section")
        nul = sec.find(b"\0", pos + 4, end)
        if nul < 0:
            raise ValueError("unterminated vendor name")
        vendor, sub = sec[pos + 4 : nul], nul + 1
        while vendor == b"aeabi" and sub < end:
            tag, after = _uleb(sec, sub, end)
            if after + 4 > end:
                raise ValueError("truncated attribute block header")
            size = int.from_bytes(sec[after : after + 4], "little")
            block_end = sub + size
            if size < 5 or block_end > end:
                raise ValueError(f"attribute block size {size} does not fit its subsection")
            if tag == 1:  # Tag_File: attributes of the whole file
                found = _find_cpu_arch(sec, after + 4, block_end)
                if found is not None:
                    return found
            sub = block_end
        pos = end
    return None


def _find_cpu_arch(buf: bytes, pos: int, end: int) -> int | None:
    while pos < end:
        tag, pos = _uleb(buf, pos, end)
        if tag == 6:
            return _uleb(buf, pos, end)[0]
        # Tag value types (ARM IHI 0045): 4, 5, 67 and odd tags above 32 are strings;
        # 32 (Tag_compatibility) is a number then a string; the rest are numbers.
        if tag == 32:
            _, pos = _uleb(buf, pos, end)
        if tag in (4, 5, 32, 65, 67) or (tag > 32 and tag % 2 == 1):
            nul = buf.find(b"\0", pos, end)
            if nul < 0:
                raise ValueError(f"unterminated string of attribute tag {tag}")
            pos = nul + 1
        else:
            _, pos = _uleb(buf, pos, end)
    return None
