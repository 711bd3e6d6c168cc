"""Cold runs, as on a fresh CI runner: nothing in the harness's cache, nothing of the image
in the engine. The run prepares its platforms in the background (layers read in a process
of their own, images pulled or loaded, containers started), the first platform first; it
says where its time went; it feeds the engine from the blobs the audit read when asked to
(each byte across the link once); and an interrupted or crashed cold run leaves nothing
behind: no container, no reading process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from enginekit import DEBIAN_PLATFORMS, REGISTRY, project, reap, run_plugin, start_job
from proxy import RecordingProxy

from harness import Harness
from harness.labels import LABEL_PLATFORM
from harness.reference import Reference
from harness.registry import Registry

pytestmark = pytest.mark.engine

#: Three of the Debian sample's six platforms: one native, two emulated (about 40 MB each).
PLATFORMS = "linux/amd64,linux/arm64,linux/s390x"
TESTS = """
import pytest


@pytest.mark.parametrize("argv", [["uname", "-m"], ["bash", "-c", "seq 1 100 | wc -l"], ["id", "-u"]])
def test_command(container, argv):
    assert container.run(argv).exit_code == 0
"""
SLOW = """
import pytest


@pytest.mark.parametrize("i", range(2))
def test_slow(container, i):
    container.run(["sleep", "4"])
"""


def forget_debian(engine: docker.DockerClient) -> None:
    """The engine as on a fresh runner: no image of the Debian samples (they share their
    root layers, so every one of them goes), under any registry name, pulled or loaded (a
    loaded image has no name: its ID is its config's digest)."""
    registry = Registry()
    configs = set()
    for name in ("debian", "debian-defects", "debian-abi"):
        ref = Reference.parse(f"{REGISTRY}/samples/{name}:1.0")
        index = registry.manifest(ref)
        for entry in getattr(index, "manifests", []):
            configs.add(registry.manifest(ref, entry.digest).config.digest)
    for image in engine.api.images(all=True):
        names = [*(image.get("RepoDigests") or []), *(image.get("RepoTags") or [])]
        if image["Id"] in configs or any("/samples/debian" in name for name in names):
            with contextlib.suppress(docker.errors.APIError):  # gone already, with another name
                engine.api.remove_image(image["Id"], force=True)


@pytest.fixture
def cold(engine, debian_samples, tmp_path) -> dict[str, str]:
    """A fresh cache for the harness (MULTIARCH_CACHE_DIR) and an engine without the image."""
    forget_debian(engine)
    return {"MULTIARCH_CACHE_DIR": str(tmp_path / "cache"), "CI": "true"}


def readers_of(cache: str) -> list[str]:
    """Processes still reading layers into ``cache`` (harness.warm)."""
    out = subprocess.run(["pgrep", "-f", f"harness.warm --cache {cache}"], capture_output=True, text=True)
    return out.stdout.split()


def test_a_cold_run_is_ready_platform_by_platform_and_says_where_its_time_went(
    debian_samples, cold, tmp_path_factory, no_leftovers
):
    where = project(tmp_path_factory, "cold", {"test_cmds.py": TESTS})
    result, data = run_plugin(
        where, "--image", debian_samples["debian"], "--platforms", PLATFORMS, "--multiarch-timings", env=cold
    )
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines[-40:])
    timings = data["timings"]
    assert timings["feed"] == "auto"
    assert timings["parallel"] >= 1
    assert 0 < timings["wall_s"] <= result.duration
    plats = timings["images"][debian_samples["debian"]]["platforms"]
    assert sorted(plats) == sorted(PLATFORMS.split(","))
    for name, phases in plats.items():
        # Pulled (cold: it took time), started, tested, checked, removed; audited in the cache.
        for phase in ("audit_s", "pull_s", "start_s", "checks_s", "tests_s", "cleanup_s", "ready_s"):
            assert phases.get(phase) is not None, (name, phases)
        assert phases["pull_s"] > 0.2, (name, phases)
        assert phases["ready_s"] < timings["wall_s"]
    out = "\n".join(result.outlines)
    # CI: one line per platform as it comes up, and nothing else of the kind.
    for name in PLATFORMS.split(","):
        assert len([line for line in result.outlines if line.startswith(f"multiarch: {name} ready after ")]) == 1, out
    assert "multiarch: waiting:" not in out
    # --multiarch-timings: the breakdown, a row per platform.
    assert "seconds per platform (phases overlap)" in out
    for name in PLATFORMS.split(","):
        assert any(line.split()[:1] == [name] and len(line.split()) == 10 for line in result.outlines), out
    assert not readers_of(cold["MULTIARCH_CACHE_DIR"])


def test_the_first_platform_runs_before_the_last_is_fetched(debian_samples, cold, tmp_path, no_leftovers):
    """One thing at a time in the background (parallel=1): the first platform's container is
    up, and usable, while the last platform's image is not even in the engine yet."""
    cache = Path(cold["MULTIARCH_CACHE_DIR"])
    with Harness(PLATFORMS, registry=Registry(cache), parallel=1) as h:
        targets = h.plan(debian_samples["debian"]).targets
        h.prepare(targets)
        first, last = targets[0], targets[-1]
        assert h.run(first, ["uname", "-m"]).stdout.strip() == "x86_64"
        assert not h.pool._containers.done(last.key), "the last platform was ready before the first ran"
        assert h.run(last, ["uname", "-m"]).stdout.strip() == "s390x"
        assert h.timings.seconds(debian_samples["debian"], str(last.platform))["pull"] > 0


