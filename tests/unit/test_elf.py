from __future__ import annotations

import io
import struct

import pytest
from elfcraft import PIE, PLATFORM_ELF, SONAME, elf_for, make_elf

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


def test_reads_needed_past_the_head():
    near = elf_for("linux/amd64", interp="/lib64/ld-linux-x86-64.so.2")
    assert elf.reads_needed(near[: elf.HEAD_BYTES], "x") == elf.Reads()  # all within the head
    far = elf_for("linux/amd64", interp="/lib64/ld-linux-x86-64.so.2", lead=100_000)
    reads = elf.reads_needed(far[: elf.HEAD_BYTES], "x")
    assert reads == elf.Reads(ranges=((64 + 56 + 100_000, 28),))  # the loader path alone
    ((off, size),) = reads.ranges
    assert elf.parse(far[: elf.HEAD_BYTES], ranges={off: far[off : off + size]}).interp == "/lib64/ld-linux-x86-64.so.2"
    assert elf.reads_needed(elf_for("linux/arm/v7"), "x").whole  # ARM: the section table, near the end
    late = elf_for("linux/s390x", interp="/lib/ld64.so.1", lead=100_000, late_phdrs=True)
    assert elf.reads_needed(late[: elf.HEAD_BYTES], "x").whole  # what they point to is not known yet


def test_arm_loader_path_past_the_head_is_read():
    # Debian armhf's libc.so.6 has its PT_INTERP at 1,077,680 of 1,102,644 bytes; the ARM
    # attributes' whole-file read must serve the loader path too.
    data = make_elf(
        elf_class=32,
        machine=40,
        flags=0x05000400,
        etype=3,
        interp="/lib/ld-linux-armhf.so.3",
        arm_cpu_arch=10,
        lead=1_077_000,
        dynamic=SONAME,
    )
    info = elf.parse(data[: elf.HEAD_BYTES], "/lib/libc.so.6", whole=io.BytesIO(data))
    assert (info.interp, info.arm_cpu_arch, info.library) == ("/lib/ld-linux-armhf.so.3", 10, True)


def phoff(data: bytes) -> int:
    """e_phoff of an ELF header."""
    end, is64 = ">" if data[5] == 2 else "<", data[4] == 2
    return struct.unpack_from(end + ("Q" if is64 else "I"), data, 32 if is64 else 28)[0]


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/s390x", "linux/arm/v7", "linux/386"])
def test_program_headers_past_the_head_are_read(platform):
    data = elf_for(platform, interp="/lib/ld.so.1", lead=200_000, late_phdrs=True)
    assert phoff(data) > elf.HEAD_BYTES
    info = elf.parse(data[: elf.HEAD_BYTES], "/x", whole=io.BytesIO(data))
    assert info.interp == "/lib/ld.so.1"
    with pytest.raises(elf.ELFError, match="/x: truncated program header table"):
        elf.parse(data[: elf.HEAD_BYTES], "/x")  # without the rest of the file


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


def _patch(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


# ELF32 header fields: e_shoff at 32 (I), e_shentsize at 46 (H), e_shnum at 48 (H).
@pytest.mark.parametrize(
    ("at", "fmt", "value", "says"),
    [
        (32, "<I", 0xFFFFFF00, "section table at"),  # past the end of the file
        (46, "<H", 0, "section header entries of 0 bytes"),
        (46, "<H", 0xFFFF, "section header entries of 65535 bytes"),
        (48, "<H", 0xFFFF, "runs past the file"),
    ],
)
def test_hostile_section_tables_are_errors(at, fmt, value, says):
    data = _patch(elf_for("linux/arm/v7"), at, fmt, value)
    with pytest.raises(elf.ELFError, match=f"/x: unreadable ARM attributes \\(.*{says}"):
        elf.parse(data, "/x")


def test_extended_section_count_is_bounded():
    data = elf_for("linux/arm/v7")
    shoff = struct.unpack_from("<I", data, 32)[0]
    data = _patch(_patch(data, 48, "<H", 0), shoff + 20, "<I", 1 << 30)  # e_shnum 0: sh_size of entry 0
    with pytest.raises(elf.ELFError, match=r"unreadable ARM attributes .*1073741824 sections"):
        elf.parse(data, "/x")


def test_attributes_outside_the_file_are_an_error():
    data = elf_for("linux/arm/v7")
    shoff = struct.unpack_from("<I", data, 32)[0]
    data = _patch(data, shoff + 40 + 16, "<I", 0xFFFFFF00)  # sh_offset of .ARM.attributes
    with pytest.raises(elf.ELFError, match="attributes section at 4294967040"):
        elf.parse(data, "/x")


def test_offsets_no_file_reaches_are_errors_not_crashes():
    # An ELF64 ARM file with 2**63 offsets, read through a seekable copy.
    data = make_elf(elf_class=64, machine=40, flags=0x05000400, arm_cpu_arch=10, interp="/lib/ld.so")
    data = _patch(data, 40, "<Q", 1 << 63)  # e_shoff
    with pytest.raises(elf.ELFError, match="section table at"):
        elf.parse(data[:100], "/x", whole=io.BytesIO(data))
    data = _patch(data, 64 + 8, "<Q", (1 << 64) - 1)  # p_offset of PT_INTERP
    with pytest.raises(elf.ELFError, match="PT_INTERP points outside the file"):
        elf.parse(data[:200], "/x", whole=io.BytesIO(data))


def test_a_dynamic_section_past_the_file_is_no_error():
    # A static PIE says so in its dynamic section; unreadable, the file is judged without it.
    data = make_elf(elf_class=32, machine=40, flags=0x05000400, etype=3, arm_cpu_arch=10, dynamic=PIE)
    assert not elf.parse(data, "/usr/bin/app").library
    cut = _patch(data, 52 + 16, "<I", 1 << 30)  # p_filesz of PT_DYNAMIC, far past the file
    assert elf.parse(cut, "/usr/bin/app").library  # ET_DYN without a loader
