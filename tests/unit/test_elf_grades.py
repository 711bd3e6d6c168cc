"""Graded ELF findings: errors fail the elf check, warnings pass it (and fail it under
``strict``)."""

from __future__ import annotations

import pytest
from elfcraft import PIE, SONAME, arm, elf_for, make_elf
from layerkit import entry, fs_of

from harness import elf
from harness.checks import FAILED, MAX_LISTED, PASSED, brief, check_elf
from harness.platform import Platform

P = Platform.parse
ARMEL = 0x05000200
LD_ARMHF = "/lib/ld-linux-armhf.so.3"
LD_I386 = "/lib/ld-linux.so.2"


def i386(**kw) -> bytes:
    return make_elf(elf_class=32, machine=3, **kw)


# --- ARM levels ---------------------------------------------------------------------------
def test_shared_library_above_the_variant_warns():
    # Debian armhf's libgcrypt.so.20.4.1 says ARMv8-A and runs on ARMv7: it picks its ARMv8
    # crypto code at run time.
    lib = arm(14, etype=3, dynamic=SONAME)
    got = check_elf(P("linux/arm/v7"), fs_of(entry("usr/lib/arm-linux-gnueabihf/libgcrypt.so.20.4.1", lib)))
    assert got.outcome == PASSED, got.detail
    assert got.warnings == (
        "/usr/lib/arm-linux-gnueabihf/libgcrypt.so.20.4.1 is a shared library marked ARMv8-A (Tag_CPU_arch 14); "
        "linux/arm/v7 CPUs run at most ARMv7, but libraries often choose such code at run time, "
        "after checking the CPU",
    )
    assert "1 file passes with a warning" in got.detail


def test_executable_above_the_variant_is_an_error():
    pie = arm(14, etype=3, interp=LD_ARMHF, dynamic=PIE)
    got = check_elf(P("linux/arm/v7"), fs_of(entry("usr/bin/app", pie), entry(LD_ARMHF[1:], arm(etype=3))))
    assert got.outcome == FAILED
    assert "/usr/bin/app needs ARMv8-A (Tag_CPU_arch 14); linux/arm/v7 CPUs run at most ARMv7" in got.detail
    assert got.warnings == ()


def test_library_and_executable_together():
    fs = fs_of(
        entry("usr/bin/app", arm(10, etype=2)),
        entry("usr/lib/libfast.so.1", arm(14, etype=3, dynamic=SONAME)),
    )
    got = check_elf(P("linux/arm/v6"), fs)
    assert got.outcome == FAILED
    assert got.detail.startswith("1 of 2 ELF files do not fit linux/arm/v6: /usr/bin/app needs ARMv7")
    assert got.detail.endswith("; 1 file passes with a warning")
    assert got.warnings[0].startswith("/usr/lib/libfast.so.1 is a shared library marked ARMv8-A")


# --- 32-bit compat code -------------------------------------------------------------------
def test_i386_in_amd64_warns():
    fs = fs_of(
        entry("usr/bin/app", elf_for("linux/amd64")),
        entry("usr/lib32/libc.so.6", i386(etype=3, interp=LD_I386, dynamic=SONAME)),
        entry(LD_I386[1:], i386(etype=3)),
    )
    got = check_elf(P("linux/amd64"), fs)
    assert got.outcome == PASSED, got.detail
    assert got.warnings == (
        "/lib/ld-linux.so.2 is ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs",
        "/usr/lib32/libc.so.6 is ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs",
    )
    assert got.detail == (
        "3 ELF files: 1 ELF64 LSB x86-64 (EM_X86_64), 2 32-bit compat code; 2 files pass with a warning"
    )


