"""ABI, Go and path-selection rules of the ELF audit, on files made to order."""

from __future__ import annotations

import struct

import pytest
from elfcraft import elf_for, make_elf
from layerkit import entry, fs_of

from harness import elf
from harness.checks import FAILED, PASSED, check_elf
from harness.platform import Platform

P = Platform.parse


def go_binary(platform: str, **settings: str) -> bytes:
    """An ELF file carrying Go 1.18+ build info with these build settings."""
    modinfo = "path\texample.com/app\n" + "".join(f"build\t{k}={v}\n" for k, v in settings.items())
    body = (
        elf.GO_BUILDINFO_MAGIC
        + bytes([8, 2])
        + b"\0" * 16
        + bytes([len("go1.22.1")])
        + b"go1.22.1"
        + bytes([len(modinfo)])
        + modinfo.encode()
    )
    return elf_for(platform) + GO_NOTE + b"\0" * 100 + body


# The build ID note Go's linker writes after the headers: namesz, descsz, type 4, "Go".
GO_NOTE = struct.pack("<III", 4, 8, 4) + b"Go\0\0" + b"buildid!"


def test_go_build_settings_are_read():
    info = elf.parse(go_binary("linux/arm64", GOARCH="arm64", GOOS="linux"))
    assert info.go_settings == {"GOARCH": "arm64", "GOOS": "linux"}


@pytest.mark.parametrize(
    ("platform", "settings", "outcome", "says"),
    [
        ("linux/arm64", {"GOARCH": "arm64"}, PASSED, ""),
        ("linux/arm64", {"GOARCH": "amd64"}, FAILED, "built with GOARCH=amd64, not arm64"),
        ("linux/arm/v6", {"GOARCH": "arm", "GOARM": "7"}, FAILED, "GOARM=7; linux/arm/v6 CPUs are level 6"),
        ("linux/arm/v7", {"GOARCH": "arm", "GOARM": "6"}, PASSED, ""),
        ("linux/arm/v6", {"GOARCH": "arm", "GOARM": "6,softfloat"}, PASSED, ""),
        ("linux/amd64", {"GOARCH": "amd64", "GOAMD64": "v3"}, FAILED, "GOAMD64=v3; linux/amd64 CPUs are level 1"),
        ("linux/amd64", {"GOARCH": "amd64", "GOAMD64": "v1"}, PASSED, ""),
    ],
)
def test_go_settings_against_the_platform(platform, settings, outcome, says):
    got = check_elf(P(platform), fs_of(entry("usr/bin/app", go_binary(platform, **settings))))
    assert got.outcome == outcome, got.detail
    assert says in got.detail


def test_go_info_past_the_first_chunk_is_found():
    # The build info of real Go binaries sits megabytes into the file.
    far = go_binary("linux/s390x", GOARCH="amd64")
    data = elf_for("linux/s390x") + GO_NOTE + b"\0" * (3 << 20) + far[far.index(elf.GO_BUILDINFO_MAGIC) :]
    got = check_elf(P("linux/s390x"), fs_of(entry("bin/app", data)))
    assert "GOARCH=amd64" in got.detail


def test_float_abi_must_match_the_loader():
    soft = make_elf(elf_class=32, machine=40, flags=0x05000200, interp="/lib/ld-linux-armhf.so.3", arm_cpu_arch=10)
    loader = make_elf(elf_class=32, machine=40, flags=0x05000400, arm_cpu_arch=10)
    got = check_elf(P("linux/arm/v7"), fs_of(entry("usr/bin/app", soft), entry("lib/ld-linux-armhf.so.3", loader)))
    assert got.outcome == FAILED
    assert "is EABI5 soft-float but its loader /lib/ld-linux-armhf.so.3 is EABI5 hard-float" in got.detail


def test_matching_abi_passes():
    hard = make_elf(elf_class=32, machine=40, flags=0x05000400, interp="/lib/ld-linux-armhf.so.3", arm_cpu_arch=10)
    loader = make_elf(elf_class=32, machine=40, flags=0x05000400, arm_cpu_arch=10)
    got = check_elf(P("linux/arm/v7"), fs_of(entry("usr/bin/app", hard), entry("lib/ld-linux-armhf.so.3", loader)))
    assert got.outcome == PASSED, got.detail


def test_riscv_float_abi_against_loader():
    app = make_elf(machine=243, flags=0x1, interp="/lib/ld-linux-riscv64-lp64.so.1")  # lp64 soft-float
    loader = make_elf(machine=243, flags=0x5)  # lp64d
    got = check_elf(P("linux/riscv64"), fs_of(entry("bin/app", app), entry("lib/ld-linux-riscv64-lp64.so.1", loader)))
    assert "soft-float but its loader" in got.detail


def test_ppc64le_elfv1_is_reported():
    got = check_elf(P("linux/ppc64le"), fs_of(entry("bin/app", make_elf(machine=21, flags=1))))
    assert "uses the ELFv1 ABI; ppc64le needs ELFv2" in got.detail


def test_arm_oabi_is_reported():
    got = check_elf(P("linux/arm/v5"), fs_of(entry("bin/app", make_elf(elf_class=32, machine=40, flags=0))))
    assert "old ARM ABI (OABI)" in got.detail


def test_mips_r6_in_an_r2_platform():
    got = check_elf(P("linux/mips64le"), fs_of(entry("bin/app", make_elf(machine=8, flags=0xA0000000))))
    assert "needs a MIPS release 6 CPU" in got.detail


def test_include_and_exclude_globs():
    fs = fs_of(
        entry("bin/busybox", elf_for("linux/arm64")),
        entry("lib/firmware/dsp.elf", elf_for("linux/arm/v7")),
        entry("opt/tools/x", elf_for("linux/amd64")),
    )
    assert check_elf(P("linux/arm64"), fs).outcome == FAILED
    got = check_elf(P("linux/arm64"), fs, exclude=["/lib/firmware/*", "/opt/tools/*"])
    assert got.outcome == PASSED, got.detail
    got = check_elf(P("linux/arm64"), fs, include=["/bin/*"])
    assert got.detail == "1 ELF file ELF64 LSB AArch64 (EM_AARCH64)"


def test_large_arm_file_is_buffered_not_held(monkeypatch):
    from harness import layers

    monkeypatch.setattr(layers, "SPOOL_IN_MEMORY", 1 << 16)
    big = make_elf(elf_class=32, machine=40, flags=0x05000400, arm_cpu_arch=10, padding=1 << 20)
    got = check_elf(P("linux/arm/v6"), fs_of(entry("bin/big", big)))
    assert "needs ARMv7" in got.detail
