"""An image's filesystem as its layers build it, read in memory from the layer streams.

Layers are streamed through :mod:`tarfile` in order; whiteouts and opaque directories
remove what lower layers added. Nothing is extracted: a member's bytes are read only when
they start like ELF, and links are resolved inside this model, never on the host.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import elf

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINK_HOPS = 40
#: A file larger than this is not read even if it is ELF (its header still is).
MAX_ELF_BYTES = 1 << 30


class LayerError(ValueError):
    """A layer that cannot be read as a tar stream; the message names the layer."""


@dataclass(frozen=True)
class Node:
    kind: str  # "file", "dir", "symlink", "other"
    target: str | None = None  # symlink target as stored
    elf: elf.ELFInfo | None = None
    elf_error: str | None = None
    size: int = 0


def clean(name: str) -> str | None:
    """An absolute, normalised path inside the image, or None if it would leave the root."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


class Filesystem:
    """Paths of the flattened image and what each one is."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {"/": Node("dir")}
        self.notes: list[str] = []

    # --- building ------------------------------------------------------------------------
    def apply_layer(self, stream: IO[bytes], label: str) -> None:
        added: set[str] = set()
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    self._apply(tar, member, label, added)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise LayerError(f"layer {label}: not a readable tar stream ({exc})") from exc

    def _remove(self, path: str, keep: set[str] | None = None) -> None:
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self.nodes if p == path or p.startswith(prefix)]:
            if keep is None or p not in keep:
                del self.nodes[p]

    def _apply(self, tar: tarfile.TarFile, m: tarfile.TarInfo, label: str, added: set[str]) -> None:
        path = clean(m.name)
        if path is None:
            self.notes.append(f"layer {label}: ignored {m.name!r}, which points outside the image root")
            return
        parent, base = posixpath.split(path)
        if base == OPAQUE:
            # Opaque: the directory hides what lower layers put in it, not this layer's own.
            keep = {p for p in added if p.startswith(parent.rstrip("/") + "/")}
            self._remove(parent.rstrip("/") + "/", keep)
            return
        if base.startswith(WHITEOUT):
            self._remove(posixpath.join(parent, base[len(WHITEOUT) :]))
            return
        self._ensure_parents(path)
        if path in self.nodes and not m.isdir():
            self._remove(path)
        added.add(path)
        if m.isdir():
            self.nodes[path] = Node("dir")
        elif m.issym():
            self.nodes[path] = Node("symlink", target=m.linkname)
        elif m.islnk():
            src = clean(m.linkname)
            node = self.nodes.get(src) if src else None
            self.nodes[path] = node if node is not None else Node("file")
        elif m.isreg():
            self.nodes[path] = self._read_file(tar, m, path)
        else:
            self.nodes[path] = Node("other")

    def _ensure_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.nodes:
            self.nodes[parent] = Node("dir")
            parent = posixpath.dirname(parent)

    def _read_file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> Node:
        if m.size < 52:
            return Node("file", size=m.size)
        fh = tar.extractfile(m)
        if fh is None:
            return Node("file", size=m.size)
        head = fh.read(elf.HEAD_BYTES)
        if head[:4] != elf.ELF_MAGIC:
            return Node("file", size=m.size)
        try:
            need = elf.needed_bytes(head, path)
            if need == -1 or need > len(head):
                want = m.size if need == -1 else need
                if want > MAX_ELF_BYTES:
                    raise elf.ELFError(f"{path}: {m.size} bytes, more than the audit reads")
                head += fh.read(want - len(head))
            return Node("file", elf=elf.parse(head, path), size=m.size)
        except elf.ELFError as exc:
            return Node("file", elf_error=str(exc), size=m.size)

    # --- reading -------------------------------------------------------------------------
    def resolve(self, path: str) -> str | None:
        """Follow symlinks inside the image; None when the path does not exist (or loops)."""
        hops = 0
        todo = [p for p in path.split("/") if p]
        done = "/"
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue
            if part == "..":
                done = posixpath.dirname(done) if done != "/" else "/"
                continue
            cand = posixpath.join(done, part)
            node = self.nodes.get(cand)
            if node is None:
                return None
            if node.kind == "symlink" and node.target is not None:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return None
                target = node.target
                if target.startswith("/"):
                    done = "/"
                todo = [p for p in target.split("/") if p] + todo
                continue
            done = cand
        return done

    def lookup(self, path: str) -> Node | None:
        real = self.resolve(path)
        return self.nodes.get(real) if real else None

    def which(self, name: str, dirs: Iterable[str]) -> str | None:
        for d in dirs:
            candidate = posixpath.join(d, name)
            node = self.lookup(candidate)
            if node is not None and node.kind == "file":
                return candidate
        return None

    def elf_files(self) -> list[tuple[str, Node]]:
        return sorted((p, n) for p, n in self.nodes.items() if n.elf is not None or n.elf_error)


def read_layers(paths: Iterable[tuple[Path, str]]) -> Filesystem:
    """Flatten layers given as (compressed tar file, label), lowest first."""
    fs = Filesystem()
    for path, label in paths:
        with open(path, "rb") as fh:
            fs.apply_layer(fh, label)
    return fs
