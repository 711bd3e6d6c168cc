"""The harness on every sample image, all twelve platforms, one real run: the right verdicts."""

from __future__ import annotations

import json

import browser
import jsonschema
import pytest
from enginekit import RELEASE_PLATFORMS, by_platform, image_named

from harness.gate import SCHEMA_FILE
from harness.manifest import Index
from harness.reference import Reference
from harness.registry import Registry
from harness.report import MIN_TIMED_S


@pytest.fixture(scope="module")
def where(samples_project):
    return samples_project


@pytest.fixture(scope="module")
def run(sample_run):
    return sample_run


def timed_natively(native: dict) -> int:
    """How many of a native platform's tests and probe commands took long enough to time
    (MIN_TIMED_S): the pairs a slowdown can have, besides the uname check's."""
    times = [t["command_s"] for t in native["tests"] if t["outcome"] == "passed" and t["command_s"] is not None]
    times += list((native.get("probe_s") or {}).values())
    return sum(1 for t in times if t >= MIN_TIMED_S)


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


ARMV5_V6 = ("linux/arm/v6", "linux/arm/v5")


def test_markdown_summary_has_every_row(run, where):
    md = (where / "summary.md").read_text()
    assert md.startswith("### Multi-architecture results: some platforms failed")
    matrix = md[: md.index("What the red rows caught:")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in matrix.splitlines() if line.startswith("| ")]
    assert ["❌", "samples/lost-arm64:1.0", "linux/arm64", "missing", "", "", "", "", "", "", ""] in rows
    assert len(rows) == 1 + 5 * len(RELEASE_PLATFORMS)  # header, then one row per (image, platform)
    # Then, per image, its tests x platforms, folded away.
    assert md.count("<details><summary>Tests of ") == 5
    v6 = md[md.index("<summary>Tests of samples/armv7-in-v6:1.0") :]
    grid = [[c.strip() for c in line.strip("|").split("|")] for line in v6.splitlines() if line.startswith("| ")]
    assert grid[0][1:] == [p.removeprefix("linux/") for p in RELEASE_PLATFORMS]
    assert ["test_shell_runs", *(("❌" if p in ARMV5_V6 else "✅") for p in RELEASE_PLATFORMS)] in grid


def test_the_report_follows_its_json_schema(run):
    _, data = run
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))


def test_good_image_passes_everything_everywhere(run, samples):
    _, data = run
    good = image_named(data, samples["good"])
    assert good["missing_platforms"] == []
    assert [p["platform"] for p in good["platforms"]] == RELEASE_PLATFORMS
    for plat in good["platforms"]:
        # busybox is static: the libs check has nothing to resolve, and says so.
        assert {n: c["outcome"] for n, c in plat["checks"].items() if n != "libs"} == dict.fromkeys(
            [n for n in plat["checks"] if n != "libs"], "passed"
        ), plat
        assert plat["checks"]["libs"]["outcome"] == "skipped", plat
        assert plat["checks"]["libs"]["skip"] == "no-dynamic-files", plat
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
        "linux/riscv64": "riscv64",
        "linux/mips64": "mips64",
        "linux/loong64": "loongarch64",
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
    assert "test_busybox.py::test_shell_runs[samples/good:1.0-linux/arm64] PASSED" in out
    result.stdout.fnmatch_lines(
        [
            "*multiarch: per-platform results*",
            "samples/good:1.0 @ sha256:*",
            "platform  *mode  *config  elf  libs  pages  uname  p/f/s  slow  verdict",
            "linux/s390x  *emulated  ok  *ok  *skip  *ok  *ok  *4/0/0  *[0-9]*x  *pass",
            "samples/lost-arm64:1.0 @ sha256:*",
            "linux/arm64  *missing  *FAIL",
            "  - not in the index (present: linux/amd64, linux/386, *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "samples/amd64-tarball:1.0 @ sha256:*",
            "*",
            "*",
            "linux/amd64  *native  *ok  *ok  *ok  *4/0/0  *1.0x  *pass",
            "linux/386  *native  *ok  *FAIL  *ok  *4/0/0  *FAIL",
            "  - elf: /usr/local/bin/tool is ELF64 LSB x86-64, expected ELF32 LSB Intel 80386",
        ]
    )


def test_matrix_and_tests_table_fit_80_columns(run):
    result, _ = run
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "multiarch: per-platform results" in line)
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("JSON report:"))
    section = lines[start:end]
    assert max(len(line) for line in section) <= 80, "\n".join(line for line in section if len(line) > 80)
    # Tests x platforms of the armv7-in-v6 image, in as many tables as 80 columns take: its
    # four tests die on arm/v6 and arm/v5 only.
    at = next(i for i, line in enumerate(section) if line.startswith("samples/armv7-in-v6:1.0 @ "))
    end = next(i for i in range(at + 1, len(section)) if section[i].startswith("samples/"))
    headers = [i for i in range(at, end) if section[i].startswith("tests ")]
    assert len(headers) > 1
    columns = [word for i in headers for word in section[i].split()[1:]]
    assert columns == [p.removeprefix("linux/") for p in RELEASE_PLATFORMS]
    first = [word for i in headers for word in section[i + 2].split()[1:]]
    assert first == [("FAIL" if p in ARMV5_V6 else "ok") for p in RELEASE_PLATFORMS]


