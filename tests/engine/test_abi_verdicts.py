"""The verdicts of the libs, pages and elf checks on samples/debian-abi and
samples/debian-v3, whose defects tests/engine/test_abi_samples.py shows by running them.

One plugin run over both images: every defect fails the check that owns it, on its own
platform only, and the platforms without a defect pass every check.
"""

from __future__ import annotations

import pytest
from enginekit import DEBIAN_PLATFORMS, by_platform, harness_containers, image_named, project, run_plugin, sample_refs

from harness import Harness

pytestmark = pytest.mark.engine

STATIC = ("config", "elf", "libs", "pages")


@pytest.fixture(scope="module")
def abi(registry: str) -> dict[str, str]:
    return sample_refs(registry, ("debian-abi", "debian-v3"))


@pytest.fixture(scope="module")
def run(abi, tmp_path_factory, engine):
    where = project(tmp_path_factory, "abi", {"test_nothing.py": ""})
    before = set(harness_containers(engine))
    out = run_plugin(
        where,
        "--image",
        abi["debian-abi"],
        "--platforms",
        ",".join(DEBIAN_PLATFORMS),
        "--page-size",
        "linux/arm64=16K",
        env={"COLUMNS": "80"},
    )
    assert not set(harness_containers(engine)) - before, "the run left containers behind"
    return out


def outcomes(plat: dict) -> dict[str, str]:
    return {name: plat["checks"][name]["outcome"] for name in (*STATIC, "uname")}


def test_each_defect_fails_its_own_check_on_its_own_platform(run, abi):
    result, data = run
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    plats = by_platform(image_named(data, abi["debian-abi"]))
    ok = dict.fromkeys((*STATIC, "uname"), "passed")
    assert outcomes(plats["linux/amd64"]) == ok | {"elf": "failed"}
    assert outcomes(plats["linux/arm64"]) == ok | {"pages": "failed"}
    assert outcomes(plats["linux/ppc64le"]) == ok | {"libs": "failed"}
    assert outcomes(plats["linux/s390x"]) == ok | {"libs": "failed"}
    assert outcomes(plats["linux/386"]) == outcomes(plats["linux/arm/v7"]) == ok


def test_the_details_name_the_file_and_what_it_lacks(run, abi):
    _, data = run
    plats = by_platform(image_named(data, abi["debian-abi"]))
    elf = plats["linux/amd64"]["checks"]["elf"]["detail"]
    assert "/usr/local/bin/hello-v3 is marked x86-64-v3" in elf, elf
    assert "/usr/local/bin/hello-go-v3 is a Go binary built with GOAMD64=v3" in elf, elf
    libs = plats["linux/ppc64le"]["checks"]["libs"]["detail"]
    assert (
        "/usr/bin/openssl needs libssl.so.3: not in /lib/powerpc64le-linux-gnu, /usr/lib/powerpc64le-linux-gnu" in libs
    )
    assert "libcurl.so.4" in libs, libs  # curl's library needs it too, in the same sentence
    versions = plats["linux/s390x"]["checks"]["libs"]["detail"]
    assert (
        "/usr/local/bin/tree needs version GLIBC_2.38 of /usr/lib/s390x-linux-gnu/libc.so.6: "
        "the newest it defines is GLIBC_2.36" in versions
    ), versions
    pages = plats["linux/arm64"]["checks"]["pages"]["detail"]
    assert pages.startswith("1 of "), pages
    assert "/usr/local/bin/hello-4k (PT_LOAD aligned to 4 KiB)" in pages, pages
    assert "16 KiB pages" in pages, pages


def test_without_page_size_arm64_is_reported_not_failed(abi):
    # The same image, no --page-size: the check says what the files allow and passes.
    with Harness("linux/arm64,linux/ppc64le") as h:
        got = h.audit(abi["debian-abi"], "pages")
    arm64, ppc64le = (got[p] for p in sorted(got, key=str))
    assert arm64.outcome == "passed", arm64
    assert "run on pages up to 4 KiB, set by /usr/local/bin/hello-4k" in arm64.detail, arm64.detail
    assert "(the others up to 64 KiB)" in arm64.detail, arm64.detail
    assert ppc64le.outcome == "passed", ppc64le
    assert "up to 64 KiB" in ppc64le.detail, ppc64le.detail


def test_the_same_v3_binaries_pass_where_the_index_promises_v3(abi, tmp_path_factory):
    where = project(tmp_path_factory, "v3", {"test_nothing.py": ""})
    result, data = run_plugin(where, "--image", abi["debian-v3"], "--platforms", "linux/amd64/v3")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (plat,) = image_named(data, abi["debian-v3"])["platforms"]
    assert plat["platform"] == "linux/amd64/v3"
    assert outcomes(plat) == dict.fromkeys((*STATIC, "uname"), "passed"), plat["checks"]


COUNT_TEST = """
def test_count_lse(container):
    result = container.run(["/usr/local/bin/count-lse"])
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    assert result.stdout.startswith("counted 1000")
"""


def test_qemu_cpu_names_the_floor_cpu_an_emulated_platform_runs_on(abi, tmp_path_factory, engine):
    # count-lse's atomic add is an ARMv8.1 LSE instruction: QEMU's default CPU runs it, the
    # Raspberry Pi 4's Cortex-A72 (ARMv8.0) does not; --qemu-cpu makes the run find out.
    where = project(tmp_path_factory, "cpu", {"test_count.py": COUNT_TEST})
    before = set(harness_containers(engine))
    default, data = run_plugin(where, "--image", abi["debian-abi"], "--platforms", "linux/arm64", "-k", "count")
    (plat,) = image_named(data, abi["debian-abi"])["platforms"]
    assert [t["outcome"] for t in plat["tests"]] == ["passed"], default.stdout.str()
    floor, data = run_plugin(
        where,
        "--image",
        abi["debian-abi"],
        "--platforms",
        "linux/arm64",
        "--qemu-cpu",
        "linux/arm64=cortex-a72",
        "-k",
        "count",
    )
    (plat,) = image_named(data, abi["debian-abi"])["platforms"]
    assert [t["outcome"] for t in plat["tests"]] == ["failed"], floor.stdout.str()
    assert plat["mode_reason"].endswith("CPU cortex-a72 (--qemu-cpu)"), plat["mode_reason"]
    floor.stdout.fnmatch_lines(["*132*"])  # SIGILL
    assert not set(harness_containers(engine)) - before, "the runs left containers behind"


def test_an_unknown_qemu_cpu_is_a_usage_error(abi, tmp_path_factory):
    where = project(tmp_path_factory, "badcpu", {"test_nothing.py": ""})
    result, _ = run_plugin(where, "--image", abi["debian-abi"], "--qemu-cpu", "linux/arm64=cortex-a99")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qemu-cpu*'linux/arm64=cortex-a99'*knows no CPU 'cortex-a99'*cortex-a72*"])
