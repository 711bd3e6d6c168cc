"""An image's filesystem as its layers build it, read from the layer streams.

Each layer is streamed once through :mod:`tarfile` and summarised as a :class:`LayerIndex`:
every path it adds (with the ELF identity of files that start like ELF), every whiteout and
opaque directory. Indexes are cached on disk by layer digest, so a layer shared by many
images or audited again is never decompressed twice. Replaying the indexes lowest first
gives the flattened :class:`Filesystem`. Nothing is extracted: member bytes are read in
bounded chunks, large ARM files (whose attributes sit near their end) are buffered in a
temporary file the harness owns, and links are resolved inside this model, never on the
host.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import fcntl
import gzip
import itertools
import json
import os
import posixpath
import re
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from . import elf
from .errors import MultiarchError
from .streams import ChunkReader

igzip: Any
#: What a corrupt compressed stream raises, besides OSError and EOFError: each inflater its own.
_INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,)
try:
    from isal import igzip, igzip_lib

    _INFLATE_ERRORS += (cast("type[Exception]", igzip_lib.IsalError),)
except ImportError:  # pragma: no cover - a declared dependency; zlib still works
    igzip = None
try:
    import zstandard

    _INFLATE_ERRORS += (cast("type[Exception]", zstandard.ZstdError),)
except ImportError:  # pragma: no cover - a declared dependency, imported only for zstd layers
    pass

#: What reading a layer that is not a readable (compressed) tar stream raises.
_READ_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, OSError, EOFError, ValueError, *_INFLATE_ERRORS)

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINK_HOPS = 40
CHUNK = 1 << 20
#: ARM files up to this size are kept in memory to read their attributes; larger ones are
#: buffered in a temporary file, so memory stays bounded whatever the image holds.
SPOOL_IN_MEMORY = 16 << 20
#: Bump when what an index records changes: old cache entries are then ignored.
INDEX_FORMAT = 7
#: Files the loader reads besides ELF files, kept whole in the index: where it looks for
#: libraries (see :mod:`harness.loader`).
LOADER_FILES = re.compile(r"/etc/(ld\.so\.cache|ld\.so\.conf|ld\.so\.conf\.d/[^/]+|ld-musl-[\w-]+\.path)")
#: Larger ones are not kept (real caches hold a few hundred KiB).
MAX_LOADER_FILE = 4 << 20


class LayerError(MultiarchError, ValueError):
    """A layer that cannot be read as a tar stream; the message names the layer."""


class LayerTooLarge(LayerError):
    """A layer past the size or entry limit: a decompression bomb, or a limit to raise."""


#: The setting that raises the most bytes one layer may decompress to (the plugin reads it
#: from --max-layer-bytes or this environment variable and hands it down; the library
#: itself reads no environment).
MAX_LAYER_ENV = "MULTIARCH_MAX_LAYER_BYTES"
#: Default: far beyond real layers (the largest CUDA layers are around 10 GB), and a bound
#: on the time an endless stream of zeros can take.
DEFAULT_MAX_LAYER_BYTES = 64 << 30
#: Entries one layer may hold; each costs memory in the index.
MAX_LAYER_ENTRIES = 2_000_000


@dataclass(frozen=True)
class Node:
    kind: str  # "file", "dir", "symlink", "other"
    target: str | None = None  # symlink target as stored
    elf: elf.ELFInfo | None = None
    elf_error: str | None = None
    size: int = 0
    #: The bytes of a file the loader reads (:data:`LOADER_FILES`).
    data: bytes | None = None

    def to_json(self) -> list[Any]:
        out = [self.kind, self.target, self.elf.to_json() if self.elf else None, self.elf_error, self.size]
        return [*out, base64.b64encode(self.data).decode()] if self.data is not None else out

    @classmethod
    def from_json(cls, d: list[Any]) -> Node:
        data = base64.b64decode(d[5]) if len(d) > 5 else None
        return cls(d[0], d[1], elf.ELFInfo.from_json(d[2]) if d[2] else None, d[3], d[4], data)


FILE = Node("file")
DIR = Node("dir")


@dataclass
class LayerIndex:
    """What one layer does, in order: ("add", path, node), ("hardlink", path, source),
    ("whiteout", path) and ("opaque", dir)."""

    ops: list[tuple[Any, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        ops = [[op[0], op[1], op[2].to_json()] if op[0] == "add" else list(op) for op in self.ops]
        return {"format": INDEX_FORMAT, "ops": ops, "notes": self.notes}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LayerIndex:
        ops = [("add", o[1], Node.from_json(o[2])) if o[0] == "add" else tuple(o) for o in doc["ops"]]
        return cls(ops, list(doc.get("notes", [])))


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


# --- reading one layer ----------------------------------------------------------------------
def open_decompressed(fh: Any, label: str) -> Any:
    """The layer's tar stream, whatever its compression (gzip, zstd or none). ``fh`` needs
    only ``read``: streams that cannot seek (``docker save``) work too."""
    raw = fh
    magic = raw.read(4)
    # Give back the bytes read to sniff the format, then the rest, with no seeking.
    fh = ChunkReader(itertools.chain([magic], iter(lambda: raw.read(CHUNK), b"")))
    if magic[:2] == b"\x1f\x8b":
        if igzip is not None:  # ISA-L inflates about 2.5x faster than zlib, same output
            return igzip.IGzipFile(fileobj=fh, mode="rb")
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if magic == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise LayerError(f"layer {label} is zstd-compressed: install the zstandard package") from exc
        return zstandard.ZstdDecompressor().stream_reader(fh)
    return fh


class _Forward:
    """A read-only stream that seeks forward by reading. tarfile's random-access mode
    needs seek and tell, but over a layer it only ever moves forward; this spares its
    stream mode's buffer copies, which cost as much as a quarter of the inflating."""

    def __init__(self, raw: Any, label: str = "", limit: int = DEFAULT_MAX_LAYER_BYTES) -> None:
        self.raw = raw
        self.pos = 0
        self.label = label
        self.limit = limit

    def read(self, n: int = -1) -> bytes:
        # tarfile takes a short read for the end of the archive: fill each read up.
        data: bytes = self.raw.read(n)
        while 0 < len(data) < n:
            more: bytes = self.raw.read(n - len(data))
            if not more:
                break
            data += more
        self.pos += len(data)
        if self.pos > self.limit:
            raise LayerTooLarge(
                f"layer {self.label} decompresses to more than {self.limit:,} bytes: a decompression bomb, or "
                f"a layer larger than the limit (raise --max-layer-bytes or {MAX_LAYER_ENV} if it really is that large)"
            )
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        target = pos if whence == os.SEEK_SET else self.pos + pos
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < self.pos:
            raise OSError("a layer stream only moves forward")
        while self.pos < target:
            if not self.read(min(target - self.pos, CHUNK)):
                break
        return self.pos