def test_junit_has_a_suite_per_platform(run, where):
    import xml.etree.ElementTree as ET

    suites = {s.get("name"): s for s in ET.parse(where / "junit.xml").getroot().iter("testsuite")}
    assert [n for n in suites if n != "pytest"] == [f"pytest ({p})" for p in RELEASE_PLATFORMS]
    v6 = suites["pytest (linux/arm/v6)"]
    names = [c.get("name") for c in v6.iter("testcase")]
    assert "test_shell_runs[samples/armv7-in-v6:1.0-linux/arm/v6]" in names
    assert all("linux/arm/v6" in n for n in names)
    failed = [c.get("name") for c in v6.iter("testcase") if c.find("failure") is not None]
    assert int(v6.get("failures")) == len(failed) > 0
    # 5 images x (config, elf, libs, pages, uname, probe, 4 tests), except arm/v6 is in all five.
    assert int(v6.get("tests")) == len(names) == 5 * 10
    # The index checks carry no platform: they stay in the suite pytest named.
    assert {c.get("name") for c in suites["pytest"].iter("testcase")} == {"index", "provenance"}


def test_html_page_renders_in_chromium_with_what_failed(run, where, samples):
    why = browser.missing()
    if why:
        pytest.fail(why)
    _, data = run
    with browser.chromium() as driver:
        driver.get((where / "report.html").resolve().as_uri())
        assert driver.title == "Multi-architecture results: some platforms failed"
        assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
        sections = {s.get_attribute("data-ref"): s for s in driver.find_elements("css selector", "section.image")}
        assert list(sections) == list(samples.values())

        def rows(ref: str, kind: str) -> list[str]:
            found = sections[ref].find_elements("css selector", f"table.matrix tr.{kind}")
            assert all(r.is_displayed() for r in found)
            return [r.get_attribute("data-platform") for r in found]

        assert rows(samples["good"], "pass") == RELEASE_PLATFORMS
        assert rows(samples["amd64-tarball"], "fail") == RELEASE_PLATFORMS[1:]
        assert rows(samples["lost-arm64"], "fail") == ["linux/arm64"]
        red = sections[samples["amd64-tarball"]].find_element("css selector", "table.matrix tr.fail td")
        assert red.value_of_css_property("background-color") == "rgba(255, 235, 233, 1)"
        caught = sections[samples["amd64-tarball"]].find_element("css selector", 'li[data-platform="linux/arm64"]')
        assert caught.is_displayed()
        assert "/usr/local/bin/tool is ELF64 LSB x86-64 (EM_X86_64), expected ELF64 LSB AArch64" in caught.text
        v6 = sections[samples["armv7-in-v6"]].find_element("css selector", 'li[data-platform="linux/arm/v6"]')
        assert "test_busybox.py::test_shell_runs[samples/armv7-in-v6:1.0-linux/arm/v6]" in v6.text
        # The chart: one bar per platform, drawn as wide as its figure says.
        good = by_platform(image_named(data, samples["good"]))
        bars = sections[samples["good"]].find_elements("css selector", "svg.chart rect.bar")
        assert [b.get_attribute("data-platform") for b in bars] == RELEASE_PLATFORMS
        widths = {b.get_attribute("data-platform"): b.rect["width"] for b in bars}
        for bar in bars:
            name = bar.get_attribute("data-platform")
            assert float(bar.get_attribute("data-slowdown")) == pytest.approx(good[name]["slowdown"], abs=1e-3)
            ratio = widths[name] / widths["linux/amd64"]
            assert ratio == pytest.approx(good[name]["slowdown"], rel=0.05)


def test_the_probe_gives_every_platform_a_figure(run, samples):
    _, data = run
    plats = by_platform(image_named(data, samples["good"]))
    for name in RELEASE_PLATFORMS:
        assert set(plats[name]["probe_s"]) == {"start", "shell", "hash"}, name
    # Emulated, the probe's shell loop is several times slower than natively.
    assert plats["linux/arm64"]["probe_s"]["shell"] > 2 * plats["linux/amd64"]["probe_s"]["shell"]


def test_slowdown_is_reported_for_emulated_platforms(run, samples):
    _, data = run
    plats = by_platform(image_named(data, samples["good"]))
    assert plats["linux/amd64"]["slowdown"] == 1.0
    for name in ("linux/arm64", "linux/s390x"):
        assert plats[name]["slowdown"] is not None
        # Four tests, uname and three probe commands, less those too short to time natively.
        assert timed_natively(plats["linux/amd64"]) <= plats[name]["slowdown_samples"]
        assert plats[name]["slowdown_samples"] <= timed_natively(plats["linux/amd64"]) + 1  # + uname