def test_i386_in_amd64_without_its_loader_is_an_error():
    fs = fs_of(entry("usr/lib32/bin/tool", i386(interp=LD_I386)))
    got = check_elf(P("linux/amd64"), fs)
    assert got.outcome == FAILED
    assert (
        "/usr/lib32/bin/tool is dynamically linked but its loader /lib/ld-linux.so.2 is not in the image" in got.detail
    )
    # Still compat code: the warning stays, the error is the missing loader.
    assert got.warnings == (
        "/usr/lib32/bin/tool is ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs",
    )


def test_arm32_in_arm64_warns_of_aarch32():
    fs = fs_of(
        entry("usr/lib/arm-linux-gnueabihf/libc.so.6", arm(10, etype=3, interp=LD_ARMHF, dynamic=SONAME)),
        entry(LD_ARMHF[1:], arm(10, etype=3)),
        entry("usr/bin/app", elf_for("linux/arm64")),
    )
    got = check_elf(P("linux/arm64"), fs)
    assert got.outcome == PASSED, got.detail
    assert len(got.warnings) == 2
    assert all("32-bit ARM compat code, which needs AArch32" in w for w in got.warnings)
    assert "Apple M-series and newer Neoverse CPUs lack it" in got.warnings[0]
    assert got.warnings[1].startswith("/usr/lib/arm-linux-gnueabihf/libc.so.6 is ELF32 LSB ARM EABI5 hard-float:")


def test_arm32_level_does_not_matter_in_arm64():
    # AArch32 runs ARMv8 code: the ARM level of compat code is no finding.
    got = check_elf(P("linux/arm64"), fs_of(entry("usr/bin/tool32", arm(14, etype=2))))
    assert got.outcome == PASSED, got.detail
    assert "Tag_CPU_arch" not in got.detail + " ".join(got.warnings)


def test_arm32_executable_with_the_wrong_float_abi_in_arm64_is_an_error():
    fs = fs_of(entry("usr/bin/tool32", arm(10, flags=ARMEL, interp=LD_ARMHF)), entry(LD_ARMHF[1:], arm(10)))
    got = check_elf(P("linux/arm64"), fs)
    assert got.outcome == FAILED
    assert (
        "/usr/bin/tool32 is EABI5 soft-float but its loader /lib/ld-linux-armhf.so.3 is EABI5 hard-float" in got.detail
    )


def test_old_abi_arm_in_arm64_is_an_error():
    got = check_elf(P("linux/arm64"), fs_of(entry("bin/oabi", make_elf(elf_class=32, machine=40, flags=0))))
    assert got.outcome == FAILED
    assert "/bin/oabi is ELF32 LSB ARM (EM_ARM), expected ELF64 LSB AArch64 (EM_AARCH64)" in got.detail


def test_compat_go_binary_is_judged_as_its_own_architecture():
    from test_elf_rules import GO_NOTE

    def go(goarch: str) -> bytes:
        modinfo = f"path\texample.com/app\nbuild\tGOARCH={goarch}\n"
        info = elf.GO_BUILDINFO_MAGIC + bytes([4, 2]) + b"\0" * 16 + b"\x08go1.22.1" + bytes([len(modinfo)])
        return i386() + GO_NOTE + info + modinfo.encode()

    assert check_elf(P("linux/amd64"), fs_of(entry("opt/app32", go("386")))).outcome == PASSED
    got = check_elf(P("linux/amd64"), fs_of(entry("opt/app32", go("arm"))))
    assert "built with GOARCH=arm, not 386" in got.detail


@pytest.mark.parametrize(
    ("platform", "binary"),
    [
        ("linux/ppc64le", make_elf(elf_class=32, machine=20, big_endian=True)),  # ppc32
        ("linux/s390x", make_elf(elf_class=32, machine=22, big_endian=True)),  # s390 31-bit
        ("linux/arm64", make_elf(elf_class=32, machine=3)),  # i386 on ARM
        ("linux/amd64", make_elf(elf_class=32, machine=62)),  # x32
        ("linux/386", elf_for("linux/amd64")),  # 64-bit code in a 32-bit image
    ],
)
def test_other_foreign_code_stays_an_error(platform, binary):
    got = check_elf(P(platform), fs_of(entry("usr/bin/tool", binary)))
    assert got.outcome == FAILED
    assert got.warnings == ()
    assert "/usr/bin/tool is ELF32" in got.detail or "/usr/bin/tool is ELF64" in got.detail


