"""Runs that tested less than they claim: each must say so, and the gate must refuse it.

Each test here is one way a run used to end in "release may go out" while proving less:
interrupted or terminated runs, -k and -m filters, relative ELF globs, a slowdown limit
nobody could measure, hand-written reports. And the smaller honesty fixes: a single image
said to be one, a slowdown failure in JUnit, a run with no engine, registries that are down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from enginekit import buildah_write, by_platform, image_named, project, reap, run_plugin, start_job

from harness.manifest import Index
from harness.reference import Reference
from harness.registry import Registry

TESTS = """
def test_x(container):
    assert container.run(["true"]).exit_code == 0


def test_y(container):
    assert container.run(["true"]).exit_code == 0
"""
PLATFORMS = "linux/amd64,linux/arm64"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    return project(tmp_path_factory, "honesty", {"test_app.py": TESTS})


def _gate_refuses(where, *extra: str) -> str:
    gate = cli("gate", str(where / "multiarch.json"), *extra)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "release must not go out" in gate.stdout
    return gate.stdout


# --- 1 and 6: interrupted and terminated runs ----------------------------------------------------
SLOW = """
import pytest


@pytest.mark.parametrize("i", range(4))
def test_slow(container, i):
    container.run(["sleep", "30"])
"""


@pytest.mark.parametrize(
    ("signum", "workers"),
    [
        (signal.SIGINT, "0"),
        (signal.SIGTERM, "0"),
        (signal.SIGHUP, "0"),
        (signal.SIGTERM, "2"),
        (signal.SIGHUP, "2"),
    ],
    ids=["SIGINT-n0", "SIGTERM-n0", "SIGHUP-n0", "SIGTERM-n2", "SIGHUP-n2"],
)
def test_a_stopped_run_cleans_up_writes_an_incomplete_report_and_is_refused(
    signum, workers, samples, tmp_path_factory, engine
):
    where = project(tmp_path_factory, f"signal-{signum.name}-{workers}", {"test_slow.py": SLOW})
    report = where / "multiarch.json"
    session = f"test-signal-{os.getpid()}-{time.monotonic_ns()}"
    label = {"label": f"io.multiarch-harness.session={session}"}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--image", samples["good"]]
    cmd += ["--platforms", PLATFORMS, "-n", workers, "--multiarch-json", str(report)]
    proc = start_job(cmd, where, {"MULTIARCH_SESSION_ID": session})
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(engine.api.containers(filters=label)) < 2:
            time.sleep(0.2)
        assert len(engine.api.containers(filters=label)) >= 2, "the containers did not start"
        time.sleep(2)  # the first tests are now inside their 30 s command
        os.killpg(proc.pid, signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        reap(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert engine.api.containers(all=True, filters=label) == [], "containers left behind"
    data = json.loads(report.read_text())
    assert data["complete"] is False
    said = "interrupted" if signum == signal.SIGINT else f"terminated by {signum.name}"
    assert any(said in why for why in data["incomplete"]), data["incomplete"]
    assert any("did not run to their end" in why for why in data["incomplete"])
    assert "INCOMPLETE RUN" in out
    assert "the run was incomplete" in _gate_refuses(where)
    promoted = cli("promote", samples["good"], samples["good"].replace(":1.0", ":never"), "--report", str(report))
    assert promoted.returncode == 1
    assert "the run was incomplete" in promoted.stderr


# --- 2: -k and -m keep the built-in checks ----------------------------------------------------
@pytest.mark.parametrize("selection", [["-k", "test_x"], ["-m", "smoke"]], ids=["-k", "-m"])
def test_filters_never_drop_the_built_in_checks(selection, samples, where, no_leftovers):
    # amd64-tarball's arm64 platform fails its ELF audit: a filter must not hide that.
    result, data = run_plugin(where, "--image", samples["amd64-tarball"], "--platforms", PLATFORMS, *selection)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    arm64 = by_platform(image_named(data, samples["amd64-tarball"]))["linux/arm64"]
    assert set(arm64["checks"]) == {"config", "elf", "libs", "pages", "uname"}
    assert arm64["checks"]["elf"]["outcome"] == "failed"
    assert data["complete"] is False
    assert data["run"]["deselected"], data["run"]
    _gate_refuses(where)


def test_a_filtered_green_run_is_still_refused(samples, where, no_leftovers):
    result, data = run_plugin(where, "--image", samples["good"], "--platforms", PLATFORMS, "-k", "test_x")
    assert result.ret == pytest.ExitCode.OK
    assert data["incomplete"] == ["2 item(s) deselected (-k, -m, --deselect, --lf or a plugin)"]
    assert "deselected" in _gate_refuses(where)


# --- 3: relative ELF globs, and globs that match nothing ----------------------------------------------
def test_a_relative_elf_glob_means_the_same_as_an_absolute_one(samples, where, no_leftovers):
    _result, data = run_plugin(
        where, "--image", samples["amd64-tarball"], "--platforms", PLATFORMS, "--elf-include", "usr/local/bin/*"
    )
    arm64 = by_platform(image_named(data, samples["amd64-tarball"]))["linux/arm64"]
    assert arm64["checks"]["elf"]["outcome"] == "failed"
    assert "/usr/local/bin/tool is ELF64 LSB x86-64" in arm64["checks"]["elf"]["detail"]
    assert data["run"]["settings"]["elf_include"] == ["/usr/local/bin/*"]


def test_an_elf_glob_that_matches_nothing_fails_naming_it(samples, where, no_leftovers):
    result, data = run_plugin(
        where, "--image", samples["good"], "--platforms", PLATFORMS, "--elf-include", "/usr/lcoal/bin/*"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for plat in image_named(data, samples["good"])["platforms"]:
        elf = plat["checks"]["elf"]
        assert elf["outcome"] == "failed"
        assert "--elf-include '/usr/lcoal/bin/*' matches no ELF file" in elf["detail"]


# --- 4: a slowdown limit that cannot be measured -------------------------------------------------------
def test_max_slowdown_with_no_native_platform_fails_with_the_reason(samples, where, no_leftovers):
    junit = where / "junit.xml"
    result, data = run_plugin(
        where,
        "--image",
        samples["good"],
        "--platforms",
        "linux/arm64",
        "--max-slowdown",
        "1.01",
        "--junitxml",
        str(junit),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    arm64 = by_platform(image_named(data, samples["good"]))["linux/arm64"]
    assert arm64["checks"]["slowdown"]["outcome"] == "failed"
    assert "no linux/amd64 in this run to compare with" in arm64["checks"]["slowdown"]["detail"]
    assert "slowdown failed" in _gate_refuses(where)
    # A platform failed only by the limit is red in JUnit too.
    suite = next(s for s in ET.parse(junit).iter("testsuite") if s.get("name") == "pytest (linux/arm64)")
    assert suite.get("failures") == "1"
    case = next(c for c in suite.iter("testcase") if c.get("name", "").endswith("::slowdown[linux/arm64]"))
    assert "--max-slowdown 1.01 is not met" in case.find("failure").get("message")


# --- 5: hand-written reports -----------------------------------------------------------------------
HAND_WRITTEN = [
    ('{"schema":1,"images":[{"ref":"x"}]}', 2, "does not follow the report schema"),
    ("not json at all", 2, "not JSON"),
    ('{"schema": 2, "images": []}', 2, "not a schema-1 multiarch report"),
]


@pytest.mark.parametrize(("text", "code", "says"), HAND_WRITTEN, ids=["bare-image", "not-json", "schema-2"])
def test_hand_written_reports_are_unusable(text, code, says, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(text)
    gate = cli("gate", str(path))
    assert gate.returncode == code, gate.stdout + gate.stderr
    assert says in gate.stderr


def test_edited_real_reports_are_refused(samples, where, no_leftovers):
    run_plugin(where, "--image", samples["good"], "--platforms", PLATFORMS)
    path = where / "multiarch.json"
    green = json.loads(path.read_text())
    assert cli("gate", str(path)).returncode == 0

    def gate(doc: dict) -> subprocess.CompletedProcess:
        path.write_text(json.dumps(doc))
        return cli("gate", str(path))

    weird = json.loads(json.dumps(green))
    weird["images"][0]["platforms"][1]["tests"][0]["outcome"] = "weird"
    assert gate(weird).returncode == 2
    bare = json.loads(json.dumps(green))
    bare["images"][0]["platforms"][1].update(checks={}, tests=[])
    refused = gate(bare)
    assert refused.returncode == 1
    assert "linux/arm64: the elf check did not run" in refused.stdout
    assert "2 test(s) were selected but 0 reported" in refused.stdout
    old = json.loads(json.dumps(green))
    del old["complete"]
    assert "does not say whether the run was complete" in gate(old).stdout


# --- 7: the smaller honesty fixes ------------------------------------------------------------------
def test_a_single_image_says_so_in_the_terminal_and_the_gate(samples, where, no_leftovers):
    good = Reference.parse(samples["good"])
    index = Registry().manifest(good)
    assert isinstance(index, Index)
    child = next(m for m in index.manifests if str(m.platform) == "linux/amd64")
    single = f"{good.name}@{child.digest}"
    result, _data = run_plugin(where, "--image", single, "--platforms", "linux/amd64")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*@ sha256:* (a single image, not a manifest list)"])
    gate = cli("gate", str(where / "multiarch.json"))
    assert gate.returncode == 0, gate.stdout
    assert "is a single image, not a manifest list" in gate.stdout


def test_promote_compares_digests_not_reference_strings(samples, where, registry, no_leftovers):
    run_plugin(where, "--image", samples["good"], "--platforms", PLATFORMS)
    digest = Registry().manifest(Reference.parse(samples["good"])).digest
    port = registry.rsplit(":", 1)[1]
    src = f"localhost:{port}/samples/good@{digest}"  # the same index, by another name
    dest = f"127.0.0.1:{port}/samples/good:promoted-{os.getpid()}"
    promoted = cli("promote", src, dest, "--report", str(where / "multiarch.json"), "--require", PLATFORMS)
    assert promoted.returncode == 0, promoted.stderr
    assert Registry().manifest(Reference.parse(dest)).digest == digest


def test_promote_refuses_a_report_whose_platform_digest_is_not_the_index_entry(samples, where, registry, no_leftovers):
    """The report states each platform's digest itself; promote holds them against the
    index it tags, so a hand-edited digest is refused there."""
    run_plugin(where, "--image", samples["good"], "--platforms", PLATFORMS)
    path = where / "multiarch.json"
    edited = json.loads(path.read_text())
    arm64 = next(p for p in edited["images"][0]["platforms"] if p["platform"] == "linux/arm64")
    arm64["digest"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(edited))
    port = registry.rsplit(":", 1)[1]
    dest = f"127.0.0.1:{port}/samples/good:edited-{os.getpid()}"
    refused = cli("promote", samples["good"], dest, "--report", str(path), "--require", PLATFORMS)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "linux/arm64: the report tested sha256:000" in refused.stderr
    assert "which is not" in refused.stderr


def test_a_run_with_no_engine_says_so_last(samples, where):
    result, _ = run_plugin(
        where, "--image", samples["good"], "--platforms", PLATFORMS, env={"DOCKER_HOST": "unix:///nonexistent.sock"}
    )
    assert result.outlines[-1].startswith("multiarch: no container ran on any platform: ")
    assert "Traceback" not in result.stdout.str()


def test_a_report_path_that_cannot_be_written_is_a_usage_error(samples, where):
    result, _ = run_plugin(where, "--image", samples["good"], "--multiarch-html", "/proc/report.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--multiarch-html /proc/report.html: cannot write the report there*"])


def test_a_scratch_registry_that_is_down_is_one_clear_error(buildah_layout, where, no_leftovers):
    result, _data = run_plugin(
        where, "--image", f"oci:{buildah_layout}:v1", "--platforms", PLATFORMS, "--scratch-registry", "127.0.0.1:9"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert "Traceback" not in text
    assert "cannot copy the image into the scratch registry 127.0.0.1:9" in text
    assert "--scratch-registry HOST:PORT" in text
    assert "nothing answers at 127.0.0.1:9: is the registry running" in text


def test_registry_errors_name_the_registry_and_the_fix(where, tmp_path):
    result, _ = run_plugin(where, "--image", "127.0.0.1:9/team/app:1", "--platforms", PLATFORMS)
    result.stdout.fnmatch_lines(["*127.0.0.1:9*nothing answers at 127.0.0.1:9: is the registry running*"])
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5001": {"auth": "bXVsdGlhcmNoOndyb25n"}}}))
    result, _ = run_plugin(
        where,
        "--image",
        "127.0.0.1:5001/samples/good:1.0",
        "--platforms",
        PLATFORMS,
        env={"DOCKER_CONFIG": str(config)},
    )
    result.stdout.fnmatch_lines([f"*refused the login of 'multiarch' from {config}/config.json: wrong password*"])


@pytest.fixture(scope="module")
def buildah_layout(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("layout") / "layout"
    buildah_write(samples["good"], f"oci:{out}:v1")
    return out


MARKED = """
import pytest


