"""The plugin's options and collection, black-box with pytester; no engine needed."""

from __future__ import annotations

import json

import pytest


def test_platform_typo_is_a_usage_error_with_a_suggestion(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--platforms", "linux/amd64,linux/amd46")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--platforms (command line): unknown platform 'linux/amd46': did you mean linux/amd64?*"]
    )


def test_platforms_from_ini_and_env_say_where_they_came_from(pytester: pytest.Pytester, monkeypatch):
    pytester.makepyfile("def test_x(): pass")
    pytester.makeini("[pytest]\nmultiarch_platforms = aarch64, linux/arm/v7\n")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["multiarch: platforms linux/arm64,linux/arm/v7 (from ini)"])
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("MULTIARCH_PLATFORMS", "linux/s390x")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["multiarch: platforms linux/s390x (from env MULTIARCH_PLATFORMS)"])
    result = pytester.runpytest_subprocess("--platforms", "all")
    result.stdout.fnmatch_lines(["multiarch: platforms all (from command line)"])


def test_bad_image_reference_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--image", "Not An Image")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--image: 'Not An Image' is not an image reference*"])


def test_container_without_an_image_says_how_to_name_one(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(container): pass")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_x uses a multiarch fixture*pass --image REF or mark the test*"])
    assert "Traceback" not in result.stdout.str()


def test_plugin_is_inert_without_images(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("platform", ["a", "b"])
        def test_own_platform_argument(platform):
            assert platform in "ab"

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3)
    assert "per-platform results" not in result.stdout.str()


def test_unreachable_registry_fails_the_image_not_the_run(pytester: pytest.Pytester):
    # Nothing listens on port 9 of loopback: the image cannot be resolved.
    pytester.makepyfile("def test_x(container): pass")
    result = pytester.runpytest_subprocess("--image", "127.0.0.1:9/nothing/here:1", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*127.0.0.1:9/nothing/here:1*failed after*"])


def test_a_report_path_that_cannot_be_written_is_a_usage_error_before_the_run(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(): pass")
    (pytester.path / "taken").write_text("a file, not a folder")
    for flag in ("--multiarch-json", "--multiarch-html", "--multiarch-markdown"):
        result = pytester.runpytest_subprocess(flag, "taken/report.out")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{flag} taken/report.out: cannot write the report there*"])
        assert "Traceback" not in result.stderr.str()


def test_elf_globs_are_made_absolute(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
from pytest_multiarch.plugin import state_of

def pytest_report_header(config):
    opts = state_of(config).opts
    return [f"globs {list(opts.elf_include)} {list(opts.elf_exclude)}"]
"""
    )
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess(
        "--elf-include", "usr/local/bin/*", "--elf-include", "/opt/*", "--elf-exclude", "*.ko"
    )
    result.stdout.fnmatch_lines(["globs ['/usr/local/bin/*', '/opt/*'] ['*.ko']"])


@pytest.mark.parametrize(
    ("files", "args", "why"),
    [
        ({"test_a.py": "def test_x(container): pass", "test_b.py": "this is not python"}, (), "collection error"),
        (
            {"test_a.py": "def test_x(container): pass\ndef test_y(): assert 0\ndef test_z(): pass"},
            ("-x",),
            "stopped early",
        ),
        ({"test_a.py": "def test_x(container): pass\ndef test_y(): pass"}, ("-k", "test_x"), "deselected"),
    ],
    ids=["collection-error", "-x", "-k"],
)
def test_a_run_that_did_not_run_everything_writes_an_incomplete_report(pytester: pytest.Pytester, files, args, why):
    # The image cannot be resolved (nothing listens on port 9): no engine is needed for this.
    pytester.makepyfile(**{name.removesuffix(".py"): text for name, text in files.items()})
    report = pytester.path / "r.json"
    pytester.runpytest_subprocess(
        "--image", "127.0.0.1:9/nothing/here:1", "-p", "no:cacheprovider", "--multiarch-json", str(report), *args
    )
    doc = json.loads(report.read_text())
    assert doc["complete"] is False
    assert any(why in reason for reason in doc["incomplete"]), doc["incomplete"]