# --- summaries and strict -----------------------------------------------------------------
def test_many_compat_files_read_as_a_few_lines():
    # Debian's libc6-i386 puts 272 ELF32 files under /lib32 and /usr/lib32 of an amd64 root.
    fs = fs_of(
        *(entry(f"lib32/lib{i}.so.1", i386(etype=3)) for i in range(19)),
        *(entry(f"usr/lib32/gconv/M{i}.so", i386(etype=3)) for i in range(200)),
        *(entry(f"usr/lib32/lib{i}.so", i386(etype=3)) for i in range(53)),
        entry("usr/bin/app", elf_for("linux/amd64")),
    )
    got = check_elf(P("linux/amd64"), fs)
    assert got.outcome == PASSED
    assert got.warnings == (
        "19 files under /lib32 are ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs",
        "253 files under /usr/lib32 are ELF32 LSB Intel 80386: 32-bit x86 compat code, which every x86-64 CPU runs",
    )
    assert got.detail.endswith("; 272 files pass with a warning")


def test_warnings_are_capped():
    fs = fs_of(*(entry(f"opt/t{i}/lib.so", i386(etype=3)) for i in range(20)))
    got = check_elf(P("linux/amd64"), fs)
    assert len(got.warnings) == MAX_LISTED
    assert got.warnings[-1] == "and 13 more such findings, of 13 files"


def test_strict_turns_warnings_into_failures():
    fs = fs_of(
        entry("usr/lib32/libc.so.6", i386(etype=3)),
        entry("usr/lib/libgcrypt.so.20", elf_for("linux/amd64", etype=3)),
    )
    assert check_elf(P("linux/amd64"), fs).outcome == PASSED
    got = check_elf(P("linux/amd64"), fs, strict=True)
    assert got.outcome == FAILED
    assert got.detail == (
        "1 of 2 ELF files do not fit linux/amd64: /usr/lib32/libc.so.6 is ELF32 LSB Intel 80386: 32-bit x86 "
        "compat code, which every x86-64 CPU runs (warnings fail the check under --strict-elf)"
    )
    assert got.warnings == ()
    assert brief("elf: " + got.detail).startswith("elf: /usr/lib32/libc.so.6 is ELF32 LSB Intel 80386: 32-bit")


def test_strict_lists_errors_first():
    fs = fs_of(
        entry("usr/lib/libfast.so.1", arm(14, etype=3, dynamic=SONAME)),
        entry("usr/bin/app", arm(14, etype=2)),
    )
    got = check_elf(P("linux/arm/v7"), fs, strict=True)
    assert got.detail.startswith("2 of 2 ELF files do not fit linux/arm/v7: /usr/bin/app needs ARMv8-A")
    assert "; /usr/lib/libfast.so.1 is a shared library marked ARMv8-A" in got.detail


def test_strict_changes_nothing_without_warnings():
    fs = fs_of(entry("usr/bin/app", elf_for("linux/amd64")))
    assert check_elf(P("linux/amd64"), fs, strict=True) == check_elf(P("linux/amd64"), fs)


def test_warnings_are_in_the_json():
    from harness.records import CheckRecord, Subject

    subject = Subject("r/app:1", "sha256:i", P("linux/amd64"), "sha256:d", "native")
    assert CheckRecord(subject, "elf", PASSED, "ok").to_json() == {"outcome": PASSED, "detail": "ok"}
    assert CheckRecord(subject, "elf", PASSED, "ok", warnings=("a", "b")).to_json() == {
        "outcome": PASSED,
        "detail": "ok",
        "warnings": ["a", "b"],
    }
