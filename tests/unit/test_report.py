from __future__ import annotations

import json
import math

import pytest

from harness.platform import Platform
from harness.records import CheckRecord, CoverageRecord, ProbeRecord, Record, Subject, TestRecord
from harness.report import Report

KIND_CHECK, KIND_COVERAGE, KIND_TEST = "check", "coverage", "test"

IMG = "127.0.0.1:5000/samples/x:1.0"


def rec(platform: str, **kw):
    base = {
        "image": IMG,
        "index_digest": "sha256:idx",
        "platform": platform,
        "digest": f"sha256:{platform}",
        "mode": "native" if platform == "linux/amd64" else "emulated",
        "mode_reason": "r",
    }
    return base | kw


def typed(flat: dict) -> Record:
    """The record that a flat description (the fields of every kind side by side) stands for."""
    kind = flat["kind"]
    if kind == KIND_COVERAGE:
        plats = {k: tuple(Platform.parse(p) for p in flat.get(k, ())) for k in ("present", "missing", "requested")}
        outcome = flat.get("outcome", "passed")
        return CoverageRecord(flat["image"], flat["index_digest"], outcome, "", **plats, is_index=flat.get("is_index"))
    platform = Platform.parse(flat["platform"])
    subject = Subject(flat["image"], flat["index_digest"], platform, flat["digest"], flat["mode"], flat["mode_reason"])
    if kind == KIND_CHECK:
        warnings = tuple(flat.get("warnings", ()))
        return CheckRecord(subject, flat["name"], flat["outcome"], flat["detail"], flat.get("command_s"), warnings)
    if kind == "probe":
        return ProbeRecord(subject, flat["samples"])
    return TestRecord(
        subject, flat["name"], flat["nodeid"], flat["outcome"], flat["detail"], flat["duration_s"], flat["command_s"]
    )


def check(platform, name, outcome="passed", detail="ok", command_s=None):
    return rec(platform, kind=KIND_CHECK, name=name, outcome=outcome, detail=detail, command_s=command_s)


def make_test(platform, name, outcome="passed", command_s=None, when_call=True, detail=""):
    nodeid = f"t.py::{name}[{platform}]"
    return rec(
        platform,
        kind=KIND_TEST,
        name=f"t.py::{name}[*]",
        nodeid=nodeid,
        outcome=outcome,
        duration_s=0.5,
        command_s=command_s if when_call else None,
        detail=detail,
    )


@pytest.fixture
def report():
    r = Report("linux/amd64", "docker 20.10 at unix:///var/run/docker.sock")
    r.add(
        typed(
            {
                "image": IMG,
                "index_digest": "sha256:idx",
                "kind": KIND_COVERAGE,
                "missing": ["linux/riscv64"],
                "present": ["linux/amd64", "linux/arm64"],
            }
        )
    )
    for p in ("linux/amd64", "linux/arm64"):
        for c in ("config", "elf"):
            r.add(typed(check(p, c)))
    r.add(typed(check("linux/arm64", "uname", "failed", "uname -m says 'x86_64'")))
    r.add(typed(make_test("linux/amd64", "test_a", command_s=1.0)))
    r.add(typed(make_test("linux/arm64", "test_a", command_s=4.0)))
    r.add(typed(make_test("linux/amd64", "test_b", command_s=2.0)))
    r.add(typed(make_test("linux/arm64", "test_b", command_s=2.0)))
    return r


def test_json_follows_schema_1(report):
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["schema"] == 1
    assert doc["host"] == {
        "platform": "linux/amd64",
        "engine": "docker 20.10 at unix:///var/run/docker.sock",
        "emulated": ["linux/arm64"],
    }
    (image,) = doc["images"]
    assert image["ref"] == IMG
    assert image["digest"] == "sha256:idx"
    assert image["missing_platforms"] == ["linux/riscv64"]
    arm = image["platforms"][1]
    assert arm["platform"] == "linux/arm64"
    assert arm["mode"] == "emulated"
    assert arm["checks"]["uname"] == {"outcome": "failed", "detail": "uname -m says 'x86_64'"}
    assert {t["nodeid"] for t in arm["tests"]} == {"t.py::test_a[linux/arm64]", "t.py::test_b[linux/arm64]"}


