"""A file-like reader over an iterator of byte chunks (a download, ``docker save``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ChunkReader:
    """Hands out whole chunks where it can: slicing one growing buffer on every read would
    copy it again each time, which costs more than hashing the data. Reads may be short, as
    a pipe's are; gzip, zstd and tarfile readers loop for the rest."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.buf = b""
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            out = self.buf[self.pos :] + b"".join(self.chunks)
            self.buf, self.pos = b"", 0
            return out
        while self.pos >= len(self.buf):
            chunk = next(self.chunks, None)
            if chunk is None:
                return b""
            self.buf, self.pos = chunk, 0
        out = self.buf[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)
