"""Running well: timeouts scaled per platform, fresh containers, strict platforms, and the
sweep of containers that crashed runs left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from enginekit import TOP, by_platform, harness_containers, image_named, project, reap, run_plugin

from harness.labels import HOSTNAME, LABEL, LABEL_HOST, LABEL_PID, LABEL_SESSION

TIMEOUT_TESTS = """
import json, pathlib, pytest

def test_hangs(container):
    container.run(["sleep", "30"], timeout=1)

def test_after_the_hang(container, platform):
    pathlib.Path(f"id-{str(platform).replace('/', '-')}").write_text(container.id)
    assert container.run(["true"]).exit_code == 0

def test_scaled(container, platform):
    # 1.5 s of work against a 1 s native limit: too slow natively, in time when emulated
    # (the limit is scaled by the platform's slowdown).
    result = container.run(["sleep", "1.5"], timeout=1)
    assert result.exit_code == 0
"""


def test_timeouts_are_scaled_and_take_the_container_away(samples, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "timeouts", {"test_t.py": TIMEOUT_TESTS})
    result, _ = run_plugin(where, "--image", samples["good"], "--platforms", "linux/amd64,linux/arm64", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_hangs?linux/amd64? FAILED*",
            "*test_after_the_hang?linux/amd64? PASSED*",
            "*test_scaled?linux/amd64? FAILED*",
            "*test_scaled?linux/arm64? PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(["*CommandTimeout: $ sleep 30 was still running after 1s on linux/amd64*"])
    result.stdout.fnmatch_lines(["*limit 1s x 1.0 for native*its container was removed*"])
    assert "test_hangs[linux/arm64] FAILED" in result.stdout.str()


FRESH_TESTS = """
import pytest

def test_shared_a(container):
    container.run(["sh", "-c", "echo a > /tmp/mark"])

@pytest.mark.fresh_container
def test_fresh(container):
    assert container.run(["cat", "/tmp/mark"]).exit_code != 0  # a clean container

def test_shared_b(container):
    assert container.run(["cat", "/tmp/mark"]).stdout.strip() == "a"
"""


def test_fresh_container_marker(samples, tmp_path_factory, engine, no_leftovers):
    where = project(tmp_path_factory, "fresh", {"test_f.py": FRESH_TESTS})
    result, _ = run_plugin(where, "--image", samples["good"], "--platforms", "linux/amd64,linux/s390x")
    result.assert_outcomes(passed=2 + 8 + 6, skipped=2)


def test_strict_platforms_fail_what_cannot_run(samples, tmp_path_factory, registry):
    # An index with a Windows entry: skipped by default, failed under --strict-platforms.
    from push import Pusher

    push = Pusher(registry)
    amd = push.image("strict/app", "linux/amd64", {"/bin/x": b"#!/bin/sh\n"})
    win = push.image("strict/app", "windows/amd64", {"/x.txt": b"x"})
    push.index("strict/app", "1", [(amd, "linux/amd64", None), (win, "windows/amd64", None)])
    ref = f"{registry}/strict/app:1"
    where = project(tmp_path_factory, "strict", {"test_s.py": "def test_s(platform):\n    pass\n"})
    result, data = run_plugin(where, "--image", ref, "--platforms", "windows/amd64")
    assert result.ret == pytest.ExitCode.OK
    assert by_platform(image_named(data, ref))["windows/amd64"]["tests"][0]["outcome"] == "skipped"
    result, data = run_plugin(where, "--image", ref, "--platforms", "windows/amd64", "--strict-platforms")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    plat = by_platform(image_named(data, ref))["windows/amd64"]
    assert plat["checks"]["uname"]["outcome"] == "failed"
    assert plat["tests"][0]["outcome"] == "failed"
    result.stdout.fnmatch_lines(["*windows/amd64 cannot run here (--strict-platforms): windows images cannot run*"])


def test_stale_containers_of_crashed_runs_are_swept(samples, tmp_path_factory, engine):
    from harness import Harness

    plan = Harness("linux/amd64").plan(samples["good"])
    pinned = f"{samples['good'].rsplit(':', 1)[0]}@{plan.targets[0].digest}"
    engine.images.pull(pinned)
    labels = {LABEL: "true", LABEL_SESSION: "crashed-run", LABEL_PID: "999999999", LABEL_HOST: HOSTNAME}
    stale = engine.containers.run(pinned, ["sleep", "300"], detach=True, labels=labels)
    alive = engine.containers.run(pinned, ["sleep", "300"], detach=True, labels=labels | {LABEL_PID: "1"})
    try:
        where = project(tmp_path_factory, "sweep", {"test_n.py": "def test_n():\n    pass\n"})
        result, _ = run_plugin(where, "--image", samples["good"], "--platforms", "linux/amd64")
        ids = harness_containers(engine)
        assert stale.id not in ids
        assert alive.id in ids  # its process (pid 1) is alive: not stale
        result.stdout.fnmatch_lines(["removed 1 containers left by earlier runs that crashed"])
    finally:
        for c in (stale, alive):
            with contextlib.suppress(Exception):  # already gone is fine
                c.remove(force=True)


PODMAN = "unix:///run/multiarch-podman.sock"
ROUTED_TESTS = """
import docker