def test_slowdown_is_the_geometric_mean_of_paired_ratios(report):
    doc = report.to_json()
    amd, arm = doc["images"][0]["platforms"]
    assert amd["slowdown"] == 1.0
    assert arm["slowdown"] == pytest.approx(math.sqrt(4.0 * 1.0), rel=1e-3)
    assert arm["slowdown_samples"] == 2


def test_no_native_reference_means_no_slowdown():
    r = Report("linux/amd64", "e")
    r.add(typed(make_test("linux/arm64", "test_a", command_s=3.0)))
    assert r.to_json()["images"][0]["platforms"][0]["slowdown"] is None


def test_phases_fold_to_the_worst_outcome():
    r = Report("linux/amd64", "e")
    r.add(typed(make_test("linux/amd64", "t", "passed", command_s=None, when_call=False)))
    r.add(typed(make_test("linux/amd64", "t", "failed", command_s=1.0, detail="assert 1 == 2")))
    r.add(typed(make_test("linux/amd64", "t", "passed", when_call=False)))
    (t,) = r.to_json()["images"][0]["platforms"][0]["tests"]
    assert t["outcome"] == "failed"
    assert t["duration_s"] == pytest.approx(1.5)


def test_matrix_has_a_row_per_platform_and_says_what_was_caught(report):
    text = report.matrix(width=80)
    lines = text.splitlines()
    assert any(line.startswith("linux/amd64") and line.rstrip().endswith("pass") for line in lines)
    arm = next(i for i, line in enumerate(lines) if line.startswith("linux/arm64"))
    assert lines[arm].rstrip().endswith("FAIL")
    assert lines[arm + 1] == "  - uname: uname -m says 'x86_64'"  # the one-line reason under its row
    missing = next(i for i, line in enumerate(lines) if line.startswith("linux/riscv64"))
    assert "missing" in lines[missing]
    assert lines[missing + 1] == "  - not in the index (present: linux/amd64, linux/arm64)"
    assert "\x1b[" not in text
    assert "\x1b[31m" in report.matrix(colour=True)


LONG_ELF = (
    "elf: 1 of 2 ELF files do not fit linux/mips64le: /usr/local/bin/tool is ELF64 LSB x86-64 "
    "(EM_X86_64), expected ELF64 LSB MIPS (EM_MIPS)"
)


