"""The libs and pages checks' model of the dynamic loader (harness.loader): what the ELF
reader takes from a dynamic section, the order glibc and musl search in, the cache, the
symbol versions, and the sentences the checks make of them. Each image is the least that
shows one rule; the files are made by tests/elfcraft.py."""

from __future__ import annotations

import io
import posixpath
import struct
from collections.abc import Iterable, Sequence

import pytest
from elfcraft import ARMHF, PIE, TABLES_VADDR, Version, elf_for, make_elf
from layerkit import entry, fs_of, layer

from harness import elf, layers
from harness.checks import FAILED, NO_DYNAMIC, PASSED, SKIPPED, check_libs, check_pages
from harness.elf import HEAD_BYTES, Dynamic, ELFInfo
from harness.layers import Filesystem, index_layer
from harness.loader import Closure, Flavor, Resolver
from harness.platform import Platform

P = Platform.parse
AMD64 = "linux/amd64"
#: Debian's loader of each platform: the path PT_INTERP names, and its multiarch triplet
#: (the loader itself lives in /lib/TRIPLET).
GLIBC = {
    "linux/amd64": ("/lib64/ld-linux-x86-64.so.2", "x86_64-linux-gnu"),
    "linux/386": ("/lib/ld-linux.so.2", "i386-linux-gnu"),
    "linux/arm64": ("/lib/ld-linux-aarch64.so.1", "aarch64-linux-gnu"),
    "linux/arm/v7": ("/lib/ld-linux-armhf.so.3", "arm-linux-gnueabihf"),
    "linux/ppc64le": ("/lib64/ld64.so.2", "powerpc64le-linux-gnu"),
    "linux/s390x": ("/lib/ld64.so.1", "s390x-linux-gnu"),
    "linux/riscv64": ("/lib/ld-linux-riscv64-lp64d.so.1", "riscv64-linux-gnu"),
}
T = "/lib/x86_64-linux-gnu"
UT = "/usr/lib/x86_64-linux-gnu"
SYSTEM = (T, UT, "/lib", "/usr/lib")
APP = "/usr/bin/app"
MUSL = "/lib/ld-musl-x86_64.so.1"

#: What an image holds: path -> file bytes, or the target of a symlink.
Files = dict[str, bytes | str]


def exe(platform: str = AMD64, **kw: object) -> bytes:
    """An executable of ``platform`` started by its Debian loader."""
    return elf_for(platform, interp=GLIBC[platform][0], **kw)


def lib(soname: str, platform: str = AMD64, **kw: object) -> bytes:
    """A shared library of ``platform`` with that soname."""
    return elf_for(platform, etype=3, soname=soname, **kw)


def loader_files(platform: str = AMD64) -> Files:
    """Debian's loader: the file in /lib/TRIPLET, and the path PT_INTERP names linking to it."""
    interp, triplet = GLIBC[platform]
    real = f"/lib/{triplet}/{posixpath.basename(interp)}"
    out: Files = {real: lib(posixpath.basename(interp), platform)}
    if interp != real:
        out[interp] = real
    return out


def image(files: Files, *, platform: str | None = AMD64) -> Filesystem:
    """The filesystem of one layer holding ``files`` (and ``platform``'s Debian loader,
    unless None)."""
    everything = {**(loader_files(platform) if platform else {}), **files}
    return fs_of(
        *(
            entry(path.lstrip("/"), link=what) if isinstance(what, str) else entry(path.lstrip("/"), what)
            for path, what in everything.items()
        )
    )


def closure(fs: Filesystem, root: str = APP, env: Iterable[str] = ()) -> Closure:
    return Resolver(fs, env).closure(root)


def found(fs: Filesystem, root: str = APP, env: Iterable[str] = ()) -> dict[str, str | None]:
    """Each name ``root`` loads -> the file it resolves to (None: not found)."""
    return closure(fs, root, env).resolution()


def paths(fs: Filesystem, root: str = APP, env: Iterable[str] = ()) -> dict[str, str]:
    """Each name ``root`` loads -> the path it was found at, as ``ld.so --list`` prints it."""
    return {lib.name: lib.path for lib in closure(fs, root, env).loaded}


# --- what the ELF reader takes from a dynamic section --------------------------------------
EVERYTHING: dict[str, object] = {
    "needed": ("libc.so.6", "libm.so.6", "/opt/x/libx.so"),
    "soname": "libwhole.so.1",
    "rpath": "$ORIGIN/../lib:/opt/rpath",
    "runpath": "${ORIGIN}/run:/opt/runpath",
    "nodeflib": True,
    "verneed": (
        ("libc.so.6", ("GLIBC_2.34", ("GLIBC_2.2.5", True), "GLIBC_PRIVATE")),
        ("libm.so.6", (("GLIBC_2.29", False),)),
    ),
    "verdef": ("WHOLE_1.0", "WHOLE_1.1", "WHOLE_PRIVATE"),
}
WHOLE = Dynamic(
    needed=("libc.so.6", "libm.so.6", "/opt/x/libx.so"),
    soname="libwhole.so.1",
    rpath="$ORIGIN/../lib:/opt/rpath",
    runpath="${ORIGIN}/run:/opt/runpath",
    nodeflib=True,
    verneed=(
        ("libc.so.6", (("GLIBC_2.34", False), ("GLIBC_2.2.5", True), ("GLIBC_PRIVATE", False))),
        ("libm.so.6", (("GLIBC_2.29", False),)),
    ),
    verdef=("WHOLE_1.0", "WHOLE_1.1", "WHOLE_PRIVATE"),  # the VER_FLG_BASE entry left out
)
#: Both classes and both byte orders.
CLASSES = pytest.mark.parametrize(
    ("elf_class", "big_endian", "machine"),
    [(64, False, 62), (64, True, 22), (32, False, 3), (32, True, 20)],
    ids=["ELF64-LSB", "ELF64-MSB", "ELF32-LSB", "ELF32-MSB"],
)


@CLASSES
def test_every_field_written_is_read(elf_class, big_endian, machine):
    data = make_elf(elf_class=elf_class, big_endian=big_endian, machine=machine, etype=3, **EVERYTHING)  # type: ignore[arg-type]
    info = elf.parse(data, "/usr/lib/libwhole.so.1")
    assert info.dynamic == WHOLE
    assert info.library  # DT_SONAME
    # Through a layer, and through the index cache's JSON: nothing is lost on the way.
    node = fs_of(entry("usr/lib/libwhole.so.1", data)).lookup("/usr/lib/libwhole.so.1")
    assert node.elf.dynamic == WHOLE
    assert ELFInfo.from_json(node.elf.to_json()) == node.elf


