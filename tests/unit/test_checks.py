from __future__ import annotations

import pytest
from elfcraft import elf_for, make_elf
from layerkit import entry, fs_of

from harness.arch import expected_uname
from harness.checks import FAILED, PASSED, SKIPPED, check_config, check_elf, check_uname
from harness.manifest import ImageConfig
from harness.platform import Platform

P = Platform.parse


def config(arch: str, variant: str | None = None) -> ImageConfig:
    doc = f'{{"os": "linux", "architecture": "{arch}"' + (f', "variant": "{variant}"' if variant else "") + "}"
    return ImageConfig.parse(doc.encode(), "cfg")


def test_config_matches_after_normalisation():
    assert check_config(P("linux/arm64"), config("arm64", "v8")).outcome == PASSED


def test_config_disagreeing_with_index_says_both():
    got = check_config(P("linux/arm64"), config("amd64"))
    assert got.outcome == FAILED
    assert "config says linux/amd64" in got.detail
    assert "index entry says linux/arm64" in got.detail


def test_config_variant_is_checked():
    assert check_config(P("linux/arm/v6"), config("arm", "v7")).outcome == FAILED


def test_amd64_binary_in_arm64_image_is_named():
    fs = fs_of(entry("bin/busybox", elf_for("linux/arm64")), entry("usr/local/bin/tool", elf_for("linux/amd64")))
    got = check_elf(P("linux/arm64"), fs)
    assert got.outcome == FAILED
    assert "/usr/local/bin/tool is ELF64 LSB x86-64 (EM_X86_64), expected ELF64 LSB AArch64 (EM_AARCH64)" in got.detail
    assert "/bin/busybox" not in got.detail


@pytest.mark.parametrize(
    ("platform", "binary", "outcome"),
    [
        ("linux/arm/v6", "linux/arm/v7", FAILED),
        ("linux/arm/v5", "linux/arm/v7", FAILED),
        ("linux/arm/v5", "linux/arm/v6", FAILED),
        ("linux/arm/v7", "linux/arm/v5", PASSED),
        ("linux/arm/v6", "linux/arm/v5", PASSED),
        ("linux/arm/v7", "linux/arm/v7", PASSED),
    ],
)
def test_arm_level_is_a_minimum(platform, binary, outcome):
    got = check_elf(P(platform), fs_of(entry("bin/app", elf_for(binary))))
    assert got.outcome == outcome, got.detail


def test_arm_v7_in_v6_says_what_it_needs():
    got = check_elf(P("linux/arm/v6"), fs_of(entry("bin/app", elf_for("linux/arm/v7"))))
    assert "/bin/app needs ARMv7 (Tag_CPU_arch 10); linux/arm/v6 CPUs run at most ARMv6K" in got.detail


def test_endianness_is_checked():
    be = make_elf(elf_class=64, big_endian=True, machine=8)  # mips64 in a mips64le image
    got = check_elf(P("linux/mips64le"), fs_of(entry("bin/x", be)))
    assert got.outcome == FAILED
    assert "ELF64 MSB MIPS" in got.detail


def test_missing_loader_is_reported():
    fs = fs_of(entry("usr/bin/app", elf_for("linux/arm64", interp="/lib/ld-linux-aarch64.so.1")))
    got = check_elf(P("linux/arm64"), fs)
    assert got.outcome == FAILED
    assert "loader /lib/ld-linux-aarch64.so.1 is not in the image" in got.detail


def test_loader_through_a_symlink_counts():
    fs = fs_of(
        entry("usr/bin/app", elf_for("linux/arm64", interp="/lib/ld-linux-aarch64.so.1")),
        entry("lib", link="usr/lib"),
        entry("usr/lib/ld-linux-aarch64.so.1", elf_for("linux/arm64")),
    )
    assert check_elf(P("linux/arm64"), fs).outcome == PASSED


def test_no_elf_files_is_skipped():
    assert check_elf(P("linux/amd64"), fs_of(entry("app.py", b"print('hi')\n" * 10))).outcome == SKIPPED


def test_long_lists_are_summarised():
    fs = fs_of(*(entry(f"bin/t{i}", elf_for("linux/amd64")) for i in range(20)))
    got = check_elf(P("linux/s390x"), fs)
    assert "20 of 20 ELF files" in got.detail
    assert "and 12 more" in got.detail


