from __future__ import annotations

import pytest
from elfcraft import PLATFORM_ELF, elf_for, make_elf

from harness import elf


@pytest.mark.parametrize("platform", sorted(PLATFORM_ELF))
def test_identity_of_each_platform(platform):
    cls, big, machine, flags = PLATFORM_ELF[platform]
    info = elf.parse(elf_for(platform), platform)
    assert (info.elf_class, info.big_endian, info.machine, info.flags) == (cls, big, machine, flags)


@pytest.mark.parametrize(("variant", "level"), [("linux/arm/v7", 10), ("linux/arm/v6", 6), ("linux/arm/v5", 4)])
def test_arm_level_from_attributes(variant, level):
    assert elf.parse(elf_for(variant)).arm_cpu_arch == level


def test_arm_without_attributes_has_no_level():
    # Go binaries carry no .ARM.attributes.
    assert elf.parse(make_elf(elf_class=32, machine=40)).arm_cpu_arch is None


def test_loader_path_is_read():
    data = elf_for("linux/s390x", interp="/lib/ld64.so.1")
    assert elf.parse(data).interp == "/lib/ld64.so.1"
    assert elf.parse(elf_for("linux/386", interp="/lib/ld-linux.so.2")).interp == "/lib/ld-linux.so.2"


def test_needed_bytes_reaches_the_loader_path():
    data = elf_for("linux/amd64", interp="/lib64/ld-linux-x86-64.so.2", padding=0)
    need = elf.needed_bytes(data[: 64 * 1024], "x")
    assert 0 < need <= len(data)
    assert elf.parse(data[:need]).interp == "/lib64/ld-linux-x86-64.so.2"
    assert elf.needed_bytes(elf_for("linux/arm/v7"), "x") == -1  # ARM: the whole file


def test_osabi_gnu_is_accepted():
    assert elf.parse(make_elf(osabi=3)).osabi == 3


@pytest.mark.parametrize("cut", [4, 20, 51, 60])
def test_truncated_headers_name_the_file(cut):
    with pytest.raises(elf.ELFError, match="usr/bin/tool: truncated"):
        elf.parse(elf_for("linux/amd64")[:cut], "/usr/bin/tool")


def test_bad_ident_is_an_error():
    data = bytearray(elf_for("linux/amd64"))
    data[4] = 9
    with pytest.raises(elf.ELFError, match="invalid ELF ident"):
        elf.parse(bytes(data), "/x")


def test_truncated_program_headers_are_an_error():
    data = elf_for("linux/amd64", interp="/lib/ld.so")
    with pytest.raises(elf.ELFError, match="/x: truncated program header table"):
        elf.parse(data[:70], "/x")


def test_interp_outside_the_file_is_an_error():
    data = bytearray(elf_for("linux/amd64", interp="/lib/ld.so"))
    data[64 + 8 : 64 + 16] = (1 << 40).to_bytes(8, "little")  # p_offset of PT_INTERP
    with pytest.raises(elf.ELFError, match="/x: PT_INTERP points outside"):
        elf.parse(bytes(data), "/x")


def test_hostile_program_header_count():
    data = bytearray(elf_for("linux/amd64", interp="/lib/ld.so"))
    data[56:58] = (60000).to_bytes(2, "little")  # e_phnum
    with pytest.raises(elf.ELFError, match="bad program header table"):
        elf.parse(bytes(data), "/x")


@pytest.mark.parametrize(
    ("offset", "patch"),
    [
        (-4, b"\xff\xff\xff\x7f"),  # subsection length far past the section
        (-4, b"\0\0\0\0"),  # zero length: loops forever in a naive reader
        (7, b"\0\0\0\0"),  # zero attribute block size
        (-5, b"B"),
    ],  # unknown format version
)
def test_hostile_arm_attributes_are_an_error_not_a_hang(offset, patch):
    data = bytearray(elf_for("linux/arm/v7"))
    idx = data.index(b"aeabi") + offset
    data[idx : idx + len(patch)] = patch
    with pytest.raises(elf.ELFError, match="/x: unreadable ARM attributes"):
        elf.parse(bytes(data), "/x")


def test_attributes_with_strings_before_the_arch_tag():
    from elfcraft import arm_attributes

    # Real toolchains put Tag_CPU_name ("7-A") before Tag_CPU_arch.
    section = arm_attributes(10, prefix=b"\x05" + b"7-A\0" + b"\x04" + b"cortex-a9\0")
    assert elf._tag_cpu_arch(section) == 10


def test_description():
    assert elf.parse(elf_for("linux/arm64")).description == "ELF64 LSB AArch64 (EM_AARCH64)"
    assert elf.parse(elf_for("linux/arm/v7")).description == "ELF32 LSB ARM (EM_ARM) ARMv7"
