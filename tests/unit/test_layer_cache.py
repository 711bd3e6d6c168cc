from __future__ import annotations

import io
import tarfile

import pytest
import zstandard
from elfcraft import elf_for
from layerkit import entry, layer

from harness.layers import Filesystem, IndexCache, LayerError, index_layer, layer_index, open_decompressed


def raw_tar(*entries) -> bytes:
    return layer(entries, compress=False)


def test_index_round_trips_through_the_cache(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(
        layer(
            [
                entry("bin/x", elf_for("linux/arm/v7")),
                entry("bin/sh", link="x"),
                entry("bin/.wh.old", b""),
                entry("etc/.wh..wh..opq", b""),
            ]
        )
    )
    cache = IndexCache(tmp_path / "cache")
    digest = "sha256:" + "ab" * 32
    first = layer_index(blob, digest, "l", cache)
    blob.write_bytes(b"gone")  # a cached index never reads the blob again
    second = layer_index(blob, digest, "l", cache)
    assert second.ops == first.ops
    fs = Filesystem()
    fs.apply(second)
    assert fs.lookup("/bin/sh").elf.arm_cpu_arch == 10


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    cache = IndexCache(tmp_path)
    digest = "sha256:" + "cd" * 32
    path = tmp_path / "layer-index" / f"v2-{'cd' * 32}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cache.get(digest) is None


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_every_compression_is_read(compress):
    raw = raw_tar(entry("bin/x", elf_for("linux/s390x")))
    data = {
        "gzip": layer([entry("bin/x", elf_for("linux/s390x"))]),
        "zstd": zstandard.ZstdCompressor().compress(raw),
        "none": raw,
    }[compress]
    index = index_layer(open_decompressed(io.BytesIO(data), "l"), "l")
    (op,) = index.ops[-1:]
    assert op[2].elf.big_endian


def test_non_seekable_streams_are_read():
    class Pipe:
        def __init__(self, data: bytes) -> None:
            self.buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.buf.read(min(n, 7) if n > 0 else n)  # small, uneven reads

    index = index_layer(open_decompressed(Pipe(layer([entry("a", elf_for("linux/386"))])), "l"), "l")
    assert index.ops[-1][2].elf.machine == 3


def test_zstd_garbage_names_the_layer():
    with pytest.raises(LayerError, match="layer bad: not a readable tar stream"):
        index_layer(open_decompressed(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 50), "bad"), "bad")


def test_device_nodes_and_fifos_are_other():
    info = tarfile.TarInfo("dev/null")
    info.type = tarfile.CHRTYPE
    fs = Filesystem()
    fs.apply_layer(io.BytesIO(layer([info])), "l")
    assert fs.lookup("/dev/null").kind == "other"