def nine_platform_report() -> Report:
    """The shape of the sample run: a long image name, nine platforms, tests, a long reason."""
    plats = ["linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    plats += ["linux/ppc64le", "linux/s390x", "linux/mips64le"]
    r = Report("linux/amd64", "e")
    image = "127.0.0.1:5000/samples/amd64-tarball:1.0"
    for p in plats:
        base = rec(p, image=image)
        for c in ("config", "elf", "uname"):
            failed = c == "elf" and p != "linux/amd64"
            detail = LONG_ELF.split(": ", 1)[1] if failed else "fine"
            r.add(
                typed(
                    base
                    | {"kind": KIND_CHECK, "name": c, "outcome": "failed" if failed else "passed", "detail": detail}
                )
            )
        for name in ("test_shell_runs", "test_sha256_is_right", "test_gzip_roundtrip"):
            outcome = "failed" if (name, p) == ("test_gzip_roundtrip", "linux/s390x") else "passed"
            test = make_test(p, name, outcome, command_s=1.0) | {"name": f"t.py::{name}[samples/amd64-tarball:1.0-*]"}
            r.add(typed(test | {"image": image}))
    return r


def test_matrix_fits_80_columns_with_nine_platforms_and_long_reasons():
    text = nine_platform_report().matrix(width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    # The reason keeps its first finding, cut to the width.
    assert "  - elf: /usr/local/bin/tool is ELF64 LSB x86-64, expected ELF64 LSB MIPS" in lines
    # Tests x platforms, split into tables that each fit; every platform appears once.
    headers = [line.split() for line in lines if line.startswith("tests ")]
    assert len(headers) >= 2
    shown = [p for h in headers for p in h[1:]]
    assert shown == ["amd64", "386", "arm64", "arm/v7", "arm/v6", "arm/v5", "ppc64le", "s390x", "mips64le"]
    assert sum(1 for line in lines if line.startswith("test_gzip_roundtrip ")) == len(headers)


def test_test_labels_drop_the_platform_and_image_but_keep_other_parameters():
    from harness.report import _test_label

    ref = "127.0.0.1:5000/samples/armv7-in-v6:1.0"
    assert _test_label("t.py::test_a[*]", ref) == "test_a"
    assert _test_label("t.py::test_a[samples/armv7-in-v6:1.0-*]", ref) == "test_a"
    assert _test_label("t.py::test_a[*-gzip]", ref) == "test_a[gzip]"
    assert _test_label("t.py::TestX::test_b", ref) == "test_b"


def test_probe_samples_count_towards_the_slowdown():
    r = Report("linux/amd64", "e")
    r.add(typed(rec("linux/amd64", kind="probe", samples={"start": 0.05, "shell": 0.02})))
    r.add(typed(rec("linux/arm64", kind="probe", samples={"start": 0.20, "shell": 0.08})))
    arm = r.to_json()["images"][0]["platforms"][1]
    assert arm["slowdown"] == 4.0
    assert arm["slowdown_samples"] == 2
    assert arm["probe_s"] == {"start": 0.2, "shell": 0.08}


def test_max_slowdown_fails_the_platform_above_it(report):
    report.max_slowdown = 1.5
    doc = report.to_json()
    assert doc["max_slowdown"] == 1.5
    amd, arm = doc["images"][0]["platforms"]
    assert amd["checks"]["slowdown"]["outcome"] == "passed"
    assert arm["checks"]["slowdown"] == {
        "outcome": "failed",
        "detail": "2.00x (geometric mean of 2 paired commands), above --max-slowdown 1.5",
    }
    assert [(p.platform) for _, p in report.over_limit()] == ["linux/arm64"]
    assert "2.0x!" in report.matrix()
    report.max_slowdown = 3
    assert not report.over_limit()
    assert report.to_json()["images"][0]["platforms"][1]["checks"]["slowdown"]["outcome"] == "passed"


def test_failed_when_anything_failed(report):
    assert report.failed
    assert not Report("linux/amd64", "e").failed


def test_failed_commands_are_no_slowdown_samples():
    r = Report("linux/amd64", "e")
    r.add(typed(make_test("linux/amd64", "test_a", command_s=1.0)))
    r.add(typed(make_test("linux/arm/v6", "test_a", outcome="failed", command_s=0.01)))  # died of SIGILL at once
    r.add(typed(make_test("linux/amd64", "test_b", command_s=1.0)))
    r.add(typed(make_test("linux/arm/v6", "test_b", command_s=3.0)))
    plats = {p["platform"]: p for p in r.to_json()["images"][0]["platforms"]}
    assert plats["linux/arm/v6"]["slowdown"] == 3.0
    assert plats["linux/arm/v6"]["slowdown_samples"] == 1


def test_markdown_summary(report):
    md = report.markdown()
    assert md.startswith("### Multi-architecture results: some platforms failed")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| ")]
    # config, elf, libs, pages, uname: the report has no libs or pages result.
    assert ["✅", "samples/x:1.0", "linux/amd64", "native", "ok", "ok", "", "", "", "2/0/0", "1.0x"] in rows
    assert ["❌", "samples/x:1.0", "linux/arm64", "emulated", "ok", "ok", "", "", "FAIL", "2/0/0", "2.0x"] in rows
    assert "linux/riscv64" in md
    assert "- **samples/x:1.0 linux/arm64**: uname: uname -m says 'x86_64'" in md


def test_tests_that_passed_everywhere_take_one_line():
    r = Report("linux/amd64", "e")
    for p in ("linux/amd64", "linux/arm64"):
        for name in ("test_a", "test_b"):
            r.add(typed(make_test(p, name, command_s=1.0)))
    lines = r.matrix().splitlines()
    assert "tests: all 2 passed on all 2 platforms" in lines
    assert not any(line.startswith("tests ") for line in lines)


def test_an_unmeasurable_limit_fails_the_platform_with_the_reason():
    r = Report("linux/amd64", max_slowdown=8)
    r.add(typed(check("linux/arm64", "uname", command_s=0.2)))
    plat = r.images[IMG].platforms["linux/arm64"]
    assert r.over_limit() == [(IMG, plat)]
    assert plat.reason() == (
        "slowdown: not measured (no linux/amd64 in this run to compare with: add it to --platforms), "
        "so --max-slowdown 8 is not met"
    )
    slowdown = r.to_json()["images"][0]["platforms"][0]["checks"]["slowdown"]
    assert slowdown == {"outcome": "failed", "detail": plat.limit_reason()}


def test_warnings_show_in_every_output(report):
    warned = check("linux/amd64", "elf", detail="700 ELF files")
    report.add(typed(warned | {"warnings": ["/usr/lib32/libc.so.6 is 32-bit x86 compat code", "and 271 more"]}))
    amd64 = report.to_json()["images"][0]["platforms"][0]
    assert amd64["checks"]["elf"]["warnings"][0] == "/usr/lib32/libc.so.6 is 32-bit x86 compat code"
    matrix = report.matrix(width=80)
    amd64_row = next(line for line in matrix.splitlines() if line.startswith("linux/amd64"))
    assert amd64_row.split()[:4] == ["linux/amd64", "native", "ok", "warn"]
    assert "  ~ warning: elf: /usr/lib32/libc.so.6 is 32-bit x86 compat code (+1 more)" in matrix
    assert "- **samples/x:1.0 linux/amd64**: elf: and 271 more" in report.markdown()


def test_an_incomplete_run_says_so_first():
    r = Report("linux/amd64")
    r.add(typed(check("linux/amd64", "config")))
    r.run.incomplete = ["terminated by SIGTERM", "3 of 9 selected test(s) did not run to their end"]
    doc = r.to_json()
    assert (doc["complete"], doc["incomplete"]) == (False, r.run.incomplete)
    assert r.matrix(width=80).startswith("INCOMPLETE RUN: terminated by SIGTERM; 3 of 9 selected test(s)")
    assert r.markdown().startswith("### Multi-architecture results: incomplete run\n\n**Incomplete run:**")


def test_a_single_image_is_named_as_one():
    r = Report("linux/amd64")
    r.add(typed({"image": IMG, "index_digest": "sha256:idx", "kind": KIND_COVERAGE, "is_index": False, "present": []}))
    r.add(typed(check("linux/amd64", "config")))
    assert "samples/x:1.0 @ sha256:idx (a single image, not a manifest list)" in r.matrix()


def test_a_report_is_written_whole_or_not_at_all(tmp_path):
    from harness.report import write_atomic

    path = tmp_path / "out" / "r.json"
    write_atomic(path, "first")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, broken)
    assert path.read_text() == "first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]  # no temporary file left


def test_the_errors_a_test_may_catch_are_exported_by_the_library():
    import harness
    from harness.container import CommandTimeout, ContainerGone

    assert (harness.CommandTimeout, harness.ContainerGone) == (CommandTimeout, ContainerGone)