RELEASED = """
import time

import docker

from harness.labels import LABEL_PLATFORM, LABEL_SESSION


def running(session):
    client = docker.from_env()
    found = client.containers.list(all=True, filters={{"label": f"{{LABEL_SESSION}}={{session}}"}})
    return {{c.labels.get(LABEL_PLATFORM) for c in found}}


def test_uname(container, platform):
    assert container.run(["uname", "-m"]).exit_code == 0
    if str(platform) == "{last}":  # the first platform is done: its container goes meanwhile
        deadline = time.monotonic() + 20
        while "{first}" in running("{session}") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "{first}" not in running("{session}")
        assert "{last}" in running("{session}")
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_platforms_container_goes_once_its_items_are_done(samples, tmp_path_factory, workers, no_leftovers):
    """Not all at the end: after a platform's last item (at -n 0, or in the xdist worker the
    scheduler gave the platform to), its container is removed while the next platform's
    tests run."""
    # -n 0 runs the platforms in the order given; a worker, the emulated ones first.
    first, last = ("linux/amd64", "linux/s390x") if workers == "0" else ("linux/s390x", "linux/amd64")
    session = f"released-{os.getpid()}-{workers}"
    test = RELEASED.format(first=first, last=last, session=session)
    where = project(tmp_path_factory, f"released-{workers}", {"test_released.py": test})
    args = ["--platforms", "linux/amd64,linux/s390x", "-n", workers, "--multiarch-session-id", session]
    result, _ = run_plugin(where, "--image", samples["good"], *args)
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines[-40:])


def test_loading_from_the_audits_blobs_sends_each_byte_across_the_link_once(
    debian_samples, cold, tmp_path_factory, no_leftovers
):
    """Behind a slow link (a proxy at 20 MB/s), the audit downloads every layer; with
    --multiarch-feed load the engine gets them from those files, and never asks the link;
    with pull, it downloads every layer a second time."""
    where = project(tmp_path_factory, "feed", {"test_cmds.py": TESTS})
    platforms = "linux/amd64,linux/arm64"
    counts = {}
    for feed in ("load", "pull"):
        forget_debian(docker.from_env())
        env = {**cold, "MULTIARCH_CACHE_DIR": f"{cold['MULTIARCH_CACHE_DIR']}-{feed}"}
        with RecordingProxy(REGISTRY, rate=20e6) as proxy:
            image = debian_samples["debian"].replace(REGISTRY, proxy.address)
            result, data = run_plugin(
                where, "--image", image, "--platforms", platforms, "--multiarch-feed", feed, env=env
            )
            assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines[-40:])
            assert data["timings"]["feed"] == feed
            assert "load_refused" not in data["timings"], data["timings"]["load_refused"]
            blobs = [e.path for e in proxy.log if e.method == "GET" and "/blobs/" in e.path]
        counts[feed] = {path: blobs.count(path) for path in blobs}
    # The configs of the index's six platforms (the provenance check reads them all) and the
    # two layers of each of the two platforms tested: every one once with load; with pull,
    # the layers and the two configs tested twice (the audit's download, then the engine's).
    assert len(counts["load"]) == len(counts["pull"]) == 6 + 2 * 2
    assert set(counts["load"].values()) == {1}, counts["load"]
    assert sorted(counts["pull"].values()) == [1] * 4 + [2] * 6, counts["pull"]


@pytest.mark.parametrize(
    "how", ["SIGINT-n0", "SIGTERM-n0", "killed-worker-n2"], ids=["SIGINT-n0", "SIGTERM-n0", "killed-worker-n2"]
)
def test_a_cold_run_cut_short_leaves_nothing_behind(how, debian_samples, cold, tmp_path_factory, engine):
    where = project(tmp_path_factory, f"cold-{how}", {"test_slow.py": SLOW})
    session = f"test-cold-{os.getpid()}-{time.monotonic_ns()}"
    label = {"label": f"io.multiarch-harness.session={session}"}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--image", debian_samples["debian"]]
    cmd += [
        "--platforms",
        ",".join(DEBIAN_PLATFORMS),
        "-n",
        "2" if how.endswith("n2") else "0",
        "--multiarch-json",
        str(where / "r.json"),
    ]
    proc = start_job(cmd, where, {**cold, "MULTIARCH_SESSION_ID": session})
    try:
        # As soon as the first container is up: under SIGINT, often the one that asks the
        # engine what it runs, before the session has begun; else the first platform's,
        # while the other platforms are still being pulled, read and started.
        first = label if how.startswith("SIGINT") else {"label": [label["label"], LABEL_PLATFORM]}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not engine.api.containers(all=True, filters=first):
            time.sleep(0.1)
        assert engine.api.containers(all=True, filters=first), "no container was started"
        if how == "killed-worker-n2":
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            # xdist's workers: not the layer reader, nor what is left of it once it is done.
            lines = {pid: Path(f"/proc/{pid}/cmdline").read_text() for pid in children}
            workers = [pid for pid, line in lines.items() if line and "harness.warm" not in line]
            os.kill(int(workers[0]), signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        reap(proc)
    if how != "killed-worker-n2":
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert engine.api.containers(all=True, filters=label) == [], "containers left behind"
    assert not readers_of(cold["MULTIARCH_CACHE_DIR"]), "a process reading layers was left running"
    report = where / "r.json"
    if report.exists():  # none when it was stopped before the session began: nothing ran
        assert json.loads(report.read_text())["complete"] is False, out[-3000:]
    else:
        assert how.startswith("SIGINT"), out[-3000:]
