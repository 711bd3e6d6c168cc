"""--qemu-cpu and --page-size as the library applies them: which platform they reach."""

from __future__ import annotations

from harness import Harness
from harness.engine import EMULATED, NATIVE, Mode
from harness.platform import Platform

P = Platform.parse


class StubEngine:
    """An engine that runs amd64 natively and emulates the rest, QEMU_CPU set for arm/v7."""

    platform = P("linux/amd64")

    def mode(self, platform: Platform) -> Mode:
        if platform in self.platform.compatible():
            return Mode(NATIVE, "the engine runs linux/amd64")
        if platform == P("linux/arm/v7"):
            return Mode(
                EMULATED, "qemu via binfmt_misc handler qemu-arm, CPU cortex-a15", (("QEMU_CPU", "cortex-a15"),)
            )
        return Mode(EMULATED, "qemu via binfmt_misc handler qemu-aarch64")


def test_qemu_cpu_sets_the_cpu_of_an_emulated_platform_only() -> None:
    cpus = {P("linux/arm64"): "cortex-a72", P("linux/arm/v7"): "cortex-a7", P("linux/amd64"): "Nehalem"}
    h = Harness("linux/amd64,linux/arm64,linux/arm/v7", engine=StubEngine(), qemu_cpus=cpus)  # type: ignore[arg-type]
    arm64 = h.mode(P("linux/arm64"))
    assert dict(arm64.env) == {"QEMU_CPU": "cortex-a72"}
    assert arm64.reason == "qemu via binfmt_misc handler qemu-aarch64, CPU cortex-a72 (--qemu-cpu)"
    armv7 = h.mode(P("linux/arm/v7"))  # the user's CPU over the harness's own choice
    assert dict(armv7.env) == {"QEMU_CPU": "cortex-a7"}
    assert armv7.reason == "qemu via binfmt_misc handler qemu-arm, CPU cortex-a7 (--qemu-cpu)"
    assert h.mode(P("linux/amd64")).env == ()  # native: no emulator to tell


def test_a_bare_page_size_reaches_only_platforms_whose_kernels_have_it() -> None:
    h = Harness("linux/amd64", page_sizes={None: 65536, P("linux/arm64"): 16384})
    assert h.page_size(P("linux/arm64")) == 16384  # named: its own
    assert h.page_size(P("linux/ppc64le")) == 65536
    assert h.page_size(P("linux/amd64")) is None  # 4 KiB pages only: nothing to hold it to
    assert Harness("linux/amd64").page_size(P("linux/arm64")) is None
