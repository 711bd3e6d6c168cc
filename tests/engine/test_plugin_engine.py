"""The plugin's contract against the real stack: fixtures, markers, reuse, xdist, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from enginekit import TOP, by_platform, harness_containers, image_named, interruptible, project, reap, run_plugin

from harness.report import MIN_TIMED_S

PLATFORMS = "linux/amd64,linux/arm64,linux/s390x"

CONTRACT_TESTS = """
import pytest

def test_run_result(container, platform):
    ok = container.run("uname -m")
    assert ok.exit_code == 0 and ok.stdout.strip() and ok.duration_s > 0
    bad = container.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (bad.exit_code, bad.stdout, bad.stderr) == (3, "out\\n", "err\\n")
    assert str(platform) in {PLATFORMS!r}.split(",")

def test_same_container_for_the_platform(container):
    cid = container.id
    container.run(["sh", "-c", "echo " + cid + " > /tmp/who"])
    assert container.run(["cat", "/tmp/who"]).stdout.strip() == cid

def test_reused(container):
    # Written by the previous test: the container is started once per platform and reused.
    assert container.run(["cat", "/tmp/who"]).stdout.strip() == container.id

@pytest.mark.image({good!r})
def test_marker_picks_the_image(platform, container):
    assert container.run(["true"]).exit_code == 0

def test_fails_on_s390x_only(container, platform):
    assert str(platform) != "linux/s390x", "deliberate"
"""


@pytest.fixture
def contract(samples, tmp_path_factory):
    text = CONTRACT_TESTS.format(PLATFORMS=PLATFORMS, good=samples["good"])
    return project(tmp_path_factory, "contract", {"test_contract.py": text})


def test_fixtures_and_results(contract, samples, no_leftovers):
    result, data = run_plugin(contract, "--image", samples["good"], "--platforms", PLATFORMS, "-v")
    result.stdout.fnmatch_lines(
        ["*test_run_result?linux/arm64? PASSED*", "*test_fails_on_s390x_only?linux/s390x? FAILED*"]
    )
    # index and provenance + 3 platforms x 4 checks (libs is skipped: busybox is static) + 5 tests x 3 platforms
    # (no probe: the tests are the samples)
    result.assert_outcomes(passed=2 + 12 + 14, failed=1, skipped=3)
    plats = by_platform(image_named(data, samples["good"]))
    assert [t["outcome"] for t in plats["linux/s390x"]["tests"]].count("failed") == 1
    result.stdout.fnmatch_lines(
        [
            "samples/good:1.0 @ sha256:*",
            "linux/s390x  *emulated  ok  *ok  *ok  *4/1/0  *FAIL",
            "  - test_fails_on_s390x_only?linux/s390x?: AssertionError: deliberate",
            "test_fails_on_s390x_only  *ok  *ok  *FAIL",
        ]
    )


def test_marker_alone_needs_no_image_option(samples, tmp_path_factory, no_leftovers):
    where = project(
        tmp_path_factory,
        "marker",
        {
            "test_m.py": f"""
import pytest

@pytest.mark.image({samples["lost-arm64"]!r})
def test_m(platform, container):
    assert container.run(["true"]).exit_code == 0
"""
        },
    )
    result, data = run_plugin(where, "--platforms", "linux/amd64,linux/arm/v7")
    result.assert_outcomes(passed=2 + 8 + 2, skipped=2)
    assert image_named(data, samples["lost-arm64"])["missing_platforms"] == []


# In the -n 2 run, a worker that resolved an image itself would fail its collection: the
# controller resolves each image once and hands workers the plans.
WORKERS_DO_NOT_RESOLVE = """
import os

from harness.session import Harness

if os.environ.get("PYTEST_XDIST_WORKER"):
    def _resolve(self, image):
        raise AssertionError(f"worker {os.environ['PYTEST_XDIST_WORKER']} resolved {image} itself")

    Harness._resolve = _resolve