def index_layer(
    stream: IO[bytes], label: str, spool_dir: str | None = None, limit: int = DEFAULT_MAX_LAYER_BYTES
) -> LayerIndex:
    """The index of one layer's tar stream; past ``limit`` decompressed bytes it is :class:`LayerTooLarge`."""
    index = LayerIndex()
    try:
        with tarfile.open(fileobj=_Forward(stream, label, limit), mode="r:") as tar:  # type: ignore[call-overload]
            for member in tar:
                _index_member(tar, member, label, index, spool_dir)
                tar.members.clear()  # kept by tarfile for random access, never needed here
                if len(index.ops) > MAX_LAYER_ENTRIES:
                    raise LayerTooLarge(f"layer {label} has more than {MAX_LAYER_ENTRIES:,} entries")
    except LayerTooLarge:
        raise
    except _READ_ERRORS as exc:
        raise LayerError(f"layer {label}: not a readable tar stream ({exc})") from exc
    return index


def _index_member(
    tar: tarfile.TarFile, m: tarfile.TarInfo, label: str, index: LayerIndex, spool_dir: str | None
) -> None:
    path = clean(m.name)
    if path is None:
        index.notes.append(f"layer {label}: ignored {m.name!r}, which points outside the image root")
        return
    parent, base = posixpath.split(path)
    if base == OPAQUE:
        index.ops.append(("opaque", parent))
    elif base.startswith(WHITEOUT):
        index.ops.append(("whiteout", posixpath.join(parent, base[len(WHITEOUT) :])))
    elif m.isdir():
        index.ops.append(("add", path, DIR))
    elif m.issym():
        index.ops.append(("add", path, Node("symlink", target=m.linkname)))
    elif m.islnk():
        index.ops.append(("hardlink", path, clean(m.linkname)))
    elif m.isreg():
        index.ops.append(("add", path, _read_file(tar, m, path, spool_dir)))
    else:
        index.ops.append(("add", path, Node("other")))


def _read_file(tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, spool_dir: str | None) -> Node:
    if m.size < 52 and not (path.startswith("/etc/") and LOADER_FILES.fullmatch(path)):
        return Node("file", size=m.size)
    fh = tar.extractfile(m)
    if fh is None:
        return Node("file", size=m.size)
    if m.size <= MAX_LOADER_FILE and path.startswith("/etc/") and LOADER_FILES.fullmatch(path):
        return Node("file", size=m.size, data=fh.read())
    head = fh.read(elf.HEAD_BYTES)
    if head[:4] != elf.ELF_MAGIC:
        return Node("file", size=m.size)  # tarfile skips the rest without our reading it
    try:
        reads = elf.reads_needed(head, path)
        with _Spool(spool_dir) if reads.whole else contextlib.nullcontext() as whole:
            if whole is not None:
                whole.write(head)
            ranges, go_info = _scan(fh, head, reads, whole)
            info = elf.parse(head, path, whole=whole, go_info=go_info, ranges=ranges)
        return Node("file", elf=info, size=m.size)
    except elf.ELFError as exc:
        return Node("file", elf_error=str(exc), size=m.size)


