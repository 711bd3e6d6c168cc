"""The CPUs QEMU emulates per platform, and what ``uname -m`` says under them (measured here:
``docker run -e QEMU_CPU=cortex-a15 --platform linux/arm/v7 ... uname -m`` says armv7l)."""

from __future__ import annotations

import pytest

from harness.arch import spec_for
from harness.platform import Platform


@pytest.mark.parametrize(
    ("platform", "cpu", "uname"),
    [
        # ARMv7-A with VFPv4, NEON and Thumb-2: everything Debian armhf assumes, and no ARMv8
        # instruction (QEMU's default CPU runs ARMv8's AES and SHA instructions in arm/v7).
        ("linux/arm/v7", "cortex-a15", "armv7l"),
        ("linux/arm/v6", "arm1176", "armv6l"),
        ("linux/arm/v5", "arm926", "armv5tel"),
        ("linux/arm64", None, "aarch64"),
        ("linux/amd64", None, "x86_64"),
    ],
)
def test_each_arm_variant_runs_under_a_cpu_of_its_own_level(platform, cpu, uname):
    spec = spec_for(Platform.parse(platform))
    assert spec is not None
    assert (spec.qemu_cpu, spec.uname_qemu) == (cpu, uname)