def test_where_it_runs(container, platform, multiarch):
    engine = multiarch.engine_for(platform)
    client = docker.DockerClient(base_url=engine.base_url)
    assert client.containers.get(container.id).id == container.id  # it lives on that engine
    assert container.run(["uname", "-m"]).exit_code == 0
"""


@pytest.fixture(scope="module")
def podman():
    import docker

    try:
        docker.DockerClient(base_url=PODMAN).ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no podman engine at {PODMAN} ({exc}): stack/setup.sh starts it")
    return PODMAN


def test_a_platform_routed_to_a_second_engine(samples, podman, tmp_path_factory, engine, no_leftovers):
    where = project(tmp_path_factory, "routed", {"test_r.py": ROUTED_TESTS})
    result, data = run_plugin(
        where,
        "--image",
        samples["good"],
        "--platforms",
        "linux/amd64,linux/s390x",
        "--engine",
        f"linux/s390x={podman}",
    )
    result.assert_outcomes(passed=2 + 8 + 2, skipped=2)
    plats = by_platform(image_named(data, samples["good"]))
    assert plats["linux/s390x"]["engine"] == podman
    assert plats["linux/s390x"]["mode_reason"].endswith(f"(engine {podman})")
    assert plats["linux/amd64"]["engine"].startswith("docker ")
    import docker

    assert not docker.DockerClient(base_url=podman).containers.list(all=True, filters={"label": LABEL})


def test_engine_option_is_checked(samples, tmp_path_factory):
    where = project(tmp_path_factory, "badengine", {"test_r.py": "def test_r(): pass\n"})
    result, _ = run_plugin(where, "--image", samples["good"], "--engine", "linux/s390=unix:///x.sock")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--engine (command line): unknown platform 'linux/s390': did you mean linux/s390x?*"])
    result, _ = run_plugin(where, "--image", samples["good"], "--engine", "linux/s390x=no-such-context")
    result.stderr.fnmatch_lines(["*'no-such-context' is neither a DOCKER_HOST URL*nor a docker context*"])


KILLED = """
import threading
import time

import docker
import pytest
from harness.container import ContainerGone


def test_a_killed_before_a_command(container):
    docker.from_env().containers.get(container.id).kill()
    with pytest.raises(ContainerGone, match="stopped during the run"):
        container.run(["true"])


def test_b_gets_a_fresh_container(container):
    assert container.run(["true"]).exit_code == 0


def test_c_killed_during_a_command(container):
    victim = docker.from_env().containers.get(container.id)
    threading.Timer(1.0, victim.kill).start()
    container.run(["sleep", "30"])


def test_d_gets_a_fresh_container_too(container):
    assert container.run(["true"]).exit_code == 0
"""


def test_a_container_killed_mid_test(samples, tmp_path_factory, no_leftovers):
    where = project(tmp_path_factory, "killed", {"test_killed.py": KILLED})
    result, data = run_plugin(
        where, "--image", samples["good"], "--platforms", "linux/amd64,linux/arm64", "-p", "no:randomly"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # Only the test whose command the kill interrupted fails, with what happened; the next
    # test of the platform gets a fresh container and passes.
    result.assert_outcomes(passed=2 + 8 + 3 * 2, failed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "E   *ContainerGone: *samples/good:1.0: $ sleep 30: the container of linux/a*64 stopped during the run "
            "(exited, exit code 137); the next command gets a fresh container"
        ]
    )
    plats = by_platform(image_named(data, samples["good"]))
    for name in ("linux/amd64", "linux/arm64"):
        outcomes = {t["nodeid"].split("::")[1].split("[")[0]: t["outcome"] for t in plats[name]["tests"]}
        assert outcomes == {
            "test_a_killed_before_a_command": "passed",
            "test_b_gets_a_fresh_container": "passed",
            "test_c_killed_during_a_command": "failed",
            "test_d_gets_a_fresh_container_too": "passed",
        }


ENGINE_STOPS = """
import time