@pytest.mark.image({good!r})
def test_one(container):
    assert container.run(["true"]).exit_code == 0


@pytest.mark.image({tarball!r})
def test_two(container):
    assert container.run(["true"]).exit_code == 0
"""


@pytest.mark.parametrize("keyword", ["test_one", "nothing_has_this_name"])
def test_filters_keep_the_checks_of_images_named_only_by_markers(keyword, samples, tmp_path_factory, no_leftovers):
    text = MARKED.format(good=samples["good"], tarball=samples["amd64-tarball"])
    where = project(tmp_path_factory, "marked", {"test_marked.py": text})
    result, data = run_plugin(where, "--platforms", PLATFORMS, "-k", keyword)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    tarball = by_platform(image_named(data, samples["amd64-tarball"]))
    assert tarball["linux/arm64"]["checks"]["elf"]["outcome"] == "failed"
    assert {i["ref"] for i in data["images"]} == {samples["good"], samples["amd64-tarball"]}
    assert data["complete"] is False


def test_a_module_skipped_at_collection_makes_the_run_incomplete(samples, tmp_path_factory, no_leftovers):
    where = project(
        tmp_path_factory,
        "importskip",
        {
            "test_app.py": TESTS,
            "test_web.py": 'import pytest\n\npytest.importorskip("no_such_module_here")\n\n\n'
            "def test_web(container):\n    assert False\n",
        },
    )
    result, data = run_plugin(where, "--image", samples["good"], "--platforms", PLATFORMS)
    assert result.ret == pytest.ExitCode.OK
    assert data["complete"] is False
    assert any("skipped whole at collection" in why and "test_web.py" in why for why in data["incomplete"])
    _gate_refuses(where)


DROPPING = """
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    yield
    items[:] = [item for item in items if "amd64-tarball" not in item.nodeid]
