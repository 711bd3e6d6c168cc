"""The engine tier: the real engine, QEMU handlers and registry that stack/setup.sh starts.

If they do not answer, these tests are skipped here with the reason, and fail in CI.
Only fixtures live here; what the tests share otherwise is in enginekit.py.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
import requests
from enginekit import DEBIAN_SAMPLES, REGISTRY, SAMPLES, harness_containers, sample_refs, unavailable


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


@pytest.fixture
def no_leftovers(engine: docker.DockerClient):
    """Fails the test if it leaves any container with the harness's label behind."""
    before = set(harness_containers(engine))
    yield
    left = set(harness_containers(engine)) - before
    assert not left, f"containers left behind: {sorted(left)}"