@CLASSES
def test_other_readers_read_the_made_files_alike(elf_class, big_endian, machine):
    """pyelftools finds the strings through the program headers (DT_STRTAB mapped by
    PT_LOAD) and the versions through the section table: the made files are what a linker
    writes, not just what this reader expects."""
    pytest.importorskip("elftools")
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

    data = make_elf(elf_class=elf_class, big_endian=big_endian, machine=machine, etype=3, **EVERYTHING)  # type: ignore[arg-type]
    f = ELFFile(io.BytesIO(data))
    (dyn,) = (s for s in f.iter_segments() if s["p_type"] == "PT_DYNAMIC")
    tags = list(dyn.iter_tags())
    assert tuple(t.needed for t in tags if t.entry.d_tag == "DT_NEEDED") == WHOLE.needed
    assert [t.soname for t in tags if t.entry.d_tag == "DT_SONAME"] == [WHOLE.soname]
    assert [t.rpath for t in tags if t.entry.d_tag == "DT_RPATH"] == [WHOLE.rpath]
    assert [t.runpath for t in tags if t.entry.d_tag == "DT_RUNPATH"] == [WHOLE.runpath]
    (need,) = (s for s in f.iter_sections() if isinstance(s, GNUVerNeedSection))
    got = tuple(
        (vn.name, tuple((aux.name, bool(aux["vna_flags"] & 2)) for aux in auxes)) for vn, auxes in need.iter_versions()
    )
    assert got == WHOLE.verneed
    (defs,) = (s for s in f.iter_sections() if isinstance(s, GNUVerDefSection))
    versions = [(vd["vd_flags"], next(iter(auxes)).name) for vd, auxes in defs.iter_versions()]
    assert versions == [(1, "libwhole.so.1")] + [(0, v) for v in WHOLE.verdef]  # VER_FLG_BASE first
    # The tables lie where no file offset equals its address: the mapping is needed.
    strtab = next(t.entry.d_val for t in tags if t.entry.d_tag == "DT_STRTAB")
    assert strtab >= TABLES_VADDR
    assert next(f.address_offsets(strtab)) != strtab


def test_table_addresses_are_mapped_through_the_load_segments():
    # The same file with its tables mapped at another address reads the same...
    for base in (0x10000, 0x7F0000000):
        assert elf.parse(make_elf(etype=3, tables_vaddr=base, **EVERYTHING)).dynamic == WHOLE  # type: ignore[arg-type]
    # ...and an address no PT_LOAD maps is not taken for a file offset.
    info = elf.parse(make_elf(etype=3, dynamic=((1, 1), (5, 0x40), (10, 16))))
    assert info.dynamic.needed == ()
    assert "no PT_LOAD" in info.dynamic.unread


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/s390x", "linux/arm/v7"])
def test_tables_past_64k_are_read_from_the_layer_stream(platform):
    """The strings and version tables of a large library lie past the first 64 KiB: the
    layer reader keeps them as the file streams by (for ARM files, the whole-file copy
    serves them)."""
    data = lib("libbig.so.1", platform, table_lead=200_000, needed=("libc.so.6",), rpath="/opt/big")
    info = elf.parse(data[:HEAD_BYTES], "/usr/lib/libbig.so.1") if platform != "linux/arm/v7" else None
    if info is not None:  # the head alone does not hold them: the test reads past it
        assert info.dynamic.unread
        assert any(start == 0 and size > 200_000 for start, size in elf.reads_needed(data[:HEAD_BYTES], "f").ranges)
    index = index_layer(io.BytesIO(layer([entry("usr/lib/libbig.so.1", data)], compress=False)), "l0")
    ((_, path, node),) = [op for op in index.ops if op[0] == "add" and op[2].kind == "file"]
    assert path == "/usr/lib/libbig.so.1"
    assert node.elf.dynamic == Dynamic(needed=("libc.so.6",), soname="libbig.so.1", rpath="/opt/big")


def test_tables_past_the_prefix_bound_leave_the_file_unchecked_and_said(monkeypatch):
    monkeypatch.setattr(elf, "MAX_DYNAMIC_PREFIX", 100_000)
    # Read in tiny chunks, the tables have streamed by, unkept, when the dynamic section
    # says where they are (in the same chunk as it they would still be caught).
    monkeypatch.setattr(layers, "CHUNK", 16)
    far = exe(table_lead=150_000, needed=("libnothere.so.1",))
    files: Files = {APP: far, "/usr/bin/ok": exe(needed=("libc.so.6",)), f"{T}/libc.so.6": lib("libc.so.6")}
    fs = image(files)
    dyn = fs.lookup(APP).elf.dynamic
    assert dyn.needed == ()
    assert "lie past the bytes read" in dyn.unread
    got = check_libs(P(AMD64), fs)
    # Not failed for a need it cannot see, nor passed as if it had none.
    assert got.outcome == PASSED, got.detail
    assert any(w.startswith(f"{APP}: its needs were not checked: ") for w in got.warnings), got.warnings
    # Alone, the check did not run: skipped, not for an allowed reason, so the gate refuses it.
    alone = check_libs(P(AMD64), image({APP: far}))
    assert alone.outcome == SKIPPED
    assert alone.skip == ""
    assert alone.detail == "no dynamic ELF file whose needs could be checked"
    assert alone.warnings[0].startswith(f"{APP}: its needs were not checked: ")