# uname facts measured on these machines (PLATFORMS.md), with the CPU the harness picks under
# QEMU (arm1176 for arm/v6, arm926 for arm/v5); a change here is a change of fact.
@pytest.mark.parametrize(
    ("platform", "emulated", "expected"),
    [
        ("linux/amd64", False, ("x86_64",)),
        ("linux/386", False, ("x86_64", "i686")),
        ("linux/386", True, ("i686",)),
        ("linux/arm64", True, ("aarch64",)),
        ("linux/arm/v7", True, ("armv7l",)),
        ("linux/arm/v6", True, ("armv6l",)),
        ("linux/arm/v5", True, ("armv5tel",)),
        ("linux/ppc64le", True, ("ppc64le",)),
        ("linux/s390x", True, ("s390x",)),
        ("linux/mips64le", True, ("mips64",)),
        ("linux/riscv64", True, ("riscv64",)),
    ],
)
def test_expected_uname_on_an_amd64_host(platform, emulated, expected):
    assert expected_uname(P(platform), P("linux/amd64"), emulated) == expected


def test_arm_on_an_arm64_host_says_aarch64():
    assert "aarch64" in expected_uname(P("linux/arm/v7"), P("linux/arm64"), False)
    assert expected_uname(P("linux/arm64"), P("linux/arm64"), False) == ("aarch64",)
    assert expected_uname(P("linux/amd64"), P("linux/arm64"), True) == ("x86_64",)


def test_uname_mismatch_says_what_was_expected():
    got = check_uname(P("linux/arm64"), P("linux/amd64"), True, "x86_64")
    assert got.outcome == FAILED
    assert got.detail == "uname -m says 'x86_64', expected aarch64 for linux/arm64 under qemu"


def test_globs_that_leave_nothing_to_audit_fail_naming_them():
    fs = fs_of(entry("bin/busybox", elf_for("linux/amd64")), entry("usr/bin/env", elf_for("linux/amd64")))
    got = check_elf(P("linux/amd64"), fs, include=("/usr/lcoal/bin/*",))
    assert got.outcome == FAILED
    assert got.detail.startswith("--elf-include '/usr/lcoal/bin/*' matches no ELF file of the 2 in this image")
    got = check_elf(P("linux/amd64"), fs, exclude=("*",))
    assert got.outcome == FAILED
    assert got.detail.startswith("--elf-exclude '*' leaves none of the 2 ELF files in this image to audit")
    assert check_elf(P("linux/amd64"), fs, include=("/usr/*",)).outcome == PASSED
    got = check_elf(P("linux/amd64"), fs, include=("/usr/*", "/usr/lcoal/*"))  # one glob of two is wrong
    assert got.outcome == FAILED
    assert got.detail.startswith("--elf-include '/usr/lcoal/*' matches no ELF file")
    assert check_elf(P("linux/amd64"), fs_of(entry("etc/motd", b"hello"))).outcome == SKIPPED


class _KilledUnder:
    """A run whose shared container a test beside the check kills under its first ``kills`` commands."""

    elf_include: tuple[str, ...] = ()
    elf_exclude: tuple[str, ...] = ()
    strict_elf = False

    def __init__(self, kills: int) -> None:
        self.kills = kills
        self.commands: list[tuple[str, ...]] = []

    def which(self, target, name):
        return f"/bin/{name}"

    def run(self, target, cmd, *, alone=False):
        assert alone
        from harness.container import CommandResult, ContainerGone

        self.commands.append(tuple(cmd))
        if len(self.commands) <= self.kills:
            why = f"the container of {target.platform} stopped during the run (exited, exit code 137)"
            raise ContainerGone(f"$ uname -m: {why}")
        return CommandResult(tuple(cmd), 0, "aarch64\n", "", 0.01)

    def host_platform(self, platform):
        return platform

    def calibrate(self, platform, seconds):
        pass


def _uname_under(ctx: _KilledUnder):
    from harness.checks import builtin
    from harness.engine import NATIVE, Mode
    from harness.planner import Target

    target = Target("img", "sha256:" + "a" * 64, P("linux/arm64"), "sha256:" + "b" * 64, Mode(NATIVE, "test"))
    return builtin("uname").run(ctx, target)


def test_uname_runs_once_more_in_a_fresh_container_when_a_test_killed_the_shared_one_under_it():
    ctx = _KilledUnder(kills=1)
    got = _uname_under(ctx)
    assert (got.outcome, got.detail) == (PASSED, "uname -m says aarch64 (natively on linux/arm64)")
    assert ctx.commands == [("/bin/uname", "-m")] * 2


def test_uname_whose_container_stops_twice_fails_with_why():
    ctx = _KilledUnder(kills=2)
    got = _uname_under(ctx)
    assert got.outcome == FAILED
    assert "stopped during the run (exited, exit code 137)" in got.detail
    assert len(ctx.commands) == 2
