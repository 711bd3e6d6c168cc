"""The ELF audit on Debian's own files: glibc for armhf, i386 and arm64, and libgcrypt for
armhf, fetched with ``apt-get download`` (cached under the harness's cache directory, as
sample_images/build.sh caches its .debs) and unpacked into layers made here.

Needs the Debian mirror, not the engine: without it these tests are skipped here and fail
in CI, as the rest of the engine tier does.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from enginekit import unavailable

from harness.checks import FAILED, PASSED, check_elf
from harness.layers import Filesystem
from harness.platform import Platform
from harness.registry import default_cache_dir

P = Platform.parse
DEBS = default_cache_dir() / "debs"
#: (package, architecture) of every .deb the tests unpack.
PACKAGES = [
    ("libc6", "armhf"),
    ("libgcrypt20", "armhf"),
    ("libc6", "arm64"),
    ("libc6", "amd64"),
    ("libc6-i386", "amd64"),
]


def deb(package: str, arch: str) -> Path:
    """The cached .deb of PACKAGE:ARCH, downloaded once."""
    found = sorted(DEBS.glob(f"{package}_*_{arch}.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        unavailable("no apt-get here to fetch Debian's packages")
    DEBS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o777)  # apt downloads as _apt
        got = subprocess.run(
            ["apt-get", "download", "-qq", f"{package}:{arch}"], cwd=tmp, capture_output=True, text=True, check=False
        )
        files = list(Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not files:
            unavailable(f"apt-get download {package}:{arch} failed: {got.stderr.strip()[-300:]}")
        target = DEBS / files[0].name
        shutil.move(str(files[0]), target)
    return target


def layer_of(*packages: tuple[str, str], drop: tuple[str, ...] = ()) -> bytes:
    """A gzip layer of the packages' files, as dpkg would unpack them, less ``drop``."""
    with tempfile.TemporaryDirectory() as root:
        for package in packages:
            subprocess.run(["dpkg-deb", "-x", str(deb(*package)), root], check=True)
        for path in drop:
            Path(root, path.lstrip("/")).unlink()
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:
            for path in sorted(Path(root).rglob("*")):
                tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
        return out.getvalue()


def fs_of(blob: bytes) -> Filesystem:
    fs = Filesystem()
    fs.apply_layer(io.BytesIO(blob), "debian")
    return fs


@pytest.fixture(scope="module")
def armhf() -> Filesystem:
    return fs_of(layer_of(("libc6", "armhf"), ("libgcrypt20", "armhf")))


def test_armhf_libc_has_its_loader_path_read(armhf):
    # PT_INTERP at 1,077,680 of 1,102,644 bytes in Debian 12's build.
    node = armhf.lookup("/lib/arm-linux-gnueabihf/libc.so.6")
    assert node.elf_error is None, node.elf_error
    assert node.elf.interp == "/lib/ld-linux-armhf.so.3"
    assert node.elf.library


def test_armhf_passes_on_arm_v7_with_the_libgcrypt_warning(armhf):
    got = check_elf(P("linux/arm/v7"), armhf)
    assert got.outcome == PASSED, got.detail
    (warning,) = got.warnings
    assert re.fullmatch(
        r"/usr/lib/arm-linux-gnueabihf/libgcrypt\.so\.20\.[\d.]+ is a shared library marked ARMv8-A "
        r"\(Tag_CPU_arch 14\); linux/arm/v7 CPUs run at most ARMv7, but libraries often choose such code "
        r"at run time, after checking the CPU",
        warning,
    ), warning
    assert got.detail.endswith("; 1 file passes with a warning")
    assert check_elf(P("linux/arm/v7"), armhf, strict=True).outcome == FAILED


def test_the_kind_of_every_file_agrees_with_its_dynamic_section(armhf):
    """ET_DYN with DF_1_PIE is an executable, with DT_SONAME or without a loader a library,
    as pyelftools reads the same files; ld.so and libc.so.6 (which has a loader) included."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    with tempfile.TemporaryDirectory() as root:
        for package in (("libc6", "armhf"), ("libgcrypt20", "armhf")):
            subprocess.run(["dpkg-deb", "-x", str(deb(*package)), root], check=True)
        checked = 0
        for path, node in armhf.elf_files():
            with open(Path(root, path.lstrip("/")), "rb") as fh:
                elf = ELFFile(fh)
                tags = {
                    t.entry.d_tag: t.entry.d_val
                    for s in elf.iter_sections()
                    if isinstance(s, DynamicSection)
                    for t in s.iter_tags()
                }
                has_interp = any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())
                pie = bool(tags.get("DT_FLAGS_1", 0) & 0x08000000)
                library = elf["e_type"] == "ET_DYN" and not pie and ("DT_SONAME" in tags or not has_interp)
            assert node.elf.library == library, path
            checked += 1
        assert checked > 250  # glibc's gconv modules among them


def test_armhf_glibc_in_arm64_is_aarch32_compat_code():
    fs = fs_of(layer_of(("libc6", "arm64"), ("libc6", "armhf")))
    got = check_elf(P("linux/arm64"), fs)
    assert got.outcome == PASSED, got.detail
    assert got.warnings
    assert all("32-bit ARM compat code, which needs AArch32" in w for w in got.warnings), got.warnings
    assert all("arm-linux-gnueabihf" in w for w in got.warnings), got.warnings
    assert len(got.warnings) <= 3  # a few directories, not one line per file


def test_libc6_i386_in_amd64_is_x86_compat_code():
    fs = fs_of(layer_of(("libc6", "amd64"), ("libc6-i386", "amd64")))
    got = check_elf(P("linux/amd64"), fs)
    assert got.outcome == PASSED, got.detail
    assert got.warnings
    assert all("ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs" in w for w in got.warnings)
    assert len(got.warnings) <= 3
    assert "with a warning" in got.detail


def test_libc6_i386_without_its_loader_fails():
    # The i386 libc.so.6 asks for /lib/ld-linux.so.2: without it, 32-bit programs cannot start.
    fs = fs_of(layer_of(("libc6", "amd64"), ("libc6-i386", "amd64"), drop=("/lib/ld-linux.so.2",)))
    assert fs.lookup("/lib/ld-linux.so.2") is None
    got = check_elf(P("linux/amd64"), fs)
    assert got.outcome == FAILED
    assert "libc.so.6 is dynamically linked but its loader /lib/ld-linux.so.2 is not in the image" in got.detail
