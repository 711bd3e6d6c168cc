"""The engine tier: the real engine, QEMU handlers and registry that stack/setup.sh starts.

If they do not answer, these tests are skipped here with the reason, and fail in CI.
Only fixtures live here; what the tests share otherwise is in enginekit.py.

The other engines (an arm64 engine in a VM, the trixie engine with the containerd store)
are started by their stack scripts in the background as soon as collection has picked a
test that needs them, so their boot overlaps the tests before; they are stopped at the end
if this run started them.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
import requests
from enginekit import (
    DEBIAN_SAMPLES,
    REGISTRY,
    SAMPLE_TESTS,
    SAMPLES,
    StackEngine,
    busybox_binaries,
    harness_containers,
    project,
    run_plugin,
    sample_refs,
    sample_run_args,
    unavailable,
)

#: Platforms whose busybox the tests that push their own images use.
BUSYBOX_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v5", "linux/ppc64le", "linux/s390x")

#: Engines a test may ask for by fixture, started by their stack scripts.
STACK_ENGINES = {
    "arm64_vm": StackEngine(
        "arm64 engine in a VM",
        ["stack/arm64-vm", "start", "--cpu", "a64fx"],
        ["stack/arm64-vm", "stop"],
        ["stack/arm64-vm", "status"],
        "unix:///run/multiarch-arm64.sock",
    ),
    "trixie_engine": StackEngine(
        "trixie engine (containerd store)",
        ["stack/trixie-engine", "start"],
        ["stack/trixie-engine", "stop"],
        ["stack/trixie-engine", "status"],
        "unix:///run/multiarch-trixie/docker.sock",
    ),
}


def pytest_collection_finish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # xdist's controller starts them
    wanted = {name for item in session.items for name in getattr(item, "fixturenames", ()) if name in STACK_ENGINES}
    for name in sorted(wanted):
        STACK_ENGINES[name].start_in_background(session.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for stack in STACK_ENGINES.values():
        stack.stop_if_started()


@pytest.fixture(scope="session")
def arm64_vm() -> StackEngine:
    """The arm64 engine in a qemu-system-aarch64 VM (a CPU without AArch32), as Docker
    Desktop on Apple Silicon is to a client: a unix socket, and tcp on loopback."""
    return STACK_ENGINES["arm64_vm"].ready()


@pytest.fixture(scope="session")
def trixie_engine() -> StackEngine:
    """Debian trixie's docker.io with the containerd image store, beside bookworm's."""
    return STACK_ENGINES["trixie_engine"].ready()


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no container engine answers ({exc})")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        unavailable("no QEMU binfmt_misc handlers are registered")
    return client


@pytest.fixture(scope="session")
def registry(engine: docker.DockerClient) -> str:
    try:
        requests.get(f"http://{REGISTRY}/v2/", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        unavailable(f"no registry answers at {REGISTRY} ({exc})")
    return REGISTRY


@pytest.fixture(scope="session")
def samples(registry: str) -> dict[str, str]:
    return sample_refs(registry, SAMPLES)


@pytest.fixture(scope="session")
def debian_samples(registry: str) -> dict[str, str]:
    """The Debian root filesystem samples, on their own six platforms (DEBIAN_PLATFORMS)."""
    return sample_refs(registry, DEBIAN_SAMPLES)


@pytest.fixture(scope="session")
def busybox(samples) -> dict[str, bytes]:
    """Each platform's static busybox, read from the good sample image's layers."""
    return busybox_binaries(samples["good"], BUSYBOX_PLATFORMS)


@pytest.fixture(scope="session")
def samples_project(tmp_path_factory) -> Path:
    return project(tmp_path_factory, "samples", {"test_busybox.py": SAMPLE_TESTS.read_text()})


@pytest.fixture(scope="session")
def sample_run(samples, samples_project, engine):
    """The sample run on this machine's engine (bookworm's docker), once per session."""
    before = engine.containers.list(all=True, filters={"label": "io.multiarch-harness"})
    out = run_plugin(samples_project, *sample_run_args(samples, samples_project), env={"COLUMNS": "80"})
    after = engine.containers.list(all=True, filters={"label": "io.multiarch-harness"})
    assert len(after) <= len(before), "the run left containers behind"
    return out


@pytest.fixture
def no_leftovers(engine: docker.DockerClient):
    """Fails the test if it leaves any container with the harness's label behind."""
    before = set(harness_containers(engine))
    yield
    left = set(harness_containers(engine)) - before
    assert not left, f"containers left behind: {sorted(left)}"