"""


def test_xdist_gives_the_same_report(samples, tmp_path_factory, no_leftovers):
    tests = (TOP / "sample_images" / "tests" / "test_busybox.py").read_text()
    args = ("--image", samples["good"], "--image", samples["amd64-tarball"], "--platforms", PLATFORMS)
    serial = project(tmp_path_factory, "serial", {"test_busybox.py": tests})
    parallel = project(tmp_path_factory, "parallel", {"test_busybox.py": tests, "conftest.py": WORKERS_DO_NOT_RESOLVE})
    r0, d0 = run_plugin(serial, *args, "-n", "0")
    r2, d2 = run_plugin(parallel, *args, "-n", "2", "--dist", "loadgroup")
    assert r0.ret == r2.ret == pytest.ExitCode.TESTS_FAILED
    assert r0.parseoutcomes() == r2.parseoutcomes()

    def verdicts(data):
        return {
            (i["ref"], p["platform"]): (
                p["digest"],
                p["mode"],
                {k: v["outcome"] for k, v in p["checks"].items()},
                sorted((t["nodeid"], t["outcome"]) for t in p["tests"]),
            )
            for i in data["images"]
            for p in i["platforms"]
        }

    assert verdicts(d0) == verdicts(d2)
    assert d0["host"] == d2["host"]
    assert "multiarch: per-platform results" in r2.stdout.str()


def start_pytest(where, image: str, *args: str, session: str | None = None) -> subprocess.Popen:
    """A pytest run of the plugin on linux/amd64 and linux/arm64, left running."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--image", image]
    env = {**os.environ, **({"MULTIARCH_SESSION_ID": session} if session else {})}
    return subprocess.Popen(
        [*cmd, "--platforms", "linux/amd64,linux/arm64", *args],
        cwd=where,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=interruptible,
    )


def test_sigint_mid_run_leaves_no_container(samples, tmp_path_factory, engine):
    where = project(
        tmp_path_factory,
        "sigint",
        {
            "test_slow.py": """
def test_slow(container):
    container.run(["sleep", "30"])
"""
        },
    )
    before = set(harness_containers(engine))
    proc = start_pytest(where, samples["good"], "-k", "test_slow")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (set(harness_containers(engine)) - before):
            time.sleep(0.2)
        assert set(harness_containers(engine)) - before, "no container was started"
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert set(harness_containers(engine)) - before == set()


def test_library_runs_without_pytest(samples):
    code = f"""
import json, sys
from harness import Harness
with Harness("linux/amd64,linux/arm/v6") as h:
    plan = h.plan({samples["armv7-in-v6"]!r})
    out = {{
        str(t.platform): (t.mode.kind, h.check("elf", t).outcome, h.check("uname", t).outcome) for t in plan.targets
    }}
assert "pytest" not in sys.modules, "the library imported pytest"
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "linux/amd64": ["native", "passed", "passed"],
        "linux/arm/v6": ["emulated", "failed", "failed"],
    }


def test_killed_xdist_worker_leaves_no_container(samples, tmp_path_factory, engine):
    where = project(
        tmp_path_factory,
        "workerkill",
        {
            "test_slow.py": """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_slow(container, i):
    container.run(["sleep", "3"])
"""
        },
    )
    session = f"test-kill-{os.getpid()}-{time.monotonic_ns()}"
    proc = start_pytest(where, samples["good"], "-n", "2", session=session)
    label = {"label": f"io.multiarch-harness.session={session}"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(engine.api.containers(all=True, filters=label)) < 2:
            time.sleep(0.2)
        assert engine.api.containers(all=True, filters=label), "no container was started"
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(workers[0]), signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        reap(proc)
    assert "crashed" in out or "worker" in out.lower(), out[-2000:]
    assert engine.api.containers(all=True, filters=label) == []


def test_the_probe_runs_where_no_user_test_does(samples, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "probe", {"test_none.py": "def test_plain():\n    pass\n"})
    result, data = run_plugin(where, "--image", samples["good"], "--platforms", "linux/amd64,linux/s390x")
    # index, 4 checks and the probe per platform (libs skipped: busybox is static), test_plain
    result.assert_outcomes(passed=2 + 8 + 2 + 1, skipped=2)
    plats = by_platform(image_named(data, samples["good"]))
    for name in ("linux/amd64", "linux/s390x"):
        assert set(plats[name]["probe_s"]) == {"start", "shell", "hash"}
    # uname and the three probe commands, less those too short to time natively (the start
    # of busybox's uname can be under a millisecond of CPU here).
    timed = sum(1 for secs in plats["linux/amd64"]["probe_s"].values() if secs >= MIN_TIMED_S)
    assert timed <= plats["linux/s390x"]["slowdown_samples"] <= timed + 1
    assert plats["linux/s390x"]["slowdown"] > 1.5
    result, data = run_plugin(
        where, "--image", samples["good"], "--platforms", "linux/amd64,linux/s390x", "--slowdown-probe", "never"
    )
    result.assert_outcomes(passed=2 + 8 + 1, skipped=2)
    # --slowdown-probe never: the uname check alone could give the figure, but natively it
    # may take under a millisecond of CPU: then it is too short to time, and said so.
    s390x = by_platform(image_named(data, samples["good"]))["linux/s390x"]
    assert s390x["slowdown_samples"] in (0, 1)
    assert (s390x["slowdown"] is None) == (s390x["slowdown_samples"] == 0)
