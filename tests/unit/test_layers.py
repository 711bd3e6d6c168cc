from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from elfcraft import elf_for
from layerkit import entry, layer

from harness.layers import Filesystem, LayerError


def build(*layers: bytes) -> Filesystem:
    fs = Filesystem()
    for i, data in enumerate(layers):
        fs.apply_layer(io.BytesIO(data), f"layer{i}")
    return fs


def test_elf_files_found_and_others_ignored():
    fs = build(
        layer(
            [
                entry("bin/busybox", elf_for("linux/arm64")),
                entry("etc/passwd", b"root:x:0:0::/:/bin/sh\n" * 5),
                entry("bin/sh", link="busybox"),
            ]
        )
    )
    assert [p for p, _ in fs.elf_files()] == ["/bin/busybox"]
    assert fs.lookup("/bin/sh").elf.machine == 183


def test_whiteout_removes_a_lower_file():
    fs = build(layer([entry("usr/bin/tool", elf_for("linux/amd64"))]), layer([entry("usr/bin/.wh.tool", b"")]))
    assert fs.elf_files() == []
    assert fs.lookup("/usr/bin/tool") is None


def test_opaque_dir_hides_lower_content_but_keeps_its_own():
    fs = build(
        layer([entry("opt/app/old", elf_for("linux/amd64"))]),
        layer([entry("opt/app/new", elf_for("linux/arm64")), entry("opt/app/.wh..wh..opq", b"")]),
    )
    assert [p for p, _ in fs.elf_files()] == ["/opt/app/new"]


def test_later_layer_replaces_file():
    fs = build(layer([entry("bin/x", elf_for("linux/amd64"))]), layer([entry("bin/x", elf_for("linux/s390x"))]))
    assert fs.lookup("/bin/x").elf.big_endian


def test_hardlink_shares_identity():
    fs = build(layer([entry("bin/a", elf_for("linux/386")), entry("bin/b", hard="bin/a")]))
    assert fs.lookup("/bin/b").elf.machine == 3


def test_symlinks_resolve_inside_the_image():
    fs = build(
        layer(
            [
                entry("lib64", link="usr/lib64"),
                entry("usr/lib64/ld-linux-x86-64.so.2", elf_for("linux/amd64")),
                entry("escape", link="../../../../etc/shadow"),
                entry("abs", link="/usr/lib64"),
            ]
        )
    )
    assert fs.resolve("/lib64/ld-linux-x86-64.so.2") == "/usr/lib64/ld-linux-x86-64.so.2"
    assert fs.resolve("/abs/ld-linux-x86-64.so.2") == "/usr/lib64/ld-linux-x86-64.so.2"
    # ".." above the root stays at the image root, as in a chroot: never the host's /etc.
    assert fs.resolve("/escape") is None


def test_symlink_loop_is_not_found_not_a_hang():
    fs = build(layer([entry("a", link="b"), entry("b", link="a")]))
    assert fs.resolve("/a") is None


def test_paths_outside_the_root_are_ignored_with_a_note():
    fs = build(layer([entry("../../evil", elf_for("linux/amd64"))]))
    assert fs.elf_files() == []
    assert "outside the image root" in fs.notes[0]


def test_which_follows_path_and_links():
    fs = build(layer([entry("bin/busybox", elf_for("linux/amd64")), entry("bin/uname", link="busybox")]))
    assert fs.which("uname", ["/usr/bin", "/bin"]) == "/bin/uname"
    assert fs.which("sleep", ["/usr/bin", "/bin"]) is None


def test_uncompressed_layers_are_read():
    fs = build(layer([entry("x", elf_for("linux/amd64"))], compress=False))
    assert len(fs.elf_files()) == 1


def test_truncated_elf_is_reported_on_the_file():
    fs = build(layer([entry("bin/broken", elf_for("linux/amd64")[:60])]))
    ((path, node),) = fs.elf_files()
    assert path == "/bin/broken"
    assert "truncated" in node.elf_error


NOISE = random.Random(1).randbytes(20000)


@pytest.mark.parametrize(
    "data", [b"not a tar at all" * 40, layer([entry("x", NOISE)])[:3000]], ids=["garbage", "truncated-gzip"]
)
def test_broken_layer_names_the_layer(data):
    with pytest.raises(LayerError, match="layer layer0: not a readable tar stream"):
        build(data)


def test_a_hostile_layer_writes_nothing_on_the_host(tmp_path, monkeypatch):
    """Paths climbing out of the root, absolute symlinks and files written through them, hard
    links to host files, devices and FIFOs: the audit reads them, never creates anything."""
    import tarfile
    import uuid

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    target = tmp_path / f"escape-{uuid.uuid4().hex[:8]}"
    fifo, dev = tarfile.TarInfo("run/fifo"), tarfile.TarInfo("dev/sda")
    fifo.type, dev.type = tarfile.FIFOTYPE, tarfile.BLKTYPE
    hostile = layer(
        [
            entry(f"../../../../..{target}", elf_for("linux/amd64")),
            entry("abs", link=str(tmp_path)),
            entry(f"abs/{target.name}-through-link", b"x"),
            entry("passwd", hard="/etc/passwd"),
            entry("/etc/cron.d/evil", b"* * * * * root sh\n"),
            fifo,
            dev,
        ]
    )
    fs = build(hostile)
    assert fs.notes  # what was out of bounds is said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"]
    assert list(cwd.iterdir()) == []
    assert not Path("/etc/cron.d/evil").exists()


def test_a_decompression_bomb_stops_at_the_limit():
    import gzip
    import time

    from harness.layers import LayerTooLarge, index_layer, open_decompressed

    bomb = gzip.compress(layer([entry("zeros", bytes(64 << 20))], compress=False), compresslevel=9)
    assert len(bomb) < (1 << 20)  # 64 MiB of zeros in well under 1 MiB
    start = time.monotonic()
    with pytest.raises(LayerTooLarge, match="layer sha256:bomb decompresses to more than 16,777,216 bytes") as err:
        index_layer(open_decompressed(io.BytesIO(bomb), "sha256:bomb"), "sha256:bomb", limit=16 << 20)
    assert "MULTIARCH_MAX_LAYER_BYTES" in str(err.value)
    assert time.monotonic() - start < 5
    # Under the limit, the same reader reads a normal layer.
    fs = build(layer([entry("bin/tool", elf_for("linux/arm64"))]))
    assert [p for p, _ in fs.elf_files()] == ["/bin/tool"]


def test_a_4gb_sparse_file_is_read_in_a_moment(tmp_path):
    """GNU tar stores a sparse file's holes as a map, not as bytes: 4 GB costs nothing to
    skip, and its ELF header at the start is still audited."""
    import shutil
    import subprocess
    import time

    from harness.layers import index_layer

    tar = shutil.which("tar")
    assert tar, "GNU tar is needed to write a sparse member"
    big = tmp_path / "src" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(elf_for("linux/amd64"))
    with open(big, "r+b") as fh:
        fh.truncate(4 << 30)
    out = tmp_path / "sparse.tar"
    subprocess.run([tar, "--sparse", "--format=gnu", "-cf", str(out), "-C", str(big.parent), "big.bin"], check=True)
    assert out.stat().st_size < (1 << 20)
    start = time.monotonic()
    with open(out, "rb") as fh:
        index = index_layer(fh, "sha256:sparse")
    assert time.monotonic() - start < 5
    (op,) = index.ops
    _, path, node = op
    assert path == "/big.bin"
    assert node.size == 4 << 30
    assert node.elf is not None
    assert node.elf.machine == 62  # EM_X86_64