"""


def test_a_plugin_that_drops_built_in_checks_silently_is_caught(samples, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "dropping", {"conftest.py": DROPPING, "test_app.py": TESTS})
    _result, data = run_plugin(
        where, "--image", samples["good"], "--image", samples["amd64-tarball"], "--platforms", PLATFORMS
    )
    assert data["complete"] is False
    assert any("deselected" in why for why in data["incomplete"])
    gate = _gate_refuses(where)
    assert f"{samples['amd64-tarball']}: the run was to test it, but the report has no result for it" in gate


CRASHING = """
import os


def test_crash(container, platform):
    if str(platform) == "linux/arm64":
        os._exit(3)  # takes its xdist worker down with it


def test_after(container):
    assert container.run(["true"]).exit_code == 0
"""


def test_a_crashed_worker_fails_its_test_and_leaves_the_run_incomplete(samples, tmp_path_factory, no_leftovers):
    # No replacement worker: now and then pytest-xdist waits forever for one that has
    # nothing left to do, and that is xdist's to fix; the crash itself is what this is about.
    where = project(tmp_path_factory, "crash", {"test_crash.py": CRASHING})
    result, data = run_plugin(
        where, "--image", samples["good"], "--platforms", PLATFORMS, "-n", "2", "--max-worker-restart", "0"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    summary = [line for line in result.outlines if line.startswith("FAILED test_crash.py::test_crash[linux/arm64]")]
    assert len(summary) == 1, result.outlines[-20:]
    assert "crashed while ru" in summary[0]  # the summary line is cut to the terminal width
    arm64 = by_platform(image_named(data, samples["good"]))["linux/arm64"]
    outcomes = {t["nodeid"].split("::")[1]: t["outcome"] for t in arm64["tests"]}
    assert outcomes["test_crash[linux/arm64]"] == "failed"  # xdist's report of the crash, on its platform
    assert data["complete"] is False
    assert any(why.startswith("xdist worker crashed (") and "test_crash" in why for why in data["incomplete"])
    _gate_refuses(where)