def test_1_quick(container):
    assert container.run(["true"]).exit_code == 0


def test_2_engine_stops_meanwhile(container, platform):
    if str(platform) == "linux/s390x":
        open("s390x-sleeping", "w").close()  # the test that runs this stops the engine now
    container.run(["sleep", "8"])


def test_3_after(container):
    assert container.run(["true"]).exit_code == 0
"""


def _podman_service_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "podman system service"], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_an_engine_stopped_mid_run(samples, podman, tmp_path_factory, engine, no_leftovers):
    """The engine of a routed platform stops answering mid-run: that platform's tests fail
    saying so, the other platform's pass, the report holds both, and the containers the dead
    engine kept are swept by the next run once it answers again."""
    import docker

    where = project(tmp_path_factory, "enginestops", {"test_e.py": ENGINE_STOPS})
    args = ["--image", samples["good"], "--platforms", "linux/amd64,linux/s390x", "--engine", f"linux/s390x={podman}"]
    report = where / "multiarch.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--multiarch-json",
        str(report),
    ]
    proc = subprocess.Popen([*cmd, *args], cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = docker.DockerClient(base_url=podman)
    try:
        # The run starts the s390x container ahead of its tests: what counts is test_2
        # starting its command there, which it says with a file beside the tests.
        sleeping = where / "s390x-sleeping"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not sleeping.exists() and proc.poll() is None:
            time.sleep(0.1)
        assert sleeping.exists(), "test_2 never ran on the second engine"
        time.sleep(1.5)  # into its sleep
        for pid in _podman_service_pids():
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=180)
    finally:
        reap(proc)
        subprocess.run(["bash", str(TOP / "stack" / "setup.sh")], capture_output=True, check=True)
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:]
    assert "INTERNALERROR" not in out
    data = json.loads(report.read_text())
    plats = by_platform(image_named(data, samples["good"]))
    assert {t["outcome"] for t in plats["linux/amd64"]["tests"]} == {"passed"}
    s390x = {t["nodeid"].split("::")[1].split("[")[0]: t["outcome"] for t in plats["linux/s390x"]["tests"]}
    assert s390x["test_2_engine_stops_meanwhile"] == "failed"
    assert s390x["test_3_after"] == "failed"
    assert "sleep 8: the engine running linux/s390x (" in out, out[-4000:]
    assert "stopped answering during the run" in out
    assert f"the engine at {podman} failed" in out  # test_3 could not start a fresh container
    # The dead engine kept its container; the next run, with the engine back, sweeps it.
    second = docker.DockerClient(base_url=podman)
    assert second.api.containers(all=True, filters={"label": LABEL})
    result, _ = run_plugin(where, *args, "-k", "test_1")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["removed * containers left by earlier runs that crashed"])
    assert not second.api.containers(all=True, filters={"label": LABEL})


def test_output_that_came_with_the_engines_answer_is_not_lost(samples, monkeypatch, no_leftovers):
    """A command done before this process reads the engine's answer to the exec's start:
    its output arrives with the answer's headers, in the buffer that read them. docker-py
    reads past that buffer and finds nothing (docker/docker-py#2042); a busy run meets
    this now and then. The answer is read late on purpose here, every time."""
    import http.client

    from harness import Harness

    begin = http.client.HTTPResponse.begin

    def late(response: http.client.HTTPResponse) -> None:
        time.sleep(0.3)  # the command has ended and its output is on the socket
        begin(response)

    with Harness("linux/amd64") as h:
        container = h.container(h.plan(samples["good"]).targets[0])
        monkeypatch.setattr(http.client.HTTPResponse, "begin", late)
        for _ in range(3):
            result = container.run(["echo", "hello"])
            assert (result.exit_code, result.stdout, result.stderr) == (0, "hello\n", "")
        result = container.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
        assert container.run(["uname", "-m"]).stdout == "x86_64\n"
