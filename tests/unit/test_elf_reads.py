"""What the layer reader and the ELF parser read past a file's first 64 KiB, for every
machine, in bounded memory; and how a shared library is told from an executable."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from elfcraft import PIE, SONAME, arm, elf_for
from layerkit import entry, fs_of, layer

from harness import elf, layers
from harness.checks import PASSED, check_elf
from harness.layers import Filesystem
from harness.platform import Platform

P = Platform.parse
LD_ARMHF = "/lib/ld-linux-armhf.so.3"


def test_arm_shared_object_with_its_loader_path_past_64k():
    # Debian armhf's libc.so.6: PT_INTERP at 1,077,680 of 1,102,644 bytes.
    libc = arm(etype=3, interp=LD_ARMHF, lead=1_077_000, dynamic=SONAME)
    fs = fs_of(entry("lib/arm-linux-gnueabihf/libc.so.6", libc), entry(LD_ARMHF[1:], arm(etype=3)))
    node = fs.lookup("/lib/arm-linux-gnueabihf/libc.so.6")
    assert node.elf_error is None
    assert node.elf.interp == LD_ARMHF
    got = check_elf(P("linux/arm/v7"), fs)
    assert got.outcome == PASSED, got.detail


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/s390x", "linux/ppc64le", "linux/arm/v7"])
def test_program_headers_past_64k(platform):
    data = elf_for(platform, interp="/lib/ld.so.1", lead=300_000, late_phdrs=True)
    node = fs_of(entry("usr/bin/app", data)).lookup("/usr/bin/app")
    assert node.elf_error is None
    assert node.elf.interp == "/lib/ld.so.1"


LD_X86_64 = "/lib64/ld-linux-x86-64.so.2"


def _indexed(member) -> tuple[Filesystem, int]:
    """The filesystem of a layer holding ``member``, and the peak of memory taken to index it
    (the layer's own bytes left out: they are made before the count starts)."""
    blob = layer([member])
    tracemalloc.start()
    try:
        fs = Filesystem()
        fs.apply_layer(io.BytesIO(blob), "l0")
        return fs, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loader_path_far_into_a_large_file_is_kept_alone():
    """Only the loader path's bytes are kept, not the 40 MB before it."""
    fs, peak = _indexed(entry("usr/lib/libbig.so.1", elf_for("linux/amd64", interp=LD_X86_64, lead=40 << 20)))
    assert fs.lookup("/usr/lib/libbig.so.1").elf.interp == LD_X86_64
    assert peak < 8 << 20, f"{peak:,} bytes held"


@pytest.mark.parametrize("machine", ["linux/s390x", "linux/arm/v7"])
def test_large_file_with_late_program_headers_is_spooled_not_held(monkeypatch, machine):
    monkeypatch.setattr(layers, "SPOOL_IN_MEMORY", 1 << 20)
    fs, peak = _indexed(entry("usr/bin/big", elf_for(machine, interp="/lib/ld.so.1", lead=40 << 20, late_phdrs=True)))
    assert fs.lookup("/usr/bin/big").elf.interp == "/lib/ld.so.1"
    assert peak < 8 << 20, f"{peak:,} bytes held"


# --- shared library or executable --------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kw", "library"),
    [
        ("usr/bin/app", {"etype": 2, "interp": LD_ARMHF}, False),  # ET_EXEC
        ("usr/bin/app", {"etype": 3, "interp": LD_ARMHF, "dynamic": PIE}, False),  # a PIE
        ("usr/lib/libz.so.1", {"etype": 3, "interp": LD_ARMHF, "dynamic": PIE}, False),  # PIE, whatever its name
        ("lib/libc.so.6", {"etype": 3, "interp": LD_ARMHF, "dynamic": SONAME}, True),  # glibc: a loader and a soname
        ("usr/bin/app", {"etype": 3, "interp": LD_ARMHF, "dynamic": SONAME}, True),
        ("usr/lib/gconv/IBM1047.so", {"etype": 3, "dynamic": ()}, True),  # no PT_INTERP, no soname
        ("usr/lib/libold.so.2.1.0", {"etype": 3, "interp": LD_ARMHF, "dynamic": ()}, True),  # by name
        ("usr/bin/old-pie", {"etype": 3, "interp": LD_ARMHF, "dynamic": ()}, False),  # by name
        ("usr/bin/static-pie", {"etype": 3, "dynamic": PIE}, False),
        ("usr/lib/crt1.o", {"etype": 1}, False),  # relocatable: not a library
    ],
)
def test_library_or_executable(name, kw, library):
    assert elf.parse(arm(**kw), "/" + name).library is library


def test_the_dynamic_section_decides_wherever_it_lies():
    # The dynamic section is read past the first 64 KiB too (the libs check needs it), so
    # it tells a PIE named like a library from one; without one, the name decides.
    def far(**kw) -> bytes:
        return elf_for("linux/amd64", etype=3, interp="/lib64/ld-linux-x86-64.so.2", lead=100_000, **kw)

    fs = fs_of(
        entry("lib/libc.so.6", far(dynamic=SONAME)),
        entry("usr/bin/bash", far(dynamic=PIE)),
        entry("usr/bin/tool.so", far(dynamic=PIE)),  # a PIE named like a library
        entry("usr/lib/x/module", elf_for("linux/amd64", etype=3, lead=100_000)),
    )
    kinds = {p: n.elf.library for p, n in fs.elf_files()}
    assert kinds == {
        "/lib/libc.so.6": True,
        "/usr/bin/bash": False,
        "/usr/bin/tool.so": False,
        "/usr/lib/x/module": True,
    }
    # Within the first 64 KiB, the dynamic section is read whatever the machine.
    assert not elf.parse(elf_for("linux/amd64", etype=3, interp="/lib64/ld", dynamic=PIE), "/usr/bin/tool.so").library


def test_the_layer_index_records_the_kind():
    info = elf.parse(arm(etype=3, dynamic=SONAME), "/lib/libx.so.1")
    assert info.library
    assert elf.ELFInfo.from_json(info.to_json()) == info
    assert layers.INDEX_FORMAT >= 3  # indexes written before libraries were told apart are not read
