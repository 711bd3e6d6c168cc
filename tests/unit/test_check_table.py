"""A built-in check is one function and one entry of the table: registered so, it is an item
of every platform and a column of every output, and the gate holds the platform to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_strict_elf import amd64_with_lib32

from harness import checks, gate
from harness.checks import FAILED, BuiltinCheck, CheckResult
from harness.release import IMAGE_CHECKS
from harness.report import Report

CONFTEST = """
from harness.checks import BUILTIN_CHECKS, FAILED, BuiltinCheck, CheckResult


def _has_app(ctx, target):
    found = ctx.which(target, "app") or "nothing"
    return CheckResult(FAILED, f"planted: found {found} on {target.platform}")


BUILTIN_CHECKS.append(BuiltinCheck("planted", _has_app, False, "a check registered by a test"))
"""


def _planted(ctx, target):  # the same check, for this process's gate
    return CheckResult(FAILED, "planted")


def test_a_registered_check_is_in_every_output(pytester: pytest.Pytester, tmp_path, monkeypatch):
    image = amd64_with_lib32(tmp_path / "layout")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # static checks only
    pytester.makeconftest(CONFTEST)
    json_path, html, md = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.md"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--image",
        image,
        f"--multiarch-json={json_path}",
        f"--multiarch-html={html}",
        f"--multiarch-markdown={md}",
        "-rf",
    )
    # An item of its own, failing with the check's own words.
    result.stdout.fnmatch_lines(
        ["*planted[[]linux/amd64[]] _*", "*: linux/amd64: planted: found /usr/bin/app on linux/amd64"]
    )
    result.stdout.fnmatch_lines(["FAILED multiarch:oci:*::planted[[]linux/amd64[]]*"])
    # A column of the terminal matrix, after the ones that ship.
    header = next(line for line in result.stdout.lines if line.split()[:2] == ["platform", "mode"])
    assert header.split()[:8] == ["platform", "mode", "config", "elf", "libs", "pages", "uname", "planted"]
    doc = json.loads(json_path.read_text())
    (plat,) = doc["images"][0]["platforms"]
    assert plat["checks"]["planted"] == {"outcome": "failed", "detail": "planted: found /usr/bin/app on linux/amd64"}
    assert '<th title="a check registered by a test">planted</th>' in html.read_text()
    md_header = next(line for line in md.read_text().splitlines() if "platform" in line and "|" in line)
    cells = [c.strip() for c in md_header.split("|")]
    assert cells[cells.index("config") :][:6] == ["config", "elf", "libs", "pages", "uname", "planted"]

    # The gate: the schema takes the new name, the platform is held to it, and a report
    # without it lacks a check that should have run.
    monkeypatch.setattr(
        checks, "BUILTIN_CHECKS", [*checks.BUILTIN_CHECKS, BuiltinCheck("planted", _planted, False, "")]
    )
    gate.validate(doc)
    assert any("planted failed: planted: found /usr/bin/app" in r for r in gate.reasons(doc))
    del plat["checks"]["planted"]
    assert any(r.endswith("the planted check did not run") for r in gate.reasons(doc))


def test_the_matrix_of_a_missing_platform_has_a_cell_per_check(monkeypatch):
    """With a fourth check, a missing platform's row still has as many cells as the header."""
    monkeypatch.setattr(
        checks, "BUILTIN_CHECKS", [*checks.BUILTIN_CHECKS, BuiltinCheck("planted", _planted, False, "")]
    )
    doc = {
        "schema": 1,
        "host": {"platform": "linux/amd64", "engine": "e", "emulated": []},
        "images": [
            {"ref": "r/x:1", "digest": "sha256:" + "a" * 64, "missing_platforms": ["linux/arm64"], "platforms": []}
        ],
    }
    text = Report.from_json(doc).matrix(width=100)
    assert "linux/arm64  missing" in text


def test_the_readme_names_every_built_in_check():
    """Its line in the README's "Built-in checks" is the third part of adding a check."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Built-in checks", 1)[1].split("\n#", 1)[0]
    rows = {line.split("|")[1].strip().split()[0].strip("`") for line in section.splitlines() if line.startswith("| `")}
    assert rows == {*checks.check_names(), "index", "probe", *IMAGE_CHECKS}
