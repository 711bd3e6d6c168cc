"""binfmt_misc: which foreign ELF files the kernel hands to an emulator, and how."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .arch import ArchSpec

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Handler:
    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    @classmethod
    def parse(cls, name: str, text: str) -> Handler | None:
        fields: dict[str, str] = {}
        enabled = False
        for line in text.splitlines():
            line = line.strip()
            if line == "enabled":
                enabled = True
            elif " " in line:
                key, _, value = line.partition(" ")
                fields[key.rstrip(":")] = value.strip()
        if "magic" not in fields:
            return None  # an extension-based handler (e.g. jar): not for ELF
        try:
            magic = bytes.fromhex(fields["magic"])
            mask = bytes.fromhex(fields.get("mask", "ff" * len(magic)))
            offset = int(fields.get("offset", "0"))
        except ValueError:
            return None
        return cls(name, enabled, fields.get("interpreter", ""), fields.get("flags", ""), offset, magic, mask)

    def matches(self, header: bytes) -> bool:
        chunk = header[self.offset : self.offset + len(self.magic)]
        if len(chunk) < len(self.magic):
            return False
        return all((c & m) == (g & m) for c, m, g in zip(chunk, self.mask, self.magic, strict=True))

    @property
    def opens_early(self) -> bool:
        """F: the interpreter is opened at registration, so it works inside containers."""
        return "F" in self.flags


def read_handlers(root: Path = BINFMT_DIR) -> list[Handler]:
    handlers: list[Handler] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return handlers
    for entry in entries:
        if entry.name in ("register", "status"):
            continue
        try:
            handler = Handler.parse(entry.name, entry.read_text())
        except OSError:
            continue
        if handler is not None:
            handlers.append(handler)
    return handlers


def elf_header(spec: ArchSpec, etype: int = 2) -> bytes:
    """The first 20 bytes of an executable of that architecture, as the kernel sees them."""
    ident = b"\x7fELF" + bytes([2 if spec.elf_class == 64 else 1, 2 if spec.big_endian else 1, 1, 0])
    ident += b"\0" * 8
    return ident + struct.pack(">HH" if spec.big_endian else "<HH", etype, spec.machine)


def handler_for(spec: ArchSpec, handlers: list[Handler]) -> Handler | None:
    """The handler that would run an executable of ``spec``: enabled ones first.

    Some masks reach past the first 20 bytes (the MIPS ones into ``e_flags``, to tell o32
    from n32): the rest of the header is zeros there, as in a plain o32 or n64 file."""
    headers = [elf_header(spec, etype).ljust(64, b"\0") for etype in (2, 3)]
    found = [h for h in handlers if any(h.matches(header) for header in headers)]
    found.sort(key=lambda h: (not h.enabled, not h.opens_early))
    return found[0] if found else None


def qemu_cpu_models(binfmt_name: str) -> tuple[str, ...] | None:
    """The CPU models this machine's QEMU user-mode emulator for a platform knows
    (``qemu-aarch64 -cpu help``), or None when there is no such emulator here to ask."""
    for exe in (f"{binfmt_name}-static", binfmt_name):
        path = shutil.which(exe)
        if path is None:
            continue
        try:
            out = subprocess.run([path, "-cpu", "help"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        models = []
        for line in out.stdout.splitlines():
            words = line.split()
            if not words or line.rstrip().endswith(":"):
                continue
            # "  cortex-a72" (ARM), or "x86 Broadwell ..." / "s390 z13 ..." with the family first.
            name = words[0] if line[:1].isspace() else (words[1] if len(words) > 1 else "")
            if name:
                models.append(name)
        return tuple(models) or None
    return None
