"""The harness on every sample image, all nine platforms, one real run: the right verdicts."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import RELEASE_PLATFORMS, TOP, by_platform, image_named, project, run_plugin
from harness.gate import SCHEMA_FILE
from harness.manifest import Index
from harness.reference import Reference
from harness.registry import Registry

SAMPLE_TESTS = TOP / "sample_images" / "tests" / "test_busybox.py"


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    return project(tmp_path_factory, "samples", {"test_busybox.py": SAMPLE_TESTS.read_text()})


@pytest.fixture(scope="module")
def run(samples, where, engine):
    args = [a for ref in samples.values() for a in ("--image", ref)]
    before = engine.containers.list(all=True, filters={"label": "io.multiarch-harness"})
    out = run_plugin(
        where,
        *args,
        "--platforms",
        ",".join(RELEASE_PLATFORMS),
        "-rf",
        "-v",
        "--junitxml",
        str(where / "junit.xml"),
        "--multiarch-markdown",
        str(where / "summary.md"),
    )
    after = engine.containers.list(all=True, filters={"label": "io.multiarch-harness"})
    assert len(after) <= len(before), "the run left containers behind"
    return out


def checks_failing(image: dict, check: str) -> set[str]:
    return {p["platform"] for p in image["platforms"] if p["checks"][check]["outcome"] == "failed"}


def test_exit_status_is_failure_because_of_the_defects(run):
    result, _ = run
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_junit_cases_carry_platform_mode_and_digest(run, where):
    import xml.etree.ElementTree as ET

    root = ET.parse(where / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    case = cases["test_shell_runs[samples/good:1.0-linux/arm64]"]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["platform"] == "linux/arm64"
    assert props["mode"] == "emulated"
    assert props["digest"].startswith("sha256:")
    assert set(props) == {"platform", "mode", "digest"}


def test_markdown_summary_has_every_row(run, where):
    md = (where / "summary.md").read_text()
    assert md.startswith("### Multi-architecture results: some platforms failed")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| ")]
    assert ["❌", "samples/lost-arm64:1.0", "linux/arm64", "missing", "", "", "", "", ""] in rows
    assert len(rows) == 1 + 5 * 9  # header, then one row per (image, platform)


def test_the_report_follows_its_json_schema(run):
    _, data = run
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))


def test_good_image_passes_everything_everywhere(run, samples):
    _, data = run
    good = image_named(data, samples["good"])
    assert good["missing_platforms"] == []
    assert [p["platform"] for p in good["platforms"]] == RELEASE_PLATFORMS
    for plat in good["platforms"]:
        assert {c["outcome"] for c in plat["checks"].values()} == {"passed"}, plat
        assert [t["outcome"] for t in plat["tests"]] == ["passed"] * 4, plat


def test_modes_come_from_the_engine_and_binfmt(run, samples):
    _, data = run
    modes = {p["platform"]: p["mode"] for p in image_named(data, samples["good"])["platforms"]}
    host = data["host"]["platform"]
    assert host == "linux/amd64", "these expectations are for an amd64 engine"
    assert modes["linux/amd64"] == modes["linux/386"] == "native"
    assert {m for p, m in modes.items() if p not in ("linux/amd64", "linux/386")} == {"emulated"}
    assert set(data["host"]["emulated"]) == set(RELEASE_PLATFORMS) - {"linux/amd64", "linux/386"}


def test_uname_matches_this_host_per_platform(run, samples):
    _, data = run
    plats = by_platform(image_named(data, samples["good"]))
    says = {p: plats[p]["checks"]["uname"]["detail"].split()[3] for p in plats}
    assert says == {
        "linux/amd64": "x86_64",
        "linux/386": "x86_64",
        "linux/arm64": "aarch64",
        "linux/arm/v7": "armv7l",
        "linux/arm/v6": "armv6l",
        "linux/arm/v5": "armv5tel",
        "linux/ppc64le": "ppc64le",
        "linux/s390x": "s390x",
        "linux/mips64le": "mips64",
    }


def test_amd64_tarball_is_caught_on_every_other_platform(run, samples):
    _, data = run
    image = image_named(data, samples["amd64-tarball"])
    assert checks_failing(image, "elf") == set(RELEASE_PLATFORMS) - {"linux/amd64"}
    arm64 = by_platform(image)["linux/arm64"]["checks"]["elf"]["detail"]
    assert "/usr/local/bin/tool is ELF64 LSB x86-64 (EM_X86_64), expected ELF64 LSB AArch64" in arm64
    # It runs on this amd64 host all the same: only the ELF audit sees it.
    assert checks_failing(image, "uname") == set()


def test_armv7_code_in_v6_and_v5_is_caught(run, samples):
    _, data = run
    image = image_named(data, samples["armv7-in-v6"])
    assert checks_failing(image, "elf") == {"linux/arm/v6", "linux/arm/v5"}
    assert "/bin/busybox needs ARMv7" in by_platform(image)["linux/arm/v6"]["checks"]["elf"]["detail"]


def test_armv7_code_dies_on_a_faithful_v6_cpu(run, samples):
    # QEMU's default CPU would run it; with QEMU_CPU=arm1176 it dies as on a Pi Zero.
    _, data = run
    plats = by_platform(image_named(data, samples["armv7-in-v6"]))
    cpus = {"linux/arm/v6": "CPU arm1176", "linux/arm/v5": "CPU arm926"}
    for name, cpu in cpus.items():
        assert plats[name]["mode_reason"].endswith(cpu)
        uname = plats[name]["checks"]["uname"]
        assert uname["outcome"] == "failed"
        assert "Illegal instruction" in uname["detail"]
        assert "failed" in [t["outcome"] for t in plats[name]["tests"]]
    assert {t["outcome"] for t in plats["linux/arm/v7"]["tests"]} == {"passed"}


def test_lost_arm64_is_reported_missing(run, samples):
    result, data = run
    image = image_named(data, samples["lost-arm64"])
    assert image["missing_platforms"] == ["linux/arm64"]
    assert "linux/arm64" not in by_platform(image)
    result.stdout.fnmatch_lines(
        ["*lost-arm64:1.0::index*", "*lost-arm64:1.0: missing from the index: linux/arm64 (present: linux/amd64*"]
    )


def test_mislabelled_config_is_caught_on_arm64_only(run, samples):
    _, data = run
    image = image_named(data, samples["mislabelled"])
    assert checks_failing(image, "config") == {"linux/arm64"}
    assert checks_failing(image, "elf") == set()
    assert (
        "config says linux/amd64 but the index entry says linux/arm64"
        in (by_platform(image)["linux/arm64"]["checks"]["config"]["detail"])
    )


def test_each_platform_is_tested_by_its_own_digest(run, samples):
    _, data = run
    registry = Registry()
    for name in ("good", "mislabelled"):
        image = image_named(data, samples[name])
        index = registry.manifest(Reference.parse(samples[name]))
        assert isinstance(index, Index)
        assert image["digest"] == index.digest
        entries = {str(d.platform): d.digest for d in index.platform_entries}
        assert {p["platform"]: p["digest"] for p in image["platforms"]} == entries


def test_ids_and_matrix_carry_the_platform(run):
    result, _ = run
    out = result.stdout.str()
    assert "test_busybox.py::test_shell_runs[samples/good:1.0-linux/arm64] PASSED" in out or (
        "samples/good:1.0-linux/arm64" in out
    )
    result.stdout.fnmatch_lines(
        [
            "*multiarch: per-platform results*",
            "*samples/good:1.0*linux/s390x*emulated*ok*ok*ok*4/0/0*pass",
            "*samples/lost-arm64:1.0*linux/arm64*missing*FAIL",
            "What the red rows caught:",
        ]
    )


def test_slowdown_is_reported_for_emulated_platforms(run, samples):
    _, data = run
    plats = by_platform(image_named(data, samples["good"]))
    assert plats["linux/amd64"]["slowdown"] == 1.0
    for name in ("linux/arm64", "linux/s390x"):
        assert plats[name]["slowdown"] is not None
        assert plats[name]["slowdown_samples"] >= 5  # four tests and the uname probe