class _Spool:
    """A seekable copy of one file as it streams by, for :func:`elf.parse`: the chunks as
    they were read (no copy) up to :data:`SPOOL_IN_MEMORY`, then a temporary file."""

    def __init__(self, spool_dir: str | None) -> None:
        self.spool_dir = spool_dir
        self.chunks: list[bytes] = []
        self.starts: list[int] = []
        self.size = 0
        self.pos = 0
        self.file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.file is None and self.size + len(data) > SPOOL_IN_MEMORY:
            self.file = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115 - closed by close()
            for chunk in self.chunks:
                self.file.write(chunk)
            self.chunks.clear()
            self.starts.clear()
        if self.file is not None:
            self.file.write(data)
        else:
            self.starts.append(self.size)
            self.chunks.append(data)
        self.size += len(data)

    def seek(self, pos: int) -> int:
        self.pos = pos
        return pos

    def read(self, n: int) -> bytes:
        start, end = self.pos, min(self.pos + n, self.size)
        if end <= start:
            return b""
        self.pos = end
        if self.file is not None:
            self.file.seek(start)
            return self.file.read(end - start)
        i = bisect.bisect_right(self.starts, start) - 1
        out = []
        while start < end:
            chunk, at = self.chunks[i], self.starts[i]
            out.append(chunk[start - at : end - at])
            start = at + len(chunk)
            i += 1
        return out[0] if len(out) == 1 else b"".join(out)

    def close(self) -> None:
        self.chunks.clear()
        if self.file is not None:
            self.file.close()

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scan(fh: IO[bytes], head: bytes, reads: elf.Reads, whole: _Spool | None) -> tuple[dict[int, bytes], bytes | None]:
    """Read the rest of the file in chunks, as far as needed: copy it into ``whole``, keep
    the ``reads.ranges`` that lie past the head, and return those and the Go build info if
    its magic turns up. Nothing else is kept."""
    magic = elf.GO_BUILDINFO_MAGIC
    at = head.find(magic)
    go = bytearray(head[at:]) if at >= 0 else None
    # Go's linker puts its build ID note right after the headers; a static executable may
    # be Go built without one (-buildid=). Otherwise there is no build info to look for,
    # and the rest of the file need not pass through Python.
    want_go = go is not None or elf.GO_NOTE in head or reads.static
    tail = head[-(len(magic) - 1) :]
    sizes = dict(reads.ranges)
    pending = {off: bytearray(head[off : off + size]) for off, size in sizes.items()}
    kept: dict[int, bytes] = {}
    pos = len(head)
    # The tables the dynamic section points to may lie after it (patchelf puts them there):
    # once it is known, those not streamed by yet are kept too.
    follow = reads.dynamic if whole is None else None

    def follow_tables(chunk: bytes, start: int) -> None:
        """Called with each chunk once the pending ranges took theirs; ``start`` is its offset."""
        nonlocal follow
        if follow is None:
            return
        off, size = follow
        dyn = head[off : off + size] if off + size <= len(head) else kept.get(off)
        if dyn is None:
            return
        follow = None
        try:
            later = elf.tables_past(head, dyn, "")
        except elf.ELFError:
            return
        end = start + len(chunk)
        for at, length in later:
            inside = at + length <= len(head) or any(o <= at and at + length <= o + n for o, n in sizes.items())
            if inside or at < start:
                continue  # in the head or a range kept already; or streamed by, not kept
            sizes[at] = length
            part = chunk[at - start : at - start + length] if at < end else b""
            if len(part) == length:
                kept[at] = part
            else:
                pending[at] = bytearray(part)

    follow_tables(head, 0)
    while (
        whole is not None or pending or (want_go and go is None) or (go is not None and len(go) < elf.GO_BUILDINFO_SPAN)
    ):
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        end = pos + len(chunk)
        if whole is not None:
            whole.write(chunk)
        for off, buf in list(pending.items()):
            lo, hi = max(off + len(buf), pos), min(off + sizes[off], end)
            if lo < hi:
                buf += chunk[lo - pos : hi - pos]
            if len(buf) == sizes[off]:
                kept[off] = bytes(pending.pop(off))
        follow_tables(chunk, pos)
        pos = end
        if go is None:
            window = tail + chunk
            at = window.find(magic)
            if at >= 0:
                go = bytearray(window[at:])
            tail = window[-(len(magic) - 1) :]
        elif len(go) < elf.GO_BUILDINFO_SPAN:
            go += chunk[: elf.GO_BUILDINFO_SPAN - len(go)]
    return kept, bytes(go[: elf.GO_BUILDINFO_SPAN]) if go is not None else None