def test_tables_moved_after_the_dynamic_section_are_read_as_they_stream_by(monkeypatch):
    # patchelf --set-rpath puts a new .dynstr after everything: the dynamic section says
    # where it is before it streams by, and it is kept then.
    monkeypatch.setattr(layers, "CHUNK", 4096)
    data = bytearray(exe(needed=("libz.so.1",), rpath="/opt/old"))
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    headers = [(phoff + 56 * i, struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i)) for i in range(phnum)]
    d_off, d_size = next((h[2], h[5]) for _, h in headers if h[0] == elf.PT_DYNAMIC)
    at, first = min(((at, h) for at, h in headers if h[0] == elf.PT_LOAD), key=lambda x: x[1][2])
    strings = b"\0libz.so.1\0/opt/new\0"
    new_off = 200_000
    # The first PT_LOAD grows to map the new table, far past the dynamic section.
    size = new_off + len(strings) - first[2]
    struct.pack_into("<IIQQQQQQ", data, at, *first[:5], size, size, first[7])
    for i in range(d_size // 16):
        tag, _ = struct.unpack_from("<qQ", data, d_off + 16 * i)
        value = {elf.DT_STRTAB: first[3] + new_off - first[2], elf.DT_STRSZ: len(strings), elf.DT_NEEDED: 1}.get(tag)
        if tag == elf.DT_RPATH:
            value = 11
        if value is not None:
            struct.pack_into("<qQ", data, d_off + 16 * i, tag, value)
        elif tag in (elf.DT_VERNEED, elf.DT_VERDEF, elf.DT_SONAME):
            struct.pack_into("<qQ", data, d_off + 16 * i, 0x6FFFFF00, 0)  # a tag nobody reads
    assert d_off + d_size < new_off
    whole = bytes(data) + b"\0" * (new_off - len(data)) + strings
    fs = image({APP: whole, f"{T}/libz.so.1": lib("libz.so.1")})
    dynamic = fs.lookup(APP).elf.dynamic
    assert dynamic.unread == ""
    assert (dynamic.needed, dynamic.rpath) == (("libz.so.1",), "/opt/new")
    assert found(fs) == {"libz.so.1": f"{T}/libz.so.1"}


def test_code_with_no_loader_of_its_kind_is_said_not_checked():
    # 32-bit x86 libraries in an amd64 image without libc6-i386: nothing there loads them.
    i386 = lib("libvendor.so", "linux/386", needed=("libc.so.6",))
    fs = image(
        {APP: exe(needed=("libc.so.6",)), f"{T}/libc.so.6": lib("libc.so.6"), "/opt/sdk/lib32/libvendor.so": i386}
    )
    got = check_libs(P(AMD64), fs)
    assert got.outcome == PASSED, got.detail
    assert got.warnings == (
        "1 file of ELF32 LSB Intel 80386 code: the image has no loader of that kind, so nothing in it can load "
        "them, and their needs were not checked",
    )


def test_a_name_that_is_not_utf8_is_written_as_escapes():
    fs = image({APP: exe(needed=("lib\udcff.so",))})
    got = check_libs(P(AMD64), fs)
    assert got.outcome == FAILED
    assert "lib\\xff.so" in got.detail
    got.detail.encode("utf-8")  # any report can write it


# --- the order glibc searches in --------------------------------------------------------
def test_rpath_of_the_needer_then_of_each_object_up_its_chain():
    fs = image(
        {
            APP: exe(rpath="/opt/exe", needed=("liba.so.1",)),
            "/opt/exe/liba.so.1": lib("liba.so.1", rpath="/opt/a", needed=("libb.so.1", "libc9.so.1")),
            "/opt/a/libb.so.1": lib("libb.so.1"),
            "/opt/exe/libb.so.1": lib("libb.so.1"),  # liba's own RPATH comes first
            f"{T}/libb.so.1": lib("libb.so.1"),
            "/opt/exe/libc9.so.1": lib("libc9.so.1"),  # only the executable's RPATH meets it
            f"{T}/libc9.so.1": lib("libc9.so.1"),  # RPATH comes before the system directories
        }
    )
    assert found(fs) == {
        "liba.so.1": "/opt/exe/liba.so.1",
        "libb.so.1": "/opt/a/libb.so.1",
        "libc9.so.1": "/opt/exe/libc9.so.1",
    }


def test_a_runpath_turns_every_rpath_off_for_that_objects_needs():
    fs = image(
        {
            APP: exe(rpath="/opt/exe", needed=("liba.so.1",)),
            "/opt/exe/liba.so.1": lib(
                "liba.so.1", rpath="/opt/a", runpath="/opt/a-run", needed=("libb.so.1", "libc9.so.1")
            ),
            "/opt/a/libb.so.1": lib("libb.so.1"),  # its own RPATH: ignored beside its RUNPATH
            f"{UT}/libb.so.1": lib("libb.so.1"),
            "/opt/exe/libc9.so.1": lib("libc9.so.1"),  # the executable's RPATH: ignored too
        }
    )
    got = closure(fs)
    assert got.resolution() == {"liba.so.1": "/opt/exe/liba.so.1", "libb.so.1": f"{UT}/libb.so.1", "libc9.so.1": None}
    (missing,) = got.missing
    assert (missing.name, missing.needer) == ("libc9.so.1", "/opt/exe/liba.so.1")
    assert missing.looked == ("/opt/a-run", *SYSTEM)
    # An object up the chain with both has no RPATH either (glibc drops DT_RPATH beside
    # DT_RUNPATH), so a library it loads does not search it.
    fs = image(
        {
            APP: exe(rpath="/opt/exe", runpath="/opt/exe-run", needed=("liba.so.1",)),
            "/opt/exe-run/liba.so.1": lib("liba.so.1", needed=("libb.so.1",)),
            "/opt/exe/libb.so.1": lib("libb.so.1"),
        }
    )
    (missing,) = closure(fs).missing
    assert (missing.name, missing.looked) == ("libb.so.1", SYSTEM)


@pytest.mark.parametrize(
    ("dynamic", "where"),
    [({"runpath": "/opt/run"}, "/opt/env"), ({"rpath": "/opt/run"}, "/opt/run")],
    ids=["before-RUNPATH", "after-RPATH"],
)
def test_ld_library_path_from_the_image_config(dynamic, where):
    fs = image(
        {
            APP: exe(needed=("libx.so.1",), **dynamic),
            "/opt/run/libx.so.1": lib("libx.so.1"),
            "/opt/env/libx.so.1": lib("libx.so.1"),
            f"{T}/libx.so.1": lib("libx.so.1"),
        }
    )
    env = ["PATH=/usr/bin", "LD_LIBRARY_PATH=/nowhere:/opt/env;/opt/also"]
    assert found(fs, env=env) == {"libx.so.1": f"{where}/libx.so.1"}
    assert found(fs) == {"libx.so.1": "/opt/run/libx.so.1"}  # without it
    # Where it looked, in order, when nothing is found.
    fs2 = image({APP: exe(needed=("libnone.so.1",), **dynamic)})
    (missing,) = closure(fs2, env=env).missing
    env_dirs = ("/nowhere", "/opt/env", "/opt/also")
    order = (*env_dirs, "/opt/run") if "runpath" in dynamic else ("/opt/run", *env_dirs)
    assert missing.looked == (*order, *SYSTEM)


def test_runpath_meets_only_the_objects_own_needs():
    """glibc uses an object's DT_RUNPATH for its own needs only: a library an executable
    loads through its RUNPATH does not find its own needs there (with DT_RPATH it would)."""
    files: Files = {
        APP: exe(runpath="/opt/app/lib", needed=("liba.so.1",)),
        "/opt/app/lib/liba.so.1": lib("liba.so.1", needed=("libb.so.1",)),
        "/opt/app/lib/libb.so.1": lib("libb.so.1"),
    }
    got = closure(image(files))
    assert got.resolution() == {"liba.so.1": "/opt/app/lib/liba.so.1", "libb.so.1": None}
    (missing,) = got.missing
    assert (missing.name, missing.needer, missing.looked) == ("libb.so.1", "/opt/app/lib/liba.so.1", SYSTEM)
    # The same with DT_RPATH: inherited, so found.
    files[APP] = exe(rpath="/opt/app/lib", needed=("liba.so.1",))
    assert found(image(files))["libb.so.1"] == "/opt/app/lib/libb.so.1"


@pytest.mark.parametrize(
    ("rpath", "where"),
    [
        ("$ORIGIN/../lib/app", "/usr/lib/app"),
        ("${ORIGIN}/../lib/app", "/usr/lib/app"),
        ("/opt/$LIB", "/opt/lib/x86_64-linux-gnu"),  # Debian's $LIB is its multiarch directory
        ("/opt/${LIB}/app", "/opt/lib/x86_64-linux-gnu/app"),
        ("/opt/$PLATFORM", "/opt/x86_64"),
        ("/opt/$FOO/lib:/opt/good", "/opt/good"),  # an unknown token: that element is left out
        ("/opt/${FOO}:/opt/good", "/opt/good"),
    ],
)
def test_tokens_in_a_search_path(rpath, where):
    fs = image(
        {
            APP: exe(rpath=rpath, needed=("libx.so.1",)),
            f"{where}/libx.so.1": lib("libx.so.1"),
            # What a token expanded to nothing would give: never searched.
            "/opt/lib/libx.so.1": lib("libx.so.1"),
            "/opt/libx.so.1": lib("libx.so.1"),
            f"{UT}/libx.so.1": lib("libx.so.1"),
        }
    )
    assert found(fs) == {"libx.so.1": f"{where}/libx.so.1"}


def test_origin_is_the_directory_each_object_was_found_in():
    fs = image(
        {
            APP: exe(rpath="/opt/pkg/lib", needed=("liba.so.1",)),
            "/opt/pkg/lib/liba.so.1": lib("liba.so.1", runpath="$ORIGIN/private", needed=("libp.so.1",)),
            "/opt/pkg/lib/private/libp.so.1": lib("libp.so.1"),
            "/usr/bin/private/libp.so.1": lib("libp.so.1"),  # the executable's $ORIGIN: not liba's
        }
    )
    assert found(fs)["libp.so.1"] == "/opt/pkg/lib/private/libp.so.1"


def test_nodeflib_leaves_out_the_system_directories_for_its_own_needs():
    fs = image(
        {
            APP: exe(rpath="/opt/app", needed=("libz.so.1",), nodeflib=True, dynamic=PIE, etype=3),
            "/usr/bin/other": exe(rpath="/opt/app", needed=("liba.so.1",), nodeflib=True),
            "/opt/app/liba.so.1": lib("liba.so.1", needed=("libz.so.1",)),
            f"{T}/libz.so.1": lib("libz.so.1"),
        }
    )
    assert fs.lookup(APP).elf.dynamic.nodeflib
    assert not fs.lookup(APP).elf.library  # DF_1_PIE kept beside DF_1_NODEFLIB
    (missing,) = closure(fs).missing
    assert (missing.name, missing.needer, missing.looked) == ("libz.so.1", APP, ("/opt/app",))
    # liba has no such flag: its own need is searched for in the system directories.
    assert found(fs, "/usr/bin/other") == {"liba.so.1": "/opt/app/liba.so.1", "libz.so.1": f"{T}/libz.so.1"}


@pytest.mark.parametrize(
    ("platform", "other", "what"),
    [
        (AMD64, {"elf_class": 32, "machine": 3}, "ELF32 LSB Intel 80386"),  # another class
        (AMD64, {"machine": 183}, "ELF64 LSB AArch64"),  # another machine
        ("linux/riscv64", {"flags": 1}, "ELF64 LSB RISC-V"),  # lp64 (soft-float) under lp64d
    ],
    ids=["class", "machine", "riscv-float-abi"],
)
def test_a_file_of_another_kind_is_passed_over(platform, other, what):
    _, triplet = GLIBC[platform]
    wrong = f"/lib/{triplet}/libz.so.1"
    files: Files = {APP: exe(platform, needed=("libz.so.1",)), wrong: lib("libz.so.1", platform, **other)}
    fs = image(files, platform=platform)
    (missing,) = closure(fs).missing
    assert missing.skipped == (f"{wrong}: {what}",)
    got = check_libs(P(platform), fs)
    assert got.outcome == FAILED
    assert f"{APP} needs libz.so.1: not in /lib/{triplet}, " in got.detail
    assert f"(the loader skips {wrong}: {what})" in got.detail
    # A right one in a later directory is the one loaded.
    files[f"/usr/lib/{triplet}/libz.so.1"] = lib("libz.so.1", platform)
    assert found(image(files, platform=platform)) == {"libz.so.1": f"/usr/lib/{triplet}/libz.so.1"}


def test_an_arm_library_of_the_other_float_abi_is_passed_over():
    # Measured with Debian 12's armhf loader (glibc 2.36): a soft-float libz.so.1 first on
    # LD_LIBRARY_PATH is passed over, and the hard-float one of the system directory loads.
    soft, hard = "/lib/arm-linux-gnueabihf/libz.so.1", "/usr/lib/arm-linux-gnueabihf/libz.so.1"
    fs = image(
        {
            APP: exe("linux/arm/v7", needed=("libz.so.1",)),
            soft: lib("libz.so.1", "linux/arm/v7", flags=0x05000200),
            hard: lib("libz.so.1", "linux/arm/v7"),
        },
        platform="linux/arm/v7",
    )
    assert found(fs) == {"libz.so.1": hard}


def test_an_arm_library_of_the_other_float_abi_alone_is_not_loaded():
    soft = "/lib/arm-linux-gnueabihf/libz.so.1"
    fs = image(
        {APP: exe("linux/arm/v7", needed=("libz.so.1",)), soft: lib("libz.so.1", "linux/arm/v7", flags=0x05000200)},
        platform="linux/arm/v7",
    )
    (missing,) = closure(fs).missing
    assert missing.name == "libz.so.1"
    assert [s.partition(": ")[0] for s in missing.skipped] == [soft]
    assert missing.skipped[0].startswith(f"{soft}: ELF32 LSB ARM")


@pytest.mark.parametrize(
    ("platform", "first"),
    [
        (AMD64, b"INPUT(libz.so.1.2.13)\n" * 4),  # a linker script, not an ELF file
        ("linux/ppc64le", make_elf(machine=21, big_endian=True, etype=3, soname="libz.so.1")),  # ppc64 (big endian)
    ],
    ids=["not-elf", "byte-order"],
)
def test_a_file_the_loader_refuses_ends_the_search(platform, first):
    _, triplet = GLIBC[platform]
    refused = f"/lib/{triplet}/libz.so.1"
    fs = image(
        {
            APP: exe(platform, needed=("libz.so.1",)),
            refused: first,
            f"/usr/lib/{triplet}/libz.so.1": lib("libz.so.1", platform),
        },
        platform=platform,
    )
    got = check_libs(P(platform), fs)
    assert got.outcome == FAILED
    assert refused in got.detail


@pytest.mark.parametrize(("root", "library"), [(ARMHF, 0x05000000), (0x05000000, ARMHF)], ids=["lib", "exe"])
def test_an_arm_file_with_no_float_abi_marked_loads_under_the_hard_float_loader(root, library):
    fs = image(
        {
            APP: exe("linux/arm/v7", flags=root, needed=("libold.so.1",)),
            "/usr/lib/arm-linux-gnueabihf/libold.so.1": lib("libold.so.1", "linux/arm/v7", flags=library),
        },
        platform="linux/arm/v7",
    )
    assert found(fs) == {"libold.so.1": "/usr/lib/arm-linux-gnueabihf/libold.so.1"}


def test_a_name_with_a_slash_is_that_path():
    fs = image(
        {
            APP: exe(needed=("/opt/vendor/libv.so", "libw.so.1")),
            "/opt/vendor/libv.so": lib("libv.so.1"),
            f"{T}/libv.so": lib("libv.so.1"),  # the base name in a system directory: not searched for
            f"{T}/libw.so.1": lib("libw.so.1"),
        }
    )
    assert found(fs) == {"/opt/vendor/libv.so": "/opt/vendor/libv.so", "libw.so.1": f"{T}/libw.so.1"}
    (missing,) = closure(image({APP: exe(needed=("/opt/gone/libv.so",))})).missing
    assert missing.name == "/opt/gone/libv.so"


def test_a_missing_path_is_not_said_to_be_searched_for_in_the_system_directories():
    fs = image({APP: exe(needed=("/opt/gone/libv.so",))})
    (missing,) = closure(fs).missing
    assert not set(missing.looked) & set(SYSTEM)
    assert f"not in {T}" not in check_libs(P(AMD64), fs).detail


def test_a_needed_path_with_origin_is_expanded():
    fs = image({APP: exe(needed=("$ORIGIN/../lib/app/libv.so",)), "/usr/lib/app/libv.so": lib("libv.so")})
    assert found(fs) == {"$ORIGIN/../lib/app/libv.so": "/usr/lib/app/libv.so"}


def test_symlinks_are_followed_inside_the_image():
    fs = image(
        {
            f"{T}/libz.so.1": "libz.so.1.2.13",
            f"{T}/libz.so.1.2.13": lib("libz.so.1"),
            f"{T}/libssl.so.3": "/opt/ssl/lib/libssl.so.3",  # absolute: the image's /opt, not the host's
            "/opt/ssl/lib/libssl.so.3": lib("libssl.so.3"),
            f"{T}/libgone.so.1": "/nowhere/libgone.so.1",  # dangling: the search goes on
            f"{UT}/libgone.so.1": lib("libgone.so.1"),
            "/opt/app": "/srv/app",  # a directory through a link
            "/srv/app/lib/liba.so.1": lib("liba.so.1"),
            APP: exe(rpath="/opt/app/lib", needed=("libz.so.1", "libssl.so.3", "libgone.so.1", "liba.so.1")),
        }
    )
    assert found(fs) == {
        "libz.so.1": f"{T}/libz.so.1.2.13",
        "libssl.so.3": "/opt/ssl/lib/libssl.so.3",
        "libgone.so.1": f"{UT}/libgone.so.1",
        "liba.so.1": "/srv/app/lib/liba.so.1",
    }
    # The path printed is the one searched, as ld.so --list prints it.
    assert paths(fs)["libz.so.1"] == f"{T}/libz.so.1"
    assert paths(fs)["liba.so.1"] == "/opt/app/lib/liba.so.1"


def test_a_soname_already_loaded_meets_a_need_without_a_search():
    fs = image(
        {
            APP: exe(needed=("libfoo.so.1", "libfoo-compat.so", "ld-linux-x86-64.so.2")),
            f"{T}/libfoo.so.1": lib("libfoo-compat.so"),  # no file is named libfoo-compat.so
        }
    )
    got = closure(fs)
    assert got.missing == []
    assert [lib.name for lib in got.loaded] == ["libfoo.so.1"]
    # The loader's own soname meets a need too.
    assert {(APP, "libfoo-compat.so"), (APP, "ld-linux-x86-64.so.2")} <= got.met


def test_two_names_for_one_file_load_it_once():
    fs = image(
        {
            APP: exe(needed=("libfoo.so.1", "libbar.so.2")),
            f"{T}/libfoo.so.1": lib("libfoo.so.1"),
            f"{UT}/libfoo.so": f"{T}/libfoo.so.1",
            f"{T}/libbar.so.2": lib("libbar.so.2", needed=("libfoo.so",)),  # another name, the same file
        }
    )
    got = closure(fs)
    assert [(lib.name, lib.real) for lib in got.loaded] == [
        ("libfoo.so.1", f"{T}/libfoo.so.1"),
        ("libbar.so.2", f"{T}/libbar.so.2"),
    ]
    assert (f"{T}/libbar.so.2", "libfoo.so") in got.met
    assert got.missing == []


def test_one_resolver_keeps_each_objects_own_search_path():
    """The libs check resolves every root with one Resolver, which remembers search lists:
    each object still searches its own (its $ORIGIN, its chain, its flags)."""
    files: Files = {
        "/opt/a/bin/a": exe(rpath="$ORIGIN/../lib", needed=("libx.so.1", "liby.so.1")),
        "/opt/a/lib/libx.so.1": lib("libx.so.1", needed=("libz.so.1",)),
        "/opt/a/lib/libz.so.1": lib("libz.so.1"),
        "/opt/b/bin/b": exe(rpath="$ORIGIN/../lib", needed=("libx.so.1", "liby.so.1")),
        "/opt/b/lib/libx.so.1": lib("libx.so.1", needed=("libz.so.1",)),
        "/opt/b/lib/libz.so.1": lib("libz.so.1"),
        "/usr/bin/c": exe(needed=("liby.so.1",)),
        "/usr/bin/d": exe(needed=("liby.so.1",), nodeflib=True),
        f"{T}/liby.so.1": lib("liby.so.1"),
        f"{T}/libz.so.1": lib("libz.so.1"),
    }
    resolver = Resolver(image(files))
    for root in ("/opt/a/bin/a", "/opt/b/bin/b"):
        top = posixpath.dirname(posixpath.dirname(root))
        assert resolver.closure(root).resolution() == {
            "libx.so.1": f"{top}/lib/libx.so.1",
            "liby.so.1": f"{T}/liby.so.1",
            "libz.so.1": f"{top}/lib/libz.so.1",  # through the executable's RPATH, its own $ORIGIN
        }
    assert resolver.closure("/usr/bin/c").resolution() == {"liby.so.1": f"{T}/liby.so.1"}
    assert resolver.closure("/usr/bin/d").resolution() == {"liby.so.1": None}
    assert resolver.closure("/opt/a/lib/libx.so.1").resolution() == {"libz.so.1": f"{T}/libz.so.1"}  # alone


# --- the loader's own directories ---------------------------------------------------------
@pytest.mark.parametrize(
    ("interp", "real", "klass", "machine", "dirs", "dollar_lib"),
    [
        (
            "/lib64/ld-linux-x86-64.so.2",
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            64,
            62,
            ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"),
            "lib/x86_64-linux-gnu",
        ),
        (
            "/lib/ld-linux.so.2",
            "/usr/lib32/ld-linux.so.2",
            32,
            3,
            ("/lib32", "/usr/lib32", "/lib", "/usr/lib"),
            "lib32",
        ),
        ("/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2", 64, 62, ("/lib64", "/usr/lib64"), "lib64"),
    ],
    ids=["debian-multiarch", "lib32", "fedora-lib64"],
)
def test_the_system_directories_are_where_the_loader_lives(interp, real, klass, machine, dirs, dollar_lib):
    kind = {"elf_class": klass, "machine": machine}
    fs = image(
        {
            interp: real,
            real: make_elf(etype=3, soname=posixpath.basename(interp), **kind),
            APP: make_elf(interp=interp, rpath="/opt/$LIB", needed=("libnone.so.1", "libx.so.1"), **kind),
            f"/opt/{dollar_lib}/libx.so.1": make_elf(etype=3, soname="libx.so.1", **kind),
        },
        platform=None,
    )
    got = closure(fs)
    assert got.loader is not None
    assert got.loader.system_dirs == dirs
    assert got.loader.real == real
    (missing,) = got.missing
    assert missing.looked == (f"/opt/{dollar_lib}", *dirs)
    assert got.resolution()["libx.so.1"] == f"/opt/{dollar_lib}/libx.so.1"


@pytest.mark.parametrize(
    ("path_file", "dirs"),
    [
        ("/usr/local/lib\n/opt/musl/lib:/usr/lib\n", ("/usr/local/lib", "/opt/musl/lib", "/usr/lib")),
        (None, ("/lib", "/usr/local/lib", "/usr/lib")),  # musl's default
    ],
    ids=["ld-musl-path", "default"],
)
def test_musl_searches_its_path_file_or_its_default(path_file, dirs):
    files: Files = {
        MUSL: make_elf(etype=3, soname="libc.musl-x86_64.so.1"),
        APP: make_elf(interp=MUSL, needed=("libnone.so.1", "libm1.so.1", "libc.musl-x86_64.so.1")),
        "/opt/musl/lib/libm1.so.1": make_elf(etype=3, soname="libm1.so.1"),
        "/usr/local/lib/libm1.so.1": make_elf(etype=3, soname="libm1.so.1"),
    }
    if path_file is not None:
        files["/etc/ld-musl-x86_64.path"] = path_file.encode()
    got = closure(image(files, platform=None))
    assert got.loader is not None
    assert got.loader.musl
    (missing,) = got.missing
    assert missing.looked == dirs
    assert got.resolution()["libm1.so.1"] == "/usr/local/lib/libm1.so.1"
    assert (APP, "libc.musl-x86_64.so.1") in got.met  # the loader's soname


@pytest.mark.parametrize("tag", ["rpath", "runpath"])
def test_musl_searches_ld_library_path_first_and_inherits_run_paths(tag):
    """Unlike glibc, musl searches LD_LIBRARY_PATH before an RPATH, and an executable's
    RUNPATH for the needs of the libraries it loads too."""
    files: Files = {
        MUSL: make_elf(etype=3, soname="libc.musl-x86_64.so.1"),
        APP: make_elf(interp=MUSL, needed=("liba.so.1", "libe.so.1"), **{tag: "/opt/app"}),  # type: ignore[arg-type]
        "/opt/app/liba.so.1": make_elf(etype=3, soname="liba.so.1", needed=("libb.so.1",)),
        "/opt/app/libb.so.1": make_elf(etype=3, soname="libb.so.1"),  # the executable's run path: musl uses it
        "/opt/app/libe.so.1": make_elf(etype=3, soname="libe.so.1"),
        "/opt/env/libe.so.1": make_elf(etype=3, soname="libe.so.1"),
    }
    got = found(image(files, platform=None), env=["LD_LIBRARY_PATH=/opt/env"])
    assert got == {
        "liba.so.1": "/opt/app/liba.so.1",
        "libe.so.1": "/opt/env/libe.so.1",
        "libb.so.1": "/opt/app/libb.so.1",
    }


def test_musl_answers_the_names_of_its_own_parts_itself():
    fs = image(
        {MUSL: make_elf(etype=3), APP: make_elf(interp=MUSL, needed=("libc.so", "libm.so.6", "libpthread.so.0"))},
        platform=None,
    )
    assert closure(fs).missing == []


def test_musl_does_not_pass_over_a_file_of_another_machine():
    fs = image(
        {
            MUSL: make_elf(etype=3, soname="libc.musl-x86_64.so.1"),
            APP: make_elf(interp=MUSL, needed=("libz.so.1",)),
            "/lib/libz.so.1": make_elf(etype=3, machine=183, soname="libz.so.1"),
            "/usr/lib/libz.so.1": make_elf(etype=3, soname="libz.so.1"),
        },
        platform=None,
    )
    assert closure(fs).resolution() == {"libz.so.1": None}


def test_musl_does_not_meet_a_need_by_an_earlier_objects_soname():
    fs = image(
        {
            MUSL: make_elf(etype=3, soname="libc.musl-x86_64.so.1"),
            APP: make_elf(interp=MUSL, needed=("libfoo.so.1", "libfoo-compat.so")),
            "/usr/lib/libfoo.so.1": make_elf(etype=3, soname="libfoo-compat.so"),
        },
        platform=None,
    )
    assert [m.name for m in closure(fs).missing] == ["libfoo-compat.so"]


# --- /etc/ld.so.cache and ld.so.conf ------------------------------------------------------
def ld_so_cache(
    entries: Sequence[tuple[str, str]], *, big_endian: bool = False, flags: int = 0x0303, old_format: bool = False
) -> bytes:
    """An ``/etc/ld.so.cache`` as ldconfig writes it (glibc-ld.so.cache1.1): a 48-byte header
    (magic and version, nlibs, len_strings, flags (its byte order: 2 little, 3 big endian),
    padding, extension_offset, unused), one 24-byte entry per (name, path) (flags, key,
    value, osversion, hwcap), then the strings, whose offsets count from the header.
    ``flags`` are the entries' (0x0303: ELF libc6, x86-64). ``old_format`` puts an empty
    ``ld.so-1.7.0`` table before it, as glibc before 2.32 wrote the cache."""
    e = ">" if big_endian else "<"
    ordered = sorted(entries, key=lambda kv: kv[0], reverse=True)  # ldconfig's order
    strings = bytearray()
    at: dict[str, int] = {}
    start = 48 + 24 * len(ordered)
    for text in (t for kv in ordered for t in kv):
        if text not in at:
            at[text] = start + len(strings)
            strings += text.encode() + b"\0"
    endian = 3 if big_endian else 2
    header = b"glibc-ld.so.cache1.1" + struct.pack(f"{e}IIB3xI12x", len(ordered), len(strings), endian, 0)
    assert len(header) == 48
    assert struct.calcsize(f"{e}iIIIQ") == 24
    body = b"".join(struct.pack(f"{e}iIIIQ", flags, at[name], at[path], 0, 0) for name, path in ordered)
    old = b"ld.so-1.7.0\0" + struct.pack(f"{e}I", 0) if old_format else b""
    return old + header + body + bytes(strings)


S390 = "linux/s390x"


@pytest.mark.parametrize(
    ("platform", "big_endian", "old_format"),
    [(AMD64, False, False), (S390, True, False), (AMD64, False, True)],
    ids=["little-endian", "big-endian", "after-the-old-format"],
)
def test_the_cache_finds_a_library_outside_the_system_directories(platform, big_endian, old_format):
    triplet = GLIBC[platform][1]
    cache = ld_so_cache(
        [
            ("libv.so.1", "/opt/vendor/lib/libv.so.1"),
            ("libz.so.1", "/opt/vendor/lib/libz.so.1"),
            ("libother.so.3", "/opt/other/libother.so.3"),
        ],
        big_endian=big_endian,
        old_format=old_format,
    )
    fs = image(
        {
            "/etc/ld.so.cache": cache,
            APP: exe(platform, needed=("libv.so.1", "libz.so.1", "libnone.so.1")),
            "/opt/vendor/lib/libv.so.1": lib("libv.so.1", platform),
            "/opt/vendor/lib/libz.so.1": lib("libz.so.1", platform),
            f"/lib/{triplet}/libz.so.1": lib("libz.so.1", platform),  # the cache comes first
        },
        platform=platform,
    )
    got = closure(fs)
    assert got.resolution() == {
        "libv.so.1": "/opt/vendor/lib/libv.so.1",
        "libz.so.1": "/opt/vendor/lib/libz.so.1",
        "libnone.so.1": None,
    }
    (missing,) = got.missing
    assert missing.looked == ("/etc/ld.so.cache", f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib")


def test_a_cache_entry_whose_file_is_gone_falls_back_to_the_system_directories():
    fs = image(
        {
            "/etc/ld.so.cache": ld_so_cache([("libz.so.1", "/opt/gone/libz.so.1")]),
            APP: exe(needed=("libz.so.1",)),
            f"{UT}/libz.so.1": lib("libz.so.1"),
        }
    )
    assert found(fs) == {"libz.so.1": f"{UT}/libz.so.1"}


def test_rpath_and_runpath_come_before_the_cache():
    fs = image(
        {
            "/etc/ld.so.cache": ld_so_cache([("libz.so.1", "/opt/cached/libz.so.1")]),
            APP: exe(runpath="/opt/run", needed=("libz.so.1",)),
            "/opt/cached/libz.so.1": lib("libz.so.1"),
            "/opt/run/libz.so.1": lib("libz.so.1"),
        }
    )
    assert found(fs) == {"libz.so.1": "/opt/run/libz.so.1"}


def test_nodeflib_still_takes_cache_entries_outside_the_system_directories():
    fs = image(
        {
            "/etc/ld.so.cache": ld_so_cache([("libv.so.1", "/opt/vendor/lib/libv.so.1")]),
            APP: exe(needed=("libv.so.1",), nodeflib=True),
            "/opt/vendor/lib/libv.so.1": lib("libv.so.1"),
        }
    )
    assert found(fs) == {"libv.so.1": "/opt/vendor/lib/libv.so.1"}


def test_a_big_endian_cache_of_256_entries():
    pad = [(f"libpad{i}.so.1", f"/usr/lib/s390x-linux-gnu/libpad{i}.so.1") for i in range(255)]
    cache = ld_so_cache([("libv.so.1", "/opt/vendor/lib/libv.so.1"), *pad], big_endian=True)
    fs = image(
        {
            "/etc/ld.so.cache": cache,
            APP: exe(S390, needed=("libv.so.1",)),
            "/opt/vendor/lib/libv.so.1": lib("libv.so.1", S390),
        },
        platform=S390,
    )
    assert found(fs) == {"libv.so.1": "/opt/vendor/lib/libv.so.1"}


def test_a_cache_cut_short_is_no_cache():
    cache = ld_so_cache([("libv.so.1", "/opt/vendor/lib/libv.so.1")])[:-3]
    fs = image({"/etc/ld.so.cache": cache, APP: exe(needed=("libz.so.1",)), f"{UT}/libz.so.1": lib("libz.so.1")})
    assert found(fs) == {"libz.so.1": f"{UT}/libz.so.1"}
    assert check_libs(P(AMD64), fs).outcome == PASSED


LD_SO_CONF: Files = {
    "/etc/ld.so.conf": b"# the vendor's directories\ninclude /etc/ld.so.conf.d/*.conf\n",
    "/etc/ld.so.conf.d/vendor.conf": b"/opt/vendor/lib  # installed by vendor-libs\nhwcap 0 nosegneg\n",
    "/etc/ld.so.conf.d/README": b"/opt/not-a-conf-file\n",  # the include names *.conf only
}


def test_a_library_only_ld_so_conf_names_is_not_found_without_a_cache():
    """The loader reads the cache, never ld.so.conf: ldconfig turns the one into the other."""
    fs = image({**LD_SO_CONF, APP: exe(needed=("libv.so.1",)), "/opt/vendor/lib/libv.so.1": lib("libv.so.1")})
    resolver = Resolver(fs)
    assert resolver.conf_dirs() == ("/opt/vendor/lib",)
    got = resolver.closure(APP)
    (missing,) = got.missing
    assert missing.looked == SYSTEM  # no cache: none is said to be searched
    hint = resolver.hint(missing, Flavor.of(fs.lookup(APP).elf))
    assert "/opt/vendor/lib/libv.so.1 is in /opt/vendor/lib, which /etc/ld.so.conf names" in hint
    assert "no /etc/ld.so.cache" in hint
    assert "run ldconfig" in hint
    result = check_libs(P(AMD64), fs)
    assert result.outcome == FAILED
    assert f"{APP} needs libv.so.1: not in {', '.join(SYSTEM)} ({hint})" in result.detail
    # A cache made before the library was installed: the fix is the same.
    stale = image(
        {
            **LD_SO_CONF,
            "/etc/ld.so.cache": ld_so_cache([("libz.so.1", f"{T}/libz.so.1")]),
            APP: exe(needed=("libv.so.1",)),
            "/opt/vendor/lib/libv.so.1": lib("libv.so.1"),
        }
    )
    detail = check_libs(P(AMD64), stale).detail
    assert "/etc/ld.so.cache does not list it: run ldconfig after installing it" in detail
    # With an up-to-date cache it is found.
    fresh = image(
        {
            **LD_SO_CONF,
            "/etc/ld.so.cache": ld_so_cache([("libv.so.1", "/opt/vendor/lib/libv.so.1")]),
            APP: exe(needed=("libv.so.1",)),
            "/opt/vendor/lib/libv.so.1": lib("libv.so.1"),
        }
    )
    assert check_libs(P(AMD64), fresh).outcome == PASSED


# --- symbol versions ----------------------------------------------------------------------
LIBC_VERSIONS = ("GLIBC_2.2.5", "GLIBC_2.4", "GLIBC_2.34", "GLIBC_2.36", "GLIBC_PRIVATE", "GLIBC_ABI_DT_RELR")


def versions_image(needs: Sequence[Version], *, libc_defines: Sequence[str] = LIBC_VERSIONS) -> Filesystem:
    return image(
        {
            APP: exe(needed=("libc.so.6",), verneed=(("libc.so.6", tuple(needs)),)),
            f"{T}/libc.so.6": lib("libc.so.6", verdef=tuple(libc_defines)),
        }
    )


def test_a_missing_version_fails_with_the_newest_of_its_kind():
    fs = versions_image(["GLIBC_2.2.5", "GLIBC_2.38"])
    (problem,) = closure(fs).versions
    assert (problem.needer, problem.version, problem.library) == (APP, "GLIBC_2.38", "libc.so.6")
    assert (problem.provider, problem.newest) == (f"{T}/libc.so.6", "GLIBC_2.36")  # not 2.4, not GLIBC_PRIVATE
    got = check_libs(P(AMD64), fs)
    assert got.outcome == FAILED
    assert f"{APP} needs version GLIBC_2.38 of {T}/libc.so.6: the newest it defines is GLIBC_2.36" in got.detail


def test_a_version_of_a_kind_the_provider_lacks():
    (problem,) = closure(versions_image(["GCC_3.0"])).versions
    assert problem.newest is None
    assert "it defines no version of that kind" in check_libs(P(AMD64), versions_image(["GCC_3.0"])).detail


@pytest.mark.parametrize(
    ("needs", "defines"),
    [
        ([("GLIBC_2.38", True)], LIBC_VERSIONS),  # a weak need: glibc only warns
        (["GLIBC_2.38"], ()),  # a provider without versions: glibc only warns
        (["GLIBC_2.36", "GLIBC_PRIVATE"], LIBC_VERSIONS),
    ],
    ids=["weak", "unversioned-provider", "all-defined"],
)
def test_versions_that_do_not_fail(needs, defines):
    fs = versions_image(needs, libc_defines=defines)
    assert closure(fs).versions == []
    assert check_libs(P(AMD64), fs).outcome == PASSED


def test_musl_checks_no_versions():
    fs = image(
        {
            MUSL: make_elf(etype=3, soname="libc.musl-x86_64.so.1"),
            APP: make_elf(interp=MUSL, needed=("libfoo.so.1",), verneed=(("libfoo.so.1", ("FOO_2.0",)),)),
            "/usr/lib/libfoo.so.1": make_elf(etype=3, soname="libfoo.so.1", verdef=("FOO_1.0",)),
        },
        platform=None,
    )
    assert closure(fs).versions == []
    assert check_libs(P(AMD64), fs).outcome == PASSED


# --- the libs check -----------------------------------------------------------------------
def test_a_library_need_only_an_executables_rpath_meets_is_not_reported():
    fs = image(
        {
            APP: exe(rpath="/opt/app/lib", needed=("libapp.so.1",)),
            "/opt/app/lib/libapp.so.1": lib("libapp.so.1", needed=("libhelper.so.1",)),
            "/opt/app/lib/libhelper.so.1": lib("libhelper.so.1"),
        }
    )
    # Loaded on its own, the library does not find its need...
    assert [m.name for m in closure(fs, "/opt/app/lib/libapp.so.1").missing] == ["libhelper.so.1"]
    # ...but the executable that loads it does, and that is how it runs.
    got = check_libs(P(AMD64), fs)
    assert got.outcome == PASSED, got.detail
    assert got.detail.startswith("2 dynamic ELF files: every library they need is found")


def test_a_missing_need_of_an_executable_says_who_needs_what_and_where_it_looked():
    fs = image({APP: exe(needed=("libc.so.6", "libnope.so.1")), f"{T}/libc.so.6": lib("libc.so.6")})
    got = check_libs(P(AMD64), fs)
    assert got.outcome == FAILED
    assert got.detail == f"1 of 1 dynamic ELF files cannot load: {APP} needs libnope.so.1: not in {', '.join(SYSTEM)}"


def test_a_library_the_executable_finds_by_its_runpath_still_misses_its_own_need():
    fs = image(
        {
            APP: exe(runpath="/opt/app/lib", needed=("liba.so.1",)),
            "/opt/app/lib/liba.so.1": lib("liba.so.1", needed=("libb.so.1",)),
            "/opt/app/lib/libb.so.1": lib("libb.so.1"),
        }
    )
    got = check_libs(P(AMD64), fs)
    assert got.outcome == FAILED
    assert "/opt/app/lib/liba.so.1 needs libb.so.1: not in /lib/x86_64-linux-gnu" in got.detail
    assert "(/opt/app/lib/libb.so.1 has that name, in a directory the loader does not search)" in got.detail


def test_many_needers_of_one_missing_library_make_one_sentence():
    files: Files = {f"/usr/bin/tool{i}": exe(needed=("libgone.so.1",)) for i in range(6)}
    got = check_libs(P(AMD64), image(files))
    assert got.outcome == FAILED
    assert got.detail.count("libgone.so.1") == 1
    assert got.detail == (
        f"6 of 6 dynamic ELF files cannot load: /usr/bin/tool0 needs libgone.so.1: not in {', '.join(SYSTEM)}, "
        "nor 5 more files that need it (/usr/bin/tool1, /usr/bin/tool2, /usr/bin/tool3, ...)"
    )


def test_a_static_only_image_is_skipped_with_the_reason():
    fs = image({"/usr/bin/static": make_elf(), "/usr/bin/static-pie": make_elf(etype=3, dynamic=PIE)}, platform=None)
    got = check_libs(P(AMD64), fs)
    assert (got.outcome, got.skip) == (SKIPPED, NO_DYNAMIC)
    assert got.detail == "no dynamically linked ELF files in the image"


# --- the pages check ----------------------------------------------------------------------
ARM64 = "linux/arm64"


def pages_image(compat: dict[str, bytes] | None = None) -> Filesystem:
    files: Files = {
        "/usr/bin/big": elf_for(ARM64, loads=(0x10000, 0x10000)),
        "/usr/lib/aarch64-linux-gnu/libbig.so.1": elf_for(ARM64, etype=3, loads=(0x10000,)),
        "/usr/bin/small": elf_for(ARM64, loads=(0x10000, 0x1000)),  # its smallest alignment counts
        **(compat or {}),
    }
    return image(files, platform=None)


def test_pages_reports_the_largest_page_size_without_a_size_given():
    got = check_pages(P(ARM64), pages_image())
    assert got.outcome == PASSED
    assert got.detail == (
        "3 ELF files run on pages up to 4 KiB, set by /usr/bin/small (the others up to 64 KiB); "
        "linux/arm64 kernels may have pages up to 64 KiB: --page-size fails the platform on it"
    )


def test_pages_fails_a_page_size_some_files_are_not_aligned_for():
    got = check_pages(P(ARM64), pages_image(), page_size=16384)
    assert got.outcome == FAILED
    assert got.detail == (
        "1 of 3 ELF files cannot run on a kernel with 16 KiB pages (--page-size): "
        "/usr/bin/small (PT_LOAD aligned to 4 KiB); link them with -z max-page-size=16384"
    )
    assert check_pages(P(ARM64), pages_image(), page_size=65536).outcome == FAILED
    assert check_pages(P(ARM64), pages_image(), page_size=4096).outcome == PASSED


@pytest.mark.parametrize(
    ("platform", "own", "compat"),
    [
        ("linux/arm64", elf_for(ARM64, loads=(0x10000,)), elf_for("linux/arm/v7", loads=(0x1000,))),
        ("linux/amd64", elf_for(AMD64, loads=(0x10000,)), elf_for("linux/386", loads=(0x1000,))),
    ],
    ids=["armhf-in-arm64", "i386-in-amd64"],
)
def test_pages_leaves_compat_code_out(platform, own, compat):
    fs = image({"/usr/bin/own": own, "/usr/lib32/tool": compat}, platform=None)
    got = check_pages(P(platform), fs, page_size=65536)
    assert got.outcome == PASSED, got.detail
    assert got.detail == "1 ELF files, all aligned for 64 KiB pages or larger (--page-size)"


def test_version_entries_past_the_budget_leave_the_file_unchecked():
    # One budget for every version chain of a file: a crafted one whose chains share
    # entries cannot make the reader walk millions of them.
    many = [("libc.so.6", tuple((f"V_{i}", False) for i in range(elf.MAX_VERSIONS + 1)))]
    info = elf.parse(exe(needed=("libc.so.6",), verneed=many), APP)
    assert info.dynamic is not None
    assert info.dynamic.unread == f"it has more than {elf.MAX_VERSIONS} version entries"


def test_an_ld_so_conf_that_includes_itself_is_read_once():
    conf = b"include /etc/ld.so.conf /etc/ld.so.conf /etc/ld.so.conf /etc/ld.so.conf\n/opt/l\n"
    fs = image({APP: exe(needed=("libx.so",)), "/opt/l/libx.so": lib("libx.so"), "/etc/ld.so.conf": conf})
    assert Resolver(fs).conf_dirs() == ("/opt/l",)
    assert "which /etc/ld.so.conf names" in check_libs(P(AMD64), fs).detail
