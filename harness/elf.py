"""Reading what an ELF file was built for: header, loader, ARM architecture level.

The header and program headers are parsed here directly (a few struct reads); only the
ARM attributes section, which needs the section table, goes through pyelftools.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from .arch import ARM_CPU_ARCH, machine_name

ELF_MAGIC = b"\x7fELF"
EM_ARM = 40
PT_INTERP = 3
#: Bytes of a file read before deciding what else is needed.
HEAD_BYTES = 64 * 1024


class ELFError(ValueError):
    """A file that starts like ELF but cannot be read as one."""


GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"
#: The name of the ELF note Go's linker writes with the build ID, right after the headers.
GO_NOTE = b"Go\x00\x00"
#: Bytes after the Go build info magic that hold the version and module info.
GO_BUILDINFO_SPAN = 64 * 1024


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
        )

    @property
    def go_settings(self) -> dict[str, str]:
        return dict(self.go or ())

    @property
    def description(self) -> str:
        order = "MSB" if self.big_endian else "LSB"
        out = f"ELF{self.elf_class} {order} {machine_name(self.machine)}"
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
        etype, machine, _ver, _entry, phoff, _shoff, flags, _eh, phentsize, phnum = struct.unpack_from(
            end + "HHIQQQIHHH", data, 16
        )
    else:
        etype, machine, _ver, _entry, phoff, _shoff, flags, _eh, phentsize, phnum = struct.unpack_from(
            end + "HHIIIIIHHH", data, 16
        )
    elf_class = 64 if ei_class == 2 else 32
    return _Header(elf_class, ei_data == 2, osabi, etype, machine, flags, phoff, phentsize, phnum)


def needed_bytes(head: bytes, name: str) -> int:
    """How much of the file (from its start) :func:`parse` needs, given its first bytes.

    ARM files need all of it (the attributes sit with the section table at the end);
    others need their program headers and the loader path they point to.
    """
    hdr = _header(head, name)
    if hdr.machine == EM_ARM:
        return -1
    need = hdr.phoff + hdr.phentsize * hdr.phnum
    if need > len(head):
        return need
    for p_type, p_offset, p_filesz in _program_headers(head, hdr, name):
        if p_type == PT_INTERP:
            need = max(need, p_offset + p_filesz)
    return need


def _program_headers(data: bytes, hdr: _Header, name: str) -> list[tuple[int, int, int]]:
    end = ">" if hdr.big_endian else "<"
    out: list[tuple[int, int, int]] = []
    if hdr.phnum == 0:
        return out
    if hdr.phnum > 4096 or hdr.phentsize < (56 if hdr.elf_class == 64 else 32):
        raise ELFError(f"{name}: bad program header table ({hdr.phnum} x {hdr.phentsize})")
    for i in range(hdr.phnum):
        off = hdr.phoff + i * hdr.phentsize
        if off + (56 if hdr.elf_class == 64 else 32) > len(data):
            raise ELFError(f"{name}: truncated program header table ({len(data)} bytes read)")
        if hdr.elf_class == 64:
            p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIQQQQ", data, off)
        else:
            p_type, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIIII", data, off)
        out.append((p_type, p_offset, p_filesz))
    return out


def parse(data: bytes, name: str = "<elf>", *, whole: BinaryIO | None = None, go_info: bytes | None = None) -> ELFInfo:
    """Read an ELF file's identity.

    ``data`` is its start (see :func:`needed_bytes`); an ARM file's attributes are read from
    ``whole`` (a seekable copy of the file) when given, else from ``data``. ``go_info`` is
    the file from the Go build info magic on, when the caller found one.
    """
    hdr = _header(data, name)
    interp = None
    for p_type, p_offset, p_filesz in _program_headers(data, hdr, name):
        if p_type == PT_INTERP:
            raw = data[p_offset : p_offset + p_filesz]
            if len(raw) < p_filesz or p_filesz > 4096:
                raise ELFError(f"{name}: PT_INTERP points outside the file")
            interp = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    arm_arch = _arm_cpu_arch(whole or io.BytesIO(data), name) if hdr.machine == EM_ARM else None
    if go_info is None:
        at = data.find(GO_BUILDINFO_MAGIC)
        go_info = data[at:] if at >= 0 else None
    go = go_build_settings(go_info) if go_info else None
    return ELFInfo(hdr.elf_class, hdr.big_endian, hdr.machine, hdr.flags, hdr.osabi, hdr.etype, interp, arm_arch, go)


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


def _arm_cpu_arch(stream: BinaryIO, name: str) -> int | None:
    """``Tag_CPU_arch`` from ``.ARM.attributes``, or None when the file has no such section.

    pyelftools finds the section; the attributes themselves are read here with bounded
    loops, because pyelftools' own attribute iterators loop forever on a zero length.
    (Imported here: only ARM files need it, and it costs a tenth of a second to load.)
    """
    from elftools.common.exceptions import ELFError as _PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(stream)
        for section in elf.iter_sections():
            if section["sh_type"] == "SHT_ARM_ATTRIBUTES":
                return _tag_cpu_arch(section.data())
    except (_PyELFError, struct.error, ValueError, KeyError, IndexError) as exc:
        raise ELFError(f"{name}: unreadable ARM attributes ({exc})") from exc
    return None


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
