"""Layers (gzipped tar streams) built in memory for tests."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable

from harness.layers import Filesystem


def entry(
    name: str,
    data: bytes | None = None,
    *,
    link: str | None = None,
    hard: str | None = None,
    kind: str | None = None,
    mode: int = 0o755,
) -> tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif hard is not None:
        info.type, info.linkname = tarfile.LNKTYPE, hard
    elif kind == "dir" or data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
        return info, data
    return info


def layer(entries: Iterable[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in entries:
            if isinstance(item, tuple):
                tar.addfile(item[0], io.BytesIO(item[1]))
            else:
                tar.addfile(item)
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def fs_of(*entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]) -> Filesystem:
    """The flattened filesystem of one layer holding ``entries``."""
    fs = Filesystem()
    fs.apply_layer(io.BytesIO(layer(entries)), "l0")
    return fs