# --- the cache ------------------------------------------------------------------------------
#: Layer digest -> held by the thread of this process reading that layer.
_READING: dict[str, threading.Lock] = {}
_READING_LOCK = threading.Lock()


class IndexCache:
    """Layer indexes on disk, by layer digest. Writes are atomic: workers may share it."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, digest: str) -> Path | None:
        if self.root is None or not digest.startswith("sha256:"):
            return None
        return self.root / "layer-index" / f"v{INDEX_FORMAT}-{digest[7:]}.json"

    @contextmanager
    def reading(self, digest: str) -> Iterator[None]:
        """Held while a layer is read into its index: another thread or process of this
        machine that wants the same layer waits, then finds the index cached."""
        with _READING_LOCK:
            lock = _READING.setdefault(digest, threading.Lock())
        with lock:
            path = self._path(digest)
            if path is None:
                yield
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_name(f".lock-{path.name}"), "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield

    def has(self, digest: str) -> bool:
        """Whether an index of this layer is cached (it is not read to say so)."""
        path = self._path(digest)
        return path is not None and path.exists()

    def get(self, digest: str) -> LayerIndex | None:
        path = self._path(digest)
        if path is None or not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
            return LayerIndex.from_json(doc) if doc.get("format") == INDEX_FORMAT else None
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None  # a damaged entry is rebuilt

    def put(self, digest: str, index: LayerIndex) -> None:
        path = self._path(digest)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        with os.fdopen(fd, "w") as fh:
            # dumps, not dump: json.dump streams through the encoder written in Python,
            # dumps takes the one in C (a Debian root's index: 0.02 s against 0.2 s).
            fh.write(json.dumps(index.to_json(), separators=(",", ":")))
        os.replace(tmp, path)


# --- the flattened filesystem ---------------------------------------------------------------
class Filesystem:
    """Paths of the flattened image and what each one is."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {"/": DIR}
        self._elf_files: list[tuple[str, Node]] | None = None
        self.notes: list[str] = []

    def apply_layer(self, stream: IO[bytes], label: str) -> None:
        self.apply(index_layer(open_decompressed(stream, label), label))

    def apply(self, index: LayerIndex) -> None:
        self._elf_files = None  # the layer changes what the image holds
        added: set[str] = set()
        self.notes.extend(index.notes)
        for op in index.ops:
            kind, path = op[0], op[1]
            if kind == "opaque":
                # Opaque: the directory hides what lower layers put in it, not this layer's own.
                prefix = path.rstrip("/") + "/"
                self._remove(prefix, keep={p for p in added if p.startswith(prefix)})
            elif kind == "whiteout":
                self._remove(path)
            else:
                # A hard link is the same file under another name.
                node = op[2] if kind == "add" else self.nodes.get(op[2] or "", FILE)
                self._ensure_parents(path)
                if path in self.nodes and node.kind != "dir":
                    self._remove(path)
                added.add(path)
                self.nodes[path] = node

    def _remove(self, path: str, keep: set[str] | None = None) -> None:
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self.nodes if p == path or p.startswith(prefix)]:
            if keep is None or p not in keep:
                del self.nodes[p]

    def _ensure_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.nodes:
            self.nodes[parent] = DIR
            parent = posixpath.dirname(parent)

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
                if node.target.startswith("/"):
                    done = "/"
                todo = [p for p in node.target.split("/") if p] + todo
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
        """Every ELF file (and file that starts like one), by path: worked out once per layer applied."""
        if self._elf_files is None:
            self._elf_files = sorted((p, n) for p, n in self.nodes.items() if n.elf is not None or n.elf_error)
        return self._elf_files


def layer_index(
    blob: Path | Callable[[], AbstractContextManager[Any]],
    digest: str,
    label: str,
    cache: IndexCache,
    spool_dir: str | None = None,
    limit: int = DEFAULT_MAX_LAYER_BYTES,
) -> LayerIndex:
    """The index of a layer blob: from the cache, or read once and cached.

    ``blob`` is a file, or opens a stream that verifies the blob's digest when it is
    closed; an index is cached only after its blob verified.
    """
    cached = cache.get(digest)
    if cached is not None:
        return cached
    with cache.reading(digest):  # a layer shared by platforms, images or processes is read once
        cached = cache.get(digest)
        if cached is not None:
            return cached
        opener = (lambda: open(blob, "rb")) if isinstance(blob, Path) else blob  # noqa: SIM115
        with opener() as fh:
            index = index_layer(open_decompressed(fh, label), label, spool_dir, limit)
            while fh.read(CHUNK):  # the rest (tar padding), so the digest covers every byte
                pass
        cache.put(digest, index)
    return index
