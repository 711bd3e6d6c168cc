from __future__ import annotations

import json
import math

import pytest

from harness.report import KIND_CHECK, KIND_COVERAGE, KIND_TEST, Report

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
        {
            "image": IMG,
            "index_digest": "sha256:idx",
            "kind": KIND_COVERAGE,
            "missing": ["linux/riscv64"],
            "present": ["linux/amd64", "linux/arm64"],
        }
    )
    for p in ("linux/amd64", "linux/arm64"):
        for c in ("config", "elf"):
            r.add(check(p, c))
    r.add(check("linux/arm64", "uname", "failed", "uname -m says 'x86_64'"))
    r.add(make_test("linux/amd64", "test_a", command_s=1.0))
    r.add(make_test("linux/arm64", "test_a", command_s=4.0))
    r.add(make_test("linux/amd64", "test_b", command_s=2.0))
    r.add(make_test("linux/arm64", "test_b", command_s=2.0))
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
    r.add(make_test("linux/arm64", "test_a", command_s=3.0))
    assert r.to_json()["images"][0]["platforms"][0]["slowdown"] is None


def test_phases_fold_to_the_worst_outcome():
    r = Report("linux/amd64", "e")
    r.add(make_test("linux/amd64", "t", "passed", command_s=None, when_call=False))
    r.add(make_test("linux/amd64", "t", "failed", command_s=1.0, detail="assert 1 == 2"))
    r.add(make_test("linux/amd64", "t", "passed", when_call=False))
    (t,) = r.to_json()["images"][0]["platforms"][0]["tests"]
    assert t["outcome"] == "failed"
    assert t["duration_s"] == pytest.approx(1.5)


def test_matrix_has_a_row_per_platform_and_says_what_was_caught(report):
    text = report.matrix(width=80)
    lines = text.splitlines()
    assert any("linux/amd64" in line and "pass" in line for line in lines)
    assert any("linux/arm64" in line and "FAIL" in line for line in lines)
    assert any("linux/riscv64" in line and "missing" in line for line in lines)
    assert "uname: uname -m says 'x86_64'" in text
    assert "not in the index (present: linux/amd64, linux/arm64)" in " ".join(text.split())
    assert max(len(line) for line in lines[lines.index("What the red rows caught:") :]) <= 80
    assert "\x1b[" not in text
    assert "\x1b[31m" in report.matrix(colour=True)


def test_failed_when_anything_failed(report):
    assert report.failed
    assert not Report("linux/amd64", "e").failed


def test_failed_commands_are_no_slowdown_samples():
    r = Report("linux/amd64", "e")
    r.add(make_test("linux/amd64", "test_a", command_s=1.0))
    r.add(make_test("linux/arm/v6", "test_a", outcome="failed", command_s=0.01))  # died of SIGILL at once
    r.add(make_test("linux/amd64", "test_b", command_s=1.0))
    r.add(make_test("linux/arm/v6", "test_b", command_s=3.0))
    plats = {p["platform"]: p for p in r.to_json()["images"][0]["platforms"]}
    assert plats["linux/arm/v6"]["slowdown"] == 3.0
    assert plats["linux/arm/v6"]["slowdown_samples"] == 1


def test_markdown_summary(report):
    md = report.markdown()
    assert md.startswith("### Multi-architecture results: some platforms failed")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| ")]
    assert ["✅", "samples/x:1.0", "linux/amd64", "native", "ok", "ok", "", "2/0/0", "1.0x"] in rows
    assert ["❌", "samples/x:1.0", "linux/arm64", "emulated", "ok", "ok", "FAIL", "2/0/0", "2.0x"] in rows
    assert "linux/riscv64" in md
    assert "- **samples/x:1.0 linux/arm64**: uname: uname -m says 'x86_64'" in md
